"""Read CBIS-DDSM (TCIA) in the layout its publishers ship, as ``ImageRecord``s.

The case-description CSVs list abnormalities, not images; this adapter groups them into one
record per image and finds each image however the download was unpacked (the CSVs' paths,
or the TCIA/NBIA folder layout). See :func:`load_cbis_ddsm` for what it can and cannot
teach: CBIS-DDSM holds only abnormal cases.

No torch here: validation of an exported ONNX model reads data sets too.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path, PurePosixPath

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.errors import ConfigError
from mammotriage.model.annotations import (
    cell,
    density_letter,
    parse_enum,
    parse_number,
    read_csv,
)
from mammotriage.model.records import ImageRecord, make_attrs

log = logging.getLogger(__name__)

__all__ = [
    "CBIS_CSVS",
    "CBIS_DENSITY_COLUMNS",
    "CBIS_PATHOLOGIES",
    "CBIS_REQUIRED",
    "load_cbis_ddsm",
]

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
_CBIS_SIDES = {"LEFT": "L", "RIGHT": "R"}


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
        for i, row in enumerate(read_csv(csv_path, CBIS_REQUIRED, "cbis-ddsm")):
            side = _CBIS_SIDES.get(row["left or right breast"].upper())
            if side is None:
                raise ConfigError(
                    f"{cell(csv_path, i, 'left or right breast')}: expected LEFT or RIGHT, "
                    f"got {row['left or right breast']!r}."
                )
            view = parse_enum(
                ViewPosition, row["image view"], cell(csv_path, i, "image view")
            ).value
            if row["pathology"].upper() not in CBIS_PATHOLOGIES:
                raise ConfigError(
                    f"{cell(csv_path, i, 'pathology')}: expected one of "
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
    subtleties = [
        int(n) for r in (malignant or rows) if (n := parse_number(r["subtlety"])) is not None
    ]
    assessments = [int(n) for r in rows if (n := parse_number(r.get("assessment", ""))) is not None]
    density = next(
        (density_letter(r[c]) for r in rows for c in CBIS_DENSITY_COLUMNS if r.get(c)), ""
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
