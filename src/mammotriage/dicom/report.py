"""The AI result as a DICOM Structured Report that a PACS files into the exam's own study.

The report is a TID 1500 Measurement Report (PS3.16 A.35.1) in a Comprehensive SR
(PS3.3 A.35.3), built to IHE Radiology AI Results (AIR): Comprehensive SR is the oldest SR
class that carries numeric measurements together with 2D SCOORD regions on referenced images,
so it is the one most PACS and viewers accept; Comprehensive 3D SR adds only SCOORD3D, which a
projection mammogram has no use for. The tree (highdicom builds and checks every level)::

    Imaging Measurement Report (TID 1500)
    ├─ Language, Observer Type = Device (TID 1002/1004: Device UID, "mammotriage", model name)
    ├─ Procedure Reported = SCT 363679005 "Imaging procedure" (CID 100)
    └─ Imaging Measurements
       ├─ Measurement Group (TID 1501) tracking id "exam" + UID; Finding Site = Breast;
       │    Algorithm Identification (TID 4019, parameters: model sha256);
       │    Score (0-100), Triage category (1-10), Triage reading (coded, optional)
       ├─ Measurement Group (TID 1501) per scored breast; Finding Site = Left/Right breast; Score
       └─ Measurement Group (TID 1501) per finding, tracking id + UID; Finding Site; Score;
            Source of Measurement = closed 5-point POLYLINE on its source image (SCOORD,
            pixel-edge coordinates, row 10 of TID 1501)

Each finding is a TID 1501 group with its region as the "Source of Measurement" rather than
a TID 1410 Planar ROI group with an "Image Region": both are valid in TID 1500, but PixelMed's
SR validator (an independent checker the tests run) decides between TID 1410 and TID 1501 for
the whole Imaging Measurements container by counting Image Regions, so a report with exactly
one TID 1410 finding next to the exam's TID 1501 groups is failed as if every group were a
Planar ROI. One template for every group is read the same way by every validator.

Outside the content tree: the Performed Procedure Code Sequence says "Mammography"; the
Contributing Equipment Sequence has, after highdicom's own item, the model as IHE AIR asks
(Purpose of Reference "Processing Algorithm", manufacturer, model name, software version and
a Device UID derived from the model's sha256, so it changes with the model); the Coding Scheme
Identification Sequence declares the two private schemes used (99MMTRIAGE, 99IHE).

The Series Instance UID is one per study and the SOP Instance UID a hash of the study, the
model, the source images and the content (:mod:`mammotriage.dicom.report_identity`), so
re-sending a report after a crash gives the PACS the same instance (it replaces or ignores
it) while a late view or a new model gives a new one, in the same series. A rescore names
the report it supersedes in its Predecessor Documents Sequence (PS3.3 C.17.2) and has the
next Instance Number; the module docstring of ``report_identity`` says how a PACS tells the
versions apart.

TID 4000 (Mammography CAD SR, PS3.3 A.35.5) is not built, on purpose. highdicom has no
template for it, and a correct one needs what this pipeline does not produce: TID 4001's CAD
Processing and Findings Summary must state, per image, which CAD algorithms ran and failed;
each finding is a TID 4004 Single Image Finding typed from CID 6014 (mass, calcification
cluster, ...), with a "Certainty of Finding" and rendering intent, composite features
(TID 4005) that pair findings across views, and the detection/analysis performed items of
TID 4016/4017. Our model gives a score map and boxes with a score, not a finding type, a
certainty in the Mammography CAD sense, or cross-view pairing, so a TID 4000 document would
have to invent values that viewers then show as CAD marks. Hand-building it with raw content
items would also lose highdicom's checks. TID 1500 states exactly what we know.

Patient data: the report copies the patient and study modules from the source images (that
is what places it in the study) and nothing here logs any of it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.valuerep import DA, DT, TM

from mammotriage.atomic import atomic_write
from mammotriage.dicom.model import Laterality
from mammotriage.dicom.report_content import (
    BREAST,
    BREAST_BY_LATERALITY,
    DEMONSTRATION_ONLY,
    IHE_ORGANIZATION,
    IHE_SCHEME,
    IHE_SCHEME_NAME,
    INTENDED_USE,
    PRIVATE_SCHEME,
    PRIVATE_SCHEME_NAME,
    PROCEDURE_MAMMOGRAPHY,
    PROCEDURE_REPORTED,
    PROCESSING_ALGORITHM,
    SCORE,
    SOURCE_OF_MEASUREMENT,
    TRIAGE_CATEGORY,
    TRIAGE_READING,
    UNIT_NONE,
    UNIT_SCORE,
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
    reading_code,
)
from mammotriage.dicom.report_identity import (
    PriorReport,
    derived_uid,
    device_uid,
    report_fingerprint,
    report_instance_uid,
    report_series_uid,
    report_version,
)

__all__ = [
    "MANUFACTURER",
    "SERIES_DESCRIPTION",
    "SERIES_NUMBER",
    "AlgorithmIdentity",
    "PriorReport",
    "ReportContent",
    "ReportFinding",
    "algorithm_equipment",
    "build_measurement_report",
    "device_uid",
    "report_series_uid",
    "report_uids",
    "warm_up",
    "write_report",
]

MANUFACTURER = "mammotriage"
SERIES_DESCRIPTION = "mammotriage AI triage report"
#: Fixed so that the report series sorts after the modality's series in a viewer, and a
#: re-sent report keeps its place.
SERIES_NUMBER = 9901

# Attributes of the Patient and General Study modules that highdicom reads from the first
# source image; all are Type 2, so an empty value is valid where a modality left one out.
_TYPE2_PATIENT_STUDY = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)
_REQUIRED_SOURCE = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")


def _check_sources(source_images: Sequence[Dataset]) -> dict[str, Dataset]:
    if len(source_images) == 0:
        raise ValueError("source_images must hold at least one image header, got none")
    by_uid: dict[str, Dataset] = {}
    for index, image in enumerate(source_images):
        missing = [k for k in _REQUIRED_SOURCE if not image.get(k)]
        if missing:
            raise ValueError(f"source_images[{index}] lacks {', '.join(missing)}")
        uid = str(image.SOPInstanceUID)
        if uid in by_uid:
            raise ValueError(f"source_images[{index}] repeats SOPInstanceUID {uid}")
        by_uid[uid] = image
    studies = sorted({str(image.StudyInstanceUID) for image in source_images})
    if len(studies) > 1:
        raise ValueError(
            f"source_images must all belong to one study, got {len(studies)} "
            f"StudyInstanceUIDs: {', '.join(studies)}"
        )
    return by_uid


def _check_finding(index: int, finding: ReportFinding, image: Dataset | None) -> None:
    if image is None:
        raise ValueError(
            f"findings[{index}] references SOPInstanceUID {finding.sop_instance_uid}, "
            "which is not among source_images"
        )
    header_laterality = image.get("ImageLaterality") or image.get("Laterality")
    if header_laterality in ("L", "R") and header_laterality != finding.laterality:
        raise ValueError(
            f"findings[{index}] has laterality {finding.laterality!r} but its image "
            f"{finding.sop_instance_uid} says {header_laterality!r}"
        )
    rows, columns = image.get("Rows"), image.get("Columns")
    x0, y0, x1, y1 = finding.box
    if rows is not None and columns is not None and (x1 > columns or y1 > rows):
        raise ValueError(
            f"findings[{index}] box {finding.box!r} reaches outside its image "
            f"({columns} columns x {rows} rows)"
        )


def report_uids(
    content: ReportContent,
    source_images: Sequence[Dataset],
    algorithm: AlgorithmIdentity,
    *,
    predecessor: PriorReport | None = None,
    version: int | None = None,
) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of the report for this exam, model and result.

    The series is one per study (:func:`report_series_uid`); the instance is a hash of the
    study, the model, the sorted source SOP Instance UIDs and the whole content, and for a
    later version of its predecessor and version too, so the same input always gives the
    same UIDs and a changed result a new instance (PS3.5 Section 9 and B.2).

    Raises
    ------
    ValueError
        If ``source_images`` is empty, spans more than one study, lacks a UID or repeats one,
        or if ``version`` does not fit ``predecessor`` (see :func:`build_measurement_report`).
    """
    _check_sources(source_images)
    number = report_version(predecessor, version)
    fingerprint = report_fingerprint(content, source_images, algorithm)
    return (
        report_series_uid(str(source_images[0].StudyInstanceUID)),
        report_instance_uid(fingerprint, predecessor, number),
    )


