"""Read public mammography data sets in the layouts their publishers ship, as ``ImageRecord``s.

The default model is trained on synthetic phantoms; real accuracy comes from users training
on real data with our scripts, so the scripts must read the real downloads as they are,
not a layout we invented. Each adapter reads the data set's own annotation files with their
own column names, resolves every image where the download puts it, and says clearly what
is missing when the layout is not the one expected. Images listed but absent on disk (a
partial download) are left out with a warning; none found at all is a wrong layout.

Splitting and class balance live with the records (:func:`split_by_patient`,
:func:`class_weights`, :func:`balanced_sample_weights`) and are re-exported here.

No torch here: validation of an exported ONNX model reads data sets too.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import TypeVar

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.errors import ConfigError
from mammotriage.model.records import (
    DEFAULT_FRACTIONS,
    Box,
    ImageRecord,
    balanced_sample_weights,
    class_weights,
    make_attrs,
    split_by_attribute,
    split_by_patient,
)
from mammotriage.synth.batch import read_truth

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Enum)

__all__ = [
    "DATASET_KINDS",
    "DEFAULT_FRACTIONS",
    "balanced_sample_weights",
    "class_weights",
    "detect_kind",
    "load_cbis_ddsm",
    "load_dataset",
    "load_rsna",
    "load_synthetic",
    "load_vindr",
    "split_by_attribute",
    "split_by_patient",
]

DATASET_KINDS = ("synthetic", "rsna", "vindr", "cbis-ddsm")

RSNA_CSV = "train.csv"
RSNA_REQUIRED = ("patient_id", "image_id", "laterality", "view", "cancer")
VINDR_BREAST_CSV = "breast-level_annotations.csv"
VINDR_FINDING_CSV = "finding_annotations.csv"
VINDR_BREAST_REQUIRED = ("study_id", "image_id", "laterality", "view_position", "breast_birads")
VINDR_FINDING_REQUIRED = ("study_id", "image_id", "finding_birads", "xmin", "ymin", "xmax", "ymax")
CBIS_CSVS = (
    "mass_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_train_set.csv",
    "calc_case_description_test_set.csv",
)
CBIS_REQUIRED = (
    "patient_id",
    "left or right breast",
    "image view",
    "abnormality type",
    "pathology",
    "subtlety",
    "image file path",
)
CBIS_PATHOLOGIES = ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK")
#: The CBIS-DDSM download spells it "breast_density" in the mass files and "breast density"
#: in the calcification files.
CBIS_DENSITY_COLUMNS = ("breast_density", "breast density")
#: DDSM's density 1-4 is the BI-RADS 4th-edition scale; its letters are the 5th edition's.
_DENSITY_LETTERS = {"1": "A", "2": "B", "3": "C", "4": "D"}
_CBIS_SIDES = {"LEFT": "L", "RIGHT": "R"}


# --- CSV and value parsing ------------------------------------------------------------------


def _read_csv(path: Path, required: Sequence[str], what: str) -> list[dict[str, str]]:
    """Rows of an annotation CSV as stripped strings, after checking the header.

    Raises
    ------
    ConfigError
        If the file is missing, lacks a required column, or has no rows.
    """
    if not path.is_file():
        raise ConfigError(f"{what}: expected the annotation file {path}, which does not exist.")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in required if c not in header]
        if missing:
            raise ConfigError(
                f"{what}: {path} lacks column(s) {', '.join(map(repr, missing))} "
                f"(has: {', '.join(header) or 'no header'})."
            )
        rows = [
            {k: v.strip() if isinstance(v, str) else "" for k, v in row.items() if k is not None}
            for row in reader
        ]
    if not rows:
        raise ConfigError(f"{what}: {path} has a header but no rows.")
    return rows


def _where(path: Path, line: int, column: str) -> str:
    # Line numbers count the header as line 1, as an editor shows them.
    return f"{path} line {line + 2}, column {column!r}"


def _enum(kind: type[E], value: str, where: str) -> E:
    try:
        return kind(value.upper())
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise ConfigError(f"{where}: unknown value {value!r}; expected one of {allowed}.") from None


def _binary(value: str, where: str) -> int:
    number = _number(value)
    if number not in (0.0, 1.0):
        raise ConfigError(f"{where}: expected 0 or 1, got {value!r}.")
    return int(number or 0)


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _clean(value: str) -> str:
    """Tidy what a pandas round trip does to numbers ("2.0" -> "2") and to missing ("nan")."""
    number = _number(value)
    if number is not None and number.is_integer():
        return str(int(number))
    return "" if value.lower() == "nan" else value


def _density_letter(value: str) -> str:
    """BI-RADS density as a letter, whichever spelling: "C", "DENSITY C", "3"."""
    text = _clean(value).upper().replace("DENSITY", "").strip()
    return _DENSITY_LETTERS.get(text, text if text in ("A", "B", "C", "D") else "")


def _keep_present(records: list[ImageRecord], what: str, expected: str) -> list[ImageRecord]:
    """Drop records whose file is absent; a partial download is usable, an empty one is not."""
    present = [r for r in records if r.path.is_file()]
    if records and not present:
        raise ConfigError(
            f"{what}: none of the {len(records)} images listed was found; expected them at "
            f"{expected} (first: {records[0].path})."
        )
    if len(present) < len(records):
        log.warning(
            "%s: %d of %d listed images are missing and left out",
            what,
            len(records) - len(present),
            len(records),
        )
    return present


# --- adapters ---------------------------------------------------------------------------------


def load_synthetic(root: Path) -> list[ImageRecord]:
    """Read a data set written by ``mammotriage synth`` (``root/truth.csv``).

    Boxes are the truth boxes (stored pixels); attributes: density, subtlety, lesion_type,
    manufacturer, presentation_intent.

    Raises
    ------
    ConfigError
        If ``truth.csv`` is missing, lacks a column or holds an invalid value.
    """
    root = Path(root)
    truth = root / "truth.csv"
    if not truth.is_file():
        raise ConfigError(f"synthetic: expected the truth file {truth}, which does not exist.")
    try:
        rows = read_truth(truth)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"synthetic: {truth}: {exc}") from exc
    records = [
        ImageRecord(
            path=root / row.path,
            patient_id=row.patient_id,
            exam_id=row.exam_id,
            laterality=row.laterality,
            view=row.view,
            label=int(row.cancer),
            boxes=(
                ((float(row.box.x0), float(row.box.y0), float(row.box.x1), float(row.box.y1)),)
                if row.box
                else ()
            ),
            attrs=make_attrs(
                {
                    "density": row.density.value,
                    "subtlety": row.subtlety,
                    "lesion_type": row.lesion_type.value if row.lesion_type else None,
                    "manufacturer": row.manufacturer,
                    "presentation_intent": row.presentation_intent.value,
                }
            ),
        )
        for row in rows
    ]
    return _keep_present(records, "synthetic", f"{root}/<path column>")


def load_rsna(root: Path) -> list[ImageRecord]:
    """Read the RSNA Screening Mammography Breast Cancer Detection data (Kaggle, 2023).

    ``root/train.csv`` with images at ``root/train_images/<patient_id>/<image_id>.dcm`` (the
    Kaggle layout) or ``root/<patient_id>/<image_id>.dcm``. ``cancer`` is biopsy-proven and
    per breast. RSNA has no study id and one screening exam per patient, so the exam id is
    the patient id. Views include AT, LM, ML and LMO besides CC and MLO; all are kept.
    Attributes: site_id, machine_id, density, birads, age, implant, biopsy, invasive,
    difficult_negative_case (each where the column exists). No lesion boxes.

    Raises
    ------
    ConfigError
        If ``train.csv`` is missing, lacks one of :data:`RSNA_REQUIRED`, holds an unknown
        laterality/view or a non-binary ``cancer``, or none of its images exists.
    """
    root = Path(root)
    csv_path = root / RSNA_CSV
    rows = _read_csv(csv_path, RSNA_REQUIRED, "rsna")
    images = root / "train_images" if (root / "train_images").is_dir() else root
    records = []
    for i, row in enumerate(rows):
        patient = _clean(row["patient_id"])
        records.append(
            ImageRecord(
                path=images / patient / f"{_clean(row['image_id'])}.dcm",
                patient_id=patient,
                exam_id=patient,
                laterality=_enum(Laterality, row["laterality"], _where(csv_path, i, "laterality")),
                view=_enum(ViewPosition, row["view"], _where(csv_path, i, "view")),
                label=_binary(row["cancer"], _where(csv_path, i, "cancer")),
                attrs=make_attrs(
                    {
                        "site_id": _clean(row.get("site_id", "")),
                        "machine_id": _clean(row.get("machine_id", "")),
                        "density": _density_letter(row.get("density", "")),
                        "birads": _clean(row.get("BIRADS", "")),
                        "age": _clean(row.get("age", "")),
                        "implant": _clean(row.get("implant", "")),
                        "biopsy": _clean(row.get("biopsy", "")),
                        "invasive": _clean(row.get("invasive", "")),
                        "difficult_negative_case": row.get("difficult_negative_case", ""),
                    }
                ),
            )
        )
    return _keep_present(records, "rsna", f"{images}/<patient_id>/<image_id>.dcm")


def _birads(value: str, where: str) -> int | None:
    """The category of "BI-RADS 4" (VinDr) or "4"; None when empty (a "No Finding" row)."""
    if not value or value.lower() == "nan":
        return None
    match = re.fullmatch(r"(?:BI-?RADS\s*)?([0-6])[A-C]?(?:\.0)?", value.strip(), re.IGNORECASE)
    if match is None:
        raise ConfigError(f"{where}: expected a BI-RADS category like 'BI-RADS 4', got {value!r}.")
    return int(match.group(1))


def load_vindr(root: Path) -> list[ImageRecord]:
    """Read VinDr-Mammo (PhysioNet 1.0.0).

    ``root/breast-level_annotations.csv`` (one row per image) and
    ``root/finding_annotations.csv`` (one row per finding, or a "No Finding" row with empty
    coordinates); images at ``root/images/<study_id>/<image_id>.dicom``.

    VinDr has no biopsy-proven outcome. The label is therefore a **proxy**: 1 when the
    breast's assessment is BI-RADS 4 or 5 (suspicious, biopsy recommended), else 0. Boxes
    are those of the image's BI-RADS 4/5 findings. VinDr has no patient id and one study per
    patient, so the patient id is the study id. The official ``split`` (training/test) is
    kept as an attribute, with density, birads and lesion_type (the 4/5 findings' categories).

    Raises
    ------
    ConfigError
        If either CSV is missing or lacks a required column, a value is invalid, or none of
        the images exists.
    """
    root = Path(root)
    breast_csv, finding_csv = root / VINDR_BREAST_CSV, root / VINDR_FINDING_CSV
    rows = _read_csv(breast_csv, VINDR_BREAST_REQUIRED, "vindr")
    findings = _read_csv(finding_csv, VINDR_FINDING_REQUIRED, "vindr")
    boxes: dict[tuple[str, str], list[Box]] = defaultdict(list)
    categories: dict[tuple[str, str], set[str]] = defaultdict(set)
    for i, row in enumerate(findings):
        if (_birads(row["finding_birads"], _where(finding_csv, i, "finding_birads")) or 0) < 4:
            continue
        key = (row["study_id"], row["image_id"])
        categories[key].update(
            c.strip().lower().replace(" ", "_")
            for c in re.findall(r"[^\[\]',\"]+", row.get("finding_categories", ""))
            if c.strip()
        )
        coords = [_number(row[c]) for c in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            continue
        x0, y0, x1, y1 = (float(c) for c in coords)  # type: ignore[arg-type]
        boxes[key].append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    records = []
    for i, row in enumerate(rows):
        key = (row["study_id"], row["image_id"])
        where = _where(breast_csv, i, "breast_birads")
        birads = _birads(row["breast_birads"], where)
        if birads is None:
            raise ConfigError(f"{where}: empty; every image row needs its breast's BI-RADS.")
        records.append(
            ImageRecord(
                path=root / "images" / key[0] / f"{key[1]}.dicom",
                patient_id=key[0],
                exam_id=key[0],
                laterality=_enum(
                    Laterality, row["laterality"], _where(breast_csv, i, "laterality")
                ),
                view=_enum(
                    ViewPosition, row["view_position"], _where(breast_csv, i, "view_position")
                ),
                label=int(birads >= 4),
                boxes=tuple(boxes.get(key, ())),
                attrs=make_attrs(
                    {
                        "birads": str(birads),
                        "density": _density_letter(row.get("breast_density", "")),
                        "split": row.get("split", ""),
                        "lesion_type": "+".join(sorted(categories.get(key, ()))),
                    }
                ),
            )
        )
    return _keep_present(records, "vindr", f"{root}/images/<study_id>/<image_id>.dicom")


class _CbisFiles:
    """Finds a CBIS-DDSM image however the download was unpacked.

    The CSVs' "image file path" (``Mass-Training_P_00001_LEFT_CC/<uid>/<uid>/000000.dcm``)
    matches the layout of some mirrors; the TCIA/NBIA download keeps only the first folder
    name (``CBIS-DDSM/Mass-Training_P_00001_LEFT_CC/<date-uid>/<series>/1-1.dcm``). The
    folders are indexed once, on first need, by one walk of ``root``.
    """

    def __init__(self, root: Path, folders: set[str]) -> None:
        self.root = root
        self.folders = folders
        self._index: dict[str, list[Path]] | None = None

    def resolve(self, given: str) -> Path | None:
        relative = PurePosixPath(given.strip().replace("\\", "/"))
        for base in (self.root, self.root / "CBIS-DDSM"):
            if (base / relative).is_file():
                return base / relative
        files = self._folder_index().get(relative.parts[0], []) if relative.parts else []
        if len(files) <= 1:
            return files[0] if files else None
        tail = relative.parts[1:]
        for f in files:
            if tail and f.parts[-len(tail) :] == tail:
                return f
        # The full mammogram is by far the largest file of its series folder.
        return max(files, key=lambda f: f.stat().st_size)

    def _folder_index(self) -> dict[str, list[Path]]:
        if self._index is None:
            self._index = {}
            for dirpath, dirnames, _ in os.walk(self.root):
                for name in [d for d in dirnames if d in self.folders]:
                    dirnames.remove(name)  # no need to walk inside: rglob below does
                    if name not in self._index:
                        self._index[name] = sorted(Path(dirpath, name).rglob("*.dcm"))
        return self._index


def load_cbis_ddsm(root: Path) -> list[ImageRecord]:
    """Read CBIS-DDSM (TCIA): the four case-description CSVs and their DICOM images.

    CBIS-DDSM holds **only abnormal cases** (every image has a mass or calcification, benign
    or malignant); there are no normal exams, so it teaches malignant versus benign, not
    cancer versus normal screening, and its prevalence says nothing about screening.

    One record per image: a breast view with several abnormalities (or listed in both the
    mass and the calcification files) is one image; its label is 1 when any abnormality is
    MALIGNANT, its subtlety that of the malignant abnormalities (else of all), the hardest
    (lowest) one. The patient id ("P_00001") is also the exam id: the CC and MLO of one
    patient come from one exam. Attributes: density (A-D from DDSM's 1-4), subtlety,
    lesion_type (mass, calcification or both), birads (the highest assessment), split.
    Images are found at ``root/<image file path>``, ``root/CBIS-DDSM/<image file path>``,
    or under a folder named like the path's first component anywhere below ``root``. No
    boxes: CBIS-DDSM outlines lesions as ROI mask images, not coordinates.

    Raises
    ------
    ConfigError
        If none of :data:`CBIS_CSVS` exists, one lacks a required column, a value is invalid,
        or none of the images exists.
    """
    root = Path(root)
    present = [root / name for name in CBIS_CSVS if (root / name).is_file()]
    if not present:
        raise ConfigError(
            f"cbis-ddsm: expected at least one of {', '.join(CBIS_CSVS)} in {root}; found none."
        )
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for csv_path in present:
        split = "test" if "_test_" in csv_path.name else "training"
        for i, row in enumerate(_read_csv(csv_path, CBIS_REQUIRED, "cbis-ddsm")):
            side = _CBIS_SIDES.get(row["left or right breast"].upper())
            if side is None:
                raise ConfigError(
                    f"{_where(csv_path, i, 'left or right breast')}: expected LEFT or RIGHT, "
                    f"got {row['left or right breast']!r}."
                )
            view = _enum(ViewPosition, row["image view"], _where(csv_path, i, "image view")).value
            if row["pathology"].upper() not in CBIS_PATHOLOGIES:
                raise ConfigError(
                    f"{_where(csv_path, i, 'pathology')}: expected one of "
                    f"{', '.join(CBIS_PATHOLOGIES)}, got {row['pathology']!r}."
                )
            row = dict(row, split=split)
            groups[(row["patient_id"], side, view)].append(row)

    folders = {
        PurePosixPath(r["image file path"].replace("\\", "/")).parts[0]
        for rows in groups.values()
        for r in rows
        if r["image file path"]
    }
    files = _CbisFiles(root, folders)
    records, missing = [], 0
    for (patient, side, view), rows in groups.items():
        path = next(
            (p for p in (files.resolve(r["image file path"]) for r in rows) if p is not None), None
        )
        if path is None:
            missing += 1
            continue
        records.append(_cbis_record(path, patient, side, view, rows))
    if missing and not records:
        raise ConfigError(
            f"cbis-ddsm: none of the {missing} images listed was found under {root} "
            "(looked for each 'image file path' as given, under CBIS-DDSM/, and by its first "
            "folder name anywhere below)."
        )
    if missing:
        log.warning(
            "cbis-ddsm: %d of %d listed images are missing and left out", missing, len(groups)
        )
    return records


def _cbis_record(
    path: Path, patient: str, side: str, view: str, rows: list[dict[str, str]]
) -> ImageRecord:
    malignant = [r for r in rows if r["pathology"].upper() == "MALIGNANT"]
    subtleties = [int(n) for r in (malignant or rows) if (n := _number(r["subtlety"])) is not None]
    assessments = [int(n) for r in rows if (n := _number(r.get("assessment", ""))) is not None]
    density = next(
        (_density_letter(r[c]) for r in rows for c in CBIS_DENSITY_COLUMNS if r.get(c)), ""
    )
    types = {r["abnormality type"].lower() for r in rows if r["abnormality type"]}
    return ImageRecord(
        path=path,
        patient_id=patient,
        exam_id=patient,
        laterality=Laterality(side),
        view=ViewPosition(view),
        label=int(bool(malignant)),
        attrs=make_attrs(
            {
                "density": density,
                "subtlety": min(subtleties) if subtleties else None,
                "lesion_type": "+".join(sorted(types)),
                "birads": max(assessments) if assessments else None,
                "split": rows[0]["split"],
            }
        ),
    )


LOADERS: Mapping[str, Callable[[Path], list[ImageRecord]]] = {
    "synthetic": load_synthetic,
    "rsna": load_rsna,
    "vindr": load_vindr,
    "cbis-ddsm": load_cbis_ddsm,
}
#: The files that give each layout away, in the order they are tried.
MARKERS: Mapping[str, tuple[str, ...]] = {
    "synthetic": ("truth.csv",),
    "vindr": (VINDR_BREAST_CSV,),
    "cbis-ddsm": CBIS_CSVS,
    "rsna": (RSNA_CSV,),
}


def detect_kind(root: Path) -> str:
    """Which data set layout ``root`` holds, from the annotation files present.

    Raises
    ------
    ConfigError
        If ``root`` is not a folder or holds none of the :data:`MARKERS` files.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"Data set folder {root} does not exist or is not a folder.")
    for kind, names in MARKERS.items():
        if any((root / name).is_file() for name in names):
            return kind
    expected = "; ".join(f"{kind}: {' or '.join(names)}" for kind, names in MARKERS.items())
    raise ConfigError(f"Cannot tell which data set {root} holds; expected one of ({expected}).")


def load_dataset(root: Path, kind: str | None = None) -> list[ImageRecord]:
    """Read the data set at ``root``; ``kind`` is one of :data:`DATASET_KINDS` or detected.

    Raises
    ------
    ConfigError
        If ``kind`` is unknown, the layout cannot be detected, or the adapter finds it wrong.
    """
    if kind is None:
        kind = detect_kind(root)
    if kind not in LOADERS:
        raise ConfigError(
            f'Argument "kind" must be one of {", ".join(DATASET_KINDS)}, got {kind!r}.'
        )
    return LOADERS[kind](Path(root))
