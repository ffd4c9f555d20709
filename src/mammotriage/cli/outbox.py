"""``mammotriage outbox list | retry``: the HL7 result messages waiting for the RIS.

The worker writes each exam's result message into the store's outbox and a sender thread
delivers it (:mod:`mammotriage.worklist.outbox`); a message the RIS refused (AR) stays
FAILED until someone sends it again. These commands show the outbox and requeue FAILED
messages. They name exams by their internal ids only and never print a message's text
(which names the patient).

The commands sit on :data:`outbox_app`, which :mod:`mammotriage.cli.main` adds as
``outbox``. The database is the worker's (``--config``, default ``configs/worker.yaml``)
or one named with ``--database``.
"""

from __future__ import annotations

import enum
import getpass
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mammotriage.cli.common import console, existing_store, fail
from mammotriage.errors import ConfigError, MammotriageError

if TYPE_CHECKING:
    from mammotriage.worklist import Store

DEFAULT_CONFIG = Path("configs/worker.yaml")
#: Who the audit log names for these commands (the OS user goes in the detail), as for
#: ``mammotriage users``.
CLI_ACTOR = "cli"
#: The audit action of a requeued message (the admin page's retry writes the same).
REQUEUED_ACTION = "hl7-result-requeued"

outbox_app = typer.Typer(
    help="The HL7 outbox: result messages waiting for the RIS, delivered or refused.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"Worker settings (YAML) naming the database (default {DEFAULT_CONFIG} if present).",
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", help="SQLite file or database URL (instead of the worker's config)."
    ),
]


class StateChoice(str, enum.Enum):
    """``--state``: the outbox states."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


def _database(config: Path | None, database: str | None) -> str:
    if database is not None:
        if config is not None:
            raise ConfigError("give --config or --database, not both")
        return database
    from mammotriage.worker.config import load_worker_settings

    if config is None:
        if not DEFAULT_CONFIG.is_file():
            raise ConfigError(
                f"no {DEFAULT_CONFIG}: name the worker's settings with --config or the "
                "database with --database"
            )
        config = DEFAULT_CONFIG
    return load_worker_settings(config).database


def _store(config: Path | None, database: str | None) -> Store:
    """The worker's store, migrated; a SQLite file that is not there is refused (these
    commands look at an outbox, they do not start one)."""
    return existing_store(_database(config, database))


def _when(moment: datetime | None, missing: str = "-") -> str:
    return missing if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


@outbox_app.command("list")
def outbox_list(
    state: Annotated[
        StateChoice | None, typer.Option("--state", help="Only messages in this state.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """List the outbox's messages, oldest first.

    Each with its id, control id (MSH-10), exam (internal id), state, attempts, when
    written, next attempt and last error; the counts per state come first."""
    from mammotriage.worklist.models import OutboxState

    try:
        store = _store(config, database)
        try:
            wanted = None if state is None else OutboxState(state.value)
            messages = store.outbox.messages(wanted, limit)
            counts = store.outbox.counts()
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
        return
    out = Console(width=200)
    out.print(", ".join(f"{n} {s.value}" for s, n in counts.items()))
    table = Table(title=f"{len(messages)} messages", title_justify="left")
    for column in (
        "id", "control id", "exam (internal id)", "state", "attempts", "created",
        "next attempt", "last error",
    ):  # fmt: skip
        table.add_column(column)
    for message in messages:
        table.add_row(
            str(message.id),
            message.control_id,
            str(message.exam_public_id),
            message.state.value,
            str(message.attempts),
            _when(message.created_at),
            _when(message.next_attempt_at),
            escape(message.last_error or ""),
        )
    out.print(table)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return str(os.getuid())


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Outbox ids (from `outbox list`) to send again.")
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Send every FAILED message again.")
    ] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Send FAILED messages (the RIS refused them) again.

    Each goes back to the queue at its place in creation order, and is audited. An id that
    is not a FAILED message is an error (the others are still requeued).

    \b
    Exit status:
      0  every message named was requeued
      1  an id is unknown or not FAILED
      2  configuration or usage error, or the database cannot be opened
    """
    from mammotriage.worklist.models import OutboxState

    if bool(ids) == all_failed:
        fail(ConfigError("name the messages to retry by id, or retry them all with --all-failed"))
    refused = 0
    try:
        store = _store(config, database)
        try:
            if all_failed:
                targets = [m.id for m in store.outbox.messages(OutboxState.FAILED, limit=10**9)]
            else:
                targets = list(dict.fromkeys(ids or []))
            for message_id in targets:
                message = store.outbox.get(message_id)
                if message is None:
                    console.print(f"[red]error:[/red] no outbox message {message_id}")
                    refused += 1
                elif not store.outbox.requeue(message_id):
                    console.print(
                        f"[red]error:[/red] outbox message {message_id} is "
                        f"{message.state.value}, not failed: only a failed message is retried"
                    )
                    refused += 1
                else:
                    store.audit.record(
                        CLI_ACTOR,
                        REQUEUED_ACTION,
                        message.exam_public_id,
                        {
                            "control_id": message.control_id,
                            "attempts": message.attempts,
                            "os_user": _os_user(),
                        },
                    )
                    console.print(f"requeued outbox message {message_id} ({message.control_id})")
            if all_failed and not targets:
                console.print("no failed messages")
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
    if refused:
        raise typer.Exit(code=1)
