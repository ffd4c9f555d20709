"""End-to-end scoring benchmark: DICOM files on disk to exam scores, ours against a baseline.

A benchmark, not a test: it measures and reports. Two pipelines score the same exams with
the same weights, alternating run by run, each run in a fresh process so that its time and
its peak memory (VmHWM of that process alone; ``ru_maxrss`` would carry the parent's peak
across fork+exec) are its own:

- *baseline*, what users write today: ``pydicom`` full-resolution decode
  (``ds.pixel_array``), a MONAI ``Compose`` (``EnsureChannelFirst``, ``ScaleIntensity``,
  ``Resize`` to the model input, ``NormalizeIntensity`` with the sidecar's mean and std),
  PyTorch eager inference one image at a time (``torch.no_grad``), exam score = max over
  its images. No breast crop and no reduced-resolution decode: a typical user has neither.
- *ours*: :class:`~mammotriage.infer.engine.ScoringEngine` with its defaults.

The shipped model comes as ONNX only, so the baseline's network is rebuilt from the
sidecar's ``architecture`` and loaded from the ONNX initializers; the TorchScript exporter
keeps the names of unfolded parameters and folds batch norm into the convolution before
it, so those convolutions are matched to the network's in execution order and their batch
norms set to the identity. The rebuilt network must reproduce ONNX Runtime's outputs to
1e-4 or the benchmark stops: a baseline with other weights would measure nothing.

Only the baseline's processes import torch, and only through
:mod:`mammotriage.bench_baseline`; the parent and the engine's runs do not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mammotriage.errors import ConfigError, MammotriageError

if TYPE_CHECKING:
    from mammotriage.synth import ExamPlan

#: JPEG 2000 Image Compression (Lossless Only) and JPEG 2000 Image Compression (PS3.5 A.4.4).
JPEG2000_SYNTAXES = {"1.2.840.10008.1.2.4.90": "lossless", "1.2.840.10008.1.2.4.91": "lossy"}
PARITY_TOLERANCE = 1e-4
SPEEDUP_TARGET = 3.0
PEAK_RSS_TARGET_MB = 1024.0
Say = Callable[[str], None]
#: Roles run by :mod:`mammotriage.bench_baseline`, the only module that imports torch.
BASELINE_ROLES = frozenset({"baseline-weights", "baseline"})


class BenchmarkError(MammotriageError):
    """A benchmark run failed, or its baseline does not reproduce the model."""


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/mammotriage/bench`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mammotriage" / "bench"


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


# --- data ------------------------------------------------------------------------------------


def prepare_data(
    root: Path, exams: int, *, seed: int = 0, small: bool = False, say: Say | None = None
) -> list[Path]:
    """The first ``exams`` JPEG 2000 exam folders of synthetic seed ``seed`` under ``root``.

    Exams are planned as :func:`mammotriage.synth.generate` plans them and only those of
    the JPEG 2000 vendor profiles (lossless and lossy) are written: the same files that
    ``generate`` would write, without the four other profiles it would render only to be
    thrown away. Written once; later runs reuse them (``truth.csv`` lists the finished).

    Raises
    ------
    ConfigError
        If a cached file is not JPEG 2000 (the folder holds something else).
    """
    from mammotriage.synth import generate_exam, plan_exams, read_truth, write_truth

    folder = root / f"{'small' if small else 'full'}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    truth = folder / "truth.csv"
    rows = read_truth(truth) if truth.exists() else []
    done = {row.path.split("/")[0] for row in rows}
    plans: list[ExamPlan] = []
    total = 0
    while len(plans) < exams:  # every sixth exam per profile: grow the plan until enough
        total += 6
        candidates = plan_exams(total, seed=seed, small=small)
        plans = [p for p in candidates if str(p.profile.transfer_syntax) in JPEG2000_SYNTAXES]
    plans = plans[:exams]
    wanted = [f"{plan.index + 1:05d}" for plan in plans]
    missing = [plan for plan, name in zip(plans, wanted, strict=True) if name not in done]
    if missing:
        if say:
            say(
                f"writing {len(missing)} {'small' if small else 'full-size'} JPEG 2000 exam(s) "
                f"into {folder} (once)"
            )
        if len(missing) > 1 and not small:
            with ProcessPoolExecutor(min(len(missing), os.cpu_count() or 1)) as pool:
                new = [
                    r
                    for result in pool.map(generate_exam, [folder] * len(missing), missing)
                    for r in result
                ]
        else:
            new = [r for plan in missing for r in generate_exam(folder, plan)]
        rewritten = {row.path.split("/")[0] for row in new}  # half-written before: replaced
        rows = [row for row in rows if row.path.split("/")[0] not in rewritten] + new
        write_truth(truth, rows)
    bad = [
        r.path
        for r in rows
        if r.path.split("/")[0] in wanted and r.transfer_syntax not in JPEG2000_SYNTAXES
    ]
    if bad:
        raise ConfigError(f"{folder / bad[0]} is not JPEG 2000; use another --data folder")
    return [folder / name for name in wanted]


def _describe(exam_folders: Sequence[Path]) -> tuple[list[Path], dict[str, int], list[str]]:
    """Files, count per JPEG 2000 flavour and image sizes, read from the files themselves."""
    import pydicom

    files: list[Path] = []
    syntaxes: dict[str, int] = {}
    sizes: set[str] = set()
    for folder in exam_folders:
        for path in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            kind = JPEG2000_SYNTAXES.get(str(ds.file_meta.TransferSyntaxUID))
            if kind is None:
                raise ConfigError(f"{path} is not JPEG 2000; use another --data folder")
            files.append(path)
            syntaxes[f"JPEG 2000 {kind}"] = syntaxes.get(f"JPEG 2000 {kind}", 0) + 1
            sizes.add(f"{ds.Rows}x{ds.Columns}")
    return files, syntaxes, sorted(sizes)


# --- the parent: runs, alternation, figures --------------------------------------------------


def _child(role: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``role`` in a fresh interpreter; its last stdout line is its JSON result."""
    module = "mammotriage.bench_baseline" if role in BASELINE_ROLES else "mammotriage.bench"
    command = [sys.executable, "-m", module, role, json.dumps(payload)]
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
    files, syntaxes, sizes = _describe(folders)
    groups = [[str(p) for p in sorted(f.glob("*.dcm"))] for f in folders]
    work = Path(folders[0]).parent
    weights = work / f"baseline-{sidecar.sha256[:12]}.pt"
    say("rebuilding the torch network from the ONNX initializers and checking parity")
    parity = _child(
        "baseline-weights", {"model": str(model), "out": str(weights), "probe": str(files[0])}
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


# --- the children: one pipeline each, in its own process -------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB; the baseline's children use it too."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux: ru_maxrss, in KB on most systems

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(payload: dict[str, Any]) -> dict[str, Any]:
    """:class:`ScoringEngine` with its defaults, on the same exam folders."""
    from mammotriage.dicom import group_exams
    from mammotriage.infer.engine import ScoringEngine

    provider = payload["provider"]
    files = [path for exam in payload["exams"] for path in exam]
    engine = ScoringEngine(
        payload["model"], providers=[provider] if provider else None, threads=payload["threads"]
    )
    with engine:
        batch = np.zeros((engine.batch_size, 1, *engine.sidecar.input_shape), np.float32)
        engine.model.predict(batch)  # warm up once, as the baseline does
        start = time.perf_counter()
        headers = engine.read_headers(files)
        middle = time.perf_counter()
        exams = engine.score_exams(group_exams(headers))
        seconds = time.perf_counter() - start
    scored = sum(1 for exam in exams for image in exam.images if image.probability is not None)
    if scored != len(files) or len(exams) != len(payload["exams"]):
        raise BenchmarkError(
            f"the engine scored {scored} of {len(files)} images in "
            f"{len(exams)} exams; expected every image of every exam"
        )
    if "torch" in sys.modules:
        raise BenchmarkError("the engine's run imported torch; its memory would be inflated")
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "scores": [exam.score for exam in exams],
        "provider": engine.model.providers[0],
        "stages": {
            "headers": middle - start,
            "decode_preprocess_inference": seconds - (middle - start),
        },
    }


