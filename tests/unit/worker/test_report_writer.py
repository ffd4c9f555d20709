"""ReportWriter on a rescore: given the SOP Instance UID of the SR sent before (what the
worklist keeps), it writes an SR that supersedes it, and a GSPS of the same version."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicom_builders import mg_dataset
from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.dicom.report import report_series_uid
from mammotriage.infer.scores import ExamScore, Finding, ImageScore
from mammotriage.triage import ReadingMode, TriageDecision
from mammotriage.triage.policy import TriageRule
from mammotriage.worker.report import ReportWriter

VIEWS = [
    (Laterality.LEFT, ViewPosition.CC),
    (Laterality.LEFT, ViewPosition.MLO),
    (Laterality.RIGHT, ViewPosition.CC),
    (Laterality.RIGHT, ViewPosition.MLO),
]
DECISION = TriageDecision(
    exam_id="exam-1",
    mode=ReadingMode.DOUBLE,
    priority=True,
    rule="category 9 > 5: double reading",
    policy_version="test",
    rule_code=TriageRule.CATEGORY_DOUBLE,
)


@pytest.fixture
def exam(tmp_path: Path) -> tuple[str, list[ImageScore]]:
    """Four views on disk, as the worker scored them; returns the study and the images."""
    study, series = generate_uid(), generate_uid()
    images = []
    for n, (side, view) in enumerate(VIEWS):
        ds = mg_dataset(
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            ImageLaterality=side.value,
            ViewPosition=view.value,
        )
        path = tmp_path / "in" / f"{n}.dcm"
        path.parent.mkdir(exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        images.append(
            ImageScore(path, str(ds.SOPInstanceUID), side, view, True, None, probability=0.5)
        )
    return study, images


def _score(images: list[ImageScore], category: int) -> ExamScore:
    left_mlo = images[1]
    finding = Finding(
        left_mlo.sop_instance_uid,
        left_mlo.path,
        Laterality.LEFT,
        ViewPosition.MLO,
        (1, 2, 30, 40),
        80,
    )
    return ExamScore(
        exam_id="exam-1",
        score=80.0,
        category=category,
        partial=False,
        breasts={Laterality.LEFT: 80.0, Laterality.RIGHT: 10.0},
        findings=(finding,),
        images=tuple(images),
        model_name="mammonet-b0",
        model_sha256="0123456789abcdef" * 4,
    )


def test_a_rescore_supersedes_the_report_sent_before(exam, tmp_path):
    study, images = exam
    writer = ReportWriter("mammonet-b0", presentation_state=True)
    first = writer.write(_score(images, 8), DECISION, tmp_path / "v1")
    second = writer.write(
        _score(images, 9),
        DECISION,
        tmp_path / "v2",
        predecessor_uid=first.sop_instance_uid,
        version=2,
    )
    assert (first.version, second.version) == (1, 2)
    assert second.sop_instance_uid != first.sop_instance_uid
    old, new = pydicom.dcmread(first.path), pydicom.dcmread(second.path)
    assert old.SeriesInstanceUID == new.SeriesInstanceUID == report_series_uid(study)
    assert (old.InstanceNumber, new.InstanceNumber) == (1, 2)
    (ref_study,) = new.PredecessorDocumentsSequence
    (ref_series,) = ref_study.ReferencedSeriesSequence
    (ref_sop,) = ref_series.ReferencedSOPSequence
    assert (ref_study.StudyInstanceUID, ref_series.SeriesInstanceUID) == (
        study,
        old.SeriesInstanceUID,
    )
    assert (ref_sop.ReferencedSOPClassUID, ref_sop.ReferencedSOPInstanceUID) == (
        old.SOPClassUID,
        old.SOPInstanceUID,
    )
    # the GSPS goes with its SR's version: a new instance, the same series
    assert first.presentation_state is not None and second.presentation_state is not None
    old_pr, new_pr = (
        pydicom.dcmread(p) for p in (first.presentation_state, second.presentation_state)
    )
    assert new_pr.SOPInstanceUID != old_pr.SOPInstanceUID
    assert new_pr.SeriesInstanceUID == old_pr.SeriesInstanceUID
    assert (old_pr.InstanceNumber, new_pr.InstanceNumber) == (1, 2)


def test_resending_a_rescore_after_a_crash_gives_the_same_instances(exam, tmp_path):
    _, images = exam
    writer = ReportWriter("mammonet-b0", presentation_state=True)
    previous = generate_uid()
    once = writer.write(_score(images, 9), DECISION, tmp_path / "a", predecessor_uid=previous)
    again = writer.write(_score(images, 9), DECISION, tmp_path / "b", predecessor_uid=previous)
    assert once.version == again.version == 2
    assert [p.name for p in once.paths] == [p.name for p in again.paths]


def test_an_invalid_predecessor_uid_is_refused(exam, tmp_path):
    _, images = exam
    with pytest.raises(ValueError, match="sop_instance_uid"):
        ReportWriter("mammonet-b0").write(
            _score(images, 9), DECISION, tmp_path, predecessor_uid="not a uid"
        )