def algorithm_equipment(algorithm: AlgorithmIdentity, when: datetime.datetime) -> Dataset:
    """The Contributing Equipment Sequence item (PS3.3 C.12.1) for the model, as IHE AIR asks.

    Purpose of Reference (Newcode1, 99IHE, "Processing Algorithm"), manufacturer, model name,
    software version and :func:`device_uid`. highdicom's ``ContributingEquipment`` accepts
    only DCM purposes, so the item is a plain dataset.
    """
    item = Dataset()
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = algorithm.name
    item.SoftwareVersions = algorithm.version
    item.DeviceUID = device_uid(algorithm)
    item.PurposeOfReferenceCodeSequence = [PROCESSING_ALGORITHM]
    item.ContributionDateTime = DT(when)
    item.ContributionDescription = f"AI triage model {algorithm.name}, sha256 {algorithm.sha256}"
    return item


def _observation_context(algorithm: AlgorithmIdentity) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid(algorithm),
        name=MANUFACTURER,
        manufacturer_name=MANUFACTURER,
        model_name=algorithm.name,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )


def _algorithm_id(algorithm: AlgorithmIdentity) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=algorithm.name,
        version=algorithm.version,
        parameters=[f"model_sha256={algorithm.sha256}"],
        manufacturer=MANUFACTURER,
    )


