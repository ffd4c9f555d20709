"""The AI triage report as a DICOM SR: it lands in the exam's study, says what the model said,
marks each finding on the right image, and is the same instance when sent twice."""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from dicom_builders import mg_dataset
from mammotriage.dicom.report import (
    SERIES_DESCRIPTION,
    SERIES_NUMBER,
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
    build_measurement_report,
    report_uids,
    write_report,
)

SHA = "0123456789abcdef" * 4
ALGORITHM = AlgorithmIdentity(name="mammonet-b0", version="0.1.0", sha256=SHA)
WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5)
SCORE = hd.sr.CodedConcept("246262008", "SCT", "Score")
CATEGORY = hd.sr.CodedConcept("CATEGORY", "99MMTRIAGE", "Triage category")


def _exam(study_instance_uid: str | None = None) -> list[Dataset]:
    """Four views of one woman, as the reader sees their headers."""
    study = study_instance_uid or generate_uid()
    series = generate_uid()
    return [
        mg_dataset(
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            ImageLaterality=side,
            ViewPosition=view,
            PatientBirthDate="19600101",
            PatientSex="F",
            StudyID="S1",
            StudyTime="101500",
        )
        for side in ("L", "R")
        for view in ("CC", "MLO")
    ]


def _content(images: list[Dataset], **changes) -> ReportContent:
    l_mlo, r_cc = images[1], images[2]
    content = ReportContent(
        exam_score=87.5,
        category=9,
        breasts={"L": 87.5, "R": 12.0},
        findings=(
            ReportFinding(l_mlo.SOPInstanceUID, "L", "MLO", (10.0, 20.0, 30.5, 41.0), 88),
            ReportFinding(r_cc.SOPInstanceUID, "R", "CC", (0.0, 0.0, 64.0, 96.0), 7),
        ),
        reading="double reading",
        partial=False,
    )
    return dataclasses.replace(content, **changes)


def _round_trip(sr: Dataset, tmp_path: Path) -> hd.sr.ComprehensiveSR:
    path = write_report(sr, tmp_path / "report.dcm")
    return hd.sr.srread(path)


def _groups(sr: hd.sr.ComprehensiveSR) -> hd.sr.MeasurementReport:
    return hd.sr.MeasurementReport.from_sequence(sr.content)


def _values(group) -> dict[str, float]:
    return {m.name.meaning: m.value for m in group.get_measurements()}


def _finding_groups(sr: hd.sr.ComprehensiveSR) -> list:
    """The findings' TID 1501 groups, in report order (their tracking ids say "finding")."""
    groups = _groups(sr).get_image_measurement_groups()
    return [g for g in groups if g.tracking_identifier.startswith("finding")]


def _region(group) -> Dataset:
    """A finding group's one SCOORD: its region on its source image."""
    (region,) = [item for item in group[0].ContentSequence if item.ValueType == "SCOORD"]
    return region


@pytest.fixture
def images() -> list[Dataset]:
    return _exam()


@pytest.fixture
def read_back(images: list[Dataset], tmp_path: Path) -> hd.sr.ComprehensiveSR:
    sr = build_measurement_report(_content(images), images, ALGORITHM, content_datetime=WHEN)
    return _round_trip(sr, tmp_path)


def test_report_is_a_comprehensive_sr_that_round_trips_through_a_file(read_back):
    assert isinstance(read_back, hd.sr.ComprehensiveSR)
    assert read_back.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert read_back.Modality == "SR"
    assert read_back.content[0].ConceptNameCodeSequence[0].CodeMeaning == (
        "Imaging Measurement Report"
    )


def test_report_lands_in_the_study_of_its_images(images, read_back):
    first = images[0]
    assert read_back.StudyInstanceUID == first.StudyInstanceUID
    assert read_back.PatientID == first.PatientID
    assert read_back.PatientName == first.PatientName
    assert read_back.AccessionNumber == first.AccessionNumber
    assert read_back.SeriesInstanceUID != first.SeriesInstanceUID


