"""The validation report of a scored image table: per reading level and per subgroup.

A triage model is judged where a screening programme uses it: per exam (one woman, one
visit), per breast (where a recall points) and per image (what the network sees). Each level
gets its AUC with a bootstrap confidence interval, the operating points a programme would
pick (sensitivity at 90 / 95 % specificity, specificity at 85 / 90 % sensitivity), the RSNA
Screening Mammography challenge's probabilistic F1 and the calibration of the probabilities
(Brier score, expected calibration error); subgroups (density, subtlety, manufacturer, view,
lesion type) get their AUC with an interval. The metrics themselves are :mod:`.metrics`.

The bootstrap resamples women (patients), or exams when patient ids are missing, never
single images: images of one woman are not independent samples.

Nothing here imports torch, scikit-learn or matplotlib, so validation runs on a runtime
install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mammotriage.model.metrics import (
    Aggregation,
    FloatArray,
    IntArray,
    aggregate_scores,
    bootstrap_ci,
    brier_score,
    checked_probabilities,
    expected_calibration_error,
    probabilistic_f1,
    roc_auc,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

__all__ = [
    "LESION_ATTRIBUTES",
    "SENSITIVITIES",
    "SPECIFICITIES",
    "SUBGROUPS",
    "LevelScores",
    "ScoredImages",
    "evaluate",
    "level_metrics",
    "reading_levels",
    "subgroup_aucs",
]

#: Subgroups :func:`evaluate` reports by default: "view" per image, the others per breast.
SUBGROUPS = ("density", "subtlety", "manufacturer", "view", "lesion_type")
#: Attributes of a finding, not of a breast: negatives have none, so a subgroup's AUC compares
#: its positives with ALL negatives (the question is "how well are subtle cancers found?").
LESION_ATTRIBUTES = ("subtlety", "lesion_type")
#: The operating points :func:`evaluate` reports.
SPECIFICITIES = (0.90, 0.95)
SENSITIVITIES = (0.85, 0.90)


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
        y, p = checked_probabilities(self.label, self.probability)
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
