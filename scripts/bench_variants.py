"""Benchmark: the packaged model and its INT8 and FP16 copies, on one labelled synthetic set.

    .venv/bin/python scripts/bench_variants.py [--exams 100] [--seed 7301] [--threads 1]
        [--repeats 3] [--full-size] [--data DIR] [--model models/NAME.onnx] [--json]

``--json`` prints one JSON object on stdout and the table on stderr.

Writes ``--exams`` synthetic screening exams once (small phantoms by default, as the packaged
model was trained and validated on; ``--full-size`` for detector-size files), with their
ground truth (``truth.csv``: an exam is a cancer exam when one of its images holds the
lesion, the rule ``mammotriage validate`` and export's ``auc_delta`` use). Then, in this one
process, for the fp32 model and every copy its sidecar lists, each loaded by its own path:

- model only: images/s of ``OnnxModel.predict`` at batch 8 on images preprocessed once
  beforehand (ONNX Runtime CPU, ``--threads`` intra-op threads for every model);
- end to end: images/s of ``ScoringEngine.score_paths`` (header reading, decoding on 2
  threads, preprocessing, inference at batch 8, findings, exam assembly) on the same files,
  from a loaded model to the last exam;
- exam AUC of the engine's exam scores against the truth, its change against fp32 with a
  paired bootstrap 95 % interval over exams, and whether the change lies within the AUC
  tolerance the sidecar records for the copy (export records none today: said so);
- the largest image-logit change against fp32 on these images next to the one export
  recorded, the largest exam-score change, and how many exams change calibrated category
  and reading (single/double, read first) under the packaged triage policy.

Each figure is the median of ``--repeats`` runs; the models take turns within a repeat so
that a slow moment of a shared machine falls on all of them. A figure, not a test: it
asserts nothing. Run it on a quiet machine (nothing else benchmarking).
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from mammotriage import defaults
from mammotriage.sidecar import Sidecar, load_sidecar

BATCH = 8
BOOTSTRAP = 2000


@dataclass
class Result:
    """What one model did on the set."""

    label: str
    path: Path
    sidecar: Sidecar
    model_only: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    exam_scores: dict[str, float] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    #: (reading mode, read first) under the packaged triage policy.
    readings: dict[str, tuple[str, bool]] = field(default_factory=dict)
    logits: np.ndarray | None = None


def write_set(folder: Path, exams: int, seed: int, small: bool) -> Path:
    """The labelled set, written once and reused (its folder names what is in it)."""
    from mammotriage.synth import generate

    folder = folder / f"{'small' if small else 'full'}-seed{seed}-exams{exams}"
    if not (folder / "truth.csv").is_file():
        print(f"writing {exams} synthetic exams into {folder} (once)", file=sys.stderr)
        generate(folder, exams=exams, seed=seed, small=small, prevalence=0.5, workers=2)
    return folder


def exam_labels(folder: Path) -> dict[str, int]:
    """Exam id -> 1 when one of its images holds a cancer (the max rule of validation)."""
    from mammotriage.synth import read_truth

    labels: dict[str, int] = {}
    for row in read_truth(folder / "truth.csv"):
        labels[row.exam_id] = max(labels.get(row.exam_id, 0), int(row.cancer))
    return labels


def preprocessed(folder: Path, sidecar: Sidecar) -> np.ndarray:
    """Every image of the set as the model sees it, ``(N, 1, H, W)``, read once."""
    from mammotriage.dicom import read_image
    from mammotriage.preprocess import preprocess_image

    params = sidecar.preprocess_params
    arrays = []
    for path in sorted(folder.rglob("*.dcm")):
        image = read_image(path, target_shape=sidecar.input_shape)
        if image.usable:
            arrays.append(preprocess_image(image, params)[0])
    batch = np.stack(arrays).astype(np.float32)
    return batch if batch.ndim == 4 else batch[:, None]


def time_model_only(result: Result, images: np.ndarray, threads: int) -> None:
    from mammotriage.infer.session import OnnxModel

    model = OnnxModel(result.path, providers=["CPUExecutionProvider"], intra_op_threads=threads)
    model.predict(images[:BATCH])  # the first run allocates; a service pays that once
    logits = []
    started = time.perf_counter()
    for start in range(0, len(images), BATCH):
        logits.append(model.predict(images[start : start + BATCH])[0])
    result.model_only.append(len(images) / (time.perf_counter() - started))
    result.logits = np.concatenate(logits)


def time_end_to_end(result: Result, folder: Path, threads: int) -> None:
    from datetime import datetime, timezone

    from mammotriage.infer.engine import ScoringEngine
    from mammotriage.triage.policy import decide_scored, load_policy

    policy = load_policy(defaults.policy_path())
    received = datetime(2026, 1, 1, tzinfo=timezone.utc)

    with ScoringEngine(
        result.path,
        batch_size=BATCH,
        decode_workers=2,
        providers=["CPUExecutionProvider"],
        threads=threads,
    ) as engine:
        started = time.perf_counter()
        exams = engine.score_paths([folder])
        seconds = time.perf_counter() - started
    scored = sum(im.probability is not None for exam in exams for im in exam.images)
    result.end_to_end.append(scored / seconds)
    for exam in exams:
        if exam.score is not None and exam.category is not None:
            result.exam_scores[exam.exam_id] = exam.score
            result.categories[exam.exam_id] = exam.category
            decision = decide_scored(policy, exam, received)
            result.readings[exam.exam_id] = (decision.mode.value, decision.priority)


def paired_auc_change(
    labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray, seed: int
) -> tuple[float, float, float]:
    """AUC(candidate) - AUC(reference) on the same exams, and its paired bootstrap 95 %
    interval (exams resampled with replacement, both models on each resample)."""
    from mammotriage.model.metrics import roc_auc

    change = roc_auc(labels, candidate) - roc_auc(labels, reference)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(labels), len(labels))
        if 0 < labels[pick].sum() < len(pick):
            y = labels[pick]
            draws.append(roc_auc(y, candidate[pick]) - roc_auc(y, reference[pick]))
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(change), float(low), float(high)


def summary(results: list[Result], labels: dict[str, int], seed: int) -> list[dict]:
    from mammotriage.model.metrics import roc_auc

    reference = results[0]
    ids = sorted(set(labels) & set(reference.exam_scores))
    y = np.array([labels[i] for i in ids])
    base_scores = np.array([reference.exam_scores[i] for i in ids])
    rows = []
    for result in results:
        scores = np.array([result.exam_scores[i] for i in ids])
        origin = result.sidecar.variant_of
        row = {
            "model": result.sidecar.name,
            "file": result.path.name,
            "precision": result.sidecar.precision,
            "sha256": result.sidecar.sha256,
            "model_only_images_per_s": statistics.median(result.model_only),
            "end_to_end_images_per_s": statistics.median(result.end_to_end),
            "model_only_runs": result.model_only,
            "end_to_end_runs": result.end_to_end,
            "exams": len(ids),
            "cancer_exams": int(y.sum()),
            "exam_auc": roc_auc(y, scores),
        }
        if origin is not None:
            assert result.logits is not None and reference.logits is not None
            change, low, high = paired_auc_change(y, base_scores, scores, seed)
            # Export measures a copy's auc_delta but checks it against no tolerance
            # (model/release.py), so the sidecar has none to hold this change to.
            tolerance: float | None = None
            row |= {
                "auc_change": change,
                "auc_change_ci95": [low, high],
                "recorded_auc_delta": origin.auc_delta,
                "recorded_auc_tolerance": tolerance,
                "within_tolerance": None if tolerance is None else abs(change) <= tolerance,
                "max_abs_logit_delta": float(np.max(np.abs(result.logits - reference.logits))),
                "recorded_max_abs_logit_delta": origin.max_abs_logit_delta,
                "max_abs_exam_score_delta": float(np.max(np.abs(scores - base_scores))),
                "category_changes": sum(
                    result.categories[i] != reference.categories[i] for i in ids
                ),
                "reading_changes": sum(result.readings[i] != reference.readings[i] for i in ids),
            }
        rows.append(row)
    return rows


def print_table(rows: list[dict], setup: dict, out: TextIO) -> None:
    def print(*parts: object) -> None:  # noqa: A001 - the table goes to ``out``
        builtins.print(*parts, file=out)

    print(
        f"{setup['images']} images of {setup['exams']} {setup['size']} synthetic exams "
        f"(seed {setup['seed']}), ONNX Runtime {setup['onnxruntime']} CPU, "
        f"{setup['threads']} intra-op thread(s), batch {BATCH}, median of {setup['repeats']}; "
        f"{setup['cpu']} ({setup['cpus']} CPUs)"
    )
    head = (
        f"{'model':36s} {'model img/s':>11s} {'x fp32':>6s} {'e2e img/s':>9s} {'x fp32':>6s} "
        f"{'exam AUC':>8s} {'change (95% CI)':>26s} {'tolerance':>17s}"
    )
    print(head)
    print("-" * len(head))
    base = rows[0]
    for row in rows:
        if "auc_change" in row:
            low, high = row["auc_change_ci95"]
            change = f"{row['auc_change']:+.4f} ({low:+.4f}..{high:+.4f})"
            tolerance = (
                "none recorded"
                if row["recorded_auc_tolerance"] is None
                else f"{row['recorded_auc_tolerance']:g}: "
                + ("within" if row["within_tolerance"] else "OUTSIDE")
            )
        else:
            change = tolerance = "-"
        print(
            f"{row['model']:36s} {row['model_only_images_per_s']:11.1f} "
            f"{row['model_only_images_per_s'] / base['model_only_images_per_s']:6.2f} "
            f"{row['end_to_end_images_per_s']:9.1f} "
            f"{row['end_to_end_images_per_s'] / base['end_to_end_images_per_s']:6.2f} "
            f"{row['exam_auc']:8.4f} {change:>26s} {tolerance:>17s}"
        )
    for row in rows[1:]:
        print(
            f"{row['model']}: max |image logit change| {row['max_abs_logit_delta']:.3g} "
            f"(export recorded {row['recorded_max_abs_logit_delta']:.3g}), max |exam score "
            f"change| {row['max_abs_exam_score_delta']:.2f} points, "
            f"{row['category_changes']}/{row['exams']} exams change category and "
            f"{row['reading_changes']} their reading (mode or read-first, packaged policy); "
            "export's "
            f"validation-split AUC change {row['recorded_auc_delta']:+.4f}"
        )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exams", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7301)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--data", type=Path, default=Path("/tmp/mammotriage-bench-variants"))
    parser.add_argument("--model", type=Path, default=None, help="fp32 .onnx (default: packaged)")
    parser.add_argument(
        "--json", action="store_true", help="Print one JSON object (the table goes to stderr)."
    )
    args = parser.parse_args()

    import onnxruntime as ort

    base = args.model or defaults.model_path()
    sidecar = load_sidecar(base)
    results = [Result("fp32", base, sidecar)] + [
        Result(v.precision, base.with_name(v.file), load_sidecar(base.with_name(v.file)))
        for v in sidecar.variants
    ]
    folder = write_set(args.data, args.exams, args.seed, small=not args.full_size)
    labels = exam_labels(folder)
    images = preprocessed(folder, sidecar)
    for _ in range(args.repeats):
        for result in results:
            time_model_only(result, images, args.threads)
        for result in results:
            time_end_to_end(result, folder, args.threads)
    rows = summary(results, labels, args.seed)
    setup = {
        "exams": args.exams,
        "images": int(len(images)),
        "seed": args.seed,
        "size": "full-size" if args.full_size else "small",
        "threads": args.threads,
        "repeats": args.repeats,
        "batch": BATCH,
        "onnxruntime": ort.__version__,
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "command": " ".join(["scripts/bench_variants.py", *sys.argv[1:]]),
    }
    # With --json the table still comes, on stderr, so that one run gives both.
    table = sys.stderr if args.json else sys.stdout
    print_table(rows, setup, table)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=table)
    if args.json:
        print(json.dumps({"setup": setup, "models": rows}, indent=2))


if __name__ == "__main__":
    main()