def test_report_series_is_fixed_and_named_after_mammotriage(read_back):
    assert read_back.SeriesNumber == SERIES_NUMBER
    assert read_back.InstanceNumber == 1
    assert read_back.SeriesDescription == SERIES_DESCRIPTION
    assert read_back.Manufacturer == "mammotriage"
    assert read_back.ManufacturerModelName == "mammonet-b0"


def test_procedure_reported_is_from_cid_100_and_the_performed_procedure_is_mammography(
    read_back,
):
    # TID 1500 takes "Procedure reported" from CID 100, which has no mammography code.
    items = hd.sr.utils.find_content_items(read_back.content[0], name=codes.DCM.ProcedureReported)
    assert [item.value for item in items] == [codes.SCT.ImagingProcedure]
    assert codes.cid100.ImagingProcedure == codes.SCT.ImagingProcedure
    (performed,) = read_back.PerformedProcedureCodeSequence
    assert (performed.CodeValue, performed.CodingSchemeDesignator) == ("71651007", "SCT")


def test_exam_group_holds_score_category_and_reading(read_back):
    (exam,) = _groups(read_back).get_image_measurement_groups(finding_site=codes.SCT.Breast)
    assert exam.tracking_identifier == "exam"
    assert _values(exam) == {"Score": 87.5, "Triage category": 9}
    (category,) = exam.get_measurements(name=CATEGORY)
    assert category.unit.value == "1"
    (reading,) = exam.get_qualitative_evaluations()
    assert reading.value.meaning == "double reading"


def test_each_scored_breast_has_its_own_group_with_its_laterality(read_back):
    report = _groups(read_back)
    (left,) = [
        g
        for g in report.get_image_measurement_groups(finding_site=codes.SCT.LeftBreast)
        if g.tracking_identifier == "breast L"
    ]
    (right,) = [
        g
        for g in report.get_image_measurement_groups(finding_site=codes.SCT.RightBreast)
        if g.tracking_identifier == "breast R"
    ]
    assert _values(left) == {"Score": 87.5}
    assert _values(right) == {"Score": 12.0}


def test_breast_without_a_score_is_left_out(images, tmp_path):
    content = _content(images, breasts={"L": 40.0, "R": None}, findings=())
    sr = _round_trip(build_measurement_report(content, images, ALGORITHM), tmp_path)
    report = _groups(sr)
    assert report.get_image_measurement_groups(finding_site=codes.SCT.RightBreast) == []
    assert len(report.get_image_measurement_groups()) == 2
    assert _finding_groups(sr) == []


def test_each_finding_marks_a_closed_rectangle_on_its_own_image(images, read_back):
    groups = _finding_groups(read_back)
    assert [g.tracking_identifier for g in groups] == ["finding 1 L MLO", "finding 2 R CC"]
    assert len({g.tracking_uid for g in groups}) == 2
    first, second = (_region(g) for g in groups)
    # TID 1501 row 10: the region the score belongs to, selected from its image
    assert first.ConceptNameCodeSequence[0].CodeValue == codes.DCM.SourceOfMeasurement.value
    assert first.RelationshipType == "CONTAINS"
    assert first.GraphicType == "POLYLINE"
    np.testing.assert_array_equal(
        np.reshape(first.GraphicData, (-1, 2)),
        [[10, 20], [30.5, 20], [30.5, 41], [10, 41], [10, 20]],
    )
    np.testing.assert_array_equal(
        np.reshape(second.GraphicData, (-1, 2)), [[0, 0], [64, 0], [64, 96], [0, 96], [0, 0]]
    )
    sources = [region.ContentSequence[0] for region in (first, second)]
    assert [s.RelationshipType for s in sources] == ["SELECTED FROM"] * 2
    referenced = [s.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for s in sources]
    assert referenced == [images[1].SOPInstanceUID, images[2].SOPInstanceUID]
    assert [_values(g)["Score"] for g in groups] == [88, 7]
    assert groups[0].finding_sites[0].value == codes.SCT.LeftBreast


