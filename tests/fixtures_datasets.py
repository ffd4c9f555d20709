"""Tiny public-data-set downloads for the adapter tests: the real file names, column names,
value spellings and folder layouts, with small hand-built DICOM where the images would be."""

from __future__ import annotations

import csv
from pathlib import Path

from dicom_builders import breast_pixels, mg_dataset, write

#: PatientOrientation that puts the breast in its usual stored orientation.
_ORIENTATION = {"L": ("A", "R"), "R": ("P", "L")}


def mammogram(
    path: Path, laterality: str = "L", view: str = "CC", *, rows: int = 96, columns: int = 64
) -> Path:
    """A small readable mammogram at ``path``, chest wall on the side the display puts it."""
    pixels = breast_pixels(rows, columns, chest_wall="left" if laterality == "L" else "right")
    row_dir, col_dir = _ORIENTATION[laterality]
    ds = mg_dataset(
        pixels,
        ImageLaterality=laterality,
        ViewPosition=view,
        PatientOrientation=[row_dir, col_dir if view == "CC" else "F"],
    )
    return write(ds, path)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


# --- RSNA Screening Mammography (Kaggle 2023) ---------------------------------------------------

RSNA_COLUMNS = [
    "site_id",
    "patient_id",
    "image_id",
    "laterality",
    "view",
    "age",
    "cancer",
    "biopsy",
    "invasive",
    "BIRADS",
    "implant",
    "density",
    "machine_id",
    "difficult_negative_case",
]


def rsna(root: Path, *, kaggle_layout: bool = True) -> Path:
    """Two patients: 10006 with a cancer in the left breast, 10011 normal with an extra AT view.

    ``kaggle_layout``: images under ``train_images/<patient_id>/``, else ``<patient_id>/``.
    """
    views = [
        # patient, image, laterality, view, cancer
        ("10006", "462822612", "L", "CC", 1),
        ("10006", "1459541791", "L", "MLO", 1),
        ("10006", "1864590858", "R", "MLO", 0),
        ("10006", "1874946579", "R", "CC", 0),
        ("10011", "220375232", "L", "CC", 0),
        ("10011", "270344397", "L", "MLO", 0),
        ("10011", "541722628", "R", "CC", 0),
        ("10011", "1031443799", "R", "MLO", 0),
        ("10011", "1168472910", "R", "AT", 0),
    ]
    images = root / "train_images" if kaggle_layout else root
    rows = []
    for patient, image, lat, view, cancer in views:
        mammogram(images / patient / f"{image}.dcm", lat, view)
        rows.append(
            {
                "site_id": 2,
                "patient_id": patient,
                "image_id": image,
                "laterality": lat,
                "view": view,
                "age": "61.0" if patient == "10006" else "",
                "cancer": cancer,
                "biopsy": cancer,
                "invasive": cancer,
                "BIRADS": "" if cancer else "1",
                "implant": 0,
                "density": "C" if patient == "10006" else "",
                "machine_id": 29 if patient == "10006" else 21,
                "difficult_negative_case": "False",
            }
        )
    write_csv(root / "train.csv", RSNA_COLUMNS, rows)
    return root


# --- VinDr-Mammo (PhysioNet 1.0.0) ------------------------------------------------------------

VINDR_BREAST_COLUMNS = [
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "split",
]
VINDR_FINDING_COLUMNS = [
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "finding_categories",
    "finding_birads",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "split",
]
VINDR_SUSPICIOUS = "b8d273e8601f348d3664778dae0e7e0b"
VINDR_NORMAL = "4e3a578fe535ea4f5258d3f7f4419db8"
#: The BI-RADS 4 mass, in both left views of the suspicious study (original pixels).
VINDR_MASS_BOX = (10.0, 30.0, 30.0, 52.0)