def _score(value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=SCORE, value=value, unit=UNIT_SCORE)


def _exam_group(
    content: ReportContent, algorithm_id: hd.sr.AlgorithmIdentification, fingerprint: str
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    measurements = [
        _score(content.exam_score),
        hd.sr.Measurement(name=TRIAGE_CATEGORY, value=content.category, unit=UNIT_NONE),
    ]
    evaluations = []
    if content.reading is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(name=TRIAGE_READING, value=reading_code(content.reading))
        )
    if content.demonstration:
        evaluations.append(hd.sr.QualitativeEvaluation(name=INTENDED_USE, value=DEMONSTRATION_ONLY))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(fingerprint, "exam"), identifier="exam"
        ),
        algorithm_id=algorithm_id,
        finding_sites=[hd.sr.FindingSite(BREAST)],
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
    )


def _breast_group(
    side: Laterality,
    score: float,
    algorithm_id: hd.sr.AlgorithmIdentification,
    fingerprint: str,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    # The code letter, not the enum's repr ("breast L", not "breast Laterality.LEFT").
    laterality = side.value
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(fingerprint, f"breast-{laterality}"),
            identifier=f"breast {laterality}",
        ),
        algorithm_id=algorithm_id,
        finding_sites=[hd.sr.FindingSite(BREAST_BY_LATERALITY[laterality])],
        measurements=[_score(score)],
    )


def rectangle(box: tuple[float, float, float, float]) -> np.ndarray:
    """The closed 5-point polyline (column, row) of a pixel-edge box, clockwise from top-left.

    SCOORD 2D has no RECTANGLE graphic type (PS3.3 C.18.6.1.2), so a box is a POLYLINE whose
    last point repeats the first, which PS3.3 defines as a closed polygon.
    """
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float32)


def _finding_group(
    number: int,
    finding: ReportFinding,
    image: Dataset,
    algorithm_id: hd.sr.AlgorithmIdentification,
    fingerprint: str,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(fingerprint, f"finding-{number}"),
            identifier=f"finding {number} {finding.laterality} {finding.view}",
        ),
        algorithm_id=algorithm_id,
        finding_sites=[hd.sr.FindingSite(BREAST_BY_LATERALITY[finding.laterality])],
        measurements=[_score(finding.score)],
    )
    # TID 1501 row 10: the region the score belongs to, SELECTED FROM its image. highdicom
    # builds only IMAGE references there, so the SCOORD is added to the group by hand, before
    # the measurement as the template orders it.
    region = hd.sr.ScoordContentItem(
        name=SOURCE_OF_MEASUREMENT,
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=rectangle(finding.box),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    region.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=str(image.SOPClassUID),
                referenced_sop_instance_uid=str(image.SOPInstanceUID),
            )
        ]
    )
    items = group[0].ContentSequence
    first_number = next((i for i, item in enumerate(items) if item.ValueType == "NUM"), len(items))
    items.insert(first_number, region)
    return group