def test_every_measurement_group_is_a_tid_1501_group(read_back):
    container = hd.sr.utils.find_content_items(
        read_back.content[0], name=codes.DCM.ImagingMeasurements
    )[0]
    templates = [g.ContentTemplateSequence[0].TemplateIdentifier for g in container.ContentSequence]
    assert templates == ["1501"] * 5


def test_algorithm_identification_carries_the_model_sha256(read_back):
    (exam,) = _groups(read_back).get_image_measurement_groups(finding_site=codes.SCT.Breast)
    params = hd.sr.utils.find_content_items(
        exam[0], name=hd.sr.CodedConcept("111002", "DCM", "Algorithm Parameters")
    )
    assert [p.value for p in params] == [f"model_sha256={SHA}"]
    names = hd.sr.utils.find_content_items(
        exam[0], name=hd.sr.CodedConcept("111001", "DCM", "Algorithm Name")
    )
    assert [n.value for n in names] == ["mammonet-b0"]


def test_observer_is_the_algorithm_as_a_device(read_back):
    (context,) = _groups(read_back).get_observer_contexts()
    assert context.observer_type == codes.cid270.Device
    assert context.observer_identifying_attributes.model_name == "mammonet-b0"
    assert context.observer_identifying_attributes.manufacturer_name == "mammotriage"