def vindr(root: Path) -> Path:
    """Study ``VINDR_SUSPICIOUS``: left breast BI-RADS 4 (a mass, boxed in CC and MLO),
    right breast BI-RADS 3 (a boxed BI-RADS 3 asymmetry). Study ``VINDR_NORMAL``: BI-RADS 1
    everywhere, "No Finding" rows with empty coordinates; it is in the official test split.
    """
    breast_rows, finding_rows = [], []
    for study, split in ((VINDR_SUSPICIOUS, "training"), (VINDR_NORMAL, "test")):
        for n, (lat, view) in enumerate((("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))):
            image = f"{study[:8]}img{n}"
            mammogram(root / "images" / study / f"{image}.dicom", lat, view)
            birads = (
                ("BI-RADS 4" if lat == "L" else "BI-RADS 3")
                if study == VINDR_SUSPICIOUS
                else "BI-RADS 1"
            )
            row = {
                "study_id": study,
                "series_id": f"{study[:8]}ser{lat}",
                "image_id": image,
                "laterality": lat,
                "view_position": view,
                "height": 96,
                "width": 64,
                "breast_birads": birads,
                "breast_density": "DENSITY C",
                "split": split,
            }
            breast_rows.append(row)
            if study == VINDR_NORMAL:
                finding_rows.append(
                    dict(row, finding_categories="['No Finding']", finding_birads="")
                )
            elif lat == "L":
                x0, y0, x1, y1 = VINDR_MASS_BOX
                finding_rows.append(
                    dict(
                        row,
                        finding_categories="['Mass']",
                        finding_birads="BI-RADS 4",
                        xmin=x0,
                        ymin=y0,
                        xmax=x1,
                        ymax=y1,
                    )
                )
            else:
                finding_rows.append(
                    dict(
                        row,
                        finding_categories="['Focal Asymmetry']",
                        finding_birads="BI-RADS 3",
                        xmin=5.5,
                        ymin=6.5,
                        xmax=20.0,
                        ymax=21.0,
                    )
                )
    write_csv(root / "breast-level_annotations.csv", VINDR_BREAST_COLUMNS, breast_rows)
    write_csv(root / "finding_annotations.csv", VINDR_FINDING_COLUMNS, finding_rows)
    return root


# --- CBIS-DDSM (TCIA) -------------------------------------------------------------------------

CBIS_MASS_COLUMNS = [
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "mass shape",
    "mass margins",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
CBIS_CALC_COLUMNS = [
    "patient_id",
    "breast density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "calc type",
    "calc distribution",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
_UID = "1.3.6.1.4.1.9590.100.1.2."


def _csv_path(folder: str, n: int) -> str:
    """An "image file path" as the CSVs spell it."""
    return f"{folder}/{_UID}{4221127 + n}/{_UID}{3423861 + n}/000000.dcm"


def _nbia(root: Path, folder: str, lat: str, view: str) -> None:
    """The TCIA/NBIA download: only the first folder name matches the CSV, and ROI masks
    (smaller files) lie in sibling folders ``<folder>_1``."""
    series = root / "CBIS-DDSM" / folder / "07-20-2016-DDSM-74994"
    mammogram(
        series / "1.000000-full mammogram images-24515" / "1-1.dcm", lat, view, rows=128, columns=80
    )
    roi = root / "CBIS-DDSM" / f"{folder}_1" / "08-07-2016-DDSM-23157" / "1.000000-ROI-61215"
    mammogram(roi / "1-1.dcm", lat, view, rows=32, columns=32)
    mammogram(roi / "1-2.dcm", lat, view, rows=32, columns=32)


def cbis_ddsm(root: Path) -> Path:
    """P_00001: left CC with a malignant mass (subtlety 4) and a benign one (subtlety 2), also
    listed in the calcification file (benign); left MLO malignant mass. Images in the NBIA
    layout. P_00038: right CC benign calcification (test set), laid out exactly as the CSV
    path says. P_00099: listed, not downloaded.
    """
    mass_cc = "Mass-Training_P_00001_LEFT_CC"
    mass_mlo = "Mass-Training_P_00001_LEFT_MLO"
    calc_cc = "Calc-Training_P_00001_LEFT_CC"
    calc_test = "Calc-Test_P_00038_RIGHT_CC"
    _nbia(root, mass_cc, "L", "CC")
    _nbia(root, mass_mlo, "L", "MLO")
    mammogram(root / _csv_path(calc_test, 9), "R", "CC")

    def mass(folder: str, n: int, view: str, abn: int, pathology: str, subtlety: int) -> dict:
        return {
            "patient_id": "P_00001",
            "breast_density": 3,
            "left or right breast": "LEFT",
            "image view": view,
            "abnormality id": abn,
            "abnormality type": "mass",
            "mass shape": "IRREGULAR",
            "mass margins": "SPICULATED",
            "assessment": 4,
            "pathology": pathology,
            "subtlety": subtlety,
            "image file path": _csv_path(folder, n),
            "cropped image file path": f"{folder}_{abn}/x/y/000000.dcm",
            "ROI mask file path": f"{folder}_{abn}/x/y/000001.dcm\n",
        }

    write_csv(
        root / "mass_case_description_train_set.csv",
        CBIS_MASS_COLUMNS,
        [
            mass(mass_cc, 1, "CC", 1, "MALIGNANT", 4),
            mass(mass_cc, 1, "CC", 2, "BENIGN", 2),
            mass(mass_mlo, 2, "MLO", 1, "MALIGNANT", 4),
        ],
    )

    def calc(patient: str, side: str, folder: str, n: int, pathology: str) -> dict:
        return {
            "patient_id": patient,
            "breast density": 2,
            "left or right breast": side,
            "image view": "CC",
            "abnormality id": 1,
            "abnormality type": "calcification",
            "calc type": "PLEOMORPHIC",
            "calc distribution": "CLUSTERED",
            "assessment": 3,
            "pathology": pathology,
            "subtlety": 3,
            "image file path": _csv_path(folder, n),
            "cropped image file path": "",
            "ROI mask file path": "",
        }

    write_csv(
        root / "calc_case_description_train_set.csv",
        CBIS_CALC_COLUMNS,
        [
            calc("P_00001", "LEFT", calc_cc, 3, "BENIGN_WITHOUT_CALLBACK"),
        ],
    )
    write_csv(
        root / "calc_case_description_test_set.csv",
        CBIS_CALC_COLUMNS,
        [
            calc("P_00038", "RIGHT", calc_test, 9, "BENIGN"),
            calc("P_00099", "RIGHT", "Calc-Test_P_00099_RIGHT_CC", 11, "MALIGNANT"),
        ],
    )
    return root
