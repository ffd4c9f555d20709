"""Every kind of SR mammotriage writes passes two independent validators with zero errors:
dicom3tools' dciodvfy (the Comprehensive SR IOD) and PixelMed's DicomSRValidator (TID 1500
and the templates and context groups under it), as an outside reviewer runs them. The
validators are shown to catch the faults they are here for, so a pass means something.

Both are slow to start (PixelMed compiles its stylesheets in a JVM per file), so each module
fixture writes all its files first and validates them side by side."""

from __future__ import annotations

import dataclasses
import datetime
import shutil
from pathlib import Path

import pytest
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_builders import mg_dataset
from mammotriage.dicom.report import (
    AlgorithmIdentity,
    PriorReport,
    ReportContent,
    ReportFinding,
    build_measurement_report,
    write_report,
)
from sr_validators import Verdict, dciodvfy, validate_all
from worker_helpers import build, folder_settings, run_once

pytestmark = pytest.mark.integration

ALGORITHM = AlgorithmIdentity(name="mammonet-b0", version="0.1.0", sha256="0123456789abcdef" * 4)
WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5)


def _exam() -> list[Dataset]:
    study, series = generate_uid(), generate_uid()
    return [
        mg_dataset(
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            ImageLaterality=side,
            ViewPosition=view,
            PatientBirthDate="19600101",
            PatientSex="F",
        )
        for side in ("L", "R")
        for view in ("CC", "MLO")
    ]


def _reports(images: list[Dataset]) -> dict[str, tuple[ReportContent, list[Dataset]]]:
    """The SR cases the builder has: findings (one, several), none, partial, demonstration."""
    two = (
        ReportFinding(images[1].SOPInstanceUID, "L", "MLO", (10.0, 20.0, 30.5, 41.0), 88),
        ReportFinding(images[2].SOPInstanceUID, "R", "CC", (0.0, 0.0, 64.0, 96.0), 7),
    )
    base = ReportContent(
        exam_score=87.5,
        category=9,
        breasts={"L": 87.5, "R": 12.0},
        findings=two,
        reading="double reading",
    )
    return {
        "two-findings": (base, images),
        # PixelMed picks TID 1410 for a whole container when exactly one region is an
        # "Image Region": the case that failed before.
        "one-finding": (dataclasses.replace(base, findings=two[:1]), images),
        "no-findings": (
            dataclasses.replace(base, exam_score=4.0, category=1, findings=(), reading=None),
            images,
        ),
        "partial": (
            dataclasses.replace(
                base, breasts={"L": 87.5, "R": None}, findings=two[:1], partial=True
            ),
            images[:2],
        ),
        "demonstration": (
            dataclasses.replace(base, demonstration=True, reading="single reading"),
            images,
        ),
    }


def _superseding(images: list[Dataset]) -> Dataset:
    """A rescore: the full exam's SR superseding the partial one (Predecessor Documents
    Sequence, version 2, the same series)."""
    reports = _reports(images)
    partial, partial_sources = reports["partial"]
    earlier = build_measurement_report(partial, partial_sources, ALGORITHM, content_datetime=WHEN)
    content, sources = reports["two-findings"]
    return build_measurement_report(
        content,
        sources,
        ALGORITHM,
        content_datetime=WHEN + datetime.timedelta(days=1),
        predecessor=PriorReport.of_study(images[0].StudyInstanceUID, earlier.SOPInstanceUID),
        version=2,
    )


def _broken(images: list[Dataset]) -> dict[str, Dataset]:
    """Reports with the faults each validator is here to catch."""
    content, _ = _reports(images)["two-findings"]
    mammography = build_measurement_report(content, images, ALGORITHM, content_datetime=WHEN)
    # the old "Procedure reported": SCT Mammography, not in TID 1500's CID 100 (a new code
    # item: the report's items share the module's code constants, which must stay as they are)
    for item in mammography.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "121058":
            item.ConceptCodeSequence = [CodedConcept("71651007", "SCT", "Mammography")]
    no_flag = build_measurement_report(content, images, ALGORITHM, content_datetime=WHEN)
    del no_flag.CompletionFlag  # Type 1 in the SR Document General Module
    return {"procedure-mammography": mammography, "no-completion-flag": no_flag}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Verdict, Verdict]]:
    folder = tmp_path_factory.mktemp("sr-validators")
    images = _exam()
    paths = [
        write_report(
            build_measurement_report(content, sources, ALGORITHM, content_datetime=WHEN),
            folder / f"{name}.dcm",
        )
        for name, (content, sources) in _reports(images).items()
    ]
    paths.append(write_report(_superseding(images), folder / "superseding.dcm"))
    broken = {
        name: Path(write_report(sr, folder / f"{name}.dcm")) for name, sr in _broken(images).items()
    }
    paths.append(broken.pop("procedure-mammography"))
    verdicts = {Path(path).stem: verdict for path, verdict in validate_all(paths).items()}
    # dciodvfy's own fault: no PixelMed run (~17 s of CPU each) for it.
    no_flag = broken.pop("no-completion-flag")
    verdicts[no_flag.stem] = (dciodvfy(no_flag), Verdict([], [], ""))
    return verdicts


@pytest.mark.parametrize(
    "name",
    ["two-findings", "one-finding", "no-findings", "partial", "demonstration", "superseding"],
)
def test_every_kind_of_report_has_zero_validator_errors(verdicts, name):
    iod, sr = verdicts[name]
    assert iod.errors == [], iod.output
    assert sr.errors == [], sr.output


def test_the_superseding_case_is_a_rescore():
    # what the validators judge as "superseding" carries the reference and the version
    superseding = _superseding(_exam())
    assert superseding.InstanceNumber == 2
    (study,) = superseding.PredecessorDocumentsSequence
    assert study.ReferencedSeriesSequence[0].SeriesInstanceUID == superseding.SeriesInstanceUID


def test_pixelmed_catches_a_procedure_code_outside_cid_100(verdicts):
    iod, sr = verdicts["procedure-mammography"]
    assert iod.errors == []
    assert any("not found in context group 100" in error for error in sr.errors), sr.output


def test_dciodvfy_catches_a_missing_type_1_attribute(verdicts):
    iod, _ = verdicts["no-completion-flag"]
    assert any("CompletionFlag" in error for error in iod.errors), iod.output


def test_every_report_the_worker_writes_has_zero_validator_errors(
    tmp_path, tiny_synthetic, conformance
):
    # The worker's own SRs (the packaged demonstration model, real phantoms, partial exams
    # where the synthetic batch has them), exactly as `make demo` writes them: dciodvfy on
    # each here, PixelMed on each in the session's JVM (sr_validators.conformance), where a
    # PixelMed error fails the run at the session's end, naming the SR.
    settings = folder_settings(tmp_path)
    for exam in sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[:4]:
        shutil.copytree(exam, settings.source.path / exam.name)
    worker = build(settings)
    run_once(worker)
    paths = [
        path
        for exam in worker.store.exams.all()
        if exam.report_location is not None
        for path in Path(exam.report_location).glob("*.dcm")
    ]
    assert len(paths) == 4
    for path in paths:
        conformance.check(f"a worker's SR, report validators ({Path(path).stem})", path)
