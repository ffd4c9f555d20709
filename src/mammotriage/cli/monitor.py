"""``mammotriage monitor`` and ``mammotriage outcomes import``: watching the AI and the
readers after go-live, on the worker's store.

The settings are the monitor's (``--config``, default ``configs/monitor.yaml`` when present:
the store, the monitored model, the policy and the alert rules); ``--database`` names
another store. Nothing printed names a patient: exams are counted, outcome rows are named
by their line in the file.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mammotriage.cli.common import console, existing_store, fail
from mammotriage.errors import ConfigError, MammotriageError

if TYPE_CHECKING:
    from mammotriage.monitor import MonitorSettings

DEFAULT_CONFIG = Path("configs/monitor.yaml")

outcomes_app = typer.Typer(
    help="Screening outcomes (the cancer registry's and the RIS's) for the monitor.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"Monitor settings (YAML; default {DEFAULT_CONFIG} if present, else built-in).",
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="SQLite file or database URL (instead of the config's)."),
]


def _settings(config: Path | None, database: str | None) -> MonitorSettings:
    from mammotriage.monitor import load_monitor_settings

    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    overrides = {} if database is None else {"database": database}
    return load_monitor_settings(config, **overrides)


def monitor(
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="First exam date (YYYY-MM-DD; default: the config's weeks up to today).",
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last exam date (default: today)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Drift per device, reader behaviour and outcomes per band, with the alerts that fire.

    Alerts are stored (once per rule, device and week) and logged when new."""
    from mammotriage.monitor import Monitor, report_json, report_text
    from mammotriage.worklist.models import utcnow

    try:
        settings = _settings(config, database)
        first = None if since is None else since.date()
        last = None if until is None else until.date()
        if first is not None and last is not None and last < first:
            raise ConfigError(f"--until {last} is before --since {first}")
        store = existing_store(settings.database)
        try:
            run = Monitor(store, settings).run(utcnow(), first, last)
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
        return
    if as_json:
        payload = report_json(run.report)
        payload["new_alerts"] = len(run.new_alerts)
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(report_text(run.report))
    if run.new_alerts:
        typer.echo(f"{len(run.new_alerts)} new alert(s) stored")


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="Outcomes CSV: exam_id or accession_number, screen_detected_cancer, "
            "interval_cancer[, recall] (the format evaluate reads)."
        ),
    ],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Store each exam's outcome; importing the same file again changes nothing.

    A bad row stops the import with its file:line and nothing stored. Rows that match no
    exam in the store are counted and named by line; an accession number that matches
    several exams is not imported."""
    from mammotriage.outcomes import parse_outcomes
    from mammotriage.sidecar import sha256_of

    try:
        parsed = parse_outcomes(file)
        settings = _settings(config, database)
        store = existing_store(settings.database)
        try:
            result = store.monitoring.import_outcomes(parsed, sha256_of(file))
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
        return
    console.print(
        f"{result.rows} rows: {result.added} added, {result.changed} changed, "
        f"{result.unchanged} unchanged, {result.unmatched} without an exam in the store, "
        f"{result.ambiguous} ambiguous",
        soft_wrap=True,
        highlight=False,
    )
    for what, count, lines in (
        ("match no exam", result.unmatched, result.unmatched_lines),
        ("match several exams (accession number)", result.ambiguous, result.ambiguous_lines),
    ):
        if count:
            shown = ", ".join(str(n) for n in lines) + (" ..." if count > len(lines) else "")
            console.print(f"warning: {count} rows {what}: lines {shown}", highlight=False)
