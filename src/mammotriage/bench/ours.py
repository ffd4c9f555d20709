"""The children of our pipeline, each run in its own process by the parent
(:mod:`mammotriage.bench.runner`) as ``python -m mammotriage.bench.ours ROLE PAYLOAD``:

- ``ours``: :class:`~mammotriage.infer.engine.ScoringEngine` with its defaults, on the
  benchmark's exam folders (it must not import torch: its memory would be inflated);
- ``inference``: ONNX Runtime alone on a batch of preprocessed images, and numpy's
  matrix-multiply peak.

The last stdout line is the JSON result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.bench.common import BenchmarkError, Role, peak_rss_mb, run_role


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
    from mammotriage.infer.prepare import Unusable, prepare_image
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
        if isinstance(prepared, Unusable):
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


ROLES: dict[str, Role] = {
    "ours": _ours,
    "inference": _inference,
}


if __name__ == "__main__":
    run_role(ROLES, sys.argv[1:])