def _best_of(fn: Callable[[], object], *, runs: int, min_seconds: float = 0.0) -> float:
    fn()
    best, spent, done = float("inf"), 0.0, 0
    while done < runs or spent < min_seconds:
        t = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t
        best, spent, done = min(best, elapsed), spent + elapsed, done + 1
    return best


def _inference(payload: dict[str, Any]) -> dict[str, Any]:
    """ONNX Runtime alone on a batch of preprocessed images, and numpy's matmul peak."""
    import onnxruntime as ort

    from mammotriage.dicom import read_image
    from mammotriage.infer.engine import prepare_image
    from mammotriage.infer.session import OnnxModel

    n = 2048
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    provider = payload["provider"]
    model = OnnxModel(
        Path(payload["model"]),
        providers=[provider] if provider else None,
        intra_op_threads=payload["threads"],
    )
    tensors = []
    for path in payload["files"]:
        prepared = prepare_image(
            read_image(path, load_pixels=False), model.sidecar.preprocess_params
        )
        if prepared.tensor is None:
            raise BenchmarkError(f"{path}: {prepared.reason}")
        tensors.append(prepared.tensor)
    batch = np.stack(tensors)
    # Interleaved rounds, best of each: a neighbour's burst then slows one round, not one side.
    matmul = seconds = float("inf")
    for _ in range(3):
        matmul = min(matmul, _best_of(lambda: a @ b, runs=3))
        seconds = min(seconds, _best_of(lambda: model.predict(batch), runs=5, min_seconds=0.5))
    return {
        "images_per_s": len(batch) / seconds,
        "batch": len(batch),
        "matmul_peak_gflops": 2 * n**3 / matmul / 1e9,
        "versions": {"onnxruntime": ort.__version__, "numpy": np.__version__},
    }


_ROLES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ours": _ours,
    "inference": _inference,
}


def _main(argv: Sequence[str]) -> None:
    role, payload = argv[0], json.loads(argv[1])
    print(json.dumps(_ROLES[role](payload)))


if __name__ == "__main__":
    _main(sys.argv[1:])
