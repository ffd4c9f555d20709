"""The patient and the order read from a study's DICOM header for the HL7 result."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from pydicom.dataset import Dataset

from mammotriage.hl7.config import Hl7Mapping
from mammotriage.hl7.messages import Procedure, ReadingResult, build_oru
from mammotriage.hl7.study import order_of, patient_of
from mammotriage.triage.policy import ReadingMode

CET = timezone(timedelta(hours=1))


def header() -> Dataset:
    ds = Dataset()
    ds.PatientID = "0101701234"
    ds.PatientName = "Hansen^Karen"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "ACC77"
    ds.StudyDate = "20261201"
    ds.StudyTime = "090512.123"
    request = Dataset()
    request.PlacerOrderNumberImagingServiceRequest = "PL-1"
    request.FillerOrderNumberImagingServiceRequest = "FI-2"
    code = Dataset()
    code.CodeValue = "MAMSCR"
    code.CodingSchemeDesignator = "99RH"
    code.CodeMeaning = "Screening mammography"
    request.RequestedProcedureCodeSequence = [code]
    ds.RequestAttributesSequence = [request]
    return ds


def test_the_patient_and_the_order_come_from_the_header() -> None:
    ds = header()
    patient = patient_of(ds)
    assert (patient.patient_id, patient.name) == ("0101701234", "Hansen^Karen")
    assert (patient.birth_date, patient.sex) == (date(1970, 1, 1), "F")
    order = order_of(ds, CET)
    assert order.accession_number == "ACC77"
    assert (order.placer_order_number, order.filler_order_number) == ("PL-1", "FI-2")
    assert order.procedure == Procedure("MAMSCR", "Screening mammography", "99RH")
    assert order.study_datetime == datetime(2026, 12, 1, 9, 5, 12, tzinfo=CET)


def test_the_header_offset_wins_over_the_site_zone() -> None:
    ds = header()
    ds.TimezoneOffsetFromUTC = "-0300"
    expected = datetime(2026, 12, 1, 12, 5, 12, tzinfo=timezone.utc)
    assert order_of(ds, CET).study_datetime == expected


def test_a_bare_header_gives_what_it_has() -> None:
    ds = Dataset()
    ds.PatientID = "1"
    ds.AccessionNumber = "A1"
    ds.StudyTime = "0905"  # a time without a date: no study time is guessed
    order = order_of(ds, CET)
    assert order.procedure is None and order.study_datetime is None
    assert order.placer_order_number is None and order.filler_order_number is None
    patient = patient_of(ds)
    assert patient.name is None and patient.birth_date is None


def test_a_header_makes_a_valid_oru() -> None:
    ds = header()
    result = ReadingResult(
        score=10.0,
        category=2,
        mode=ReadingMode.SINGLE,
        priority=False,
        model_name="m",
        model_sha256="ef" * 32,
        analysed_at=datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc),
    )
    er7 = build_oru(
        patient_of(ds),
        order_of(ds, CET),
        result,
        Hl7Mapping(),
        now=datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc),
    ).er7
    obr = next(s.split("|") for s in er7.split("\r") if s.startswith("OBR|"))
    assert obr[2:5] == ["PL-1", "FI-2", "MAMSCR^Screening mammography^99RH"]
    assert obr[7] == "20261201080512+0000"
    assert obr[18] == "ACC77"
