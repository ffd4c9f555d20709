"""The identifiers a radiologist needs to find an exam in the PACS and the RIS, read from
the exam's image header when the worker stores it.

AccessionNumber (0008,0050), PatientID (0010,0020), PatientName (0010,0010) and StudyDate
(0008,0020) of the first image whose header can be read (they are the same in every image
of a study, PS3.3 C.7.1.1 and C.7.2.1). A value that is absent, empty, too long for the
store or (StudyDate) not a date is left out: the exam is stored all the same.

Patient data: these values are never logged; the store keeps them in the exam's row.

The same header gives where and on what the exam was taken (InstitutionName, Manufacturer,
ManufacturerModelName, StationName; :func:`acquisition_of`): not patient data, the monitor
groups exams by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset

from mammotriage.worker.hl7_output import ResultMessageError, first_header
from mammotriage.worklist.exams import (
    IDENTIFIER_LENGTHS,
    SITE_LENGTHS,
    AcquisitionSite,
    StudyIdentifiers,
)


def study_identifiers(
    paths: Sequence[Path],
) -> tuple[StudyIdentifiers, AcquisitionSite] | tuple[None, None]:
    """The identifiers and the acquisition site in the first readable header of ``paths``;
    (None, None) when none is readable."""
    try:
        header = first_header(paths)
    except ResultMessageError:
        return None, None
    return identifiers_of(header), acquisition_of(header)


def identifiers_of(header: Dataset) -> StudyIdentifiers:
    """The header's identifiers, each None when absent or not valid."""
    return StudyIdentifiers(
        accession_number=_text(header, "AccessionNumber", "accession_number"),
        patient_id=_text(header, "PatientID", "patient_id"),
        patient_name=_text(header, "PatientName", "patient_name"),
        study_date=_date(_text(header, "StudyDate")),
    )


def acquisition_of(header: Dataset) -> AcquisitionSite:
    """The header's site and device, each None when absent or too long for the store."""
    return AcquisitionSite(
        site=_text(header, "InstitutionName", "site", SITE_LENGTHS),
        manufacturer=_text(header, "Manufacturer", "manufacturer", SITE_LENGTHS),
        device_model=_text(header, "ManufacturerModelName", "device_model", SITE_LENGTHS),
        station_name=_text(header, "StationName", "station_name", SITE_LENGTHS),
    )


def _text(
    header: Dataset,
    keyword: str,
    field: str | None = None,
    limits: dict[str, int] = IDENTIFIER_LENGTHS,
) -> str | None:
    try:
        value = header.get(keyword, None)
        text = str(value).strip() if value is not None else ""
    except Exception:  # a value pydicom cannot decode is left out, not fatal
        return None
    if not text or (field is not None and len(text) > limits[field]):
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


__all__ = ["acquisition_of", "identifiers_of", "study_identifiers"]
