"""``ImageRecord``: one training image, whatever data set it came from; and what is decided
over a list of them: patient-level splits and class balance.

Every data set adapter (:mod:`mammotriage.model.datasets`) ends here, so that splitting,
class balancing, caching and validation see one shape of data: a file, who it belongs to
(patient, exam, breast), which view it is, and whether that breast holds cancer. Pure
data: no torch, no file access, so that validating an ONNX model needs neither.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mammotriage.dicom.model import Laterality, ViewPosition

Box = tuple[float, float, float, float]

DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}

#: Subgroup attributes the adapters fill where their data set has them, with one spelling
#: across data sets so that a validation report can stratify RSNA and VinDr alike.
#: ``density`` is always the BI-RADS letter A-D.
KNOWN_ATTRS = (
    "density",
    "subtlety",
    "lesion_type",
    "manufacturer",
    "site_id",
    "machine_id",
    "birads",
    "split",
)


@dataclass(frozen=True)
class ImageRecord:
    """One mammogram of a data set and its ground truth.

    Parameters
    ----------
    path
        The DICOM file.
    patient_id
        The data set's patient identifier; splits never put one patient in two subsets,
        since images of one woman are far more alike than images of two.
    exam_id
        The screening exam (study) the image belongs to.
    laterality, view
        Which breast and which projection, as the data set's annotations say.
    label
        1 when this image's breast holds cancer (as the data set defines it: biopsy-proven
        for RSNA, BI-RADS 4/5 for VinDr-Mammo, pathology MALIGNANT for CBIS-DDSM), else 0.
    boxes
        Lesion boxes ``(x0, y0, x1, y1)`` in the original image's pixel coordinates
        (pixel-edge convention of :mod:`mammotriage.preprocess`).
    attrs
        Subgroup attributes as sorted ``(name, value)`` pairs (see :data:`KNOWN_ATTRS`);
        a tuple rather than a dict keeps the record hashable and immutable.

    Raises
    ------
    TypeError, ValueError
        If a field has the wrong type or an impossible value (label not 0/1, a box that is
        not four finite numbers with ``x0 <= x1`` and ``y0 <= y1``).
    """

    path: Path
    patient_id: str
    exam_id: str
    laterality: Laterality
    view: ViewPosition
    label: int
    boxes: tuple[Box, ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            raise TypeError(f'Argument "path" must be a pathlib.Path, got {self.path!r}.')
        for name in ("patient_id", "exam_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f'Argument "{name}" must be a non-empty string, got {value!r}.')
        if not isinstance(self.laterality, Laterality):
            raise TypeError(f'Argument "laterality" must be a Laterality, got {self.laterality!r}.')
        if not isinstance(self.view, ViewPosition):
            raise TypeError(f'Argument "view" must be a ViewPosition, got {self.view!r}.')
        if isinstance(self.label, bool) or self.label not in (0, 1):
            raise ValueError(f'Argument "label" must be 0 or 1, got {self.label!r}.')
        for box in self.boxes:
            if not _valid_box(box):
                raise ValueError(
                    'Argument "boxes" must hold (x0, y0, x1, y1) tuples of finite floats with '
                    f"x0 <= x1 and y0 <= y1, got {box!r}."
                )
        names = [pair[0] for pair in self.attrs]
        if any(
            not (isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, str) for v in p))
            for p in self.attrs
        ) or names != sorted(set(names)):
            raise ValueError(
                'Argument "attrs" must be sorted (name, value) string pairs with unique names, '
                f"got {self.attrs!r}; build it with make_attrs()."
            )

    @property
    def breast_id(self) -> str:
        """``exam_id/L`` or ``exam_id/R``: the unit a cancer label belongs to."""
        return f"{self.exam_id}/{self.laterality.value}"

    def attr(self, name: str) -> str | None:
        """The subgroup attribute ``name``, or None when the data set does not record it."""
        for key, value in self.attrs:
            if key == name:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, e.g. for the preprocessed cache's index."""
        return {
            "path": str(self.path),
            "patient_id": self.patient_id,
            "exam_id": self.exam_id,
            "laterality": self.laterality.value,
            "view": self.view.value,
            "label": self.label,
            "boxes": [list(b) for b in self.boxes],
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRecord:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError, TypeError, ValueError
            If a key is missing or a value is invalid.
        """
        return cls(
            path=Path(data["path"]),
            patient_id=data["patient_id"],
            exam_id=data["exam_id"],
            laterality=Laterality(data["laterality"]),
            view=ViewPosition(data["view"]),
            label=int(data["label"]),
            boxes=tuple(_as_box(b) for b in data["boxes"]),
            attrs=make_attrs(data["attrs"]),
        )


def make_attrs(values: Mapping[str, object | None]) -> tuple[tuple[str, str], ...]:
    """Sorted ``(name, value)`` pairs for :attr:`ImageRecord.attrs`.

    Missing values (None, empty or whitespace strings, NaN) are left out, so that
    ``record.attr(name) is None`` means "not recorded" and never "recorded as empty".
    """
    pairs = []
    for name, value in values.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        text = str(value).strip()
        if text:
            pairs.append((str(name), text))
    return tuple(sorted(pairs))


def _as_box(values: object) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)  # type: ignore[attr-defined]
    return (x0, y0, x1, y1)


def _valid_box(box: object) -> bool:
    if not isinstance(box, tuple) or len(box) != 4:
        return False
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        return False
    x0, y0, x1, y1 = box
    return all(math.isfinite(v) for v in box) and x0 <= x1 and y0 <= y1


# --- splits and class balance -----------------------------------------------------------------


def split_by_patient(
    records: Iterable[ImageRecord],
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> dict[str, list[ImageRecord]]:
    """Split records into subsets by patient, stratified by cancer.

    Images of one woman (both breasts, every view, every exam) are far more alike than
    images of two, so a patient in two subsets leaks and flatters validation. Patients with
    any cancer and patients without are shuffled and divided separately (largest remainder),
    so that every subset gets its share of the rare cancers: at least one cancer patient per
    non-empty subset whenever there are enough. Deterministic for a seed and independent of
    the records' order; records keep their order within a subset.

    Raises
    ------
    ValueError
        If ``fractions`` is empty, holds a negative or non-finite value, or does not sum to 1.
    """
    fractions = dict(fractions)
    values = list(fractions.values())
    if (
        not fractions
        or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values)
        or not math.isclose(sum(values), 1.0, abs_tol=1e-6)
    ):
        raise ValueError(
            f'Argument "fractions" must map subset names to non-negative fractions summing '
            f"to 1, got {fractions!r}."
        )
    records = list(records)
    cancer: dict[str, bool] = defaultdict(bool)
    for record in records:
        cancer[record.patient_id] |= record.label == 1
    subset_of: dict[str, str] = {}
    for stream, has_cancer in ((1, True), (0, False)):
        patients = sorted(p for p, c in cancer.items() if c is has_cancer)
        order = np.random.default_rng([seed, stream]).permutation(len(patients))
        counts = _allocate(len(patients), fractions, at_least_one=has_cancer)
        start = 0
        for name, count in counts.items():
            for k in order[start : start + count]:
                subset_of[patients[k]] = name
            start += count
    return {name: [r for r in records if subset_of[r.patient_id] == name] for name in fractions}


def _allocate(n: int, fractions: Mapping[str, float], at_least_one: bool) -> dict[str, int]:
    """Largest-remainder counts; optionally one at least for every non-zero fraction."""
    exact = {name: n * f for name, f in fractions.items()}
    counts = {name: math.floor(v) for name, v in exact.items()}
    by_remainder = sorted(exact, key=lambda name: counts[name] - exact[name])
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    wanted = [name for name, f in fractions.items() if f > 0]
    if at_least_one and n >= len(wanted):
        for name in wanted:
            if counts[name] == 0:
                donor = max(counts, key=lambda k: counts[k])
                counts[donor] -= 1
                counts[name] += 1
    return counts


def split_by_attribute(records: Iterable[ImageRecord], name: str) -> dict[str, list[ImageRecord]]:
    """Split by a recorded attribute, e.g. VinDr-Mammo's official ``split``.

    Raises
    ------
    ValueError
        If a record does not carry the attribute.
    """
    subsets: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        value = record.attr(name)
        if value is None:
            raise ValueError(f"Record {record.path} has no attribute {name!r} to split by.")
        subsets[value].append(record)
    return dict(subsets)


def class_weights(records: Iterable[ImageRecord]) -> dict[int, float]:
    """Inverse-frequency weights ``n / (2 n_c)``: each class weighs half of the total.

    For a loss weight; ``class_weights[1] / class_weights[0]`` is BCE's ``pos_weight``.

    Raises
    ------
    ValueError
        If a class has no image (nothing to balance).
    """
    counts = Counter(record.label for record in records)
    absent = [label for label in (0, 1) if counts[label] == 0]
    if absent:
        raise ValueError(f"Records hold no image of class {absent[0]}; cannot weight classes.")
    total = counts[0] + counts[1]
    return {label: total / (2 * counts[label]) for label in (0, 1)}


def balanced_sample_weights(records: Sequence[ImageRecord]) -> npt.NDArray[np.float64]:
    """Per-record weights for ``torch.utils.data.WeightedRandomSampler``.

    Drawn with these weights (with replacement), cancers and normals come equally often: a
    batch of 16 holds about 8 cancers instead of 0.1 at screening prevalence, so every step
    has a gradient from both classes. The weights' mean is 1.

    Raises
    ------
    ValueError
        If a class has no image.
    """
    weights = class_weights(records)
    return np.array([weights[record.label] for record in records], dtype=np.float64)
