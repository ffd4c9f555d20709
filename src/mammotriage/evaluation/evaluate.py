"""``evaluate``: a backfill's scores and the programme's outcomes in, the go-live report out.

The steps, each in its own module: read the exam rows (:mod:`.join`) and the outcomes
(:mod:`.outcomes`), join them, re-decide every exam under the policy being evaluated and
compute the figures with their bootstrap intervals (:mod:`.metrics`), optionally write
site-calibrated sidecars (:mod:`.calibration`), and write ``metrics.json``, the unmatched
lists and ``report.html`` (:mod:`.report`) into the report folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.atomic import atomic_write
from mammotriage.backfill.schema import FAILED, PARTIAL
from mammotriage.category import CATEGORIES
from mammotriage.errors import ConfigError
from mammotriage.evaluation import plots
from mammotriage.evaluation.calibration import write_site_sidecars
from mammotriage.evaluation.join import Joined, join_outcomes, load_exams
from mammotriage.evaluation.metrics import (
    BANDS,
    DOUBLE,
    MODES,
    REFERENCE_SHARE,
    RULE_OUT,
    SINGLE,
    UNSCORED_BAND,
    ExamArrays,
    Figures,
    cut_off_modes,
    exam_arrays,
    figures,
    roc_points,
)
from mammotriage.evaluation.outcomes import read_outcomes
from mammotriage.evaluation.report import write_report
from mammotriage.sidecar import DEMONSTRATION_NOTICE
from mammotriage.triage import TriagePolicy, WorkloadPoint, load_policy
from mammotriage.triage.simulate import candidate_cut_offs

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
EXAMS_WITHOUT_OUTCOME_FILE = "exams-without-outcome.csv"
OUTCOMES_WITHOUT_EXAM_FILE = "outcomes-without-exam.csv"
#: How many unmatched ids the HTML and metrics.json show (the CSV files hold them all).
SHOWN_IDS = 10


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` wrote, and the figures (as in ``metrics.json``)."""

    metrics: dict[str, Any]
    report: Path
    metrics_file: Path


def evaluate(
    scores: Path,
    outcomes: Path,
    out: Path,
    *,
    policy: Path,
    n_boot: int = 1000,
    seed: int = 0,
    interval_months: int = 24,
    sidecar_out: Path | None = None,
    model: Path | None = None,
) -> Evaluation:
    """Evaluate a policy on a backfill's scores against known outcomes; write the report.

    Parameters
    ----------
    scores
        A backfill output folder (its ``exams/part-*.parquet``).
    outcomes
        The outcomes CSV (:mod:`mammotriage.evaluation.outcomes`).
    out
        The report folder: ``report.html``, ``metrics.json`` and the two unmatched lists.
    policy
        The triage policy to evaluate (each scored exam is decided anew under it).
    interval_months
        The interval-cancer window of the outcomes, recorded in the report.
    sidecar_out, model
        Where to write site-calibrated sidecars, starting from ``model``'s (required with
        ``sidecar_out``; it must be the model that made the scores).

    Raises
    ------
    ConfigError
        For a missing or malformed input (naming it), scores made by more than one model,
        no exam with an outcome, or a sidecar that cannot be written.
    """
    if interval_months < 1:
        raise ConfigError(f"--interval-months must be at least 1, got {interval_months}")
    if sidecar_out is not None and model is None:
        raise ConfigError("--sidecar-out needs the model that made the scores (--model)")
    rules = load_policy(policy)
    exams = load_exams(scores)
    outcome_file = read_outcomes(outcomes)
    models = sorted(set(exams["model_sha256"].astype(str)))
    if len(models) > 1:
        raise ConfigError(
            f"the scores were made by {len(models)} models ({', '.join(m[:12] for m in models)}):"
            " evaluate one model's scores at a time"
        )
    joined = join_outcomes(exams, outcome_file)
    if not joined.exams["matched"].any():
        raise ConfigError(
            f"no exam of {scores} has an outcome in {outcomes} (joined on {joined.key}): "
            f"e.g. exams {joined.exams_without_outcome['exam_id'].head(3).tolist()}, "
            f"outcomes {joined.outcomes_without_exam[joined.key].head(3).tolist()}"
        )
    arrays = exam_arrays(joined.exams, rules)
    # the cut-offs workload_curve sweeps, over the scored exams with an outcome
    cut_offs = candidate_cut_offs(rules) if (arrays.scored & arrays.matched).any() else []
    result = figures(arrays, cut_off_modes(arrays, rules, cut_offs), n_boot=n_boot, seed=seed)
    curve = _curve(result, cut_offs)

    metrics = _metrics(
        joined,
        arrays,
        result,
        rules,
        curve,
        inputs={
            "scores": str(scores),
            "outcomes": str(outcomes),
            "policy_file": str(policy),
            "interval_months": interval_months,
        },
        n_boot=n_boot,
        seed=seed,
    )
    metrics["sidecars"] = None
    if sidecar_out is not None and model is not None:
        written, checks = write_site_sidecars(
            arrays, model, models[0], sidecar_out, source=str(scores)
        )
        metrics["sidecars"] = {
            "folder": str(sidecar_out),
            "model": str(model),
            "written": [
                {
                    "file": str(w.path),
                    "scope": w.scope,
                    "exams": w.exams,
                    "thresholds": list(w.thresholds),
                    "why": w.why,
                    "psi": w.psi,
                }
                for w in written
            ],
            "devices_checked": [
                {
                    "device": c.device,
                    "exams": c.exams,
                    "psi": c.psi,
                    "written": c.written,
                    "why": c.why,
                }
                for c in checks
            ],
        }
    # Nothing goes into the report folder until every figure (and sidecar) is made.
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics["files"] = _write_unmatched(joined, out)
    _check_json(metrics)
    metrics_file = out / METRICS_FILE
    with atomic_write(metrics_file) as handle:
        handle.write((json.dumps(metrics, indent=2, allow_nan=False) + "\n").encode())
    images = _images(arrays, result, metrics, curve)
    report = write_report(metrics, images, out / REPORT_FILE)
    return Evaluation(metrics=metrics, report=report, metrics_file=metrics_file)


