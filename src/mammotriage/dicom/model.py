"""The data model every other package leans on: ``Image`` and ``Exam``.

Coded values are enums named after the DICOM attribute they come from (as highdicom does);
everything a reader inferred carries a ``*_source`` saying where it came from, so that a
radiologist or engineer can check a decision instead of trusting it.
"""

from __future__ import annotations

import enum
import hashlib
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


class Slot(str, enum.Enum):
    """A view slot of an exam: one breast (left or right) seen in one view.

    An exam holds at most one selected image per slot. ML and LM fill the MLO slot (see
    :data:`MLO_LIKE_VIEWS`), so they have no slot of their own; an image of unknown
    laterality or view fills none. The value is the label, ``"L-CC"``: ``str()``, f-strings
    and JSON print a slot as that label, as tables and ``--json`` outputs always have.
    """

    R_CC = "R-CC"
    L_CC = "L-CC"
    R_MLO = "R-MLO"
    L_MLO = "L-MLO"
    R_LMO = "R-LMO"
    L_LMO = "L-LMO"
    R_XCCL = "R-XCCL"
    L_XCCL = "L-XCCL"
    R_XCCM = "R-XCCM"
    L_XCCM = "L-XCCM"
    R_FB = "R-FB"
    L_FB = "L-FB"
    R_SIO = "R-SIO"
    L_SIO = "L-SIO"
    R_AT = "R-AT"
    L_AT = "L-AT"
    R_CV = "R-CV"
    L_CV = "L-CV"
    R_RL = "R-RL"
    L_RL = "L-RL"
    R_RM = "R-RM"
    L_RM = "L-RM"

    def __str__(self) -> str:
        return self.value

    @property
    def laterality(self) -> Laterality:
        return Laterality(self.value.split("-", 1)[0])

    @property
    def view(self) -> ViewPosition:
        return ViewPosition(self.value.split("-", 1)[1])

    @property
    def label(self) -> str:
        return self.value

    @classmethod
    def of(cls, laterality: Laterality, view: ViewPosition) -> Slot | None:
        """The slot an image of this laterality and view fills; None when it fills none."""
        if laterality is Laterality.UNKNOWN or view is ViewPosition.UNKNOWN:
            return None
        if view in MLO_LIKE_VIEWS:
            view = ViewPosition.MLO
        return cls(view_label(laterality, view))


#: The slots of a standard screening exam, in reading order (:data:`STANDARD_VIEWS`).
STANDARD_SLOTS: tuple[Slot, ...] = (Slot.R_CC, Slot.L_CC, Slot.R_MLO, Slot.L_MLO)


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
    #: The acquisition device: ManufacturerModelName and StationName (device-level
    #: monitoring and calibration group by manufacturer, model and station).
    manufacturer_model_name: str | None = None
    station_name: str | None = None
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
    #: Which codec read the pixels ("imagecodecs.jpegls", "pillow-openjpeg", "numpy" for
    #: uncompressed data ...): None when no pixels were decoded. Kept per image so that a
    #: decoder's fault can be traced to the images it read.
    decoder: str | None = None

    def __post_init__(self) -> None:
        # The one place every reason passes: one line, at most REASON_CAP characters, so
        # that no file can fill a log line, a job record or a table cell.
        if self.reason is not None:
            object.__setattr__(self, "reason", cap_reason(self.reason))
        # The end of the pipeline: whatever produced the pixels, a usable image never
        # carries NaN or infinity into preprocessing and the model.
        if self.usable and self.pixels is not None and not np.isfinite(self.pixels).all():
            object.__setattr__(self, "usable", False)
            object.__setattr__(self, "reason", "pixel values are not finite (NaN or infinity)")
            object.__setattr__(self, "pixels", None)

    @property
    def exam_id(self) -> str:
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


#: The longest reason an :class:`Image` records.
REASON_CAP = 200


def cap_reason(reason: str, limit: int = REASON_CAP) -> str:
    """``reason`` on one line and at most ``limit`` characters."""
    text = " ".join(reason.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def exam_key(image: Image) -> tuple[str, str]:
    """(exam_id, source). Patient-derived keys are hashed so that no identifier leaks into
    ids, logs or URLs."""
    if image.study_instance_uid:
        return image.study_instance_uid, "StudyInstanceUID"
    if image.accession_number:
        return f"acc-{_digest(image.accession_number)}", "AccessionNumber"
    if image.patient_id:
        return f"pat-{_digest(image.patient_id, image.study_date or '')}", "PatientID+StudyDate"
    # Nothing to group by: the image is an exam of its own.
    own = image.sop_instance_uid or str(image.path)
    return f"img-{_digest(own)}", "SOPInstanceUID"


@dataclass(frozen=True)
class Exam:
    """The images of one screening exam, grouped and sorted into views.

    ``selected`` holds the image chosen for each :class:`Slot`; ``choices`` says
    why, for every slot that had more than one candidate (For Presentation over For
    Processing, latest, not implant-displaced).
    """

    exam_id: str
    exam_id_source: str
    images: tuple[Image, ...]
    selected: dict[Slot, Image]
    choices: dict[Slot, str]

    @property
    def present(self) -> list[Slot]:
        return [slot for slot in STANDARD_SLOTS if slot in self.selected]

    @property
    def missing(self) -> list[Slot]:
        return [slot for slot in STANDARD_SLOTS if slot not in self.selected]

    @property
    def duplicated(self) -> list[Slot]:
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
