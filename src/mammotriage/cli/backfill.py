"""``mammotriage backfill``: score an archive on Ray Data, restartably.

A plain function; :mod:`mammotriage.cli.main` adds it to the app. Ray is imported by
:mod:`mammotriage.backfill.run` only when the command runs (the ``backfill`` extra).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer

from mammotriage.cli.common import BatchOption, ModelOption, console, counted, fail, model_path
from mammotriage.errors import MammotriageError

#: Seconds between two progress lines.
PROGRESS_EVERY = 5.0


class _ProgressLines:
    """``progress(done, total)`` as a line every few seconds: exams done, rate, expected
    end. Plain lines, not a live bar: a backfill runs for hours, often into a log file."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done and done < total and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        elapsed = now - self.started
        if not done:  # the pipeline starts: the rate counts from here
            self.started = now
            console.print(f"scoring {counted(total, 'exam')} ...", soft_wrap=True)
            return
        rate = done / max(elapsed, 1e-9)
        left = (total - done) / rate if rate > 0 else 0.0
        end = datetime.now(timezone.utc) + timedelta(seconds=left)
        console.print(
            f"{done}/{total} exams ({done / total:.0%}), {rate:.2f} exams/s, "
            + ("done" if done == total else f"expected end {end:%H:%M:%S} UTC (~{left:.0f} s)"),
            soft_wrap=True,
        )


def backfill(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Folders of DICOM files (walked recursively), DICOM files, or manifests "
            "(.csv/.parquet with a 'path' column, optionally 'exam_id'). A rerun into the "
            "same --out needs none: it resumes."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (Parquet results).")] = Path(
        "backfill-out"
    ),
    model: ModelOption = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Triage policy for the reading decision (default: the packaged one)."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (e.g. ray://head:10001); default: start a Ray on "
            "this machine for the run and stop it at the end."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Scoring actors (one ONNX Runtime session each).")
    ] = 1,
    shard_size: Annotated[
        int, typer.Option(min=1, help="Exams per shard (the unit of restart and output).")
    ] = 256,
    batch_size: BatchOption = 8,
    threads: Annotated[
        int | None, typer.Option(min=1, help="ONNX Runtime intra-op threads per actor.")
    ] = 1,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="ONNX Runtime execution provider (repeat for a fallback order); "
            "CUDAExecutionProvider gives each actor a GPU.",
        ),
    ] = None,
    num_cpus: Annotated[
        int | None,
        typer.Option(min=1, help="Logical CPUs of the local Ray (default: cores + 1, >= 3)."),
    ] = None,
    object_store_mb: Annotated[
        int, typer.Option(min=80, help="Object store of the local Ray, in MiB.")
    ] = 512,
) -> None:
    """Score an archive on Ray Data: exams and images as Parquet, restartable, one row per
    exam (with the reason when it could not be scored) and per image."""
    from mammotriage.backfill.run import BackfillOptions, run_backfill

    try:
        options = BackfillOptions(
            model=model_path(model),
            policy=policy,
            address=address,
            workers=workers,
            shard_size=shard_size,
            batch_size=batch_size,
            threads=threads,
            providers=tuple(provider) if provider else None,
            num_cpus=num_cpus,
            object_store_mb=object_store_mb,
        )
        summary = run_backfill(paths or [], out, options, progress=_ProgressLines())
    except MammotriageError as exc:
        fail(exc)
        return
    statuses = ", ".join(f"{n} {status}" for status, n in summary.by_status.items())
    modes = ", ".join(f"{n} {mode}" for mode, n in sorted(summary.by_reading_mode.items()))
    if summary.shards_already_done:
        console.print(
            f"resumed: {summary.shards_already_done} of {counted(summary.shards, 'shard')} "
            f"were done; scored {counted(summary.exams_scored_now, 'exam')} now",
            soft_wrap=True,
        )
    console.print(f"{counted(summary.exams, 'exam')}: {statuses}; reading: {modes}", soft_wrap=True)
    console.print(
        f"{counted(summary.images, 'image')} in {counted(summary.shards, 'shard')}; "
        f"wall {summary.wall_s:.1f} s (Ray start {summary.startup_s:.1f} s, index "
        f"{summary.index_s:.1f} s, scoring {summary.scoring_s:.1f} s)",
        soft_wrap=True,
    )
    console.print(f"wrote {summary.out}/exams and {summary.out}/images", soft_wrap=True)