def _curve(f: Figures, cut_offs: list[int]) -> list[WorkloadPoint]:
    """The points :func:`~mammotriage.triage.workload_curve` would give (same exams, same
    policy variants), read off the cut-off sweep the intervals were computed on, rather than
    deciding every exam under every cut-off a second time."""

    def value(name: str, row: int) -> float | None:
        observed = float(f.sweep_observed[name][row])
        return None if math.isnan(observed) else observed

    return [
        WorkloadPoint(
            single_reading_max_category=cut,
            workload=float(f.sweep_observed["workload"][row]),
            single_share=float(f.sweep_observed["single_share"][row]),
            cancers_double_read_share=value("cancers_double_read_share", row),
        )
        for row, cut in enumerate(cut_offs)
    ]


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


def _metrics(
    joined: Joined,
    a: ExamArrays,
    f: Figures,
    rules: TriagePolicy,
    curve: list[WorkloadPoint],
    *,
    inputs: dict[str, Any],
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    exams = joined.exams
    demonstration = bool(exams["demonstration_model"].fillna(False).any())
    m, scored, cancer = a.matched, a.scored, a.cancer
    workload = f.estimate("workload")
    ci = workload["ci95"]
    reads = {mode.value: int(mode.reads * _count(a.mode == i)) for i, mode in enumerate(MODES)}
    status = exams["status"].astype(str).to_numpy()
    metrics: dict[str, Any] = {
        "demonstration_model": demonstration,
        "notice": DEMONSTRATION_NOTICE if demonstration else None,
        "inputs": {
            **inputs,
            "outcome_key": joined.key,
            "policy_version": rules.version,
            "backfill_policy_versions": sorted(set(exams["policy_version"].astype(str))),
            "model_name": sorted(set(exams["model_name"].astype(str)))[0],
            "model_sha256": str(exams["model_sha256"].iloc[0]),
        },
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95, "resampled": "exams"},
        "exams": {
            "total": len(a),
            "scored": _count(scored),
            "partial": _count(status == PARTIAL),
            "unscored": _count(~scored),
            "failed": _count(status == FAILED),
            "with_outcome": _count(m),
            "with_outcome_scored": _count(m & scored),
            "with_outcome_unscored": _count(m & ~scored),
            "without_outcome": len(joined.exams_without_outcome),
            "outcomes_without_exam": len(joined.outcomes_without_exam),
        },
        "outcomes": {
            "cancers": _count(cancer),
            "screen_detected": _count(a.screen),
            "interval": _count(a.interval),
            "cancers_unscored": _count(cancer & ~scored),
            "recall_known": _count(m & (a.recall >= 0)),
            "recalls": _count(a.recall == 1),
            "cancer_rate_per_1000": f.estimate("cancer_rate"),
            "recall_rate": f.estimate("recall_rate"),
        },
        "join": {
            "key": joined.key,
            "exams_without_outcome": {
                "count": len(joined.exams_without_outcome),
                "first": joined.exams_without_outcome["exam_id"].head(SHOWN_IDS).tolist(),
            },
            "outcomes_without_exam": {
                "count": len(joined.outcomes_without_exam),
                "first": joined.outcomes_without_exam[joined.key].head(SHOWN_IDS).tolist(),
            },
        },
        "auc": {
            **f.estimate("auc"),
            "exams": _count(m & scored),
            "cancers": _count(m & scored & cancer),
            "unscored_left_out": {
                "exams": _count(m & ~scored),
                "cancers": _count(cancer & ~scored),
            },
        },
        "double_reading": _operating(f, "double"),
        "priority": {**_operating(f, "priority"), "min_category": rules.priority_min_category},
        "workload": {
            **workload,
            "change": {
                "value": None if workload["value"] is None else workload["value"] - 1,
                "ci95": None if ci is None else [ci[0] - 1, ci[1] - 1],
            },
            "reads": sum(reads.values()),
            "reads_double_reading_all": 2 * len(a),
            "reads_by_mode": reads,
            "exams_by_mode": {mode.value: _count(a.mode == i) for i, mode in enumerate(MODES)},
            "mode_share": {mode.value: f.estimate(f"mode:{mode.value}") for mode in MODES},
            "unscored_share": f.estimate("unscored_share"),
            "priority_share": f.estimate("priority_share"),
        },
        "cancers_by_reading": {
            label: {
                "count": _count(m & cancer & (a.mode == mode)),
                "share": f.estimate(f"cancers:{label}"),
            }
            for label, mode in (
                ("one_reader", SINGLE),
                ("no_reader", RULE_OUT),
                ("two_readers", DOUBLE),
            )
        },
        "bands": [_band(a, f, band) for band in BANDS],
        "devices": _devices(a, f),
        "cut_offs": [
            {
                "single_reading_max_category": point.single_reading_max_category,
                **{
                    name: f.sweep_estimate(name, row)
                    for name in (
                        "workload",
                        "single_share",
                        "cancers_double_read_share",
                        "specificity",
                    )
                },
                "policy": point.single_reading_max_category == rules.single_reading_max_category,
            }
            for row, point in enumerate(curve)
        ],
    }
    return metrics


