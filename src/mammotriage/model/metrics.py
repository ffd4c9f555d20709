"""Validation metrics for screening mammography, in numpy alone.

A triage model is judged where a screening programme uses it: per exam (one woman, one
visit), per breast (where a recall points) and per image (what the network sees). Each level
gets its AUC with a bootstrap confidence interval, the operating points a programme would
pick (sensitivity at 90 / 95 % specificity, specificity at 85 / 90 % sensitivity), the RSNA
Screening Mammography challenge's probabilistic F1 and the calibration of the probabilities
(Brier score, expected calibration error).

Images of one woman are not independent samples: the bootstrap resamples women (patients),
or exams when patient ids are missing, never single images, or the intervals come out too
narrow. It is vectorised over resamples for the metrics that have a weighted form (AUC, pF1,
Brier): a resample is a row of multiplicities, and 1000 resamples cost a few array passes.

Nothing here imports torch, scikit-learn or matplotlib, so validation runs on a runtime
install (the tests cross-check against scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Metric = Callable[[npt.ArrayLike, npt.ArrayLike], float]
Aggregation = Literal["max", "mean"]

#: Subgroups :func:`evaluate` reports by default: "view" per image, the others per breast.
SUBGROUPS = ("density", "subtlety", "manufacturer", "view", "lesion_type")
#: Attributes of a finding, not of a breast: negatives have none, so a subgroup's AUC compares
#: its positives with ALL negatives (the question is "how well are subtle cancers found?").
LESION_ATTRIBUTES = ("subtlety", "lesion_type")
#: The operating points :func:`evaluate` reports.
SPECIFICITIES = (0.90, 0.95)
SENSITIVITIES = (0.85, 0.90)
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


def _probabilities(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike
) -> tuple[BoolArray, FloatArray]:
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
    y, p = _probabilities(labels, probabilities)
    return float(_f_beta(p[y].sum(), p[~y].sum(), int(y.sum()), beta))


def brier_score(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    """Mean squared distance between probability and outcome; 0 is perfect."""
    y, p = _probabilities(labels, probabilities)
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
    y, p = _probabilities(labels, probabilities)
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


def _strings(name: str, values: Any, n: int) -> npt.NDArray[np.str_]:
    array = np.asarray(values).astype(str)
    if array.shape != (n,):
        raise ValueError(f"{name} must be 1-D with one entry per image ({n}), got {array.shape}")
    return array


@dataclass(frozen=True, kw_only=True)
class ScoredImages:
    """One row per image: identity, ground truth and the model's probability.

    Parameters
    ----------
    exam_id, laterality, view
        Exam (one woman, one visit; e.g. the StudyInstanceUID), ImageLaterality ``"L"`` /
        ``"R"`` and ViewPosition (``"CC"``, ``"MLO"``, ...).
    label, probability
        Cancer (1) or not (0), and the model's probability in [0, 1].
    patient_id
        The bootstrap's resampling unit when given; otherwise the exam is.
    attrs
        Subgroup attributes, strings, one per image (``density``, ``manufacturer``,
        ``subtlety``, ``lesion_type``...); ``""`` means unknown or not applicable, as for the
        subtlety of a negative image. ``"view"`` is taken from ``view``.
    """

    exam_id: npt.NDArray[np.str_]
    laterality: npt.NDArray[np.str_]
    view: npt.NDArray[np.str_]
    label: IntArray
    probability: FloatArray
    patient_id: npt.NDArray[np.str_] | None = None
    attrs: Mapping[str, npt.NDArray[np.str_]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        y, p = _probabilities(self.label, self.probability)
        n = y.size
        if n == 0:
            raise ValueError("ScoredImages needs at least one image")
        if "view" in self.attrs:
            raise ValueError("attrs may not hold 'view'; it is the view field")
        coerced: dict[str, Any] = {
            "label": y.astype(np.int64),
            "probability": p,
            "exam_id": _strings("exam_id", self.exam_id, n),
            "laterality": _strings("laterality", self.laterality, n),
            "view": _strings("view", self.view, n),
            "attrs": {k: _strings(f"attrs[{k!r}]", v, n) for k, v in self.attrs.items()},
        }
        if self.patient_id is not None:
            coerced["patient_id"] = _strings("patient_id", self.patient_id, n)
        bad = np.setdiff1d(coerced["laterality"], ("L", "R"))
        if bad.size:
            raise ValueError(f"laterality must be 'L' or 'R', got {bad[:6].tolist()}")
        for name, value in coerced.items():
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.label.size)


@dataclass(frozen=True, kw_only=True)
class LevelScores:
    """Labels and scores at one reading level (images, breasts or exams), one row per item.

    ``cluster`` is each item's bootstrap unit (patient, else exam); ``attrs`` its subgroup
    attributes (a breast takes them from a view that carries its label, see
    :func:`reading_levels`).
    """

    key: npt.NDArray[np.str_]
    exam_id: npt.NDArray[np.str_]
    label: IntArray
    probability: FloatArray
    cluster: npt.NDArray[np.str_]
    attrs: Mapping[str, npt.NDArray[np.str_]]


def _aggregate(level: LevelScores, keys: npt.NDArray[np.str_], how: Aggregation) -> LevelScores:
    unique, probability = aggregate_scores(keys, level.probability, how)
    _, label = aggregate_scores(keys, level.label, "max")
    inverse = np.unique(keys, return_inverse=True)[1].reshape(-1)
    starts = np.r_[0, np.flatnonzero(np.diff(inverse[np.argsort(inverse, kind="stable")])) + 1]

    def representative(values: npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
        # A view with the group's label and a known value: a cancer breast's subtlety is
        # that of its positive view, not the blank of a negative one.
        order = np.lexsort((values == "", -level.label, inverse))
        return values[order[starts]]

    first = np.unique(inverse, return_index=True)[1]
    return LevelScores(
        key=unique.astype(str),
        exam_id=level.exam_id[first],
        label=label.astype(np.int64),
        probability=probability,
        cluster=level.cluster[first],
        attrs={k: representative(v) for k, v in level.attrs.items() if k != "view"},
    )


def reading_levels(images: ScoredImages, how: Aggregation = "max") -> dict[str, LevelScores]:
    """Image, breast (exam + laterality) and exam levels of one scored image table.

    A breast's score aggregates its views by ``how``; an exam is as suspicious as its more
    suspicious breast (max), whatever ``how``, as an exam is positive when either breast is.
    Labels aggregate by max. A breast's attributes come from a view carrying the breast's
    label and a known value, so a cancer breast has the subtlety of the view showing it.
    """
    image = LevelScores(
        key=np.arange(len(images)).astype(str),
        exam_id=images.exam_id,
        label=images.label,
        probability=images.probability,
        cluster=images.patient_id if images.patient_id is not None else images.exam_id,
        attrs={"view": images.view, **images.attrs},
    )
    breast = _aggregate(
        image, np.char.add(np.char.add(images.exam_id, "/"), images.laterality), how
    )
    return {"image": image, "breast": breast, "exam": _aggregate(breast, breast.exam_id, "max")}


def _auc_with_ci(
    y: IntArray, p: FloatArray, cluster: Any, n_boot: int, seed: int, alpha: float
) -> dict[str, Any]:
    ci = bootstrap_ci(roc_auc, y, p, clusters=cluster, n_boot=n_boot, alpha=alpha, seed=seed)
    return {"auc": roc_auc(y, p), "auc_ci": list(ci), "n": int(y.size), "n_positive": int(y.sum())}


def level_metrics(
    level: LevelScores, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """All headline metrics of one level; AUC with a cluster-bootstrap interval.

    pF1, Brier and ECE read the level's aggregated score as a probability, as the RSNA
    challenge scores breasts by an aggregate of their images' probabilities.
    """
    y, p = level.label, level.probability
    out = _auc_with_ci(y, p, level.cluster, n_boot, seed, alpha)
    for spec in SPECIFICITIES:
        out[f"sensitivity_at_specificity_{spec:.2f}"] = sensitivity_at_specificity(y, p, spec)
    for sens in SENSITIVITIES:
        out[f"specificity_at_sensitivity_{sens:.2f}"] = specificity_at_sensitivity(y, p, sens)
    out["pf1"] = probabilistic_f1(y, p)
    out["brier"] = brier_score(y, p)
    out["ece"] = expected_calibration_error(y, p)
    return out


def subgroup_aucs(
    level: LevelScores,
    attribute: str,
    *,
    lesion: bool,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """AUC with interval for each known value of one attribute.

    ``lesion=False`` (density, manufacturer, view): the subgroup's own positives against its
    own negatives. ``lesion=True`` (subtlety, lesion type): the subgroup's positives against
    ALL negatives, whose value is ignored: a negative has no lesion, hence no subtlety, and
    the question asked is how well these cancers stand out from the normal population.
    """
    values = level.attrs[attribute]
    positive = level.label == 1
    present = values[positive] if lesion else values
    out: dict[str, dict[str, Any]] = {}
    for value in np.unique(present[present != ""]):
        mask = ((values == value) & positive) | ~positive if lesion else values == value
        entry = _auc_with_ci(
            level.label[mask], level.probability[mask], level.cluster[mask], n_boot, seed, alpha
        )
        entry["n_negative"] = entry["n"] - entry["n_positive"]
        out[str(value)] = entry
    return out


def _json_safe(value: Any) -> Any:
    """Plain JSON types; ``nan`` and infinities become ``None`` (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def evaluate(
    images: ScoredImages,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    subgroups: Sequence[str] = SUBGROUPS,
    lesion_attributes: Sequence[str] = LESION_ATTRIBUTES,
    breast_aggregation: Aggregation = "max",
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The validation report of one scored image table, ready for ``json.dumps``.

    Returns
    -------
    dict
        ``image`` / ``breast`` / ``exam``: :func:`level_metrics`. ``subgroups``: per attribute
        of ``subgroups`` present in the table, per value, :func:`subgroup_aucs` at breast
        level ("view" at image level, as a breast has several views); ``lesion_attributes``
        compare their positives with all negatives. ``counts`` and ``bootstrap`` say what was
        measured and how. Undefined values (``nan``) are ``None``.
    """
    levels = reading_levels(images, breast_aggregation)
    report: dict[str, Any] = {
        name: level_metrics(lv, n_boot=n_boot, seed=seed, alpha=alpha)
        for name, lv in levels.items()
    }
    report["subgroups"] = {
        attribute: subgroup_aucs(
            levels["image" if attribute == "view" else "breast"],
            attribute,
            lesion=attribute in lesion_attributes,
            n_boot=n_boot,
            seed=seed,
            alpha=alpha,
        )
        for attribute in subgroups
        if attribute == "view" or attribute in images.attrs
    }
    report["counts"] = {
        "images": len(images),
        "breasts": levels["breast"].label.size,
        "exams": levels["exam"].label.size,
        "patients": None if images.patient_id is None else np.unique(images.patient_id).size,
        **{f"positive_{name}s": int(lv.label.sum()) for name, lv in levels.items()},
    }
    report["bootstrap"] = {
        "n_boot": n_boot,
        "seed": seed,
        "alpha": alpha,
        "clusters": "exam" if images.patient_id is None else "patient",
        "method": "percentile",
    }
    return dict(_json_safe(report))
