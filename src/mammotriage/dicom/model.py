"""The data model every other package leans on: ``Image`` and ``Exam``.

Coded values are enums named after the DICOM attribute they come from (as highdicom does);
everything a reader inferred carries a ``*_source`` saying where it came from, so that a
radiologist or engineer can check a decision instead of trusting it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Laterality(str, enum.Enum):
    """Image Laterality (0020,0062): which breast the image shows."""

    LEFT = "L"
    RIGHT = "R"
    UNKNOWN = "U"


class ViewPosition(str, enum.Enum):
    """Mammographic view, as in View Position (0018,5101) and CID 4014 (View for Mammography)."""

    CC = "CC"
    MLO = "MLO"
    ML = "ML"
    LM = "LM"
    LMO = "LMO"
    XCCL = "XCCL"
    XCCM = "XCCM"
    FB = "FB"
    SIO = "SIO"
    AT = "AT"
    CV = "CV"
    RL = "RL"
    RM = "RM"
    UNKNOWN = "UNKNOWN"


class Source(str, enum.Enum):
    """Where an inferred attribute (laterality, view, orientation) came from."""

    IMAGE_LATERALITY = "ImageLaterality"
    LATERALITY = "Laterality"
    FUNCTIONAL_GROUPS = "FunctionalGroups"
    VIEW_POSITION = "ViewPosition"
    VIEW_CODE_SEQUENCE = "ViewCodeSequence"
    DEVICE_PROCESSING_DESCRIPTION = "AcquisitionDeviceProcessingDescription"
    PATIENT_ORIENTATION = "PatientOrientation"
    SERIES_DESCRIPTION = "SeriesDescription"
    PROTOCOL_NAME = "ProtocolName"
    PATIENT_ID = "PatientID"
    FILE_NAME = "FileName"
    PIXELS = "Pixels"
    NONE = "None"


class PresentationIntentType(str, enum.Enum):
    """Presentation Intent Type (0008,0068)."""

    FOR_PRESENTATION = "FOR PRESENTATION"
    FOR_PROCESSING = "FOR PROCESSING"


#: The four views of a standard screening exam, in reading order.
STANDARD_VIEWS: tuple[tuple[Laterality, ViewPosition], ...] = (
    (Laterality.RIGHT, ViewPosition.CC),
    (Laterality.LEFT, ViewPosition.CC),
    (Laterality.RIGHT, ViewPosition.MLO),
    (Laterality.LEFT, ViewPosition.MLO),
)

#: Views that fill the MLO slot of a screening exam when no true MLO is present, and are
#: scored like an MLO (a lateral view shows the same tissue from the side).
MLO_LIKE_VIEWS = frozenset({ViewPosition.MLO, ViewPosition.ML, ViewPosition.LM})


def view_label(laterality: Laterality, view: ViewPosition) -> str:
    """``"L-CC"`` style label used in tables and JSON."""
    return f"{laterality.value}-{view.value}"


@dataclass(frozen=True, eq=False)
class Image:
    """One DICOM mammogram: pixels ready for preprocessing and the metadata that decides
    how it is read.

    ``pixels`` are float32 in [0, 1] with dense tissue bright (MONOCHROME1 inverted, rescale
    and VOI applied), in the file's own geometry but possibly decoded at reduced resolution:
    one decoded pixel covers ``decode_scale`` original pixels along each axis. Flipping to
    the canonical orientation (chest wall on the left, superior/lateral side at the top) is
    described by ``flip_horizontal``/``flip_vertical`` and applied by
    :func:`mammotriage.preprocess.preprocess`, which keeps the transform so that regions map
    back to the original pixels.

    ``patient_id`` is kept for exam grouping only and never logged.
    """

    path: Path | None
    usable: bool
    reason: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    accession_number: str | None = None
    patient_id: str | None = field(default=None, repr=False)
    study_date: str | None = None
    acquisition_datetime: str | None = None
    modality: str | None = None
    manufacturer: str | None = None
    transfer_syntax_uid: str | None = None
    rows: int = 0
    columns: int = 0
    bits_stored: int | None = None
    photometric_interpretation: str | None = None
    presentation_intent: PresentationIntentType | None = None
    laterality: Laterality = Laterality.UNKNOWN
    laterality_source: Source = Source.NONE
    view: ViewPosition = ViewPosition.UNKNOWN
    view_source: Source = Source.NONE
    flip_horizontal: bool = False
    flip_vertical: bool = False
    orientation_source: Source = Source.NONE
    implant_displaced: bool = False
    secondary_capture: bool = False
    pixel_spacing_mm: float | None = None
    pixels: np.ndarray | None = field(default=None, repr=False)
    decode_scale: float = 1.0

    @property
    def exam_id(self) -> str:
        from mammotriage.dicom.exams import exam_key

        return exam_key(self)[0]

    @property
    def label(self) -> str:
        return view_label(self.laterality, self.view)

    @property
    def transfer_syntax_name(self) -> str | None:
        if self.transfer_syntax_uid is None:
            return None
        from pydicom.uid import UID

        return UID(self.transfer_syntax_uid).name


@dataclass(frozen=True)
class Exam:
    """The images of one screening exam, grouped and sorted into views.

    ``selected`` holds the image chosen for each (laterality, view) slot; ``choices`` says
    why, for every slot that had more than one candidate (For Presentation over For
    Processing, latest, not implant-displaced).
    """

    exam_id: str
    exam_id_source: str
    images: tuple[Image, ...]
    selected: dict[str, Image]
    choices: dict[str, str]

    @property
    def present(self) -> list[str]:
        labels = (view_label(lat, v) for lat, v in STANDARD_VIEWS)
        return [label for label in labels if label in self.selected]

    @property
    def missing(self) -> list[str]:
        labels = (view_label(lat, v) for lat, v in STANDARD_VIEWS)
        return [label for label in labels if label not in self.selected]

    @property
    def duplicated(self) -> list[str]:
        return sorted(self.choices)

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    @property
    def usable_images(self) -> list[Image]:
        return [im for im in self.images if im.usable]

    @property
    def unusable_images(self) -> list[Image]:
        return [im for im in self.images if not im.usable]
