"""The go-live numbers, each with a bootstrap 95 % interval.

Every number is computed twice over the same code: once on the exams as they are, and once
on each bootstrap resample (exams drawn with replacement, as many as there are). A resample
is held as per-exam weights (how often each exam was drawn), so that every figure is a
weighted sum: counts per *cell* (the combination of outcome, category band, reading mode,
priority and device, which is all the count-based figures depend on), the weighted
Mann-Whitney statistic for the AUC, and per-exam sums for the cut-off sweep. Resamples are
drawn in chunks of at most :data:`CHUNK_ELEMENTS` exam draws, so that 100,000 exams x 1000
resamples needs a few hundred MB at most, whatever the number of resamples.

Which exams count where (the report says the same in words):

- reading workload and reading modes: every exam in the scores, outcome or not (an exam the
  model did not score is double-read: 2 reads);
- outcome figures (AUC, sensitivity, specificity, per band): exams with an outcome only;
  the AUC, sensitivity and specificity further need a score (unscored exams are counted
  apart: people double-read them whatever the policy);
- the category distribution per device: every scored exam.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from mammotriage.category import CATEGORIES
from mammotriage.errors import ConfigError
from mammotriage.stability import psi
from mammotriage.triage import ExamForTriage, ReadingMode, TriagePolicy, decide
from mammotriage.triage.simulate import estimate

#: Reading modes in the order of the ``mode`` arrays.
MODES: tuple[ReadingMode, ...] = tuple(ReadingMode)
DOUBLE = MODES.index(ReadingMode.DOUBLE)
SINGLE = MODES.index(ReadingMode.SINGLE)
RULE_OUT = MODES.index(ReadingMode.RULE_OUT)
_READS = np.array([m.reads for m in MODES], dtype=np.float64)
#: Band 0 holds the exams without a score; bands 1-10 are the categories.
UNSCORED_BAND = 0
BANDS = (*CATEGORIES, UNSCORED_BAND)
#: Share of a calibration reference population in each category (deciles).
REFERENCE_SHARE = 1 / len(CATEGORIES)
#: The most exam draws (resamples x exams) held at once while bootstrapping.
CHUNK_ELEMENTS = 2_000_000
_ARRIVAL = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ExamArrays:
    """The joined exams as arrays, one entry per exam, with the policy's decision.

    ``band`` is the category (1-10) or 0 when unscored; ``mode`` indexes :data:`MODES`;
    ``recall`` is 1, 0 or -1 (unknown); ``device`` indexes ``devices``; the outcome arrays
    are False where ``matched`` is False.
    """

    exam_id: np.ndarray
    score: np.ndarray
    band: np.ndarray
    partial: np.ndarray
    max_finding_score: np.ndarray
    mode: np.ndarray
    priority: np.ndarray
    matched: np.ndarray
    screen: np.ndarray
    interval: np.ndarray
    recall: np.ndarray
    device: np.ndarray
    devices: tuple[str, ...]

    @property
    def scored(self) -> np.ndarray:
        return self.band != UNSCORED_BAND

    @property
    def cancer(self) -> np.ndarray:
        return self.screen | self.interval

    def __len__(self) -> int:
        return int(self.band.size)


def exam_arrays(exams: pd.DataFrame, policy: TriagePolicy) -> ExamArrays:
    """Arrays of the joined exams, re-deciding each scored exam under ``policy``.

    An exam without a score is double-read and never priority, as
    :func:`~mammotriage.triage.decide_unscored` decides.

    Raises
    ------
    ConfigError
        If there are no exams, or a score, category or finding score is out of range
        (naming the exam).
    """
    if exams.empty:
        raise ConfigError("no exams to evaluate")
    scored = exams["score"].notna().to_numpy()
    score = exams["score"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    band = exams["category"].astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    finding = exams["max_finding_score"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
    partial = exams["partial"].astype("boolean").to_numpy(dtype=bool, na_value=False)
    ids = exams["exam_id"].astype(object).to_numpy()
    modes = np.full(len(exams), DOUBLE, dtype=np.int64)
    priority = np.zeros(len(exams), dtype=bool)
    for i in np.flatnonzero(scored):
        decision = decide(policy, _for_triage(ids[i], score[i], band[i], finding[i], partial[i]))
        modes[i] = MODES.index(decision.mode)
        priority[i] = decision.priority
    matched = exams["matched"].to_numpy(dtype=bool)

    def flag(column: str) -> np.ndarray:
        return exams[column].astype("boolean").to_numpy(dtype=bool, na_value=False) & matched

    recall = exams["recall"].astype("boolean")
    codes, devices = pd.factorize(exams["device"], sort=True)
    return ExamArrays(
        exam_id=ids,
        score=score,
        band=band,
        partial=partial,
        max_finding_score=finding,
        mode=modes,
        priority=priority,
        matched=matched,
        screen=flag("screen_detected_cancer"),
        interval=flag("interval_cancer"),
        recall=np.where(recall.isna().to_numpy() | ~matched, -1, recall.fillna(False).astype(int)),
        device=codes.astype(np.int64),
        devices=tuple(str(d) for d in devices),
    )


def _for_triage(
    exam_id: str, score: float, category: int, finding: float, partial: bool
) -> ExamForTriage:
    return ExamForTriage(
        exam_id=str(exam_id),
        score=float(score),
        category=int(category),
        max_finding_score=None if math.isnan(finding) else float(finding),
        partial=bool(partial),
        received_at=_ARRIVAL,
    )


def cut_off_modes(arrays: ExamArrays, policy: TriagePolicy, cut_offs: Sequence[int]) -> np.ndarray:
    """Reading mode per cut-off and exam, shape (cut-offs, exams): ``policy`` with only
    ``single_reading_max_category`` changed, as
    :func:`~mammotriage.triage.workload_curve` varies it (unscored exams: double)."""
    base = policy.model_dump()
    out = np.full((len(cut_offs), len(arrays)), DOUBLE, dtype=np.int64)
    exams = [
        (i, _for_triage(*row))
        for i, row in zip(
            np.flatnonzero(arrays.scored),
            zip(
                arrays.exam_id[arrays.scored],
                arrays.score[arrays.scored],
                arrays.band[arrays.scored],
                arrays.max_finding_score[arrays.scored],
                arrays.partial[arrays.scored],
                strict=True,
            ),
            strict=True,
        )
    ]
    for row, cut in enumerate(cut_offs):
        variant = TriagePolicy(**{**base, "single_reading_max_category": cut})
        for i, exam in exams:
            out[row, i] = MODES.index(decide(variant, exam).mode)
    return out


@dataclass(frozen=True)
class _Cells:
    """Exams grouped by every attribute the count-based figures depend on, the reading
    modes under each candidate cut-off (``pattern``) included."""

    index: np.ndarray  # cell of each exam
    matched: np.ndarray
    screen: np.ndarray
    interval: np.ndarray
    recall: np.ndarray
    band: np.ndarray
    mode: np.ndarray
    priority: np.ndarray
    device: np.ndarray
    #: Reading mode per cut-off of each cell, shape (cells, cut-offs).
    sweep: np.ndarray

    @property
    def size(self) -> int:
        return int(self.matched.size)


def _cells(a: ExamArrays, sweep: np.ndarray) -> _Cells:
    if sweep.shape[0]:
        patterns, pattern = np.unique(sweep.T, axis=0, return_inverse=True)
    else:
        patterns, pattern = np.zeros((1, 0), np.int64), np.zeros(len(a), np.int64)
    pattern = pattern.ravel()
    dims = (2, 2, 2, 3, len(BANDS), len(MODES), 2, max(1, len(a.devices)), len(patterns))
    code = np.ravel_multi_index(
        (
            a.matched,
            a.screen,
            a.interval,
            a.recall + 1,
            a.band,
            a.mode,
            a.priority,
            a.device,
            pattern,
        ),
        dims,
    )
    unique, index = np.unique(code, return_inverse=True)
    attrs = np.unravel_index(unique, dims)
    return _Cells(
        index.ravel(),
        attrs[0].astype(bool),
        attrs[1].astype(bool),
        attrs[2].astype(bool),
        attrs[3] - 1,
        attrs[4],
        attrs[5],
        attrs[6].astype(bool),
        attrs[7],
        patterns[attrs[8]],
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _cell_figures(counts: np.ndarray, c: _Cells, n_devices: int) -> dict[str, np.ndarray]:
    """Every count-based figure from cell counts of shape (..., cells); NaN where undefined."""

    def total(mask: np.ndarray) -> np.ndarray:
        return np.asarray(counts[..., mask].sum(axis=-1), dtype=np.float64)

    cancer = c.screen | c.interval
    scored = c.band != UNSCORED_BAND
    outcome = c.matched & scored
    double = c.mode == DOUBLE
    n = total(np.ones(c.size, dtype=bool))
    out: dict[str, np.ndarray] = {
        "workload": _ratio((counts * _READS[c.mode]).sum(axis=-1), 2 * n),
        "unscored_share": _ratio(total(~scored), n),
        "priority_share": _ratio(total(c.priority), n),
    }
    for i, mode in enumerate(MODES):
        out[f"mode:{mode.value}"] = _ratio(total(c.mode == i), n)
    pos, neg = outcome & cancer, outcome & ~cancer
    for name, flagged in (("double", double), ("priority", c.priority)):
        out[f"sensitivity:{name}"] = _ratio(total(pos & flagged), total(pos))
        out[f"specificity:{name}"] = _ratio(total(neg & ~flagged), total(neg))
        for kind, which in (("screen", c.screen), ("interval", c.interval)):
            hit = outcome & which
            out[f"sensitivity:{name}:{kind}"] = _ratio(total(hit & flagged), total(hit))
    matched_cancer = c.matched & cancer
    n_matched = total(c.matched)
    out["cancer_rate"] = _ratio(1000 * total(matched_cancer), n_matched)
    out["recall_rate"] = _ratio(
        total(c.matched & (c.recall == 1)), total(c.matched & (c.recall >= 0))
    )
    for label, index in (("one_reader", SINGLE), ("no_reader", RULE_OUT), ("two_readers", DOUBLE)):
        out[f"cancers:{label}"] = _ratio(
            total(matched_cancer & (c.mode == index)), total(matched_cancer)
        )
    for band in BANDS:
        inside = c.matched & (c.band == band)
        out[f"band:{band}:cancer_rate"] = _ratio(1000 * total(inside & cancer), total(inside))
        out[f"band:{band}:cancer_share"] = _ratio(total(inside & cancer), total(matched_cancer))
        out[f"band:{band}:recall_rate"] = _ratio(
            total(inside & (c.recall == 1)), total(inside & (c.recall >= 0))
        )
    for device in (*range(n_devices), None):
        where = scored if device is None else scored & (c.device == device)
        label = "site" if device is None else f"device:{device}"
        den = total(where)
        shares = np.stack([_ratio(total(where & (c.band == k)), den) for k in CATEGORIES], axis=-1)
        for k in CATEGORIES:
            out[f"{label}:share:{k}"] = shares[..., k - 1]
        out[f"{label}:psi"] = np.where(
            np.isnan(shares).any(axis=-1), np.nan, psi(np.nan_to_num(shares), REFERENCE_SHARE)
        )
    return out


@dataclass(frozen=True)
class _Auc:
    """The exams in the AUC (scored, with an outcome) sorted by score, with tie groups."""

    order: np.ndarray
    label: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, a: ExamArrays) -> _Auc:
        members = np.flatnonzero(a.scored & a.matched)
        order = members[np.argsort(a.score[members], kind="stable")]
        sorted_scores = a.score[order]
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        return cls(order, a.cancer[order], starts if order.size else np.zeros(0, np.int64))

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """Weighted Mann-Whitney AUC; ``weights`` (..., exams in ``order``). A cancer and a
        non-cancer with the same score count one half."""
        if self.order.size == 0:
            return np.full(weights.shape[:-1], np.nan)
        pos = np.add.reduceat(weights * self.label, self.starts, axis=-1)
        neg = np.add.reduceat(weights * ~self.label, self.starts, axis=-1)
        below = np.cumsum(neg, axis=-1) - neg
        pairs = pos.sum(axis=-1) * neg.sum(axis=-1)
        return _ratio((pos * (below + 0.5 * neg)).sum(axis=-1), pairs)


class _Sweep:
    """Workload, single-reading share, cancers double-read and specificity per cut-off, over
    the scored exams with an outcome (as :func:`~mammotriage.triage.workload_curve` counts
    them), from cell counts: a product with a fixed (cells, columns) matrix."""

    def __init__(self, c: _Cells) -> None:
        base = c.matched & (c.band != UNSCORED_BAND)
        cancer = base & (c.screen | c.interval)
        modes = c.sweep
        self.k = modes.shape[1]
        columns = [
            base[:, None],
            cancer[:, None],
            _READS[modes] * base[:, None],
            (modes == SINGLE) & base[:, None],
            (modes == DOUBLE) & cancer[:, None],
            (modes != DOUBLE) & (base & ~cancer)[:, None],
        ]
        self.matrix = np.hstack([np.asarray(col, dtype=np.float64) for col in columns])

    def __call__(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Figures per cut-off, shape (..., cut-offs), for cell ``counts`` (..., cells)."""
        # einsum, not @: a BLAS call here ran 100x slower with OpenBLAS's threads fighting
        # over a busy two-core machine, and the matrix is small.
        sums = np.einsum("...c,ck->...k", counts, self.matrix)
        k = self.k
        n, n_cancer = sums[..., :1], sums[..., 1:2]
        reads, single, double, kept = (sums[..., 2 + i * k : 2 + (i + 1) * k] for i in range(4))
        return {
            "workload": _ratio(reads, 2 * n),
            "single_share": _ratio(single, n),
            "cancers_double_read_share": _ratio(double, n_cancer),
            "specificity": _ratio(kept, n - n_cancer),
        }