def _study_header(image: Dataset) -> Dataset:
    """A shallow copy of the first source header with empty Type 2 values filled in.

    highdicom reads these attributes unconditionally; a modality that left a Type 2
    attribute out must not stop the report, and the caller's header stays untouched.
    """
    header = Dataset()
    header.update(image)
    for keyword in _TYPE2_PATIENT_STUDY:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def build_measurement_report(
    content: ReportContent,
    source_images: Sequence[Dataset],
    algorithm: AlgorithmIdentity,
    *,
    institution_name: str | None = None,
    institutional_department_name: str | None = None,
    content_datetime: datetime.datetime | None = None,
    predecessor: PriorReport | None = None,
    version: int | None = None,
) -> hd.sr.ComprehensiveSR:
    """Build the exam's TID 1500 Measurement Report as a Comprehensive SR.

    A rescore of an exam gives ``predecessor``, the SR it supersedes: the new SR names it in
    its Predecessor Documents Sequence (0040,A360), lives in the same series (one per study),
    has a new SOP Instance UID and ``version`` as its Instance Number. How a PACS tells the
    versions apart: :mod:`mammotriage.dicom.report_identity`.

    Parameters
    ----------
    content:
        The exam result to report.
    source_images:
        Headers (pixel data not needed) of every image the exam was scored from; all must
        belong to one study. They become the SR's evidence, and the first one supplies the
        patient and study modules, so the SR lands in the same study.
    algorithm:
        The model that produced ``content``.
    institution_name, institutional_department_name:
        Optional General Equipment attributes of the site that runs mammotriage.
    content_datetime:
        Content and Instance Creation Date/Time of the report (when this analysis ran); now
        when ``None``. Give it to make the whole dataset, not only its UIDs, reproducible.
    predecessor:
        The earlier SR of this exam that this one supersedes, or ``None`` for a first report.
    version:
        The report's Instance Number: 1 for a first report, the predecessor's plus one for a
        rescore; ``None`` means 1, or 2 with a predecessor. It is part of the SOP Instance
        UID of a later version, so resending the same rescore gives the same instance.

    Returns
    -------
    highdicom.sr.ComprehensiveSR
        The report, Completion Flag PARTIAL for a partial exam, Preliminary and Unverified
        (no radiologist has signed it).

    Raises
    ------
    ValueError
        If ``source_images`` is empty, spans more than one study, lacks a UID or repeats an
        image, or if a finding references an image not among them, contradicts the image's
        laterality or reaches outside its pixel matrix; if ``version`` is not a positive
        integer, is 1 with a predecessor or above 1 without one.
    """
    by_uid = _check_sources(source_images)
    for index, finding in enumerate(content.findings):
        _check_finding(index, finding, by_uid.get(finding.sop_instance_uid))

    instance_number = report_version(predecessor, version)
    study_instance_uid = str(source_images[0].StudyInstanceUID)
    fingerprint = report_fingerprint(content, source_images, algorithm)
    # Tracking UIDs hash the report's facts, not its version: a rescore with the same result
    # tracks the same findings.
    sop_instance_uid = report_instance_uid(fingerprint, predecessor, instance_number)
    algorithm_id = _algorithm_id(algorithm)

    groups = [_exam_group(content, algorithm_id, fingerprint)]
    for laterality, score in content.breasts.items():
        if score is not None:
            groups.append(_breast_group(laterality, score, algorithm_id, fingerprint))
    for number, finding in enumerate(content.findings, start=1):
        image = by_uid[finding.sop_instance_uid]
        groups.append(_finding_group(number, finding, image, algorithm_id, fingerprint))

    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(algorithm),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=groups,
    )
    when = content_datetime or datetime.datetime.now()
    evidence = [_study_header(source_images[0]), *source_images[1:]]
    # The Predecessor Documents Sequence (PS3.3 C.17.2), built by highdicom.
    previous_versions = (
        None if predecessor is None else [_predecessor(predecessor, study_instance_uid)]
    )
    sr = _comprehensive_sr(
        report,
        evidence=evidence,
        series_instance_uid=report_series_uid(study_instance_uid),
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=not content.partial,
        institution_name=institution_name,
        institutional_department_name=institutional_department_name,
        performed_procedure_codes=[PROCEDURE_MAMMOGRAPHY],
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        # No Series Date/Time (Type 3): the series holds every version of the report, each
        # written at its own time, which Content and Instance Creation Date/Time carry.
        content_date=when.date(),
        content_time=when.time(),
        previous_versions=previous_versions,
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=PRIVATE_SCHEME,
                name=PRIVATE_SCHEME_NAME,
                responsible_organization=MANUFACTURER,
            ),
            CodingSchemeIdentificationItem(
                designator=IHE_SCHEME,
                name=IHE_SCHEME_NAME,
                responsible_organization=IHE_ORGANIZATION,
            ),
        ],
    )
    # highdicom stamps Instance Creation and its own Contributing Equipment item with the
    # wall clock; the report's time replaces both, so that the same input gives the same bytes.
    sr.InstanceCreationDate = DA(when.date())
    sr.InstanceCreationTime = TM(when.time())
    for equipment in sr.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = DT(when)
    # After highdicom's items (the source's acquisition equipment, highdicom itself).
    sr["ContributingEquipmentSequence"].value.append(algorithm_equipment(algorithm, when))
    if content.partial:
        sr.CompletionFlagDescription = "exam lacks a standard view"
    return sr


