"""``mammotriage worker``: the batch job a hospital runs unattended next to its PACS.

A plain function; :mod:`mammotriage.cli.main` adds it to the app.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import console, counted
from mammotriage.errors import MammotriageError, StoreError

if TYPE_CHECKING:
    from mammotriage.worker.config import WorkerSettings
    from mammotriage.worker.loop import Worker
    from mammotriage.worklist import Store

DEFAULT_CONFIG = Path("configs/worker.yaml")


def worker(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Worker settings (YAML).")
    ] = DEFAULT_CONFIG,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Process what has arrived (waiting out quiet periods and retries), then exit.",
        ),
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="This worker's name in the store (default: from config).")
    ] = None,
    show_queues: Annotated[
        bool,
        typer.Option(
            "--show-queues",
            help="Print the reading queues, the outputs and the HL7 outbox when done.",
        ),
    ] = False,
) -> None:
    """Score every study the configured source delivers: store, triage, send the SR back.

    Runs until SIGTERM or Ctrl-C, which finish the job in hand and then stop; with --once,
    until what has arrived is done. Logs go to stderr (JSON lines by default), the summary
    to stdout.

    \b
    Exit status:
      0  done (with --once: every job ended, the source answered; without: stopped)
      1  --once only: some jobs failed, or the source could not be reached
      2  configuration or usage error (a wrong setting, a missing source folder,
         the metrics port in use, a wrong option)
      3  the worklist database cannot be opened or migrated
      4  internal error (a bug): its traceback is in the log
    """
    from mammotriage.worker.config import load_worker_settings

    try:
        overrides = {} if name is None else {"name": name}
        settings = load_worker_settings(config, **overrides)
    except MammotriageError as exc:
        _exit_with(exc, EXIT_CONFIG)
    code = _run(settings, once=once, show_queues=show_queues)
    if code != EXIT_OK:
        raise typer.Exit(code=code)


#: ``mammotriage worker``'s exit status (documented in its help and in README.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STORE = 3
EXIT_INTERNAL = 4


def _exit_with(exc: MammotriageError, code: int) -> NoReturn:
    """One line for a person (before the log is set up), then exit with ``code``."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code=code)


def _error_code(exc: BaseException) -> int:
    if isinstance(exc, StoreError):
        return EXIT_STORE
    if isinstance(exc, MammotriageError):
        return EXIT_CONFIG
    return EXIT_INTERNAL


def _run(settings: WorkerSettings, *, once: bool, show_queues: bool) -> int:
    """Build the worker, run it, print the summary; the exit status. Every error ends as one
    log line (JSON by default) and its status: never a traceback on stderr, except in the
    log entry of an internal error."""
    from mammotriage.worker.factory import build_worker
    from mammotriage.worker.logs import configure_logging, scrub

    if settings.log_format == "json":
        # Child processes (the decode pool) would print Python warnings raw on the shared
        # stderr; what they warn about is recorded as each image's reason anyway.
        os.environ["PYTHONWARNINGS"] = "ignore"
    configure_logging(settings.log_format, sys.stderr)
    log = logging.getLogger("mammotriage.worker")
    try:
        the_worker = build_worker(settings)
    except Exception as exc:  # one line and a status, whatever it was
        return _report(log, exc)
    stop = threading.Event()
    try:
        with _stop_on_signals(stop, log):
            if settings.metrics.port is not None:
                port = the_worker.metrics.serve(settings.metrics.port, settings.metrics.host)
                console.print(f"metrics on http://{settings.metrics.host}:{port}/metrics")
            summary = the_worker.run(stop, once=once)
    except Exception as exc:
        return _report(log, exc)
    finally:
        the_worker.source.close()
        the_worker.engine.close()
    out = Console(width=160)
    out.print(
        f"worker {settings.name}: {counted(summary.jobs, 'job')}, "
        f"{counted(summary.scored, 'exam')} scored, "
        f"{summary.unscored} not scorable (double reading), {summary.rejected} not mammography, "
        f"{summary.retried} retried, {summary.failed} failed, "
        f"{counted(len(summary.reports), 'SR')} sent"
        + (", source unreachable" if summary.source_unreachable else "")
    )
    if summary.sent:
        names = {"sr": "SR", "gsps": "GSPS", "sc": "burnt-in SC"}
        what = ", ".join(
            f"{summary.sent[o]} {name}" for o, name in names.items() if o in summary.sent
        )
        places = sorted({scrub(place, quoted=False) for place in summary.places})
        shown = ", ".join(places[:3]) + (f" (+{len(places) - 3} more)" if len(places) > 3 else "")
        out.print(f"sent {what} to: {shown}")
    if summary.hl7_waiting:
        one = summary.hl7_waiting == 1
        out.print(
            f"{counted(summary.hl7_waiting, 'HL7 result')} wait{'s' if one else ''} in the "
            f"outbox for the RIS (`mammotriage outbox list`); the next run sends "
            f"{'it' if one else 'them'}"
        )
    if show_queues:
        _print_queues(the_worker, out)
    the_worker.store.close()
    if once and (summary.failed or summary.source_unreachable):
        return EXIT_FAILED
    return EXIT_OK


