"""The AI findings burnt into copies of the images: one Secondary Capture per marked image.

Some PACS viewers show neither an SR's content nor a presentation state's graphics; every
viewer shows an image. For each image with a finding this module writes a Secondary Capture
Image (PS3.3 A.8.1) of the same patient and study:

- its pixels are the image as a viewer shows it by default, at 8 bits: the Modality LUT, the
  image's window (its VOI LUT when it has no window; the robust range of its values when it
  has neither, or when it is For Processing), and the inversion of a MONOCHROME1 image, so
  the capture is always MONOCHROME2 with dense tissue bright. Larger images are scaled down
  to :data:`MAX_SIDE` pixels on their longest side (a marked copy, not a diagnostic image:
  the original stays in the study), and the boxes with them;
- every finding's box is a white frame with a black rim on each side, drawn on the outermost
  pixels of the box (a :class:`~mammotriage.dicom.report_content.ReportFinding` box is in
  pixel-edge coordinates, so its pixels run from ``floor(x0)`` to ``ceil(x1) - 1``), with
  its score (``AI 61``) above it; the view and the exam's category (``L MLO - AI category 9
  of 10``), and "demonstration model, not for clinical use" for the demonstration model,
  across the top. Boxes are drawn last, so no text hides a box;
- ImageType DERIVED\\SECONDARY, Burned In Annotation YES, Conversion Type WSD, and a Source
  Image Sequence that references the image the capture was made from (purpose DCM 121322,
  "Source image for image processing operation", CID 7202).

The captures of a study share one series (:data:`SC_SERIES_NUMBER`), whose UID derives from
the study and from whether the model is a demonstration model, so a demonstration model's
captures never share a series with a clinical model's. Each capture's SOP Instance UID
derives from what is burnt into it (study, source image, model, category, the image's
findings, the rendering): a re-sent capture is the same instance, and a rescore that changes
what it shows gives a new one. The Manufacturer is ours
(:data:`~mammotriage.dicom.report.MANUFACTURER`) and the Modality OT, so no source takes a
capture for an image to score.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DA, DT, TM

from mammotriage.category import HIGHEST
from mammotriage.dicom.decode import DecodeLimits, decode_pixels
from mammotriage.dicom.reader import _read_dataset
from mammotriage.dicom.report import (
    MANUFACTURER,
    _check_finding,
    _check_sources,
    _study_header,
    algorithm_equipment,
)
from mammotriage.dicom.report_content import (
    DEMONSTRATION_ONLY,
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
)
from mammotriage.dicom.voi import to_display, voi_params
from mammotriage.errors import DicomReadError

__all__ = [
    "MAX_SIDE",
    "SC_SERIES_DESCRIPTION",
    "SC_SERIES_NUMBER",
    "build_secondary_captures",
    "frame_half_width",
    "header_lines",
]

#: Series of the captures: after the SR's 9901 and the GSPS's 9902.
SC_SERIES_NUMBER = 9903
SC_SERIES_DESCRIPTION = "mammotriage AI-marked images"
#: Series Description (LO, 64 characters) of a demonstration model's captures.
_DEMONSTRATION_SERIES_DESCRIPTION = f"AI-marked images, {DEMONSTRATION_ONLY.meaning}"
#: Longest side of a capture, in pixels: a 4096 x 3328 mammogram becomes 2048 x 1664, about
#: 3.4 MB at 8 bits, shown whole on a 5 MP reading monitor.
MAX_SIDE = 2048
#: Bumped whenever the drawing changes, so that a capture drawn differently is a new instance.
_RENDERING = "1"
_DEFAULT_LIMITS = DecodeLimits()
_DRAWN = 255
_RIM = 0
#: DCM 121322 "Source image for image processing operation" (CID 7202).
_SOURCE_PURPOSE = hd.sr.CodedConcept("121322", "DCM", "Source image for image processing operation")


def frame_half_width(shape: tuple[int, int]) -> int:
    """Half the width of a box's white frame in a capture of ``shape`` (rows, columns).

    The white band covers ``2 h + 1`` pixels centred on the box's outermost pixels, and a
    black rim ``h`` pixels wide lies on each side of it: 1 below 1500 pixels, 2 at 2048.
    """
    return max(1, round(max(shape) / 1000))


def header_lines(content: ReportContent, finding: ReportFinding) -> list[str]:
    """The text across the top of a capture: the view and the category, then the
    demonstration warning for the demonstration model (ASCII, as in the GSPS)."""
    lines = [f"{finding.laterality} {finding.view} - AI category {content.category} of {HIGHEST}"]
    if content.demonstration:
        lines.append(DEMONSTRATION_ONLY.meaning)
    return lines


def _derived_uid(purpose: str, *facts: str) -> str:
    return str(generate_uid(entropy_srcs=[f"mammotriage-sc-{purpose}", *facts]))


def _capture_fingerprint(
    content: ReportContent,
    image: Dataset,
    findings: Sequence[ReportFinding],
    algorithm: AlgorithmIdentity,
    max_side: int | None,
) -> str:
    """What a capture shows: only these facts, so that a rescore that leaves an image's
    marks as they were re-sends the same instance."""
    facts = {
        "study": str(image.StudyInstanceUID),
        "source": str(image.SOPInstanceUID),
        "algorithm": [algorithm.name, algorithm.version, algorithm.sha256],
        "category": content.category,
        "demonstration": content.demonstration,
        "findings": [[f.laterality, f.view, list(f.box), f.score] for f in findings],
        "rendering": [_RENDERING, max_side],
    }
    return json.dumps(facts, sort_keys=True, separators=(",", ":"))


def _windowed(ds: Dataset, limits: DecodeLimits) -> np.ndarray:
    """The image as a viewer shows it by default, as float32 in [0, 1], dense tissue bright.

    An image with both a window and a VOI LUT keeps its window, as the GSPS does (the
    viewer's usual default; PS3.3 C.11.2 allows both).
    """
    stored, _ = decode_pixels(ds, limits=limits)
    header = ds
    if "WindowCenter" in ds and "WindowWidth" in ds and "VOILUTSequence" in ds:
        header = Dataset()
        header.update(ds)
        del header.VOILUTSequence
    intent = str(ds.get("PresentationIntentType") or "").strip().upper()
    return to_display(stored, voi_params(header, use_voi=intent != "FOR PROCESSING"))


def _fit(display: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float, float]:
    """``display`` as 8-bit pixels, scaled down to ``max_side`` on its longest side; with
    the scale along columns and rows (new size over old)."""
    rows, columns = display.shape
    if max_side is not None and max(rows, columns) > max_side:
        scale = max_side / max(rows, columns)
        size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
        resized = PILImage.fromarray(display, mode="F").resize(size, PILImage.Resampling.LANCZOS)
        display = np.asarray(resized)
    pixels = np.rint(np.clip(display, 0.0, 1.0) * 255.0).astype(np.uint8)
    return pixels, pixels.shape[1] / columns, pixels.shape[0] / rows


def _footprint(
    box: tuple[float, float, float, float], sx: float, sy: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The first and last column and row of the pixels a pixel-edge box covers, scaled."""
    rows, columns = shape
    x0, y0, x1, y1 = box
    c0 = min(columns - 1, math.floor(x0 * sx))
    r0 = min(rows - 1, math.floor(y0 * sy))
    c1 = min(columns - 1, max(c0, math.ceil(x1 * sx) - 1))
    r1 = min(rows - 1, max(r0, math.ceil(y1 * sy) - 1))
    return c0, r0, c1, r1


def _frame(
    pixels: np.ndarray, footprint: tuple[int, int, int, int], reach: int, value: int
) -> None:
    """Set every pixel within ``reach`` of the footprint's outermost pixels to ``value``."""
    c0, r0, c1, r1 = footprint
    top, bottom = max(0, r0 - reach), r1 + reach + 1
    left, right = max(0, c0 - reach), c1 + reach + 1
    pixels[top : r0 + reach + 1, left:right] = value
    pixels[max(0, r1 - reach) : bottom, left:right] = value
    pixels[top:bottom, left : c0 + reach + 1] = value
    pixels[top:bottom, max(0, c1 - reach) : right] = value


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's own font (Aileron, built in): no font file to ship or find.
    return ImageFont.load_default(size=size)


def _draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    size: int,
) -> None:
    draw.text(
        xy, text, font=_font(size), fill=_DRAWN, stroke_width=max(1, size // 10), stroke_fill=_RIM
    )


def _text_size(draw: ImageDraw.ImageDraw, text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox(
        (0, 0), text, font=_font(size), stroke_width=max(1, size // 10)
    )
    return math.ceil(right - left), math.ceil(bottom - top)


def _mark(
    pixels: np.ndarray,
    footprints: Sequence[tuple[int, int, int, int]],
    labels: Sequence[str],
    header: Sequence[str],
) -> np.ndarray:
    """Draw the header, the labels above their boxes, then the boxes; return a new array."""
    rows, columns = pixels.shape
    size = min(64, max(12, round(max(rows, columns) / 64)))
    margin = max(2, size // 4)
    canvas = PILImage.fromarray(pixels, mode="L")
    draw = ImageDraw.Draw(canvas)
    # The header shrinks until its longest line fits across the image.
    header_size = size
    while (
        header_size > 8
        and max(_text_size(draw, line, header_size)[0] for line in header) > columns - 2 * margin
    ):
        header_size -= 1
    y = margin
    for line in header:
        _draw_text(draw, (margin, y), line, header_size)
        y += _text_size(draw, line, header_size)[1] + margin
    h = frame_half_width((rows, columns))
    for (c0, r0, _c1, r1), label in zip(footprints, labels, strict=True):
        width, height = _text_size(draw, label, size)
        x = min(max(0, c0 - 2 * h), max(0, columns - width))
        above = r0 - 2 * h - 2 - height
        below = r1 + 2 * h + 2
        top = above if above >= 0 else below if below + height <= rows else r0 + 2 * h + 2
        _draw_text(draw, (x, top), label, size)
    marked = np.array(canvas)
    # All rims first, then all frames: where boxes cross, every white frame stays whole.
    for footprint in footprints:
        _frame(marked, footprint, 2 * h, _RIM)
    for footprint in footprints:
        _frame(marked, footprint, h, _DRAWN)
    return marked


def _read_source(
    path: str | os.PathLike[str], uid: str, index: int, limits: DecodeLimits
) -> Dataset:
    try:
        ds = _read_dataset(Path(path), limits)
    except OSError as exc:
        raise DicomReadError(
            f"cannot read the image of findings[{index}]: {exc.strerror or type(exc).__name__}"
        ) from exc
    if str(ds.get("SOPInstanceUID", "")) != uid:
        raise ValueError(f"the file given for the image of findings[{index}] is another image")
    return ds


def build_secondary_captures(
    content: ReportContent,
    source_images: Sequence[Dataset],
    pixel_files: Mapping[str, str | os.PathLike[str]],
    algorithm: AlgorithmIdentity,
    *,
    institution_name: str | None = None,
    institutional_department_name: str | None = None,
    content_datetime: datetime.datetime | None = None,
    max_side: int | None = MAX_SIDE,
    limits: DecodeLimits = _DEFAULT_LIMITS,
) -> list[hd.sc.SCImage]:
    """Build one Secondary Capture per image with a finding, its findings burnt in.

    Parameters
    ----------
    content:
        The exam result, as for the SR (:func:`~mammotriage.dicom.report.build_measurement_report`).
    source_images:
        Headers (pixel data not needed) of the images the exam was scored from, one study,
        as for the SR and the GSPS.
    pixel_files:
        The file of each image with a finding, by SOP Instance UID (others are ignored):
        its pixels are decoded here (:func:`~mammotriage.dicom.decode.decode_pixels`).
    algorithm:
        The model that produced ``content`` (Manufacturer's Model Name, Software Versions).
    institution_name, institutional_department_name:
        Optional General Equipment attributes of the site that runs mammotriage.
    content_datetime:
        Content, Series, Instance Creation and Secondary Capture Date/Time; now when ``None``.
    max_side:
        Longest side of a capture in pixels; larger images are scaled down, and their boxes
        with them. ``None`` keeps every image at full size.
    limits:
        Size bounds for decoding.

    Returns
    -------
    list[highdicom.sc.SCImage]
        One capture per image with a finding, in the order of the images' first finding;
        empty when the exam has no finding.

    Raises
    ------
    ValueError
        For the same inconsistencies as the SR (empty or mixed-study ``source_images``, a
        finding on an image not among them, of the wrong side, or outside its image); if
        ``pixel_files`` lacks an image with a finding or gives the file of another image.
    DicomReadError
        If the file of an image with a finding cannot be read or its pixels decoded.
    """
    if max_side is not None and max_side < 64:
        raise ValueError(f"max_side must be at least 64 pixels or None, got {max_side!r}")
    by_uid = _check_sources(source_images)
    for index, finding in enumerate(content.findings):
        _check_finding(index, finding, by_uid.get(finding.sop_instance_uid))
    by_image: dict[str, list[ReportFinding]] = {}
    first_index: dict[str, int] = {}
    for index, finding in enumerate(content.findings):
        by_image.setdefault(finding.sop_instance_uid, []).append(finding)
        first_index.setdefault(finding.sop_instance_uid, index)
        if finding.sop_instance_uid not in pixel_files:
            raise ValueError(f"pixel_files lacks the file of the image of findings[{index}]")

    when = content_datetime or datetime.datetime.now()
    series_uid = _derived_uid(
        "series", str(source_images[0].StudyInstanceUID), str(content.demonstration)
    )
    description = (
        _DEMONSTRATION_SERIES_DESCRIPTION if content.demonstration else SC_SERIES_DESCRIPTION
    )
    captures = []
    for number, (uid, findings) in enumerate(by_image.items(), start=1):
        index = first_index[uid]
        header = by_uid[uid]
        source = _read_source(pixel_files[uid], uid, index, limits)
        pixels, sx, sy = _fit(_windowed(source, limits), max_side)
        footprints = [_footprint(f.box, sx, sy, pixels.shape) for f in findings]
        marked = _mark(
            pixels,
            footprints,
            [f"AI {f.score}" for f in findings],
            header_lines(content, findings[0]),
        )
        fingerprint = _capture_fingerprint(content, header, findings, algorithm, max_side)
        capture = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=_study_header(header),
            pixel_array=marked,
            photometric_interpretation=hd.PhotometricInterpretationValues.MONOCHROME2,
            bits_allocated=8,
            # highdicom needs an orientation for PATIENT and accepts single letters only;
            # the image's own (mammograms use "FR", "FL": PS3.3 C.7.6.1.1.1) replaces it.
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            patient_orientation=("A", "F"),
            series_instance_uid=series_uid,
            series_number=SC_SERIES_NUMBER,
            sop_instance_uid=_derived_uid("instance", fingerprint),
            instance_number=number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=algorithm.name,
            software_versions=algorithm.version,
            institution_name=institution_name,
            institutional_department_name=institutional_department_name,
            series_description=description,
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
        if "PatientOrientation" in header:
            capture.PatientOrientation = header.PatientOrientation
        else:
            capture.PatientOrientation = []
        # Laterality (Type 2C, General Series) is a series attribute and the series holds
        # both breasts: empty (unknown), as the GSPS leaves it for findings on both.
        capture.Laterality = ""
        capture.ImageType = ["DERIVED", "SECONDARY"]
        capture.BurnedInAnnotation = "YES"
        capture.ConversionType = "WSD"
        capture.SecondaryCaptureDeviceManufacturer = MANUFACTURER
        capture.SecondaryCaptureDeviceManufacturerModelName = algorithm.name
        capture.SecondaryCaptureDeviceSoftwareVersions = algorithm.version
        capture.DerivationDescription = (
            f"{header_lines(content, findings[0])[0]}; "
            f"{len(findings)} AI finding box(es) burnt in"
            + (f"; {DEMONSTRATION_ONLY.meaning}" if content.demonstration else "")
        )
        reference = Dataset()
        reference.ReferencedSOPClassUID = header.SOPClassUID
        reference.ReferencedSOPInstanceUID = header.SOPInstanceUID
        reference.PurposeOfReferenceCodeSequence = [_SOURCE_PURPOSE]
        capture.SourceImageSequence = [reference]
        # The window a viewer should use: the pixels are already the displayed values.
        capture.WindowCenter = 128
        capture.WindowWidth = 256
        # After the modality's and highdicom's items: the model, as in the SR.
        capture.add_new(
            "ContributingEquipmentSequence",
            "SQ",
            [
                *capture.get("ContributingEquipmentSequence", []),
                algorithm_equipment(algorithm, when),
            ],
        )
        # highdicom stamps times with the wall clock; the given time replaces them, so that
        # the same input gives the same bytes.
        for keyword in ("Series", "Content", "InstanceCreation"):
            setattr(capture, f"{keyword}Date", DA(when.date()))
            setattr(capture, f"{keyword}Time", TM(when.time()))
        capture.DateOfSecondaryCapture = DA(when.date())
        capture.TimeOfSecondaryCapture = TM(when.time())
        for equipment in capture.ContributingEquipmentSequence:
            equipment.ContributionDateTime = DT(when)
        captures.append(capture)
    return captures
