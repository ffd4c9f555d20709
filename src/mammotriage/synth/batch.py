"""Generate a synthetic screening data set: exams as vendor-variant DICOM plus ``truth.csv``.

Every exam is drawn from its own seed (the data set's seed and the exam's index), so an
exam is the same whether 10 or 10,000 are generated, and any one can be regenerated alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from mammotriage.dicom.model import Laterality, PresentationIntentType, ViewPosition
from mammotriage.synth.anatomy import ChestWall, Density, display_chest_wall, sample_breast
from mammotriage.synth.lesions import Box, LesionType
from mammotriage.synth.phantom import render_view
from mammotriage.synth.vendors import (
    PROFILES,
    DetectorFormat,
    ImageInfo,
    LabelStyle,
    StudyInfo,
    VendorProfile,
    burn_in_label,
    write_image,
)

#: Columns of ``truth.csv``: the nine that every consumer relies on, then extras.
TRUTH_COLUMNS: tuple[str, ...] = (
    "path",
    "exam_id",
    "laterality",
    "view",
    "cancer",
    "lesion_type",
    "box",
    "subtlety",
    "density",
    "chest_wall",
    "photometric",
    "transfer_syntax",
    "bits_stored",
    "manufacturer",
    "presentation_intent",
    "label_style",
    "patient_id",
    "accession_number",
    "sop_instance_uid",
    "rows",
    "columns",
    "pixel_spacing_mm",
    "cancer_laterality",
)

DENSITY_WEIGHTS = {Density.A: 0.1, Density.B: 0.4, Density.C: 0.4, Density.D: 0.1}
LESION_WEIGHTS = {
    LesionType.CIRCUMSCRIBED_MASS: 0.2,
    LesionType.SPICULATED_MASS: 0.35,
    LesionType.CALCIFICATION_CLUSTER: 0.3,
    LesionType.ARCHITECTURAL_DISTORTION: 0.15,
}
SUBTLETY_WEIGHTS = (0.1, 0.15, 0.25, 0.25, 0.25)
#: Screening views in the order most units acquire them; some go breast by breast.
ACQUISITION_ORDERS: tuple[tuple[tuple[Laterality, ViewPosition], ...], ...] = (
    (
        (Laterality.RIGHT, ViewPosition.CC),
        (Laterality.LEFT, ViewPosition.CC),
        (Laterality.RIGHT, ViewPosition.MLO),
        (Laterality.LEFT, ViewPosition.MLO),
    ),
    (
        (Laterality.RIGHT, ViewPosition.CC),
        (Laterality.RIGHT, ViewPosition.MLO),
        (Laterality.LEFT, ViewPosition.CC),
        (Laterality.LEFT, ViewPosition.MLO),
    ),
)
TEXT_LABELS = ("{lat} {view}", "{lat}{view}", "{lat} {view} Tomo-less")


@dataclass(frozen=True)
class TruthRow:
    """Ground truth of one generated image (one row of ``truth.csv``).

    ``box`` is in the stored pixels of the file at ``path`` (relative to the data set
    folder); ``cancer`` is true for the images of the breast that holds the lesion.
    """

    path: str
    exam_id: str
    laterality: Laterality
    view: ViewPosition
    cancer: bool
    lesion_type: LesionType | None
    box: Box | None
    subtlety: int | None
    density: Density
    chest_wall: ChestWall
    photometric: str
    transfer_syntax: str
    bits_stored: int
    manufacturer: str
    presentation_intent: PresentationIntentType
    label_style: str
    patient_id: str
    accession_number: str
    sop_instance_uid: str
    rows: int
    columns: int
    pixel_spacing_mm: float
    cancer_laterality: Laterality | None

    def to_csv(self) -> dict[str, str]:
        return {
            "path": self.path,
            "exam_id": self.exam_id,
            "laterality": self.laterality.value,
            "view": self.view.value,
            "cancer": "1" if self.cancer else "0",
            "lesion_type": self.lesion_type.value if self.lesion_type else "",
            "box": str(self.box) if self.box else "",
            "subtlety": str(self.subtlety) if self.subtlety else "",
            "density": self.density.value,
            "chest_wall": self.chest_wall.value,
            "photometric": self.photometric,
            "transfer_syntax": self.transfer_syntax,
            "bits_stored": str(self.bits_stored),
            "manufacturer": self.manufacturer,
            "presentation_intent": self.presentation_intent.value,
            "label_style": self.label_style,
            "patient_id": self.patient_id,
            "accession_number": self.accession_number,
            "sop_instance_uid": self.sop_instance_uid,
            "rows": str(self.rows),
            "columns": str(self.columns),
            "pixel_spacing_mm": f"{self.pixel_spacing_mm:.6g}",
            "cancer_laterality": self.cancer_laterality.value if self.cancer_laterality else "",
        }

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> TruthRow:
        return cls(
            path=row["path"],
            exam_id=row["exam_id"],
            laterality=Laterality(row["laterality"]),
            view=ViewPosition(row["view"]),
            cancer=row["cancer"] == "1",
            lesion_type=LesionType(row["lesion_type"]) if row["lesion_type"] else None,
            box=Box.parse(row["box"]) if row["box"] else None,
            subtlety=int(row["subtlety"]) if row["subtlety"] else None,
            density=Density(row["density"]),
            chest_wall=ChestWall(row["chest_wall"]),
            photometric=row["photometric"],
            transfer_syntax=row["transfer_syntax"],
            bits_stored=int(row["bits_stored"]),
            manufacturer=row["manufacturer"],
            presentation_intent=PresentationIntentType(row["presentation_intent"]),
            label_style=row["label_style"],
            patient_id=row["patient_id"],
            accession_number=row["accession_number"],
            sop_instance_uid=row["sop_instance_uid"],
            rows=int(row["rows"]),
            columns=int(row["columns"]),
            pixel_spacing_mm=float(row["pixel_spacing_mm"]),
            cancer_laterality=(
                Laterality(row["cancer_laterality"]) if row["cancer_laterality"] else None
            ),
        )


@dataclass(frozen=True)
class ExamPlan:
    """What one exam will hold, decided before any pixel is drawn."""

    index: int
    seed: int
    profile: VendorProfile
    detector: DetectorFormat
    density: Density
    cancer_laterality: Laterality | None
    lesion_type: LesionType | None
    subtlety: int | None
    #: StudyDate is drawn from ``days`` days from ``first_day`` (default: six years from
    #: 2019-01-01).
    first_day: dt.date = dt.date(2019, 1, 1)
    days: int = 6 * 365


def plan_exams(
    exams: int,
    seed: int = 0,
    small: bool = False,
    prevalence: float = 0.2,
    *,
    profiles: Sequence[VendorProfile] | None = None,
    dates: tuple[dt.date, dt.date] | None = None,
) -> list[ExamPlan]:
    """Decide every exam's vendor, detector, density and cancer.

    Exactly ``round(prevalence * exams)`` exams hold a cancer, chosen from the seed; vendor
    profiles (``profiles``, default the six of :data:`PROFILES`) rotate exam by exam so that
    any ``len(profiles)`` consecutive exams cover all of them. ``dates`` (first, last day,
    inclusive) bounds the study dates; default: six years from 2019-01-01.

    Raises
    ------
    ValueError
        If ``exams`` is negative, ``prevalence`` is outside [0, 1], ``profiles`` is empty or
        ``dates`` ends before it starts.
    """
    if exams < 0:
        raise ValueError(f"exams must be >= 0, got {exams!r}")
    if not 0.0 <= prevalence <= 1.0:
        raise ValueError(f"prevalence must be within [0, 1], got {prevalence!r}")
    mix = tuple(PROFILES if profiles is None else profiles)
    if not mix:
        raise ValueError("profiles must name at least one vendor profile")
    span: dict[str, Any] = {}
    if dates is not None:
        first, last = dates
        if last < first:
            raise ValueError(f"dates must not end before they start, got {first} to {last}")
        span = {"first_day": first, "days": (last - first).days + 1}
    n_cancer = round(prevalence * exams)
    chosen = np.random.default_rng([seed, 0xCA]).choice(exams, size=n_cancer, replace=False)
    cancers = {int(i) for i in chosen}
    plans = []
    for index in range(exams):
        rng = np.random.default_rng([seed, index, 0])
        profile = mix[(index + seed) % len(mix)]
        detector = profile.formats[int(rng.integers(len(profile.formats)))]
        if small:
            detector = detector.small()
        density = Density(
            rng.choice([d.value for d in DENSITY_WEIGHTS], p=list(DENSITY_WEIGHTS.values()))
        )
        laterality = lesion_type = subtlety = None
        if index in cancers:
            laterality = Laterality.LEFT if rng.uniform() < 0.5 else Laterality.RIGHT
            lesion_type = LesionType(
                rng.choice([t.value for t in LESION_WEIGHTS], p=list(LESION_WEIGHTS.values()))
            )
            subtlety = int(rng.choice(np.arange(1, 6), p=SUBTLETY_WEIGHTS))
        plans.append(
            ExamPlan(
                index, seed, profile, detector, density, laterality, lesion_type, subtlety, **span
            )
        )
    return plans


def _uid(plan: ExamPlan, *parts: object) -> str:
    entropy = ["mammotriage.synth", str(plan.seed), str(plan.index), *map(str, parts)]
    return str(generate_uid(entropy_srcs=entropy))


def _study(plan: ExamPlan, rng: np.random.Generator) -> StudyInfo:
    # The same draw whatever the span, so that the rest of the exam does not change with it.
    day = int(rng.integers(0, 6 * 365))
    study_day = plan.first_day + dt.timedelta(days=day % plan.days)
    birth = study_day - dt.timedelta(days=int(rng.uniform(45, 75) * 365.25))
    age = (
        study_day.year - birth.year - ((study_day.month, study_day.day) < (birth.month, birth.day))
    )
    seconds = int(rng.integers(8 * 3600, 17 * 3600))
    number = f"{plan.seed % 1000:03d}{plan.index:06d}"
    return StudyInfo(
        study_instance_uid=_uid(plan, "study"),
        patient_id=f"SYNTH{number}",
        patient_name=f"SYNTH^{number}",
        patient_birth_date=birth.strftime("%Y%m%d"),
        patient_age=f"{age:03d}Y",
        accession_number=f"SA{number}",
        study_date=study_day.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        study_id=str(plan.index + 1),
    )


def generate_exam(out: Path, plan: ExamPlan) -> list[TruthRow]:
    """Render and write the four images of one planned exam; return their truth rows."""
    rng = np.random.default_rng([plan.seed, plan.index, 1])
    profile, detector = plan.profile, plan.detector
    study = _study(plan, rng)
    shape_seed = int(rng.integers(2**31))
    breasts = {
        lat: sample_breast(
            np.random.default_rng([plan.seed, plan.index, 2, k]),
            lat,
            plan.density,
            detector.field_mm,
            plan.lesion_type if lat is plan.cancer_laterality else None,
            plan.subtlety or 3,
            shape_seed=shape_seed,
        )
        for k, lat in enumerate((Laterality.RIGHT, Laterality.LEFT))
    }
    order = ACQUISITION_ORDERS[int(rng.integers(len(ACQUISITION_ORDERS)))]
    template = TEXT_LABELS[int(rng.integers(len(TEXT_LABELS)))]
    folder = f"{plan.index + 1:05d}"
    # Units that label views only in free text put each view in its own series.
    one_series = profile.label_style is not LabelStyle.TEXT
    rows = []
    seconds = int(study.study_time[:2]) * 3600 + int(study.study_time[2:4]) * 60
    for number, (lat, view) in enumerate(order, start=1):
        breast = breasts[lat]
        chest_wall = ChestWall.LEFT if profile.chest_wall_left else display_chest_wall(lat)
        rendered = render_view(
            np.random.default_rng([plan.seed, plan.index, 3, number]),
            breast,
            view,
            (detector.rows, detector.columns),
            detector.spacing_mm,
            chest_wall=chest_wall,
        )
        pixels = rendered.pixels
        if profile.burned_in_marker:
            text = f"{lat.value}{view.value}"
            pixels = burn_in_label(pixels, text, chest_wall, detector.spacing_mm)
        t = seconds + 40 * number
        image = ImageInfo(
            sop_instance_uid=_uid(plan, "image", number),
            series_instance_uid=_uid(plan, "series", 1 if one_series else number),
            series_number=1 if one_series else number,
            instance_number=number,
            laterality=lat,
            view=view,
            chest_wall=chest_wall,
            spacing_mm=round(detector.spacing_mm, 6),
            content_time=f"{t // 3600 % 24:02d}{t // 60 % 60:02d}{t % 60:02d}",
            text_label=template.format(lat=lat.value, view=view.value),
        )
        name = (
            f"{lat.value}_{view.value}.dcm"
            if profile.readable_file_names
            else f"IMG{number:04d}.dcm"
        )
        relative = f"{folder}/{name}"
        write_image(out / relative, pixels, profile, study, image)
        cancer = breast.lesion is not None
        rows.append(
            TruthRow(
                path=relative,
                exam_id=study.study_instance_uid,
                laterality=lat,
                view=view,
                cancer=cancer,
                lesion_type=breast.lesion.lesion_type if breast.lesion else None,
                box=rendered.box,
                subtlety=breast.lesion.subtlety if breast.lesion else None,
                density=plan.density,
                chest_wall=chest_wall,
                photometric=profile.photometric_interpretation,
                transfer_syntax=str(profile.transfer_syntax),
                bits_stored=profile.bits_stored,
                manufacturer=profile.manufacturer,
                presentation_intent=profile.presentation_intent,
                label_style=profile.label_style.value,
                patient_id=study.patient_id,
                accession_number=study.accession_number,
                sop_instance_uid=image.sop_instance_uid,
                rows=detector.rows,
                columns=detector.columns,
                pixel_spacing_mm=detector.spacing_mm,
                cancer_laterality=plan.cancer_laterality,
            )
        )
    return rows


def generate(
    out: Path,
    exams: int,
    seed: int = 0,
    small: bool = False,
    prevalence: float = 0.2,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = None,
    profiles: Sequence[VendorProfile] | None = None,
    dates: tuple[dt.date, dt.date] | None = None,
) -> list[TruthRow]:
    """Write ``exams`` synthetic screening exams under ``out`` and their ``truth.csv``.

    Files are ``out/<exam>/<image>.dcm``; names give laterality and view away only for
    the one profile whose exporter writes them so. ``small`` writes ~512-row images with
    the same field of view (larger pixels) for fast tests. ``progress`` is called with the
    number of exams written so far. ``workers`` processes share the work (default: one per
    CPU); the output does not depend on it, since every exam draws from its own seed.
    ``profiles`` and ``dates`` are :func:`plan_exams`'s. They
    are started with "spawn", so a calling script needs the usual ``__main__`` guard.

    Raises
    ------
    ValueError
        If ``exams`` is negative, ``prevalence`` is outside [0, 1] or ``workers`` < 1.
    """
    plans = plan_exams(
        exams, seed=seed, small=small, prevalence=prevalence, profiles=profiles, dates=dates
    )
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[TruthRow] = []
    # Starting a process costs about a second: worth it for full-size exams or many small.
    pixels = sum(4 * plan.detector.rows * plan.detector.columns for plan in plans)
    if workers == 1 or len(plans) < 2 or pixels < 16_000_000:
        results: Iterable[list[TruthRow]] = (generate_exam(out, plan) for plan in plans)
        rows = _collect(results, progress)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = pool.map(partial(generate_exam, out), plans, chunksize=2)
            rows = _collect(results, progress)
    write_truth(out / "truth.csv", rows)
    return rows


def _collect(
    results: Iterable[list[TruthRow]], progress: Callable[[int], None] | None
) -> list[TruthRow]:
    rows: list[TruthRow] = []
    for done, exam_rows in enumerate(results, start=1):
        rows.extend(exam_rows)
        if progress is not None:
            progress(done)
    return rows


def write_truth(path: Path, rows: list[TruthRow]) -> None:
    """Write truth rows as CSV with :data:`TRUTH_COLUMNS` in order."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(TRUTH_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.to_csv())


def read_truth(path: Path) -> list[TruthRow]:
    """Read a ``truth.csv`` written by :func:`generate`.

    Raises
    ------
    ValueError
        If the file's header lacks any of :data:`TRUTH_COLUMNS`.
    """
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in TRUTH_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: truth file lacks columns {missing}")
        return [TruthRow.from_csv(row) for row in reader]
