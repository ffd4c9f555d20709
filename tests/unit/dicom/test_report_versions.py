"""A rescore of an exam is a new SR that supersedes the one sent before, as a PACS can tell:
the same series, a Predecessor Documents Sequence naming the earlier SR, a new SOP Instance
UID and a higher Instance Number; and resending the same rescore is still one copy."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, generate_uid

from dicom_builders import mg_dataset
from mammotriage.dicom.gsps import build_presentation_state, presentation_series_uid
from mammotriage.dicom.report import (
    AlgorithmIdentity,
    PriorReport,
    ReportContent,
    ReportFinding,
    build_measurement_report,
    report_series_uid,
    report_uids,
    write_report,
)

ALGORITHM = AlgorithmIdentity(name="mammonet-b0", version="0.1.0", sha256="0123456789abcdef" * 4)
FIRST = datetime.datetime(2026, 1, 2, 3, 4, 5)
RESCORED = datetime.datetime(2026, 1, 3, 9, 0, 0)


def _exam(views: int = 4) -> list[Dataset]:
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
        for side, view in [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")][:views]
    ]


def _content(images: list[Dataset], **changes) -> ReportContent:
    content = ReportContent(
        exam_score=87.5,
        category=9,
        breasts={"L": 87.5, "R": 12.0},
        findings=(
            ReportFinding(images[1].SOPInstanceUID, "L", "MLO", (10.0, 20.0, 30.5, 41.0), 88),
        ),
        reading="double reading",
    )
    return dataclasses.replace(content, **changes)


def _written(sr: Dataset, path: Path) -> Dataset:
    return pydicom.dcmread(write_report(sr, path))


@pytest.fixture
def versions(tmp_path: Path) -> tuple[list[Dataset], Dataset, Dataset]:
    """An exam scored on three views, then rescored when the late fourth view arrived."""
    images = _exam()
    first = _written(
        build_measurement_report(
            _content(images, partial=True), images[:3], ALGORITHM, content_datetime=FIRST
        ),
        tmp_path / "v1.dcm",
    )
    prior = PriorReport.of_study(images[0].StudyInstanceUID, first.SOPInstanceUID)
    second = _written(
        build_measurement_report(
            _content(images, exam_score=91.0, category=10),
            images,
            ALGORITHM,
            content_datetime=RESCORED,
            predecessor=prior,
            version=2,
        ),
        tmp_path / "v2.dcm",
    )
    return images, first, second


def test_rescore_names_the_report_it_supersedes_in_its_predecessor_documents(versions):
    images, first, second = versions
    assert "PredecessorDocumentsSequence" not in first
    (study,) = second.PredecessorDocumentsSequence
    assert study.StudyInstanceUID == images[0].StudyInstanceUID
    (series,) = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    (sop,) = series.ReferencedSOPSequence
    assert sop.ReferencedSOPClassUID == ComprehensiveSRStorage == first.SOPClassUID
    assert sop.ReferencedSOPInstanceUID == first.SOPInstanceUID


def test_rescore_is_a_new_instance_in_the_same_series_with_a_higher_instance_number(versions):
    _, first, second = versions
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert second.StudyInstanceUID == first.StudyInstanceUID
    assert second.SeriesInstanceUID == first.SeriesInstanceUID
    assert second.SeriesNumber == first.SeriesNumber
    assert (first.InstanceNumber, second.InstanceNumber) == (1, 2)
    assert (first.ContentDate, first.ContentTime) == ("20260102", "030405")
    assert (second.ContentDate, second.ContentTime) == ("20260103", "090000")
    # every version of the series was written at its own time: no series-level date
    assert "SeriesDate" not in second and "SeriesTime" not in second


def test_flags_keep_their_meaning_in_a_rescore(versions):
    _, first, second = versions
    # the first score lacked a view; the rescore has all four
    assert (first.CompletionFlag, second.CompletionFlag) == ("PARTIAL", "COMPLETE")
    assert first.VerificationFlag == second.VerificationFlag == "UNVERIFIED"
    assert first.PreliminaryFlag == second.PreliminaryFlag == "PRELIMINARY"


def test_the_series_of_a_predecessor_is_known_from_its_study_alone(versions):
    images, first, second = versions
    assert report_series_uid(images[0].StudyInstanceUID) == first.SeriesInstanceUID
    other = _exam()
    assert report_series_uid(other[0].StudyInstanceUID) != first.SeriesInstanceUID


def test_resending_the_same_rescore_gives_the_same_instance_and_bytes(versions, tmp_path):
    images, first, second = versions
    prior = PriorReport.of_study(images[0].StudyInstanceUID, first.SOPInstanceUID)
    again = build_measurement_report(
        _content(images, exam_score=91.0, category=10),
        images,
        ALGORITHM,
        content_datetime=RESCORED,
        predecessor=prior,
        version=2,
    )
    assert again.SOPInstanceUID == second.SOPInstanceUID
    assert write_report(again, tmp_path / "again.dcm").read_bytes() == (
        (tmp_path / "v2.dcm").read_bytes()
    )
    # the UIDs do not depend on the order the source images come in
    assert report_uids(
        _content(images, exam_score=91.0, category=10),
        list(reversed(images)),
        ALGORITHM,
        predecessor=prior,
        version=2,
    ) == (second.SeriesInstanceUID, second.SOPInstanceUID)


def test_a_rescore_with_an_unchanged_result_is_still_a_new_version(versions):
    images, first, _ = versions
    prior = PriorReport.of_study(images[0].StudyInstanceUID, first.SOPInstanceUID)
    content = _content(images, partial=True)
    series, instance = report_uids(content, images[:3], ALGORITHM, predecessor=prior, version=2)
    assert series == first.SeriesInstanceUID
    assert instance != first.SOPInstanceUID


def test_a_third_version_supersedes_the_second(versions, tmp_path):
    images, _, second = versions
    third = _written(
        build_measurement_report(
            _content(images, exam_score=40.0, category=5, findings=()),
            images,
            dataclasses.replace(ALGORITHM, sha256="f" * 64),  # a new model
            predecessor=PriorReport.of_study(images[0].StudyInstanceUID, second.SOPInstanceUID),
            version=3,
        ),
        tmp_path / "v3.dcm",
    )
    assert third.SeriesInstanceUID == second.SeriesInstanceUID
    assert third.InstanceNumber == 3
    (study,) = third.PredecessorDocumentsSequence
    (sop,) = study.ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert sop.ReferencedSOPInstanceUID == second.SOPInstanceUID


def test_version_defaults_to_two_with_a_predecessor_and_one_without():
    images = _exam()
    prior = PriorReport.of_study(images[0].StudyInstanceUID, generate_uid())
    assert build_measurement_report(_content(images), images, ALGORITHM).InstanceNumber == 1
    sr = build_measurement_report(_content(images), images, ALGORITHM, predecessor=prior)
    assert sr.InstanceNumber == 2


@pytest.mark.parametrize(
    ("with_predecessor", "version", "message"),
    [
        (True, 1, "version >= 2"),
        (False, 2, "needs the predecessor"),
        (True, 0, "positive integer"),
        (False, True, "positive integer"),
    ],
)
def test_version_that_does_not_fit_the_predecessor_is_refused(with_predecessor, version, message):
    images = _exam()
    prior = PriorReport.of_study(images[0].StudyInstanceUID, generate_uid())
    with pytest.raises(ValueError, match=message):
        build_measurement_report(
            _content(images),
            images,
            ALGORITHM,
            predecessor=prior if with_predecessor else None,
            version=version,
        )


@pytest.mark.parametrize("field", ["sop_instance_uid", "series_instance_uid", "sop_class_uid"])
def test_prior_report_with_an_invalid_uid_is_refused(field):
    uids = {"sop_instance_uid": generate_uid(), "series_instance_uid": generate_uid()}
    with pytest.raises(ValueError, match=field):
        PriorReport(**{**uids, field: "1.2.abc"})


def test_gsps_of_a_rescore_is_a_new_instance_in_the_same_series_and_stable_on_resend():
    images = _exam()

    def gsps(content: ReportContent, version: int = 1) -> Dataset:
        built = build_presentation_state(
            content, images, ALGORITHM, content_datetime=FIRST, version=version
        )
        assert built is not None
        return built

    first = gsps(_content(images))
    assert first.SeriesInstanceUID == presentation_series_uid(images[0].StudyInstanceUID)
    assert first.SeriesInstanceUID != report_series_uid(images[0].StudyInstanceUID)
    assert first.InstanceNumber == 1
    assert gsps(_content(images)).SOPInstanceUID == first.SOPInstanceUID
    rescored = gsps(_content(images, category=8), version=2)
    assert rescored.SOPInstanceUID != first.SOPInstanceUID
    assert rescored.SeriesInstanceUID == first.SeriesInstanceUID
    assert rescored.InstanceNumber == 2
    assert gsps(_content(images, category=8), version=2).SOPInstanceUID == rescored.SOPInstanceUID
    # the same result as a later version: its own GSPS beside that version's SR
    assert gsps(_content(images), version=2).SOPInstanceUID != first.SOPInstanceUID