def test_evidence_lists_every_source_image(images, read_back):
    referenced = {
        sop.ReferencedSOPInstanceUID
        for study in read_back.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert referenced == {image.SOPInstanceUID for image in images}
    assert "PertinentOtherEvidenceSequence" not in read_back


def test_private_codes_are_declared(read_back):
    designators = [s.CodingSchemeDesignator for s in read_back.CodingSchemeIdentificationSequence]
    assert designators == ["99MMTRIAGE", "99IHE"]


def test_algorithm_is_contributing_equipment_as_ihe_air_asks(read_back):
    algorithm = read_back.ContributingEquipmentSequence[-1]
    (purpose,) = algorithm.PurposeOfReferenceCodeSequence
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == (
        "Newcode1",
        "99IHE",
        "Processing Algorithm",
    )
    assert algorithm.Manufacturer == "mammotriage"
    assert algorithm.ManufacturerModelName == "mammonet-b0"
    assert algorithm.SoftwareVersions == "0.1.0"
    assert SHA in algorithm.ContributionDescription
    # the same device as the observer of the content tree
    (context,) = _groups(read_back).get_observer_contexts()
    assert algorithm.DeviceUID == context.observer_identifying_attributes.uid


def test_device_uid_changes_with_the_model_and_only_with_it(images):
    def uid(algorithm: AlgorithmIdentity, score: float) -> str:
        sr = build_measurement_report(_content(images, exam_score=score), images, algorithm)
        return sr.ContributingEquipmentSequence[-1].DeviceUID

    same = uid(ALGORITHM, 87.5)
    assert uid(ALGORITHM, 12.0) == same
    assert uid(dataclasses.replace(ALGORITHM, version="0.2.0"), 87.5) == same
    assert uid(dataclasses.replace(ALGORITHM, sha256="f" * 64), 87.5) != same


def test_partial_exam_gives_a_partial_report(images, tmp_path):
    content = _content(images[:3], partial=True, findings=())
    sr = _round_trip(build_measurement_report(content, images[:3], ALGORITHM), tmp_path)
    assert sr.CompletionFlag == "PARTIAL"
    assert sr.CompletionFlagDescription


def test_complete_exam_gives_a_complete_unverified_preliminary_report(read_back):
    assert read_back.CompletionFlag == "COMPLETE"
    assert read_back.VerificationFlag == "UNVERIFIED"
    assert read_back.PreliminaryFlag == "PRELIMINARY"


def test_same_input_gives_the_same_uids_and_the_same_bytes(images, tmp_path):
    first = build_measurement_report(_content(images), images, ALGORITHM, content_datetime=WHEN)
    again = build_measurement_report(
        _content(images), list(reversed(images)), ALGORITHM, content_datetime=WHEN
    )
    assert first.SOPInstanceUID == again.SOPInstanceUID
    assert first.SeriesInstanceUID == again.SeriesInstanceUID
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == report_uids(
        _content(images), images, ALGORITHM
    )
    a = write_report(first, tmp_path / "a.dcm").read_bytes()
    b = write_report(
        build_measurement_report(_content(images), images, ALGORITHM, content_datetime=WHEN),
        tmp_path / "b.dcm",
    ).read_bytes()
    assert a == b


@pytest.mark.parametrize(
    "change",
    ["late view", "new model", "new score", "new category", "other study"],
)
def test_changed_input_gives_a_new_instance_in_the_series_of_its_study(images, change):
    content, sources, algorithm = _content(images), images, ALGORITHM
    if change == "late view":
        sources = [*images, mg_dataset(StudyInstanceUID=images[0].StudyInstanceUID)]
    elif change == "new model":
        algorithm = dataclasses.replace(ALGORITHM, sha256="f" * 64)
    elif change == "new score":
        content = _content(images, exam_score=87.6)
    elif change == "new category":
        content = _content(images, category=8)
    else:
        sources = _exam()
        content = _content(sources)
    before = report_uids(_content(images), images, ALGORITHM)
    after = report_uids(content, sources, algorithm)
    assert before[1] != after[1]
    # One report series per study, whatever the model or the result: every version of an
    # exam's report is in one series, and another study's in another.
    if change == "other study":
        assert before[0] != after[0]
    else:
        assert before[0] == after[0]


def test_empty_sources_are_refused(images):
    with pytest.raises(ValueError, match="at least one image"):
        build_measurement_report(_content(images, findings=()), [], ALGORITHM)


def test_sources_from_two_studies_are_refused(images):
    other = mg_dataset()
    with pytest.raises(ValueError, match="one study"):
        build_measurement_report(_content(images), [*images, other], ALGORITHM)


def test_finding_on_an_image_outside_the_sources_is_refused(images):
    with pytest.raises(ValueError, match=r"findings\[0\].*not among source_images"):
        build_measurement_report(_content(images), images[2:], ALGORITHM)


def test_finding_against_its_image_laterality_is_refused(images):
    wrong = ReportFinding(images[0].SOPInstanceUID, "R", "CC", (1, 1, 2, 2), 50)
    with pytest.raises(ValueError, match="laterality"):
        build_measurement_report(_content(images, findings=(wrong,)), images, ALGORITHM)


def test_finding_box_outside_its_image_is_refused(images):
    too_wide = ReportFinding(images[0].SOPInstanceUID, "L", "CC", (1, 1, 65, 2), 50)
    with pytest.raises(ValueError, match="outside its image"):
        build_measurement_report(_content(images, findings=(too_wide,)), images, ALGORITHM)


def test_repeated_source_image_is_refused(images):
    with pytest.raises(ValueError, match="repeats SOPInstanceUID"):
        build_measurement_report(_content(images), [*images, images[0]], ALGORITHM)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exam_score": 100.5}, "exam_score"),
        ({"exam_score": float("nan")}, "exam_score"),
        ({"category": 0}, "category"),
        ({"category": 11}, "category"),
        ({"breasts": {"X": 1.0}}, "breasts keys"),
        ({"breasts": {"L": -1.0}}, r"breasts\['L'\]"),
        ({"reading": "a reading decision far too long to be a code value"}, "reading"),
    ],
)
def test_out_of_range_content_is_refused(images, changes, message):
    with pytest.raises(ValueError, match=message):
        _content(images, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"laterality": "B"}, "laterality"),
        ({"score": 0}, "score"),
        ({"score": 101}, "score"),
        ({"box": (5.0, 5.0, 5.0, 9.0)}, "box"),
        ({"box": (-1.0, 0.0, 5.0, 9.0)}, "box"),
    ],
)
def test_bad_finding_is_refused(changes, message):
    base = {
        "sop_instance_uid": "1.2.3",
        "laterality": "L",
        "view": "CC",
        "box": (1.0, 1.0, 2.0, 2.0),
        "score": 50,
    }
    with pytest.raises(ValueError, match=message):
        ReportFinding(**{**base, **changes})


