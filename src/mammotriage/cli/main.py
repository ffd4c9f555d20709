"""The ``mammotriage`` Typer app: the one place that builds it and adds every command.

The command modules define plain functions and know nothing of the app; the order below
is the order of ``mammotriage --help``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mammotriage.cli import (
    backfill,
    bench,
    config,
    evaluate,
    model,
    monitor,
    outbox,
    reading,
    scoring,
    service,
    worker,
)

app = typer.Typer(
    help="Triage screening mammograms: read DICOM, score with an ONNX model, fill reading queues.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress at INFO level.")
    ] = False,
) -> None:
    """Log to stderr: warnings by default, progress with --verbose (for batch jobs)."""
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


COMMANDS = (
    reading.synth,  # the radiologist / the data person: what is in the DICOM
    reading.inspect,
    service.serve,  # the reading service's administrator
    bench.bench,  # whoever compares us with a plain pydicom + MONAI + torch pipeline
    scoring.score,  # the site: score, calibrate, simulate a policy, order the queue
    scoring.calibrate,
    scoring.simulate,
    backfill.backfill,  # the programme before go-live: score the archive, evaluate
    evaluate.evaluate,
    model.train,  # the ML engineer
    model.validate,
    model.export,
    scoring.queue,
    worker.worker,  # the unattended batch job next to the PACS
    monitor.monitor,  # the programme after go-live: drift, readers, outcomes
)
for command in COMMANDS:
    app.command()(command)
app.add_typer(service.users_app, name="users")
app.add_typer(config.config_app, name="config")
app.add_typer(outbox.outbox_app, name="outbox")
app.add_typer(monitor.outcomes_app, name="outcomes")
