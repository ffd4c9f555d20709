"""What scoring says about an exam: image, breast and exam scores, category and findings.

Pure numpy and data classes: the engine fills them, triage, the worklist and the command
line read them. Scores are on a 0-100 scale (100 x the model's malignancy probability).

Aggregation follows the model's sidecar (``aggregation.breast`` / ``aggregation.exam``),
as the export defined the exam score the calibration table was measured on: a breast is
as suspicious as its most suspicious view ("max"; a lesion is often seen in one view only),
an exam as its most suspicious breast. "mean" averages probabilities instead.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mammotriage.category import check_thresholds
from mammotriage.dicom.model import Laterality, Slot, ViewPosition, view_label

Aggregate = Literal["max", "mean"]
Box = tuple[float, float, float, float]
#: The breasts an exam score is made of, in the order they are reported.
BREASTS: tuple[Laterality, ...] = (Laterality.LEFT, Laterality.RIGHT)


@dataclass(frozen=True)
class ImageScore:
    """One image of an exam and what scoring made of it.

    Every image of the exam has one, scored or not: an unusable file keeps its ``reason``
    (``usable=False``); a usable image that was not scored (a duplicate of a view, a view
    that could not be placed) has ``usable=True``, ``probability=None`` and a ``reason``.
    """

    path: Path | None
    sop_instance_uid: str | None
    laterality: Laterality
    view: ViewPosition
    usable: bool
    reason: str | None
    probability: float | None = None
    logit: float | None = None
    #: The file's Modality (None when it could not be read): tells a mammography exam with
    #: unusable images from a study that holds no mammogram at all.
    modality: str | None = None
    #: The codec that read the pixels the model saw (None when the image was not scored).
    decoder: str | None = None

    @property
    def score(self) -> float | None:
        """0-100, or None when the image was not scored."""
        return None if self.probability is None else 100.0 * self.probability

    @property
    def label(self) -> str:
        return view_label(self.laterality, self.view)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path is not None else None,
            "sop_instance_uid": self.sop_instance_uid,
            "laterality": self.laterality.value,
            "view": self.view.value,
            "usable": self.usable,
            "reason": self.reason,
            "score": _round(self.score),
            "decoder": self.decoder,
        }


@dataclass(frozen=True)
class Finding:
    """A suspicious region of one image, in the ORIGINAL pixels of the stored DICOM image.

    ``box_original`` is ``(x0, y0, x1, y1)`` in pixel-edge coordinates of the file's own
    Rows x Columns grid (what a viewer shows before any flip); ``score`` is 1-100.
    """

    sop_instance_uid: str | None
    path: Path | None
    laterality: Laterality
    view: ViewPosition
    box_original: Box
    score: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "path": str(self.path) if self.path is not None else None,
            "laterality": self.laterality.value,
            "view": self.view.value,
            "box": [round(v, 1) for v in self.box_original],
            "score": self.score,
        }


@dataclass(frozen=True)
class ExamScore:
    """The scored exam: what the worker stores and triage decides on.

    ``score`` (0-100) and ``category`` (1-10) are None only when no image of the exam
    could be scored; such an exam still lists every image with its reason and must be read
    by people. ``partial`` is true when a standard view (R/L CC/MLO) was not scored.
    """

    exam_id: str
    score: float | None
    category: int | None
    partial: bool
    #: Breast scores by laterality (left, right); None for a breast with nothing scored.
    breasts: dict[Laterality, float | None]
    findings: tuple[Finding, ...]
    images: tuple[ImageScore, ...]
    model_name: str
    model_sha256: str
    #: Standard view slots that were not scored.
    missing: tuple[Slot, ...] = field(default=())

    @property
    def scored(self) -> bool:
        return self.score is not None

    @property
    def max_finding_score(self) -> int | None:
        """What triage's safety net looks at; None when the exam has no finding."""
        return max((f.score for f in self.findings), default=None)

    @property
    def is_mammography(self) -> bool:
        """At least one image is a mammogram (usable, or excluded for a mammography reason).

        A study without one (CT, ultrasound, files that are not DICOM) has no place on a
        mammography reading list.
        """
        return any(im.usable or im.modality == "MG" for im in self.images)

    @property
    def unusable_images(self) -> list[ImageScore]:
        return [im for im in self.images if not im.usable]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: one line of ``mammotriage score --json``."""
        return {
            "exam_id": self.exam_id,
            "score": _round(self.score),
            "category": self.category,
            "partial": self.partial,
            "missing": [slot.label for slot in self.missing],
            "breasts": {lat.value: _round(v) for lat, v in self.breasts.items()},
            "findings": [f.to_dict() for f in self.findings],
            "model": {"name": self.model_name, "sha256": self.model_sha256},
            "images": [im.to_dict() for im in self.images],
        }

    def to_json(self) -> str:
        """One compact JSON line (no NaN: unscored values are null)."""
        return json.dumps(self.to_dict(), allow_nan=False)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _combine(values: Sequence[float], how: Aggregate) -> float:
    if how == "max":
        return float(np.max(values))
    if how == "mean":
        return float(np.mean(values))
    raise ValueError(f'Argument "how" must be "max" or "mean", got {how!r}.')


def aggregate(
    image_scores: Iterable[ImageScore], how_breast: Aggregate = "max", how_exam: Aggregate = "max"
) -> tuple[float | None, dict[Laterality, float | None]]:
    """Image probabilities -> breast scores -> exam score, all on the 0-100 scale.

    A breast's score combines the scored images of that laterality (``how_breast``), the
    exam's combines the breasts that have a score (``how_exam``). Unscored images and images
    of unknown laterality take no part.

    Returns
    -------
    exam, breasts
        The exam score (None when nothing was scored) and
        ``{Laterality.LEFT: score | None, Laterality.RIGHT: ...}``.

    Raises
    ------
    ValueError
        If ``how_breast`` or ``how_exam`` is neither ``"max"`` nor ``"mean"``.
    """
    for name, how in (("how_breast", how_breast), ("how_exam", how_exam)):
        if how not in ("max", "mean"):
            raise ValueError(f'Argument "{name}" must be "max" or "mean", got {how!r}.')
    by_breast: dict[Laterality, list[float]] = {lat: [] for lat in BREASTS}
    for image in image_scores:
        if image.probability is not None and image.laterality in by_breast:
            by_breast[image.laterality].append(image.probability)
    breasts = {
        lat: (100.0 * _combine(p, how_breast) if p else None) for lat, p in by_breast.items()
    }
    scored = [v for v in breasts.values() if v is not None]
    return (_combine(scored, how_exam) if scored else None), breasts


def category_of(score: float, thresholds: Sequence[float]) -> int:
    """The calibrated category 1-10 of an exam score.

    Convention: upper bounds are inclusive. ``score <= t[0]`` is category 1,
    ``t[i-1] < score <= t[i]`` is category ``i + 1``, ``score > t[8]`` is category 10.
    With thresholds at the deciles of a reference population each category then holds
    about a tenth of it; tied thresholds send a tied score to the lowest category.

    Raises
    ------
    ValueError
        If ``thresholds`` are not nine non-decreasing numbers or ``score`` is not finite.
    """
    cuts = check_thresholds(thresholds)
    if not math.isfinite(score):
        raise ValueError(f'Argument "score" must be a finite number, got {score!r}.')
    return 1 + bisect_left(cuts, float(score))