def _comprehensive_sr(report: hd.sr.MeasurementReport, **kwargs: Any) -> hd.sr.ComprehensiveSR:
    """The Comprehensive SR of ``report`` (``kwargs``: the rest of highdicom's constructor).

    highdicom's constructor deep-copies the content tree, parses the copy again and searches
    it three times (image references, composite references, 3D coordinates): two thirds of
    the report's cost, every exam. The tree here was built by highdicom's checked content
    item constructors, and every image a finding references was checked against the
    evidence by :func:`_check_finding`. So the SR is constructed around the root container
    with an empty Content Sequence, and the checked tree is set in its place afterwards,
    as the constructor itself copies the root's elements onto the dataset. The result is
    the same dataset, element for element (``tests/unit/dicom/test_report.py`` compares it
    with the constructor's own), at a third of the cost.
    """
    root = report[0]
    shell = Dataset()
    for element in root:
        if element.keyword != "ContentSequence":
            shell.add(element)
    shell.ContentSequence = []
    sr = hd.sr.ComprehensiveSR(content=shell, **kwargs)
    sr.ContentSequence = root.ContentSequence
    # What ``sr.content`` gives back: the typed tree, as the constructor would keep it.
    sr._content = report
    return sr


def warm_up() -> None:
    """Build one report in memory, from a made-up header, and throw it away.

    highdicom reads its tables of the standard (a JSON file of every module's attributes)
    on the first report a process builds: 0.35 s alone, and over a second while the
    decoders hold both cores. A worker calls this when it starts, so that its first exam
    does not wait for it.
    """
    image = Dataset()
    image.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography, For Presentation
    image.SOPInstanceUID = "2.25.1"
    image.StudyInstanceUID = "2.25.2"
    image.SeriesInstanceUID = "2.25.3"
    for keyword in _TYPE2_PATIENT_STUDY:  # empty: valid, all Type 2
        setattr(image, keyword, "")
    build_measurement_report(
        ReportContent(exam_score=1.0, category=1),
        [image],
        AlgorithmIdentity(name="warm-up", version="0", sha256="0" * 64),
        content_datetime=datetime.datetime(2000, 1, 1),
    )


def _predecessor(prior: PriorReport, study_instance_uid: str) -> Dataset:
    """What highdicom's ``previous_versions`` reads of an earlier SR: its four UIDs."""
    header = Dataset()
    header.StudyInstanceUID = study_instance_uid
    header.SeriesInstanceUID = prior.series_instance_uid
    header.SOPClassUID = prior.sop_class_uid
    header.SOPInstanceUID = prior.sop_instance_uid
    return header


def write_report(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write the report as a DICOM Part 10 file, atomically, and return its path.

    The bytes go to a temporary file in the target's own directory, are fsynced, and the
    file is renamed over ``path`` (``os.replace`` is atomic on one file system), so a crash
    leaves either the old file or the whole new one, never a truncated report for a sender
    to pick up.
    """
    target = Path(path)
    with atomic_write(target) as handle:
        dataset.save_as(handle, enforce_file_format=True)
    return target
