"""What the HL7 result takes from the study's DICOM header: the patient and the order.

The worker reads one image's header per exam; this turns it into the plain values
:func:`~mammotriage.hl7.messages.build_oru` takes, so that no DICOM reaches the message
builder and no HL7 reaches the DICOM reader.

Where each value is read (PS3.3):

- PatientID (0010,0020), PatientName (0010,0010), PatientBirthDate (0010,0030),
  PatientSex (0010,0040);
- AccessionNumber (0008,0050);
- Placer and Filler Order Number / Imaging Service Request (0040,2016), (0040,2017): at
  the top level, else in the first Request Attributes Sequence (0040,0275) item that
  carries them (C.4.10, Table 10-9);
- the procedure: the first item of Requested Procedure Code Sequence (0032,1064), in the
  Request Attributes Sequence or at the top level, else of Procedure Code Sequence
  (0008,1032);
- StudyDate and StudyTime (0008,0020/0030), in TimezoneOffsetFromUTC (0008,0201) when
  the header has it, else in the site's time zone;
- for an order update: StudyInstanceUID (0020,000D), and Requested Procedure ID
  (0040,1001) and Scheduled Procedure Step ID (0040,0009) at the top level or in the
  Request Attributes Sequence.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo

from pydicom.dataset import Dataset

from mammotriage.hl7.messages import Order, Patient, Procedure


def patient_of(ds: Dataset) -> Patient:
    """The study's patient (PatientID must be there: :class:`Patient` refuses none)."""
    return Patient(
        patient_id=_string(ds, "PatientID") or "",
        name=_string(ds, "PatientName"),
        birth_date=_date(_string(ds, "PatientBirthDate")),
        sex=_string(ds, "PatientSex"),
    )


def order_of(ds: Dataset, zone: tzinfo) -> Order:
    """The study's order numbers, procedure and time; ``zone`` is the site's, for a header
    without TimezoneOffsetFromUTC."""
    requests = list(ds.get("RequestAttributesSequence", None) or [])
    return Order(
        accession_number=_string(ds, "AccessionNumber"),
        placer_order_number=_first(ds, requests, "PlacerOrderNumberImagingServiceRequest"),
        filler_order_number=_first(ds, requests, "FillerOrderNumberImagingServiceRequest"),
        procedure=_procedure(ds, requests),
        study_datetime=_study_datetime(ds, zone),
        study_instance_uid=_string(ds, "StudyInstanceUID"),
        requested_procedure_id=_first(ds, requests, "RequestedProcedureID"),
        scheduled_procedure_step_id=_first(ds, requests, "ScheduledProcedureStepID"),
    )


def _first(ds: Dataset, requests: list[Dataset], keyword: str) -> str | None:
    for item in (ds, *requests):
        value = _string(item, keyword)
        if value:
            return value
    return None


def _procedure(ds: Dataset, requests: list[Dataset]) -> Procedure | None:
    for item, keyword in (
        *((r, "RequestedProcedureCodeSequence") for r in requests),
        (ds, "RequestedProcedureCodeSequence"),
        (ds, "ProcedureCodeSequence"),
    ):
        codes = item.get(keyword, None) or []
        for code in codes:
            value = _string(code, "CodeValue")
            scheme = _string(code, "CodingSchemeDesignator")
            if value and scheme:
                return Procedure(value, _string(code, "CodeMeaning") or value, scheme)
    return None


def _study_datetime(ds: Dataset, zone: tzinfo) -> datetime | None:
    day = _date(_string(ds, "StudyDate"))
    if day is None:
        return None
    clock = (_string(ds, "StudyTime") or "").split(".")[0]
    digits = (clock + "000000")[:6] if clock.isdigit() else "000000"
    hour, minute, second = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = _offset(_string(ds, "TimezoneOffsetFromUTC"))
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=offset or zone)


def _offset(value: str | None) -> tzinfo | None:
    """``+HHMM`` / ``-HHMM`` as a fixed zone; None when absent or malformed."""
    if not value or len(value) != 5 or value[0] not in "+-" or not value[1:].isdigit():
        return None
    minutes = int(value[1:3]) * 60 + int(value[3:])
    return timezone(timedelta(minutes=minutes if value[0] == "+" else -minutes))


def _date(value: str | None) -> date | None:
    """A DICOM DA (YYYYMMDD); None when absent or not a date."""
    if not value or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _string(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword, None)
    text = str(value).strip() if value is not None else ""
    return text or None


__all__ = ["order_of", "patient_of"]