def _operating(f: Figures, name: str) -> dict[str, Any]:
    return {
        "sensitivity": f.estimate(f"sensitivity:{name}"),
        "specificity": f.estimate(f"specificity:{name}"),
        "sensitivity_screen_detected": f.estimate(f"sensitivity:{name}:screen"),
        "sensitivity_interval": f.estimate(f"sensitivity:{name}:interval"),
    }


def _band(a: ExamArrays, f: Figures, band: int) -> dict[str, Any]:
    inside = a.matched & (a.band == band)
    return {
        "band": "unscored" if band == UNSCORED_BAND else str(band),
        "exams": _count(inside),
        "screen_detected": _count(inside & a.screen),
        "interval": _count(inside & a.interval),
        "recalls": _count(inside & (a.recall == 1)),
        "recall_known": _count(inside & (a.recall >= 0)),
        "cancers_one_reader": _count(inside & a.cancer & (a.mode == SINGLE)),
        "cancers_no_reader": _count(inside & a.cancer & (a.mode == RULE_OUT)),
        "cancer_rate_per_1000": f.estimate(f"band:{band}:cancer_rate"),
        "cancer_share": f.estimate(f"band:{band}:cancer_share"),
        "recall_rate": f.estimate(f"band:{band}:recall_rate"),
    }


def _devices(a: ExamArrays, f: Figures) -> list[dict[str, Any]]:
    rows = []
    for label, name, mask in [
        ("site", "all devices", a.scored),
        *[(f"device:{i}", d, a.scored & (a.device == i)) for i, d in enumerate(a.devices)],
    ]:
        if not mask.any():
            continue
        rows.append(
            {
                "device": name,
                "exams_scored": _count(mask),
                "share": {str(k): f.estimate(f"{label}:share:{k}") for k in CATEGORIES},
                "reference_share": REFERENCE_SHARE,
                "psi": f.estimate(f"{label}:psi"),
            }
        )
    return rows


def _write_unmatched(joined: Joined, out: Path) -> dict[str, str]:
    files = {
        "exams_without_outcome": (EXAMS_WITHOUT_OUTCOME_FILE, joined.exams_without_outcome),
        "outcomes_without_exam": (OUTCOMES_WITHOUT_EXAM_FILE, joined.outcomes_without_exam),
    }
    for name, table in files.values():
        with atomic_write(out / name) as handle:
            handle.write(table.to_csv(index=False).encode())
    return {key: name for key, (name, _) in files.items()}


def _check_json(value: Any, where: str = "metrics") -> None:
    """Refuse a NaN or infinity anywhere (JSON has none; a reader would choke on it)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise AssertionError(f"{where} is {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")


def _images(
    a: ExamArrays, f: Figures, metrics: dict[str, Any], curve: list[WorkloadPoint]
) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    fpr, tpr = roc_points(a)
    operating = {}
    for label, key in (("double reading (policy)", "double_reading"), ("priority", "priority")):
        sens, spec = metrics[key]["sensitivity"]["value"], metrics[key]["specificity"]["value"]
        if sens is not None and spec is not None:
            operating[label] = (1 - spec, sens)
    images["roc"] = plots.roc_png(fpr, tpr, metrics["auc"]["value"], operating)
    if curve:
        images["workload"] = plots.workload_png(curve)
    devices = [row for row in metrics["devices"] if row["device"] != "all devices"]
    if devices:
        shares = np.array(
            [[row["share"][str(k)]["value"] or 0.0 for k in CATEGORIES] for row in devices]
        )
        images["devices"] = plots.device_png(
            [r["device"] for r in devices], shares, REFERENCE_SHARE
        )
    return images


__all__ = ["Evaluation", "evaluate"]
