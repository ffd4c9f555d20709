"""``mammotriage worker``: the batch job a hospital runs unattended next to its PACS.

A plain function; :mod:`mammotriage.cli.main` adds it to the app.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import console, fail
from mammotriage.errors import MammotriageError

if TYPE_CHECKING:
    from mammotriage.worker.loop import Worker

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
        bool, typer.Option("--show-queues", help="Print the reading queues when done.")
    ] = False,
) -> None:
    """Score every study the configured source delivers: store, triage, send the SR back.

    Runs until SIGTERM or Ctrl-C, which finish the job in hand and then stop.
    """
    from mammotriage.worker.config import load_worker_settings
    from mammotriage.worker.factory import build_worker
    from mammotriage.worker.logs import configure_logging

    try:
        overrides = {} if name is None else {"name": name}
        settings = load_worker_settings(config, **overrides)
        configure_logging(settings.log_format, sys.stderr)
        the_worker = build_worker(settings)
    except MammotriageError as exc:
        fail(exc)
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if settings.metrics.port is not None:
            port = the_worker.metrics.serve(settings.metrics.port, settings.metrics.host)
            console.print(f"metrics on http://{settings.metrics.host}:{port}/metrics")
        summary = the_worker.run(stop, once=once)
    except MammotriageError as exc:
        fail(exc)
        return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        the_worker.source.close()
        the_worker.engine.close()
    out = Console(width=160)
    out.print(
        f"worker {settings.name}: {summary.jobs} jobs, {summary.scored} exams scored, "
        f"{summary.unscored} not scorable (double reading), {summary.rejected} not mammography, "
        f"{summary.retried} retried, {summary.failed} failed, {len(summary.reports)} SRs sent"
    )
    if summary.reports:
        places = sorted(set(summary.reports))
        shown = ", ".join(places[:3]) + (f" (+{len(places) - 3} more)" if len(places) > 3 else "")
        out.print(f"SRs written to: {shown}")
    if show_queues:
        _print_queues(the_worker, out)
    the_worker.store.close()


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
        table = Table(title=f"{title}: {len(queue)} exams", title_justify="left")
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
