"""The identifiers a radiologist needs to find an exam in the PACS and the RIS, read from
the exam's image header when the worker stores it.

AccessionNumber (0008,0050), PatientID (0010,0020), PatientName (0010,0010) and StudyDate
(0008,0020) of the first image whose header can be read (they are the same in every image
of a study, PS3.3 C.7.1.1 and C.7.2.1). A value that is absent, empty, too long for the
store or (StudyDate) not a date is left out: the exam is stored all the same.

Patient data: these values are never logged; the store keeps them in the exam's row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset

from mammotriage.worker.hl7_output import ResultMessageError, first_header
from mammotriage.worklist.exams import IDENTIFIER_LENGTHS, StudyIdentifiers


def study_identifiers(paths: Sequence[Path]) -> StudyIdentifiers | None:
    """The identifiers in the first readable header of ``paths``; None when none is readable."""
    try:
        header = first_header(paths)
    except ResultMessageError:
        return None
    return identifiers_of(header)


def identifiers_of(header: Dataset) -> StudyIdentifiers:
    """The header's identifiers, each None when absent or not valid."""
    return StudyIdentifiers(
        accession_number=_text(header, "AccessionNumber", "accession_number"),
        patient_id=_text(header, "PatientID", "patient_id"),
        patient_name=_text(header, "PatientName", "patient_name"),
        study_date=_date(_text(header, "StudyDate")),
    )


def _text(header: Dataset, keyword: str, field: str | None = None) -> str | None:
    try:
        value = header.get(keyword, None)
        text = str(value).strip() if value is not None else ""
    except Exception:  # a value pydicom cannot decode is left out, not fatal
        return None
    if not text or (field is not None and len(text) > IDENTIFIER_LENGTHS[field]):
        return None
    return text


def _date(value: str | None) -> date | None:
    """A DICOM DA (YYYYMMDD); None when absent or not a date."""
    if not value or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


__all__ = ["identifiers_of", "study_identifiers"]
