"""Read public mammography data sets in the layouts their publishers ship, as ``ImageRecord``s.

The default model is trained on synthetic phantoms; real accuracy comes from users training
on real data with our scripts, so the scripts must read the real downloads as they are,
not a layout we invented. Each adapter reads the data set's own annotation files with their
own column names, resolves every image where the download puts it, and says clearly what
is missing when the layout is not the one expected. Images listed but absent on disk (a
partial download) are left out with a warning; none found at all is a wrong layout.

The CBIS-DDSM adapter lives in :mod:`.datasets_cbis` (:func:`load_cbis_ddsm` is re-exported
here), the CSV parsing the adapters share in :mod:`.annotations`. Splitting and class
balance live with the records (:func:`split_by_patient`, :func:`class_weights`,
:func:`balanced_sample_weights`) and are re-exported here.

No torch here: validation of an exported ONNX model reads data sets too.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.errors import ConfigError
from mammotriage.model.annotations import (
    cell,
    clean,
    density_letter,
    parse_binary,
    parse_enum,
    parse_number,
    read_csv,
)
from mammotriage.model.datasets_cbis import CBIS_CSVS, load_cbis_ddsm
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
    rows = read_csv(csv_path, RSNA_REQUIRED, "rsna")
    images = root / "train_images" if (root / "train_images").is_dir() else root
    records = []
    for i, row in enumerate(rows):
        patient = clean(row["patient_id"])
        records.append(
            ImageRecord(
                path=images / patient / f"{clean(row['image_id'])}.dcm",
                patient_id=patient,
                exam_id=patient,
                laterality=parse_enum(
                    Laterality, row["laterality"], cell(csv_path, i, "laterality")
                ),
                view=parse_enum(ViewPosition, row["view"], cell(csv_path, i, "view")),
                label=parse_binary(row["cancer"], cell(csv_path, i, "cancer")),
                attrs=make_attrs(
                    {
                        "site_id": clean(row.get("site_id", "")),
                        "machine_id": clean(row.get("machine_id", "")),
                        "density": density_letter(row.get("density", "")),
                        "birads": clean(row.get("BIRADS", "")),
                        "age": clean(row.get("age", "")),
                        "implant": clean(row.get("implant", "")),
                        "biopsy": clean(row.get("biopsy", "")),
                        "invasive": clean(row.get("invasive", "")),
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
    rows = read_csv(breast_csv, VINDR_BREAST_REQUIRED, "vindr")
    findings = read_csv(finding_csv, VINDR_FINDING_REQUIRED, "vindr")
    boxes: dict[tuple[str, str], list[Box]] = defaultdict(list)
    categories: dict[tuple[str, str], set[str]] = defaultdict(set)
    for i, row in enumerate(findings):
        if (_birads(row["finding_birads"], cell(finding_csv, i, "finding_birads")) or 0) < 4:
            continue
        key = (row["study_id"], row["image_id"])
        categories[key].update(
            c.strip().lower().replace(" ", "_")
            for c in re.findall(r"[^\[\]',\"]+", row.get("finding_categories", ""))
            if c.strip()
        )
        coords = [parse_number(row[c]) for c in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            continue
        x0, y0, x1, y1 = (float(c) for c in coords)  # type: ignore[arg-type]
        boxes[key].append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    records = []
    for i, row in enumerate(rows):
        key = (row["study_id"], row["image_id"])
        where = cell(breast_csv, i, "breast_birads")
        birads = _birads(row["breast_birads"], where)
        if birads is None:
            raise ConfigError(f"{where}: empty; every image row needs its breast's BI-RADS.")
        records.append(
            ImageRecord(
                path=root / "images" / key[0] / f"{key[1]}.dicom",
                patient_id=key[0],
                exam_id=key[0],
                laterality=parse_enum(
                    Laterality, row["laterality"], cell(breast_csv, i, "laterality")
                ),
                view=parse_enum(
                    ViewPosition, row["view_position"], cell(breast_csv, i, "view_position")
                ),
                label=int(birads >= 4),
                boxes=tuple(boxes.get(key, ())),
                attrs=make_attrs(
                    {
                        "birads": str(birads),
                        "density": density_letter(row.get("breast_density", "")),
                        "split": row.get("split", ""),
                        "lesion_type": "+".join(sorted(categories.get(key, ()))),
                    }
                ),
            )
        )
    return _keep_present(records, "vindr", f"{root}/images/<study_id>/<image_id>.dicom")


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
