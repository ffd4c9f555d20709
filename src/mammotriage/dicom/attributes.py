"""Laterality, view, orientation and screening-use decisions, each with its source.

Real archives put these facts in many places, or nowhere: ImageLaterality or only the
series-level Laterality, ViewPosition or only the ViewCodeSequence (SNOMED or the older SRT
codes of CID 4014), or only text such as a SeriesDescription "R MLO" or a research
archive's file name "P_00005_RIGHT_CC". Each fact is taken from the most authoritative
place that has it, in a fixed order, and that place is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from mammotriage.dicom.model import Laterality, Source, ViewPosition

# CID 4014 View for Mammography: SNOMED CT and the legacy SNOMED-RT (SRT) values.
VIEW_CODES: dict[str, ViewPosition] = {
    "399162004": ViewPosition.CC, "R-10242": ViewPosition.CC,
    "399368009": ViewPosition.MLO, "R-10226": ViewPosition.MLO,
    "399260004": ViewPosition.ML, "R-10224": ViewPosition.ML,
    "399352003": ViewPosition.LM, "R-10228": ViewPosition.LM,
    "399099002": ViewPosition.LMO, "R-10230": ViewPosition.LMO,
    "399192003": ViewPosition.XCCL, "R-1024A": ViewPosition.XCCL,
    "399101009": ViewPosition.XCCM, "R-1024B": ViewPosition.XCCM,
    "399196006": ViewPosition.FB, "R-10244": ViewPosition.FB,
    "399188001": ViewPosition.SIO, "R-102CF": ViewPosition.SIO,
}
VIEW_MEANINGS: dict[str, ViewPosition] = {
    "cranio-caudal": ViewPosition.CC,
    "medio-lateral oblique": ViewPosition.MLO,
    "medio-lateral": ViewPosition.ML,
    "latero-medial": ViewPosition.LM,
    "latero-medial oblique": ViewPosition.LMO,
    "exaggerated cranio-caudal": ViewPosition.XCCL,
    "caudo-cranial": ViewPosition.FB,
}

# CID 4015 View Modifier for Mammography, the ones that decide screening use.
SPOT_COMPRESSION = frozenset({"399055006", "R-102D7"})
MAGNIFICATION = frozenset({"399163009", "R-102D6"})
IMPLANT_DISPLACED = frozenset({"399209000", "R-102D5"})

SOP_DIGITAL_MAMMOGRAPHY = frozenset({
    "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1",
})
SOP_SECONDARY_CAPTURE = frozenset({
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3",
})
SOP_TOMOSYNTHESIS = frozenset({
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # Breast Tomosynthesis Image
    "1.2.840.10008.5.1.4.1.1.13.1.4",  # Breast Projection X-Ray, For Presentation
    "1.2.840.10008.5.1.4.1.1.13.1.5",  # Breast Projection X-Ray, For Processing
})
SOP_OTHER_IMAGES = frozenset({
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
})

_VIEW_WORDS = "XCCL|XCCM|MLO|LMO|CC|ML|LM|FB|SIO|AT"
_SEP = r"[\s_\-\.\^/,]*"
_LAT_VIEW = re.compile(rf"(?<![A-Z0-9])(LEFT|RIGHT|L|R){_SEP}({_VIEW_WORDS})(?![A-Z])")
_VIEW_LAT = re.compile(rf"(?<![A-Z0-9])({_VIEW_WORDS}){_SEP}(LEFT|RIGHT|L|R)(?![A-Z])")
_LAT_WORD = re.compile(r"(?<![A-Z])(LEFT|RIGHT)(?![A-Z])")
_VIEW_WORD = re.compile(rf"(?<![A-Z])({_VIEW_WORDS})(?![A-Z])")
_OBLIQUE = re.compile(r"(?<![A-Z])(OBLIQUE|MEDIO-?LATERAL OBLIQUE)(?![A-Z])")
_CRANIO = re.compile(r"(?<![A-Z])(CRANIO-?CAUDAL)(?![A-Z])")


def _lat(word: str) -> Laterality:
    return Laterality.LEFT if word.startswith("L") else Laterality.RIGHT


@dataclass(frozen=True)
class TextHint:
    """Laterality and view found in one free-text field."""

    laterality: Laterality = Laterality.UNKNOWN
    view: ViewPosition = ViewPosition.UNKNOWN


def parse_text(text: str) -> TextHint:
    """Find laterality and view in free text such as "L CC", "RMLO", "P_00005_RIGHT_CC"."""
    upper = text.upper()
    for pattern, lat_group, view_group in ((_LAT_VIEW, 1, 2), (_VIEW_LAT, 2, 1)):
        m = pattern.search(upper)
        if m:
            return TextHint(_lat(m.group(lat_group)), ViewPosition(m.group(view_group)))
    lat = Laterality.UNKNOWN
    m = _LAT_WORD.search(upper)
    if m:
        lat = _lat(m.group(1))
    view = ViewPosition.UNKNOWN
    m = _VIEW_WORD.search(upper)
    if m:
        view = ViewPosition(m.group(1))
    elif _OBLIQUE.search(upper):
        view = ViewPosition.MLO
    elif _CRANIO.search(upper):
        view = ViewPosition.CC
    return TextHint(lat, view)


def _text_fields(ds: Dataset, path: Path | None) -> list[tuple[Source, str]]:
    fields = [
        (Source.SERIES_DESCRIPTION, str(ds.get("SeriesDescription", "") or "")),
        (Source.PROTOCOL_NAME, str(ds.get("ProtocolName", "") or "")),
        (Source.PATIENT_ID, str(ds.get("PatientID", "") or "")),
    ]
    if path is not None:
        fields.append((Source.FILE_NAME, "/".join(path.parts[-2:])))
    return [(s, t) for s, t in fields if t]


def _code_items(ds: Dataset, keyword: str) -> list[Dataset]:
    seq = ds.get(keyword)
    return list(seq) if seq else []


def _frame_laterality(ds: Dataset) -> Laterality:
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in _code_items(ds, group)[:1]:
            for anatomy in _code_items(item, "FrameAnatomySequence"):
                value = str(anatomy.get("FrameLaterality", "")).strip().upper()
                if value in ("L", "R"):
                    return Laterality(value)
    return Laterality.UNKNOWN


def infer_laterality(ds: Dataset, path: Path | None) -> tuple[Laterality, Source]:
    """ImageLaterality, else Laterality, else frame-level tags, else text; UNKNOWN otherwise
    (the reader then asks the pixels)."""
    for keyword, source in (
        ("ImageLaterality", Source.IMAGE_LATERALITY),
        ("Laterality", Source.LATERALITY),
    ):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in ("L", "R"):
            return Laterality(value), source
    frame = _frame_laterality(ds)
    if frame is not Laterality.UNKNOWN:
        return frame, Source.FUNCTIONAL_GROUPS
    for source, text in _text_fields(ds, path):
        hint = parse_text(text)
        if hint.laterality is not Laterality.UNKNOWN:
            return hint.laterality, source
    return Laterality.UNKNOWN, Source.NONE


def _view_from_position(value: str) -> ViewPosition:
    value = value.strip().upper().replace(" ", "")
    if value.endswith("ID") and value[:-2] in ViewPosition.__members__:
        value = value[:-2]  # "CCID", "MLOID": implant-displaced variants
    if (
        value[:1] in ("L", "R")
        and value[1:] in ViewPosition.__members__
        and value not in ("LM", "LMO", "RL", "RM")
    ):
        value = value[1:]  # "LCC", "RMLO"
    try:
        return ViewPosition(value)
    except ValueError:
        return ViewPosition.UNKNOWN


def _view_from_codes(ds: Dataset) -> ViewPosition:
    for item in _code_items(ds, "ViewCodeSequence"):
        code = str(item.get("CodeValue", "") or "").strip().upper()
        if code in VIEW_CODES:
            return VIEW_CODES[code]
        meaning = str(item.get("CodeMeaning", "") or "").strip().lower()
        if meaning in VIEW_MEANINGS:
            return VIEW_MEANINGS[meaning]
    return ViewPosition.UNKNOWN


def _view_from_orientation(ds: Dataset) -> ViewPosition:
    orientation = [str(v).upper() for v in (ds.get("PatientOrientation") or [])]
    if len(orientation) != 2:
        return ViewPosition.UNKNOWN
    column = orientation[1]
    if "F" in column or "H" in column:
        return ViewPosition.MLO
    if column in ("L", "R"):
        return ViewPosition.CC
    return ViewPosition.UNKNOWN


def infer_view(ds: Dataset, path: Path | None) -> tuple[ViewPosition, Source]:
    """ViewPosition, else ViewCodeSequence, else (0018,1400), else PatientOrientation,
    else text."""
    view = _view_from_position(str(ds.get("ViewPosition", "") or ""))
    if view is not ViewPosition.UNKNOWN:
        return view, Source.VIEW_POSITION
    view = _view_from_codes(ds)
    if view is not ViewPosition.UNKNOWN:
        return view, Source.VIEW_CODE_SEQUENCE
    description = str(ds.get("AcquisitionDeviceProcessingDescription", "") or "")
    if description:
        hint = parse_text(description)
        if hint.view is not ViewPosition.UNKNOWN:
            return hint.view, Source.DEVICE_PROCESSING_DESCRIPTION
    view = _view_from_orientation(ds)
    if view is not ViewPosition.UNKNOWN:
        return view, Source.PATIENT_ORIENTATION
    for source, text in _text_fields(ds, path):
        hint = parse_text(text)
        if hint.view is not ViewPosition.UNKNOWN:
            return hint.view, source
    return ViewPosition.UNKNOWN, Source.NONE


def view_modifiers(ds: Dataset) -> set[str]:
    """Code values of the View Modifier Code Sequence, wherever the file puts it."""
    codes: set[str] = set()
    for item in _code_items(ds, "ViewCodeSequence"):
        for mod in _code_items(item, "ViewModifierCodeSequence"):
            codes.add(str(mod.get("CodeValue", "") or "").strip().upper())
    for mod in _code_items(ds, "ViewModifierCodeSequence"):
        codes.add(str(mod.get("CodeValue", "") or "").strip().upper())
    return codes


def orientation_from_tags(
    ds: Dataset, view: ViewPosition, laterality: Laterality
) -> tuple[bool, bool] | None:
    """Flips to canonical (chest wall left, superior or lateral side up) from PatientOrientation.

    PatientOrientation (0020,0020) gives the patient direction of the rows and the columns
    (PS3.3 C.7.6.1.1.1). The row direction is A when the nipple points right (chest wall
    on the left) and P when it points left. For the MLO family the column direction should
    go towards the feet (F); for CC it should go from lateral to medial, i.e. towards the
    patient's right for the left breast and towards the left for the right breast.
    """
    values = [str(v).strip().upper() for v in (ds.get("PatientOrientation") or [])]
    if len(values) != 2 or not values[0] or values[0][0] not in "AP":
        return None
    flip_h = values[0][0] == "P"
    column = values[1]
    flip_v = False
    if "H" in column:
        flip_v = True
    elif column in ("L", "R") and laterality is not Laterality.UNKNOWN and view is ViewPosition.CC:
        # For the left breast lateral is towards L; lateral at the bottom means flip.
        flip_v = column == laterality.value
    return flip_h, flip_v


def chest_wall_on_right(pixels: np.ndarray) -> bool:
    """Pixel evidence for orientation: the chest wall is the side where the breast touches
    the image edge, so the brighter (more tissue) outer strip wins."""
    cols = pixels.shape[1]
    strip = max(1, cols // 8)
    left = float(pixels[:, :strip].mean())
    right = float(pixels[:, cols - strip :].mean())
    return right > left
