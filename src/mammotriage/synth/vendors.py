"""Vendor-variant DICOM writing for the synthetic phantoms: the thin adapter to pydicom.

Real screening archives mix units from several manufacturers, and each writes a
mammogram its own way: For Presentation or For Processing (PS3.3 C.8.11.7, Digital
Mammography X-Ray Image), MONOCHROME1 or MONOCHROME2, 12 to 16 stored bits, compressed
or not, VOI as windows, a sigmoid or a LUT, and laterality/view in ImageLaterality and
ViewPosition, in the View Code Sequence (CID 4014) or only in free text. A
:class:`VendorProfile` is one such way; the profiles below are synthetic look-alikes (their
Manufacturer says so) whose mix exercises every path a reader has to handle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from mammotriage.dicom.model import Laterality, PresentationIntentType, ViewPosition
from mammotriage.synth.anatomy import ChestWall

#: The InstitutionName of every synthetic exam: it says what the data is.
SYNTHETIC_SITE = "mammotriage synthetic phantom - not a patient"

#: Digital Mammography X-Ray Image Storage SOP classes (PS3.4 B.5).
MG_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.2")
MG_FOR_PROCESSING = UID("1.2.840.10008.5.1.4.1.1.1.2.1")

#: View codes (CID 4014) in SNOMED CT and in the retired SNOMED-RT ("SRT") scheme.
VIEW_CODES: dict[str, dict[ViewPosition, tuple[str, str]]] = {
    "SCT": {
        ViewPosition.CC: ("399162004", "cranio-caudal"),
        ViewPosition.MLO: ("399368009", "medio-lateral oblique"),
    },
    "SRT": {
        ViewPosition.CC: ("R-10242", "cranio-caudal"),
        ViewPosition.MLO: ("R-10226", "medio-lateral oblique"),
    },
}


@dataclass(frozen=True)
class DetectorFormat:
    """Image matrix and pixel spacing of a detector (rows > columns: mammograms are portrait)."""

    rows: int
    columns: int
    spacing_mm: float

    @property
    def field_mm(self) -> tuple[float, float]:
        return (self.rows * self.spacing_mm, self.columns * self.spacing_mm)

    def small(self, rows: int = 512) -> DetectorFormat:
        """The same field of view with fewer, larger pixels (for fast tests)."""
        columns = round(self.columns * rows / self.rows)
        return DetectorFormat(rows, columns, round(self.rows * self.spacing_mm / rows, 6))


class LabelStyle(str, enum.Enum):
    """Where a profile records laterality and view."""

    STRUCTURED = "structured"  # ImageLaterality + ViewPosition (+ ViewCodeSequence)
    VIEW_CODE = "view_code"  # ViewCodeSequence + Laterality (0020,0060) only
    TEXT = "text"  # SeriesDescription / ProtocolName only


class VoiStyle(str, enum.Enum):
    """How a profile says which stored values to display."""

    NONE = "none"
    WINDOW = "window"
    TWO_WINDOWS = "two_windows"
    SIGMOID = "sigmoid"
    LUT = "lut"


@dataclass(frozen=True)
class VendorProfile:
    """One synthetic manufacturer's way of writing a mammogram."""

    key: str
    manufacturer: str
    model_name: str
    formats: tuple[DetectorFormat, ...]
    presentation_intent: PresentationIntentType
    photometric_interpretation: str
    bits_stored: int
    transfer_syntax: UID
    label_style: LabelStyle
    view_code_scheme: str | None = None
    patient_orientation: bool = True
    chest_wall_left: bool = False
    voi: VoiStyle = VoiStyle.WINDOW
    rescale: bool = False
    pixel_spacing: bool = False
    burned_in_marker: bool = False
    readable_file_names: bool = False
    tone_gamma: float = 1.0
    #: StationName (SH, at most 16 characters); None: the key in capitals.
    station_name: str | None = None

    @property
    def station(self) -> str:
        """The StationName the profile's images carry."""
        return self.station_name or self.key.upper()[:16]

    @property
    def sop_class_uid(self) -> UID:
        if self.presentation_intent is PresentationIntentType.FOR_PROCESSING:
            return MG_FOR_PROCESSING
        return MG_FOR_PRESENTATION


