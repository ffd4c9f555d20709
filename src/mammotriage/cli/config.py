"""``mammotriage config show``: the settings a worker or the reading service would run with,
and where each value came from, for the engineer who installs and configures them.

Plain functions; :mod:`mammotriage.cli.main` adds them to the app.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import fail
from mammotriage.errors import MammotriageError

config_app = typer.Typer(
    help="Show the effective settings of the worker or the reading service.",
    no_args_is_help=True,
)


class Part(str, enum.Enum):
    """Which long-running command's settings."""

    worker = "worker"
    api = "api"


#: The config file each command reads when none is named (as ``worker`` and ``serve`` do).
DEFAULT_CONFIGS = {Part.worker: Path("configs/worker.yaml"), Part.api: Path("configs/api.yaml")}


@config_app.command("show")
def show(
    part: Annotated[Part, typer.Argument(help="worker or api (the reading service).")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c",
            help="Settings file (default: configs/worker.yaml or configs/api.yaml if present).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per setting.")] = False,
) -> None:
    """Print every effective setting and where it came from: file, environment or default.

    Secrets are masked. Relative paths in a file are shown resolved against the file's folder.
    """
    from mammotriage.settings import YamlSettings, describe_settings

    settings: YamlSettings
    path = config
    if path is None and DEFAULT_CONFIGS[part].is_file():
        path = DEFAULT_CONFIGS[part]
    try:
        if part is Part.worker:
            from mammotriage.worker.config import load_worker_settings

            settings = load_worker_settings(path)
        else:
            from mammotriage.api.settings import load_api_settings

            settings = load_api_settings(path)
        rows = describe_settings(settings, path, part.value)
    except MammotriageError as exc:
        fail(exc)

    if as_json:
        for row in rows:
            typer.echo(json.dumps({"key": row.key, "value": row.value, "source": row.source}))
        return
    table = Table(title=f"{part.value} settings", box=None, show_edge=False)
    for column in ("setting", "value", "from"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.key, _text(row.value), row.source)
    Console(width=max(Console().width, 160)).print(table)


def _text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)