def test_algorithm_sha256_must_be_a_hex_digest():
    with pytest.raises(ValueError, match="sha256"):
        AlgorithmIdentity(name="m", version="1", sha256="not-a-hash")


def test_missing_type2_patient_attributes_do_not_stop_the_report(tmp_path):
    study = generate_uid()
    bare = [mg_dataset(StudyInstanceUID=study, ImageLaterality=s) for s in ("L", "R")]
    assert "PatientBirthDate" not in bare[0]
    content = ReportContent(exam_score=3.0, category=1, breasts={"L": 3.0, "R": 2.0})
    sr = _round_trip(build_measurement_report(content, bare, ALGORITHM), tmp_path)
    assert sr.StudyInstanceUID == study
    assert sr.PatientBirthDate == ""
    assert "PatientBirthDate" not in bare[0]


def test_write_report_replaces_an_existing_file_and_leaves_no_temp_file(read_back, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "report.dcm"
    target.write_bytes(b"old")
    assert write_report(read_back, target) == target
    assert pydicom.dcmread(target).SOPInstanceUID == read_back.SOPInstanceUID
    assert sorted(p.name for p in out.iterdir()) == ["report.dcm"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "report.dcm"
    target.write_bytes(b"old")
    broken = Dataset()  # no file meta, no SOP UIDs: enforce_file_format refuses it
    with pytest.raises(Exception):  # noqa: B017 - any refusal from pydicom will do
        write_report(broken, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.dcm"]


@pytest.mark.integration
def test_dcmtk_dsrdump_reads_the_report_without_warnings(read_back, tmp_path):
    assert shutil.which("dsrdump"), "dsrdump missing: make test installs dcmtk"
    path = write_report(read_back, tmp_path / "dcmtk.dcm")
    result = subprocess.run(
        ["dsrdump", "-v", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "W:" not in result.stderr and "E:" not in result.stderr, result.stderr
    assert "Comprehensive SR Document" in result.stdout
    assert '"Triage category")="9' in result.stdout
    assert "SCOORD" in result.stdout and "POLYLINE" in result.stdout


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"findings": (), "partial": True, "breasts": {"L": 87.5, "R": None}},
        {"predecessor": True},
    ],
    ids=["two-findings", "partial-no-findings", "rescore"],
)
def test_the_report_is_the_dataset_highdicoms_constructor_builds_from_the_whole_tree(
    images, monkeypatch, changes
):
    """The SR is constructed around its root container and the checked tree set on it
    afterwards (a third of the cost): element for element what highdicom's constructor
    makes when it copies, parses and searches the whole tree itself."""
    import mammotriage.dicom.report as report_module
    from mammotriage.dicom.report_identity import PriorReport

    predecessor = None
    if changes.pop("predecessor", False):
        predecessor = PriorReport.of_study(images[0].StudyInstanceUID, generate_uid())
    content = _content(images, **changes)

    def build():
        return build_measurement_report(
            content, images, ALGORITHM, content_datetime=WHEN, predecessor=predecessor
        )

    fast = build()
    monkeypatch.setattr(
        report_module,
        "_comprehensive_sr",
        lambda report, **kwargs: hd.sr.ComprehensiveSR(content=report[0], **kwargs),
    )
    whole = build()
    assert fast.to_json_dict() == whole.to_json_dict()
    assert fast.content[0].ContentSequence == whole.content[0].ContentSequence