PROFILES: tuple[VendorProfile, ...] = (
    VendorProfile(
        key="hologic-like",
        manufacturer="SYNTH-HOLOGIC-LIKE",
        model_name="Synthetic Dimensions-like",
        formats=(DetectorFormat(3328, 2560, 0.065), DetectorFormat(4096, 3328, 0.07)),
        presentation_intent=PresentationIntentType.FOR_PRESENTATION,
        photometric_interpretation="MONOCHROME2",
        bits_stored=12,
        transfer_syntax=JPEG2000Lossless,
        label_style=LabelStyle.STRUCTURED,
        view_code_scheme="SCT",
        voi=VoiStyle.TWO_WINDOWS,
        rescale=True,
        burned_in_marker=True,
    ),
    VendorProfile(
        key="ge-like",
        manufacturer="SYNTH-GE-LIKE",
        model_name="Synthetic Senographe-like",
        formats=(DetectorFormat(2294, 1914, 0.1),),
        presentation_intent=PresentationIntentType.FOR_PRESENTATION,
        photometric_interpretation="MONOCHROME1",
        bits_stored=14,
        transfer_syntax=JPEGLSLossless,
        label_style=LabelStyle.VIEW_CODE,
        view_code_scheme="SRT",
        voi=VoiStyle.SIGMOID,
        tone_gamma=0.9,
    ),
    VendorProfile(
        key="siemens-like",
        manufacturer="SYNTH-SIEMENS-LIKE",
        model_name="Synthetic Mammomat-like",
        formats=(DetectorFormat(3584, 2816, 0.085),),
        presentation_intent=PresentationIntentType.FOR_PRESENTATION,
        photometric_interpretation="MONOCHROME2",
        bits_stored=12,
        transfer_syntax=ExplicitVRLittleEndian,
        label_style=LabelStyle.STRUCTURED,
        voi=VoiStyle.LUT,
        pixel_spacing=True,
        readable_file_names=True,
        tone_gamma=1.15,
    ),
    VendorProfile(
        key="fuji-like",
        manufacturer="SYNTH-FUJI-LIKE",
        model_name="Synthetic Amulet-like",
        formats=(DetectorFormat(2964, 2364, 0.1),),
        presentation_intent=PresentationIntentType.FOR_PRESENTATION,
        photometric_interpretation="MONOCHROME1",
        bits_stored=12,
        transfer_syntax=RLELossless,
        label_style=LabelStyle.TEXT,
        patient_orientation=False,
        chest_wall_left=True,
        voi=VoiStyle.WINDOW,
        burned_in_marker=True,
    ),
    VendorProfile(
        key="raw-like",
        manufacturer="SYNTH-CARESTREAM-LIKE",
        model_name="Synthetic raw detector",
        formats=(DetectorFormat(3064, 2396, 0.085),),
        presentation_intent=PresentationIntentType.FOR_PROCESSING,
        photometric_interpretation="MONOCHROME1",
        bits_stored=14,
        transfer_syntax=ImplicitVRLittleEndian,
        label_style=LabelStyle.STRUCTURED,
        voi=VoiStyle.NONE,
    ),
    VendorProfile(
        key="ims-like",
        manufacturer="SYNTH-IMS-LIKE",
        model_name="Synthetic Giotto-like",
        formats=(DetectorFormat(3580, 2812, 0.083),),
        presentation_intent=PresentationIntentType.FOR_PRESENTATION,
        photometric_interpretation="MONOCHROME2",
        bits_stored=16,
        transfer_syntax=JPEG2000,
        label_style=LabelStyle.STRUCTURED,
        view_code_scheme="SRT",
        chest_wall_left=True,
        voi=VoiStyle.WINDOW,
        rescale=True,
        pixel_spacing=True,
    ),
)


