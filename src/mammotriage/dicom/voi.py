"""Stored values -> display intensities in [0, 1] with dense tissue bright.

The order is the standard's pipeline (PS3.4 N.2, Grayscale Transformations): mask to
BitsStored, Modality LUT (rescale slope/intercept), VOI LUT (window or LUT sequence),
Presentation LUT (MONOCHROME1 / INVERSE). Everything here is pure array math; the dataset
is read once into :class:`VoiParams` at the boundary.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from mammotriage.errors import DicomReadError

_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Pixels per band of :func:`to_display` (8 MB of float64 per working copy).
_BAND_PIXELS = 1 << 20
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _")


def coded(value: str) -> str:
    """A coded value (VR CS: at most 16 upper-case letters, digits, spaces, underscores) as
    it may appear in a reason; anything else is free text, perhaps an identifier or pages
    of it, and is never quoted."""
    if value and len(value) <= 16 and set(value) <= _CODE_CHARS:
        return value
    return "not a valid code"


class VOILUTFunction(str, enum.Enum):
    """VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True, eq=False)
class VoiParams:
    """Everything the grayscale pipeline needs, read from one dataset."""

    bits_stored: int
    signed: bool
    slope: float = 1.0
    intercept: float = 0.0
    window_center: float | None = None
    window_width: float | None = None
    function: VOILUTFunction = VOILUTFunction.LINEAR
    lut_first: int = 0
    lut_bits: int = 16
    lut_data: np.ndarray | None = None
    invert: bool = False


def _first_number(value: object) -> float | None:
    """First of a possibly multi-valued DS (the standard's default window is the first)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and not isinstance(
        value, (str, bytes)
    ):
        try:
            value = value[0]
        except (IndexError, TypeError):
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def voi_params(ds: Dataset, *, use_voi: bool = True) -> VoiParams:
    """Read the grayscale pipeline's parameters, refusing values that make no sense.

    Raises
    ------
    DicomReadError
        If BitsStored or the photometric interpretation cannot be used.
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomReadError(
            f"not a greyscale mammogram (PhotometricInterpretation {coded(photometric)})"
        )
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    if not 1 <= bits_stored <= bits_allocated:
        raise DicomReadError(
            f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}"
        )
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    slope = _first_number(ds.get("RescaleSlope")) or 1.0
    intercept = _first_number(ds.get("RescaleIntercept")) or 0.0
    # Rescaled values must fit float32, the type of the image's pixels: 1e39 or 1e30 x
    # 65535 is no physical quantity, and it turns into infinity or NaN along the pipeline.
    largest = abs(slope) * float(1 << bits_stored) + abs(intercept)
    if not largest <= _FLOAT32_MAX:
        raise DicomReadError(
            "RescaleSlope or RescaleIntercept out of range: rescaled values exceed float32"
        )
    shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    invert = photometric == "MONOCHROME1" or shape == "INVERSE"

    params = dict(
        bits_stored=bits_stored, signed=signed, slope=slope, intercept=intercept, invert=invert
    )
    if not use_voi:
        return VoiParams(**params)  # type: ignore[arg-type]

    lut_seq = ds.get("VOILUTSequence")
    if lut_seq:
        item = lut_seq[0]
        descriptor = item.get("LUTDescriptor")
        data = item.get("LUTData")
        if descriptor is not None and data is not None and len(descriptor) == 3:
            entries = int(descriptor[0]) or 65536
            first = int(descriptor[1])
            lut_bits = int(descriptor[2])
            if isinstance(data, bytes):
                table = np.frombuffer(data, dtype="<u2" if lut_bits > 8 else "u1")
            else:
                table = np.asarray(data, dtype=np.float64)
            table = np.asarray(table[:entries], dtype=np.float32)
            if table.size and 1 <= lut_bits <= 16:
                return VoiParams(**params, lut_first=first, lut_bits=lut_bits, lut_data=table)  # type: ignore[arg-type]

    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        raw = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
        try:
            function = VOILUTFunction(raw)
        except ValueError:
            function = VOILUTFunction.LINEAR
        return VoiParams(**params, window_center=center, window_width=width, function=function)  # type: ignore[arg-type]
    return VoiParams(**params)  # type: ignore[arg-type]


def mask_bits(stored: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Drop bits above BitsStored (overlays and garbage live there) and sign-extend."""
    if stored.dtype.kind == "f":
        return stored  # already block-averaged from masked integer values
    wide = np.int32 if bits_stored < 31 else np.int64
    values = stored.astype(wide, copy=False) & wide((1 << bits_stored) - 1)
    if signed:
        sign_bit = 1 << (bits_stored - 1)
        values = (values ^ sign_bit) - sign_bit
    return values


def to_display(stored: np.ndarray, p: VoiParams) -> np.ndarray:
    """Apply modality, VOI and presentation transforms; return float32 in [0, 1].

    Without a window or LUT (For Processing images, many research archives), the output
    spans the robust range of the image (0.5th to 99.5th percentile of its values), which is
    what a viewer's auto-window does.

    The arithmetic runs in float64, a band of rows at a time: window centres and widths
    near float32's limits (1e39, 1e-46) overflow or vanish in float32 and turned whole
    images into NaN; a band keeps the float64 working copy small. Values that still come
    out NaN are refused with a reason, never handed on.

    Raises
    ------
    DicomReadError
        If the transforms give values that are not numbers.
    """
    out = np.empty(stored.shape, dtype=np.float32)
    lo = hi = 0.0
    auto = p.lut_data is None and (p.window_center is None or p.window_width is None)
    if auto:
        sample = _modality(
            stored[:: max(1, stored.shape[0] // 256), :: max(1, stored.shape[1] // 256)], p
        )
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    band = max(1, _BAND_PIXELS // max(1, stored.shape[1]))
    for start in range(0, stored.shape[0], band):
        values = _modality(stored[start : start + band], p)
        # Overflow to infinity is a window's limit (clipped to 0 or 1 below); NaN is checked.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if p.lut_data is not None:
                index = np.clip(np.rint(values) - p.lut_first, 0, p.lut_data.size - 1)
                chunk = p.lut_data[index.astype(np.intp)] / float((1 << p.lut_bits) - 1)
            elif not auto:
                assert p.window_center is not None and p.window_width is not None
                chunk = _window(values, p.window_center, p.window_width, p.function)
            else:
                chunk = (values - lo) / max(hi - lo, 1e-6)
        if np.isnan(chunk).any():
            raise DicomReadError(
                "pixel values are not finite after rescale and VOI (window or rescale out of "
                "range)"
            )
        np.clip(chunk, 0.0, 1.0, out=out[start : start + band], casting="same_kind")
    if p.invert:
        np.subtract(np.float32(1.0), out, out=out)
    return out


def _modality(stored: np.ndarray, p: VoiParams) -> np.ndarray:
    """Stored values masked to BitsStored and rescaled (Modality LUT), as float64."""
    values = mask_bits(stored, p.bits_stored, p.signed).astype(np.float64)
    values *= p.slope
    values += p.intercept
    return values


def _window(
    values: np.ndarray, center: float, width: float, function: VOILUTFunction
) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT) and C.11.2.1.3.1 (SIGMOID), output in [0, 1]."""
    if function is VOILUTFunction.SIGMOID:
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function is VOILUTFunction.LINEAR_EXACT:
        return (values - (center - width / 2.0)) / width
    if width < 1:
        width = 1.0
    if width > 1:
        return (values - (center - 0.5)) / (width - 1.0) + 0.5
    return (values >= center).astype(np.float32)
