"""The benchmark's parent: it starts each run in a fresh process, alternates the two
pipelines, and reduces their results to a :class:`BenchReport`.

The children are started as ``python -m MODULE ROLE PAYLOAD`` (:data:`ROLE_MODULES`); this
module imports neither child module, so the parent never imports torch.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mammotriage.bench.common import BenchmarkError, Say
from mammotriage.bench.data import default_data_dir, describe, prepare_data

SPEEDUP_TARGET = 3.0
PEAK_RSS_TARGET_MB = 1024.0
#: The module each child role runs in; :mod:`mammotriage.bench.baseline` is the only module
#: of the package that imports torch.
ROLE_MODULES = {
    "baseline-weights": "mammotriage.bench.baseline",
    "baseline": "mammotriage.bench.baseline",
    "ours": "mammotriage.bench.ours",
    "inference": "mammotriage.bench.ours",
}


@dataclass(frozen=True)
class BenchReport:
    """The figures of one benchmark (seconds are medians over the repeats)."""

    exams: int
    images: int
    repeats: int
    model: str
    provider: str
    threads: int | None
    images_per_s: float
    baseline_images_per_s: float
    speedup: float
    ms_per_exam: float
    baseline_ms_per_exam: float
    peak_rss_mb: float
    baseline_peak_rss_mb: float
    flops_per_image: int | None
    matmul_peak_gflops: float
    inference_images_per_s: float
    model_gflops_achieved: float | None
    fraction_of_peak: float | None
    seconds: list[float]
    baseline_seconds: list[float]
    exam_scores: list[float | None]
    baseline_exam_scores: list[float]
    stages_s: dict[str, float]
    baseline_stages_s: dict[str, float]
    baseline_device: str
    baseline_batch_size: int
    parity_max_abs_delta: float
    transfer_syntaxes: dict[str, int]
    image_sizes: list[str]
    data: str
    load_average: list[float]
    machine: str
    date: str
    versions: dict[str, str]
    targets: dict[str, bool]

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _child(role: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``role`` in a fresh interpreter; its last stdout line is its JSON result."""
    command = [sys.executable, "-m", ROLE_MODULES[role], role, json.dumps(payload)]
    env = dict(os.environ)
    if payload.get("threads"):  # numpy's BLAS and torch's OpenMP read these at start
        env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(payload["threads"])
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise BenchmarkError(
            f"the {role} run failed (exit {result.returncode}): "
            + (lines[-1] if lines else "no message")
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_benchmark(
    model: Path,
    *,
    data: Path | None = None,
    exams: int = 4,
    repeats: int = 3,
    seed: int = 0,
    provider: str | None = None,
    threads: int | None = None,
    small: bool = False,
    say: Say | None = None,
) -> BenchReport:
    """Score ``exams`` JPEG 2000 exams with both pipelines, ``repeats`` times alternating.

    The order flips each repeat (baseline first, then ours first) so that neither always
    runs on a warmer machine. Times are medians; peak memory is the highest run's.
    ``threads`` sets both libraries' intra-op threads (ONNX Runtime, torch, and the BLAS
    of the matrix-multiply peak); None leaves each its own default, as users run them.

    Raises
    ------
    ConfigError
        If the model, its sidecar or the data folder is unusable.
    BenchmarkError
        If a run fails, or the rebuilt torch network does not reproduce the ONNX model.
    """
    from mammotriage.infer.session import choose_providers
    from mammotriage.sidecar import load_sidecar

    if provider:
        choose_providers([provider])  # a missing provider is said now, not after the baseline
    for name, value in (("exams", exams), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f'Argument "{name}" must be >= 1, got {value!r}.')
    say = say or (lambda message: None)
    load = [os.getloadavg()[0]]
    sidecar = load_sidecar(model)
    folders = prepare_data(data or default_data_dir(), exams, seed=seed, small=small, say=say)
    files, syntaxes, sizes = describe(folders)
    groups = [[str(p) for p in sorted(f.glob("*.dcm"))] for f in folders]
    work = Path(folders[0]).parent
    # The torch baseline is the fp32 network: a lower-precision copy (NAME.int8.onnx) keeps
    # its weights quantised or in half precision, so the baseline is rebuilt from the fp32
    # model it was made from, and "ours" runs the copy.
    fp32 = model if sidecar.variant_of is None else model.parent / sidecar.variant_of.onnx_file
    weights = work / f"baseline-{load_sidecar(fp32).sha256[:12]}.pt"
    say("rebuilding the torch network from the ONNX initializers and checking parity")
    parity = _child(
        "baseline-weights", {"model": str(fp32), "out": str(weights), "probe": str(files[0])}
    )
    common = {"model": str(model), "provider": provider, "threads": threads, "exams": groups}
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": []}
    for repeat in range(repeats):
        order = ("baseline", "ours") if repeat % 2 == 0 else ("ours", "baseline")
        for role in order:
            result = _child(role, {**common, "weights": str(weights)})
            runs[role].append(result)
            say(
                f"repeat {repeat + 1}/{repeats} {role}: {result['seconds']:.2f} s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB"
            )
    say("timing ONNX Runtime alone and the machine's matrix-multiply peak")
    inference = _child("inference", {**common, "files": [str(p) for p in files[:8]]})
    load.append(os.getloadavg()[0])

    def median(role: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[role])

    ours_s, base_s = median("ours", "seconds"), median("baseline", "seconds")
    n_images, n_exams = len(files), len(folders)
    flops = sidecar.architecture.get("flops_per_image")
    achieved = flops * inference["images_per_s"] / 1e9 if flops else None
    peak = inference["matmul_peak_gflops"]
    ours_rss = max(run["peak_rss_mb"] for run in runs["ours"])
    speedup = base_s / ours_s
    return BenchReport(
        exams=n_exams,
        images=n_images,
        repeats=repeats,
        model=sidecar.name,
        provider=runs["ours"][0]["provider"],
        threads=threads,
        images_per_s=n_images / ours_s,
        baseline_images_per_s=n_images / base_s,
        speedup=speedup,
        ms_per_exam=1000 * ours_s / n_exams,
        baseline_ms_per_exam=1000 * base_s / n_exams,
        peak_rss_mb=ours_rss,
        baseline_peak_rss_mb=max(run["peak_rss_mb"] for run in runs["baseline"]),
        flops_per_image=flops,
        matmul_peak_gflops=peak,
        inference_images_per_s=inference["images_per_s"],
        model_gflops_achieved=achieved,
        fraction_of_peak=achieved / peak if achieved is not None else None,
        seconds=[run["seconds"] for run in runs["ours"]],
        baseline_seconds=[run["seconds"] for run in runs["baseline"]],
        exam_scores=runs["ours"][0]["scores"],
        baseline_exam_scores=runs["baseline"][0]["scores"],
        stages_s=_median_stages(runs["ours"]),
        baseline_stages_s=_median_stages(runs["baseline"]),
        baseline_device=runs["baseline"][0]["device"],
        baseline_batch_size=1,
        parity_max_abs_delta=parity["max_abs_delta"],
        transfer_syntaxes=syntaxes,
        image_sizes=sizes,
        data=str(work),
        load_average=load,
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        date=time.strftime("%Y-%m-%d"),
        versions={
            "python": platform.python_version(),
            **parity["versions"],
            **runs["baseline"][0]["versions"],
            **inference["versions"],
        },
        targets={"speedup": speedup >= SPEEDUP_TARGET, "peak_rss": ours_rss <= PEAK_RSS_TARGET_MB},
    )


def _median_stages(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(run["stages"][key] for run in runs) for key in runs[0]["stages"]}