#: Profiles outside the default mix, chosen by key (``synth --vendor``).
#:
#: ``hologic-like-updated`` is hologic-like after a software update of its image processing:
#: a much steeper tone curve (gamma 3), under the same manufacturer, model and station. It is
#: what a site sees when a device's processing changes under the model: the model's scores
#: for that device move up (the monitor's drift tests are made of it).
EXTRA_PROFILES: tuple[VendorProfile, ...] = (
    replace(
        PROFILES[0],
        key="hologic-like-updated",
        tone_gamma=3.0,
        station_name=PROFILES[0].station,
    ),
)


def profile_by_key(key: str) -> VendorProfile:
    """The profile named ``key``, from the default mix or :data:`EXTRA_PROFILES`.

    Raises
    ------
    ValueError
        If no profile has that key (the message lists them).
    """
    for profile in (*PROFILES, *EXTRA_PROFILES):
        if profile.key == key:
            return profile
    keys = ", ".join(p.key for p in (*PROFILES, *EXTRA_PROFILES))
    raise ValueError(f"no vendor profile {key!r}; known: {keys}")


#: 5x7 glyphs for the letters a laterality/view marker needs.
_GLYPHS = {
    "L": ["10000"] * 6 + ["11111"],
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
    "C": ["01111", "10000", "10000", "10000", "10000", "10000", "01111"],
    "M": ["10001", "11011", "10101", "10101", "10001", "10001", "10001"],
    "O": ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
}