#: The signals that stop the worker after the job in hand.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: The longest the worker waits at exit for its ``stopping`` line to be written (seconds).
STOP_LOG_TIMEOUT = 5.0


@contextmanager
def _stop_on_signals(stop: threading.Event, log: logging.Logger) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set ``stop`` and are logged at once (event
    ``stopping``, the signal's name); the previous handlers are back after it.

    The handler only notes the signal and sets ``stop``: logging from a signal handler can
    re-enter a stream's write in progress. A thread waiting on ``stop`` writes the line; the
    block's end sets ``stop`` too (the run is over) and waits for that thread.
    """
    received: list[signal.Signals] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum))
        stop.set()

    def say_stopping() -> None:
        stop.wait()
        if received:
            name = received[0].name
            log.info(
                "%s received: stopping after the job in hand",
                name,
                extra={"event": "stopping", "signal": name},
            )

    watcher = threading.Thread(target=say_stopping, name="stop-signal-log", daemon=True)
    watcher.start()
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.set()
        watcher.join(timeout=STOP_LOG_TIMEOUT)


def _report(log: logging.Logger, exc: BaseException) -> int:
    """Say ``exc`` in one line, ``error: ...`` as every command does, and return its exit
    status; a bug is logged (JSON by default) with its traceback."""
    code = _error_code(exc)
    if code == EXIT_INTERNAL:
        log.critical(
            "internal error: %s: %s",
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra={"event": "internal-error", "exit_code": code},
        )
    else:  # the command line's convention, whatever the log format
        from rich.markup import escape

        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    return code


def _print_queues(the_worker: Worker, out: Console) -> None:
    from mammotriage.triage import QueueTier, ReadingMode

    now = datetime.now(timezone.utc)
    entries = the_worker.store.readings.worklist(now, the_worker.policy)
    queues = {
        "read first (priority, overdue)": [
            e for e in entries if e.order.tier <= QueueTier.PRIORITY
        ],
        "double reading": [
            e
            for e in entries
            if e.order.tier > QueueTier.PRIORITY and e.decision.mode is ReadingMode.DOUBLE
        ],
        "single reading": [
            e
            for e in entries
            if e.order.tier > QueueTier.PRIORITY and e.decision.mode is ReadingMode.SINGLE
        ],
    }
    for title, queue in queues.items():
        table = Table(title=f"{title}: {counted(len(queue), 'exam')}", title_justify="left")
        for column in ("#", "exam (internal id)", "score", "cat.", "reading", "rule"):
            table.add_column(column)
        for i, entry in enumerate(queue, 1):
            table.add_row(
                str(i),
                str(entry.exam_public_id),
                "-" if entry.score is None else f"{entry.score:.1f}",
                "-" if entry.category is None else str(entry.category),
                entry.decision.mode.value + (" +priority" if entry.decision.priority else ""),
                entry.decision.rule,
            )
        out.print(table)
    rejected = [e for e in the_worker.store.exams.all() if e.status.value == "rejected"]
    if rejected:
        out.print(f"not mammography (kept off the queues, reasons in the store): {len(rejected)}")
    _print_outputs(the_worker.store, out, now)


#: The most failing outputs ``--show-queues`` lists.
FAILING_SHOWN = 20


def _print_outputs(store: Store, out: Console, now: datetime) -> None:
    """The exams' outputs (counts, the failing ones) and the HL7 outbox (counts, the age
    of the oldest message waiting): internal exam ids only, never a message's text."""
    from rich.markup import escape

    from mammotriage.worklist.models import OutputState
    from mammotriage.worklist.outputs import OUTPUTS

    counts = store.outputs.counts()
    if counts:
        table = Table(title="outputs", title_justify="left")
        for column in ("output", "done", "failed"):
            table.add_column(column)
        for name in OUTPUTS:
            done = counts.get((name, OutputState.DONE), 0)
            failed = counts.get((name, OutputState.FAILED), 0)
            if done or failed:
                table.add_row(name, str(done), str(failed))
        out.print(table)
    failing = store.outputs.failing(FAILING_SHOWN)
    if failing:
        table = Table(title=f"failing outputs: {len(failing)}", title_justify="left")
        for column in ("exam (internal id)", "output", "attempts", "when", "reason"):
            table.add_column(column)
        for output in failing:
            table.add_row(
                str(output.exam_public_id),
                output.output,
                str(output.attempts),
                f"{output.updated_at:%Y-%m-%d %H:%M}",
                escape(output.last_error or ""),
            )
        out.print(table)
    outbox = store.outbox.counts()
    if any(outbox.values()):
        oldest = store.outbox.oldest_queued_at()
        age = "" if oldest is None else f", oldest queued {_age(now - oldest)} ago"
        summary = ", ".join(f"{n} {state.value}" for state, n in outbox.items())
        out.print(f"HL7 outbox: {summary}{age}")


def _age(delta: timedelta) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    total = max(int(delta.total_seconds()), 0)
    minutes, hours, days = total // 60 % 60, total // 3600 % 24, total // 86400
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min" if minutes else f"{total} s"
