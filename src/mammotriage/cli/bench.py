"""``mammotriage bench``: end-to-end scoring speed and memory against a typical user pipeline.

A plain function; :mod:`mammotriage.cli.main` adds it to the app. The work is in
:mod:`mammotriage.bench`; torch is imported only by the baseline's own processes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import ModelOption, console, fail, model_path
from mammotriage.errors import MammotriageError

QUICK_EXAMS, QUICK_REPEATS = 2, 1
DEFAULT_EXAMS, DEFAULT_REPEATS = 4, 3


def bench(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Cache folder for the generated JPEG 2000 exams "
            "(default: ~/.cache/mammotriage/bench).",
        ),
    ] = None,
    exams: Annotated[
        int | None,
        typer.Option(
            "--exams",
            min=1,
            help=f"Four-view exams (default {DEFAULT_EXAMS}; --quick {QUICK_EXAMS}).",
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            "--repeats",
            min=1,
            help=f"Alternating runs of each pipeline; the median is "
            f"reported (default {DEFAULT_REPEATS}; --quick {QUICK_REPEATS}).",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A short run: 2 exams, 1 repeat.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic exams.")] = 0,
    model: ModelOption = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help="ONNX Runtime execution provider, e.g. CUDAExecutionProvider "
            "(default: the engine's automatic choice).",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="Intra-op threads for both ONNX Runtime and torch (default: each its own).",
        ),
    ] = None,
    small: Annotated[
        bool,
        typer.Option(
            "--small",
            help="Small (512-row) phantoms: checks the benchmark itself; the "
            "figures say nothing about full-size exams.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time DICOM-to-exam-score against pydicom + MONAI + PyTorch, same model, same images."""
    from mammotriage.bench import run_benchmark

    try:
        report = run_benchmark(
            model_path(model),
            data=data,
            exams=exams or (QUICK_EXAMS if quick else DEFAULT_EXAMS),
            repeats=repeats or (QUICK_REPEATS if quick else DEFAULT_REPEATS),
            seed=seed,
            provider=provider,
            threads=threads,
            small=small,
            say=lambda message: console.print(message, soft_wrap=True),
        )
    except MammotriageError as exc:
        fail(exc)
        return
    if as_json:
        sys.stdout.write(report.to_json() + "\n")
        return

    r = report
    table = Table(
        title=f"{r.exams} exams, {r.images} images ({', '.join(r.image_sizes)}), "
        f"median of {r.repeats}"
    )
    for column in ("pipeline", "images/s", "ms per exam", "peak RSS MB"):
        table.add_column(column, justify="right" if column != "pipeline" else "left")
    table.add_row(
        f"baseline (pydicom + MONAI + torch eager, {r.baseline_device})",
        f"{r.baseline_images_per_s:.2f}",
        f"{r.baseline_ms_per_exam:.0f}",
        f"{r.baseline_peak_rss_mb:.0f}",
    )
    table.add_row(
        f"mammotriage ({r.provider})",
        f"{r.images_per_s:.2f}",
        f"{r.ms_per_exam:.0f}",
        f"{r.peak_rss_mb:.0f}",
    )
    table.add_row(
        "ratio",
        f"{r.speedup:.1f}x",
        f"{r.speedup:.1f}x",
        f"{r.baseline_peak_rss_mb / r.peak_rss_mb:.1f}x less",
    )
    Console().print(table)
    achieved = (
        f"{r.model_gflops_achieved:.1f} GFLOP/s = {100 * r.fraction_of_peak:.0f} % of peak"
        if r.model_gflops_achieved is not None and r.fraction_of_peak is not None
        else "FLOPs unknown (no flops_per_image in the sidecar)"
    )
    flops = f"{r.flops_per_image / 1e9:.2f} GFLOP/image" if r.flops_per_image else "?"
    print(
        f"matrix-multiply peak {r.matmul_peak_gflops:.0f} GFLOP/s; model {flops}, ONNX Runtime "
        f"alone {r.inference_images_per_s:.0f} images/s: {achieved}"
    )
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in r.baseline_stages_s.items())
    print(
        f"baseline stages: {stages}; torch rebuilt from ONNX, max |delta| "
        f"{r.parity_max_abs_delta:.1e}"
    )
    ours = ", ".join("-" if v is None else f"{v:.0f}" for v in r.exam_scores)
    base = ", ".join(f"{v:.0f}" for v in r.baseline_exam_scores)
    print(f"exam scores: ours {ours}; baseline {base} (same weights; no breast crop there)")
    print(
        f"load average {r.load_average[0]:.2f} -> {r.load_average[-1]:.2f} on {r.machine}; "
        f"data {r.data}"
    )
    verdict = {True: "met", False: "MISSED"}
    print(
        f"targets: speedup >= 3: {verdict[r.targets['speedup']]}; peak RSS <= 1 GB: "
        f"{verdict[r.targets['peak_rss']]}"
    )