@dataclass(frozen=True)
class Figures:
    """Observed figures and their bootstrap resamples (shape (n_boot,) per name)."""

    observed: dict[str, float]
    resampled: dict[str, np.ndarray]
    sweep_observed: dict[str, np.ndarray]
    sweep_resampled: dict[str, np.ndarray]

    def estimate(self, name: str) -> dict[str, Any]:
        """``{"value": v, "ci95": [lo, hi]}`` of one figure (``None`` where undefined)."""
        return estimate(self.observed[name], self.resampled[name])

    def sweep_estimate(self, name: str, row: int) -> dict[str, Any]:
        return estimate(float(self.sweep_observed[name][row]), self.sweep_resampled[name][:, row])


def figures(a: ExamArrays, sweep: np.ndarray, *, n_boot: int, seed: int) -> Figures:
    """All figures of the report with ``n_boot`` bootstrap resamples drawn with ``seed``.

    Raises
    ------
    ConfigError
        If ``n_boot`` is below 1.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    cells = _cells(a, sweep)
    auc = _Auc.of(a)
    n = len(a)
    n_devices = len(a.devices)
    ones = np.ones(n)
    observed_counts = np.bincount(cells.index, minlength=cells.size).astype(np.float64)
    observed = _cell_figures(observed_counts, cells, n_devices)
    observed["auc"] = auc(ones[auc.order])
    sweeper = _Sweep(cells)
    sweep_observed = sweeper(observed_counts)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, CHUNK_ELEMENTS // n))
    parts: list[dict[str, np.ndarray]] = []
    sweep_parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(rows, n))
        draws += (n * np.arange(rows))[:, None]
        weights = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(float)
        del draws
        flat = (cells.index + cells.size * np.arange(rows)[:, None]).ravel()
        counts = np.bincount(flat, weights=weights.ravel(), minlength=rows * cells.size)
        counts = counts.reshape(rows, cells.size)
        part = _cell_figures(counts, cells, n_devices)
        part["auc"] = auc(weights[:, auc.order])
        parts.append(part)
        sweep_parts.append(sweeper(counts))
    return Figures(
        observed={k: float(v) for k, v in observed.items()},
        resampled={k: np.concatenate([p[k] for p in parts]) for k in observed},
        sweep_observed=sweep_observed,
        sweep_resampled={k: np.concatenate([p[k] for p in sweep_parts]) for k in sweep_observed},
    )


def roc_points(a: ExamArrays) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the exam score over its thresholds (for the plot),
    over the scored exams with an outcome; empty when either class is missing."""
    members = a.scored & a.matched
    score, cancer = a.score[members], a.cancer[members]
    if cancer.all() or not cancer.any():
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-score, kind="stable")
    score, cancer = score[order], cancer[order]
    last = np.r_[score[1:] != score[:-1], True]
    tp = np.cumsum(cancer)[last]
    fp = np.cumsum(~cancer)[last]
    return np.r_[0, fp / fp[-1]], np.r_[0, tp / tp[-1]]