def burn_in_label(
    pixels: np.ndarray, text: str, chest_wall: ChestWall, spacing_mm: float
) -> np.ndarray:
    """A copy of dense-bright ``pixels`` with a laterality/view label (``"LCC"``) burned
    into the top corner away from the chest wall, as many units do (Burned In Annotation).

    Only the letters L, R, C, M and O are drawn.
    """
    image = pixels.copy()
    spacing = spacing_mm
    cell = max(int(round(0.9 / spacing)), 1)
    pad = 2 * cell
    glyphs = [np.array([[c == "1" for c in row] for row in _GLYPHS[ch]]) for ch in text]
    bitmap = np.concatenate([np.pad(gl, ((0, 0), (0, 1))) for gl in glyphs], axis=1)
    bitmap = np.kron(bitmap, np.ones((cell, cell), dtype=bool))
    h, w = bitmap.shape[0] + 2 * pad, bitmap.shape[1] + 2 * pad
    margin = max(int(round(6 / spacing)), 1)
    if h + margin >= image.shape[0] or w + margin >= image.shape[1]:
        return image
    left = image.shape[1] - margin - w if chest_wall is ChestWall.LEFT else margin
    label = np.full((h, w), 0.88, dtype=np.float32)
    label[pad : pad + bitmap.shape[0], pad : pad + bitmap.shape[1]][bitmap] = 0.12
    image[margin : margin + h, left : left + w] = label
    return image


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes shared by the four images of an exam."""

    study_instance_uid: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_age: str
    accession_number: str
    study_date: str
    study_time: str
    study_id: str
    institution_name: str = SYNTHETIC_SITE


@dataclass(frozen=True)
class ImageInfo:
    """Attributes of one image of an exam."""

    sop_instance_uid: str
    series_instance_uid: str
    series_number: int
    instance_number: int
    laterality: Laterality
    view: ViewPosition
    chest_wall: ChestWall
    spacing_mm: float
    content_time: str
    text_label: str


def patient_orientation(
    laterality: Laterality, view: ViewPosition, chest_wall: ChestWall
) -> tuple[str, str]:
    """Patient Orientation (0020,0020) of an image as stored (PS3.3 C.7.6.1.1.1).

    Along a row, columns run toward the nipple (A) when the chest wall is on the left; down
    a column, a CC runs from lateral to medial (toward the patient's other side) and an MLO
    toward the feet.
    """
    row = "A" if chest_wall is ChestWall.LEFT else "P"
    if view is not ViewPosition.CC:
        return row, "F"
    return row, "R" if laterality is Laterality.LEFT else "L"


def to_stored(pixels: np.ndarray, profile: VendorProfile) -> np.ndarray:
    """Map dense-bright pixels in [0, 1] to the profile's stored values (uint16).

    For Presentation images are tone-mapped (each vendor's own gamma) into most of the
    stored range, inverted for MONOCHROME1. For Processing images are linear in detected
    X-ray intensity, as a raw detector reads them: dense tissue lets fewer photons through,
    so it is low, and air is near the top; under MONOCHROME1 that displays dense-bright.
    """
    top = 2**profile.bits_stored - 1
    v = np.clip(pixels, 0, 1)
    if profile.presentation_intent is PresentationIntentType.FOR_PROCESSING:
        stored = 0.92 * top * np.exp(-3.2 * v) + 0.01 * top
    else:
        if profile.tone_gamma != 1.0:
            v = v**profile.tone_gamma
        stored = top * (0.03 + 0.94 * v)
        if profile.photometric_interpretation == "MONOCHROME1":
            stored = top - stored
    return np.rint(stored).astype(np.uint16)


def _stored_of(v: float, profile: VendorProfile) -> float:
    """Stored value of dense-bright intensity ``v`` under ``profile`` (for VOI settings)."""
    return float(to_stored(np.array([v], dtype=np.float32), profile)[0])


def build_dataset(
    stored: np.ndarray, profile: VendorProfile, study: StudyInfo, image: ImageInfo
) -> Dataset:
    """A Digital Mammography X-Ray Image dataset holding ``stored`` (uncompressed)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = profile.sop_class_uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(image.sop_instance_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.SOPClassUID = profile.sop_class_uid
    ds.SOPInstanceUID = image.sop_instance_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ContentTime = image.content_time
    ds.AcquisitionDateTime = study.study_date + image.content_time
    ds.AccessionNumber = study.accession_number
    ds.Modality = "MG"
    ds.PresentationIntentType = profile.presentation_intent.value
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model_name
    ds.InstitutionName = study.institution_name
    ds.StationName = profile.station
    ds.StudyDescription = "Screening mammography (synthetic)"
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = "F"
    ds.PatientAge = study.patient_age
    ds.BodyPartExamined = "BREAST"
    ds.BreastImplantPresent = "NO"
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.DetectorType = "DIRECT"
    ds.ImagerPixelSpacing = [image.spacing_mm, image.spacing_mm]
    if profile.pixel_spacing:
        ds.PixelSpacing = [image.spacing_mm, image.spacing_mm]
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = image.series_instance_uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = image.series_number
    ds.InstanceNumber = image.instance_number
    _label(ds, profile, image)
    ds.BurnedInAnnotation = "YES" if profile.burned_in_marker else "NO"

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = profile.photometric_interpretation
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = profile.bits_stored
    ds.HighBit = profile.bits_stored - 1
    ds.PixelRepresentation = 0
    raw = profile.presentation_intent is PresentationIntentType.FOR_PROCESSING
    ds.PixelIntensityRelationship = "LIN" if raw else "LOG"
    # +1: lower values mean less X-ray intensity (denser), true of raw and MONOCHROME1 data.
    monochrome1 = profile.photometric_interpretation == "MONOCHROME1"
    ds.PixelIntensityRelationshipSign = 1 if (raw or monochrome1) else -1
    if profile.rescale:
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "US"
    _voi(ds, profile)
    ds.PixelData = stored.tobytes()
    return ds


def _label(ds: Dataset, profile: VendorProfile, image: ImageInfo) -> None:
    """Record laterality and view where this profile does."""
    if profile.label_style is LabelStyle.STRUCTURED:
        ds.ImageLaterality = image.laterality.value
        ds.ViewPosition = image.view.value
    elif profile.label_style is LabelStyle.VIEW_CODE:
        ds.Laterality = image.laterality.value
    if profile.view_code_scheme is not None and profile.label_style is not LabelStyle.TEXT:
        value, meaning = VIEW_CODES[profile.view_code_scheme][image.view]
        code = Dataset()
        code.CodeValue = value
        code.CodingSchemeDesignator = profile.view_code_scheme
        code.CodeMeaning = meaning
        code.ViewModifierCodeSequence = Sequence()
        ds.ViewCodeSequence = Sequence([code])
    if profile.label_style is LabelStyle.TEXT:
        ds.SeriesDescription = image.text_label
        ds.ProtocolName = image.text_label.replace(" ", "")
    else:
        ds.SeriesDescription = "Screening"
    if profile.patient_orientation:
        ds.PatientOrientation = list(
            patient_orientation(image.laterality, image.view, image.chest_wall)
        )


def _voi(ds: Dataset, profile: VendorProfile) -> None:
    """Window, sigmoid or LUT on the stored values, covering the breast's fat-to-dense range."""
    if profile.voi is VoiStyle.NONE:
        return
    lo, hi = _stored_of(0.15, profile), _stored_of(0.95, profile)
    centre, width = round((lo + hi) / 2), round(abs(hi - lo))
    if profile.voi is VoiStyle.TWO_WINDOWS:
        ds.WindowCenter = [centre, round(_stored_of(0.6, profile))]
        ds.WindowWidth = [width, round(width * 0.6)]
        ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER"]
    elif profile.voi is VoiStyle.LUT:
        top = 2**profile.bits_stored
        x = np.arange(top, dtype=np.float64)
        curve = 1 / (1 + np.exp(-4 * (x - centre) / width))
        item = Dataset()
        item.LUTDescriptor = [top if top < 65536 else 0, 0, 16]
        item.LUTExplanation = "SYNTH SOFT"
        item.add_new(0x00283006, "OW", np.rint(curve * 65535).astype("<u2").tobytes())
        ds.VOILUTSequence = Sequence([item])
        ds.WindowCenter, ds.WindowWidth = centre, width
    else:
        ds.WindowCenter, ds.WindowWidth = centre, width
        ds.VOILUTFunction = "SIGMOID" if profile.voi is VoiStyle.SIGMOID else "LINEAR"


def encode(ds: Dataset, stored: np.ndarray, transfer_syntax: UID) -> None:
    """Put ``stored`` into ``ds`` in ``transfer_syntax``, in place.

    JPEG 2000 uses OpenJPEG's default of six resolution levels, so readers can decode full
    size images at 1/2 to 1/32 scale; the lossy variant records its ratio as PS3.3
    C.7.6.1.1.5 requires.
    """
    if transfer_syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        return
    # pydicom gives compressed datasets a new SOP Instance UID unless told not to; the
    # truth file and the exam's other references need the one we chose.
    if transfer_syntax == RLELossless:
        ds.compress(
            transfer_syntax, stored, encoding_plugin="pylibjpeg", generate_instance_uid=False
        )
    elif transfer_syntax == JPEG2000:
        ds.compress(transfer_syntax, stored, j2k_cr=[15], generate_instance_uid=False)
        ratio = stored.nbytes / len(ds.PixelData)
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
        ds.LossyImageCompressionMethod = "ISO_15444_1"
    else:
        ds.compress(transfer_syntax, stored, generate_instance_uid=False)


def write_image(
    path: Path,
    pixels: np.ndarray,
    profile: VendorProfile,
    study: StudyInfo,
    image: ImageInfo,
) -> None:
    """Write dense-bright ``pixels`` as a DICOM Part 10 file the way ``profile`` would."""
    stored = to_stored(pixels, profile)
    ds = build_dataset(stored, profile, study, image)
    encode(ds, stored, profile.transfer_syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
