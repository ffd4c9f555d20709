"""Validation metrics for screening mammography, in numpy alone.

A triage model is judged where a screening programme uses it: per exam (one woman, one
visit), per breast (where a recall points) and per image (what the network sees). This
module holds the metrics themselves: the AUC, the operating points a programme would pick
(sensitivity at a given specificity, specificity at a given sensitivity), the RSNA Screening
Mammography challenge's probabilistic F1, the calibration of the probabilities (Brier score,
reliability curve, expected calibration error), the cluster bootstrap of their confidence
intervals and the aggregation of image scores to breasts and exams. The validation report
built from them, level by level and subgroup by subgroup, is :mod:`.evaluation`, which
imports this module and never the other way round.

Images of one woman are not independent samples: the bootstrap resamples women (patients),
or exams when patient ids are missing, never single images, or the intervals come out too
narrow. It is vectorised over resamples for the metrics that have a weighted form (AUC, pF1,
Brier): a resample is a row of multiplicities, and 1000 resamples cost a few array passes.

Nothing here imports torch, scikit-learn or matplotlib, so validation runs on a runtime
install (the tests cross-check against scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Aggregation",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "Metric",
    "OperatingPoint",
    "aggregate_scores",
    "bootstrap_ci",
    "brier_score",
    "checked_probabilities",
    "expected_calibration_error",
    "operating_point",
    "probabilistic_f1",
    "reliability_curve",
    "roc_auc",
    "roc_curve",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Metric = Callable[[npt.ArrayLike, npt.ArrayLike], float]
Aggregation = Literal["max", "mean"]

#: Bootstrap resamples per chunk are bounded so that one chunk's arrays stay ~32 MB.
_CHUNK_ELEMENTS = 1 << 22
#: Slack when comparing a rate such as 9/10 with a target such as 0.9 in floating point.
_RATE_TOLERANCE = 1e-12


def _binary(
    labels: npt.ArrayLike, scores: npt.ArrayLike, name: str
) -> tuple[BoolArray, FloatArray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"labels and {name} must be 1-D and of one length, got shapes {y.shape} and {s.shape}"
        )
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got values {np.unique(y)[:6].tolist()}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(s)).sum())} non-finite")
    return y.astype(bool), s


def checked_probabilities(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike
) -> tuple[BoolArray, FloatArray]:
    """Labels as booleans and probabilities as floats, checked: 1-D, one length, labels 0 or
    1, probabilities finite and in [0, 1] (``ValueError`` saying which is not)."""
    y, p = _binary(labels, probabilities, "probabilities")
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError(f"probabilities must lie in [0, 1], got [{p.min():g}, {p.max():g}]")
    return y, p


def _midranks(scores: FloatArray) -> FloatArray:
    """1-based ranks, tied scores sharing the mean of their ranks (exact: half-integers)."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2.0)[inverse.reshape(-1)]


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed as the Mann-Whitney U statistic from mid-ranks, which handles ties exactly and
    equals the trapezoidal area under :func:`roc_curve`.

    Returns
    -------
    float
        ``nan`` when either class is absent: the AUC is then undefined, not 0.5.
    """
    y, s = _binary(labels, scores, "scores")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(_midranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_curve(
    labels: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Empirical ROC curve, one point per distinct score.

    Returns
    -------
    fpr, tpr, thresholds
        ``thresholds`` descend from ``inf`` (nothing called positive, the point (0, 0));
        point ``i`` calls an item positive when ``score >= thresholds[i]``. A rate whose class
        is absent is ``nan``.
    """
    y, s = _binary(labels, scores, "scores")
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_desc)), y.size - 1] if y.size else np.zeros(0, int)
    tps = np.cumsum(y_desc)[last].astype(np.float64)
    fps = (last + 1) - tps
    n_pos, n_neg = float(y.sum()), float(y.size - y.sum())
    tpr = np.r_[0.0, tps] / n_pos if n_pos else np.full(last.size + 1, np.nan)
    fpr = np.r_[0.0, fps] / n_neg if n_neg else np.full(last.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s_desc[last]]


@dataclass(frozen=True)
class OperatingPoint:
    """A point of the empirical ROC: call positive when ``score >= threshold``."""

    threshold: float
    sensitivity: float
    specificity: float


def operating_point(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    specificity: float | None = None,
    sensitivity: float | None = None,
) -> OperatingPoint:
    """The empirical ROC point a programme would choose for one target.

    With ``specificity``: the highest sensitivity whose specificity is at least the target.
    With ``sensitivity``: the highest specificity whose sensitivity is at least the target.
    No interpolation between points: a threshold can only realise points of the empirical
    curve. Among equally good points the one with the better other rate wins.

    Raises
    ------
    ValueError
        Unless exactly one target in [0, 1] is given.
    """
    if (specificity is None) == (sensitivity is None):
        raise ValueError("give exactly one of specificity= or sensitivity=")
    target = float(specificity if specificity is not None else sensitivity)  # type: ignore[arg-type]
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"the target rate must lie in [0, 1], got {target}")
    fpr, tpr, thresholds = roc_curve(labels, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return OperatingPoint(math.nan, math.nan, math.nan)
    spec = 1.0 - fpr
    if specificity is not None:
        ok = spec >= target - _RATE_TOLERANCE
        i = int(np.flatnonzero(ok & (tpr == tpr[ok].max()))[0])
    else:
        ok = tpr >= target - _RATE_TOLERANCE
        i = int(np.flatnonzero(ok & (fpr == fpr[ok].min()))[-1])
    return OperatingPoint(float(thresholds[i]), float(tpr[i]), float(spec[i]))


def sensitivity_at_specificity(
    labels: npt.ArrayLike, scores: npt.ArrayLike, specificity: float
) -> float:
    """Highest empirical sensitivity with specificity >= ``specificity`` (nan: a class absent)."""
    return operating_point(labels, scores, specificity=specificity).sensitivity


def specificity_at_sensitivity(
    labels: npt.ArrayLike, scores: npt.ArrayLike, sensitivity: float
) -> float:
    """Highest empirical specificity with sensitivity >= ``sensitivity`` (nan: a class absent)."""
    return operating_point(labels, scores, sensitivity=sensitivity).specificity


def _f_beta(tp: Any, fp: Any, n_pos: Any, beta: float) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.asarray(tp / (tp + fp))
        recall = np.asarray(tp / n_pos)
        b2 = beta * beta
        f = (1 + b2) * precision * recall / (b2 * precision + recall)
    f = np.where((precision > 0) & (recall > 0), f, 0.0)
    return np.where(np.asarray(n_pos) > 0, f, np.nan)


def probabilistic_f1(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, beta: float = 1.0
) -> float:
    """Probabilistic F-beta, the RSNA Screening Mammography Breast Cancer Detection metric.

    Counts are expectations under the predicted probabilities: pTP is the sum of ``p`` over
    positives, pFP the sum over negatives; precision = pTP / (pTP + pFP), recall =
    pTP / n_positive. As in the challenge's reference code the result is 0 when precision or
    recall is 0; it is ``nan`` without positives (recall is undefined).
    """
    y, p = checked_probabilities(labels, probabilities)
    return float(_f_beta(p[y].sum(), p[~y].sum(), int(y.sum()), beta))


def brier_score(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    """Mean squared distance between probability and outcome; 0 is perfect."""
    y, p = checked_probabilities(labels, probabilities)
    return float(np.mean((p - y) ** 2)) if y.size else math.nan


def reliability_curve(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = 10
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Calibration by equal-width probability bins on [0, 1]; empty bins are dropped.

    Returns
    -------
    mean_predicted, fraction_positive, counts
        Per non-empty bin: the mean probability, the observed cancer rate and the number of
        items. A calibrated model has ``fraction_positive == mean_predicted``.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    y, p = checked_probabilities(labels, probabilities)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)  # p == 1 joins the last bin
    counts = np.bincount(index, minlength=bins)
    kept = counts > 0
    n = counts[kept]
    mean_predicted = np.bincount(index, weights=p, minlength=bins)[kept] / n
    fraction_positive = np.bincount(index, weights=y.astype(float), minlength=bins)[kept] / n
    return mean_predicted, fraction_positive, n.astype(np.int64)


def expected_calibration_error(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = 10
) -> float:
    """Count-weighted mean |observed rate - mean probability| over the reliability bins."""
    mean_predicted, fraction_positive, counts = reliability_curve(labels, probabilities, bins)
    if counts.sum() == 0:
        return math.nan
    return float(np.sum(counts * np.abs(fraction_positive - mean_predicted)) / counts.sum())


# Weighted forms: row b of ``w`` (resamples x items) holds how often each item was drawn.
def _weighted_auc(y: BoolArray, s: FloatArray, w: IntArray) -> FloatArray:
    negatives = np.flatnonzero(~y)
    negatives = negatives[np.argsort(s[negatives], kind="stable")]
    # cum_neg[:, k]: weight of the k lowest-scoring negatives; a positive beats those strictly
    # below its score and ties with those up to it (the mid-rank rule, in weights).
    cum_neg = np.zeros((w.shape[0], negatives.size + 1), dtype=np.int64)
    np.cumsum(w[:, negatives], axis=1, out=cum_neg[:, 1:])
    s_neg, s_pos = s[negatives], s[y]
    below = cum_neg[:, np.searchsorted(s_neg, s_pos, side="left")]
    up_to_ties = cum_neg[:, np.searchsorted(s_neg, s_pos, side="right")]
    w_pos = w[:, y]
    wins = np.einsum("bi,bi->b", w_pos, below + up_to_ties) / 2.0
    n_pos, n_neg = w_pos.sum(axis=1), cum_neg[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = wins / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _weighted_pf1(y: BoolArray, p: FloatArray, w: IntArray) -> FloatArray:
    return np.asarray(_f_beta(w[:, y] @ p[y], w[:, ~y] @ p[~y], w[:, y].sum(axis=1), 1.0))


def _weighted_brier(y: BoolArray, p: FloatArray, w: IntArray) -> FloatArray:
    return np.asarray((w @ (p - y) ** 2) / w.sum(axis=1))


_WEIGHTED: dict[Callable[..., float], Callable[[BoolArray, FloatArray, IntArray], FloatArray]] = {
    roc_auc: _weighted_auc,
    probabilistic_f1: _weighted_pf1,
    brier_score: _weighted_brier,
}


def _resample_counts(
    rng: np.random.Generator, n_units: int, n_boot: int, rows: int
) -> Iterator[IntArray]:
    """Chunks of up to ``rows`` rows ``counts[b, u]``: how often unit u was drawn in resample b."""
    for start in range(0, n_boot, rows):
        b = min(rows, n_boot - start)
        draws = rng.integers(0, n_units, size=(b, n_units)) + n_units * np.arange(b)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units)


def bootstrap_ci(
    metric_fn: Metric,
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    clusters: npt.ArrayLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` at level ``1 - alpha``.

    Parameters
    ----------
    metric_fn
        ``metric_fn(labels, scores) -> float``. :func:`roc_auc`, :func:`probabilistic_f1` and
        :func:`brier_score` run vectorised over resamples; any other callable (a
        ``functools.partial`` of :func:`sensitivity_at_specificity`, say) runs once per
        resample on the same draws.
    clusters
        One id per item (patient or exam). Whole clusters are drawn with replacement, because
        the images of one woman share her breasts and her reader's eye: resampling images as
        if independent understates the interval.
    n_boot, alpha, seed
        Resamples, miss rate of the interval, seed of the draws (same seed, same interval).

    Returns
    -------
    tuple of float
        Resamples whose metric is ``nan`` (one class not drawn) are skipped; ``(nan, nan)``
        when all are.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    y, s = _binary(labels, scores, "scores")
    metric_fn(y, s)  # the metric validates its arguments once, for the weighted forms too
    if clusters is None:
        unit = np.arange(y.size)
    else:
        ids = np.asarray(clusters)
        if ids.shape != y.shape:
            raise ValueError(f"clusters must have the shape of labels {y.shape}, got {ids.shape}")
        unit = np.unique(ids, return_inverse=True)[1].reshape(-1)
    n_units = int(unit.max()) + 1 if unit.size else 0
    if n_units == 0:
        return math.nan, math.nan
    weighted = _WEIGHTED.get(metric_fn)
    items = np.arange(y.size)
    values: list[FloatArray] = []
    rows = max(1, _CHUNK_ELEMENTS // y.size)  # resamples x items per chunk stays bounded
    for counts in _resample_counts(np.random.default_rng(seed), n_units, n_boot, rows):
        w = counts[:, unit]
        if weighted is not None:
            values.append(weighted(y, s, w))
        else:
            picks = (np.repeat(items, row) for row in w)
            values.append(np.array([metric_fn(y[i], s[i]) for i in picks], dtype=np.float64))
    finite = np.concatenate(values)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def aggregate_scores(
    keys: npt.ArrayLike, scores: npt.ArrayLike, how: Aggregation = "max"
) -> tuple[npt.NDArray[Any], FloatArray]:
    """One score per distinct key (image -> breast -> exam), keys sorted.

    ``"max"``: a breast is as suspicious as its most suspicious view (a lesion is often seen
    in one view only); also the rule for labels. ``"mean"``: averages views, which damps one
    noisy view but dilutes a lesion seen once.
    """
    k = np.asarray(keys)
    s = np.asarray(scores, dtype=np.float64)
    if k.ndim != 1 or s.shape != k.shape:
        raise ValueError(f"keys and scores must be 1-D and of one length, got {k.shape}, {s.shape}")
    unique, inverse = np.unique(k, return_inverse=True)
    inverse = inverse.reshape(-1)
    if how == "max":
        order = np.argsort(inverse, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1] if k.size else order
        return unique, np.maximum.reduceat(s[order], starts) if k.size else s
    if how == "mean":
        total = np.bincount(inverse, weights=s, minlength=unique.size)
        return unique, total / np.bincount(inverse, minlength=unique.size)
    raise ValueError(f"how must be 'max' or 'mean', got {how!r}")
