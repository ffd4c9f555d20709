"""THE image -> tensor function: one code path for training and inference.

A model learns whatever the preprocessing shows it, so training and serving must run the very
same function; anything else (a different crop, flip or normalisation) is train/serve skew that
silently costs sensitivity. Everything here is pure array math: pixels in, a channel-first
float32 tensor and a :class:`Transform` out. The parameters travel in the model's sidecar file
(:meth:`PreprocessParams.to_dict` / :meth:`PreprocessParams.from_dict`), not in code constants.
The breast mask comes from :mod:`mammotriage.segmentation` (:func:`breast_mask` is
re-exported here).

Coordinates are continuous pixel-edge coordinates ``(x, y)``: pixel ``(col, row)`` spans
``[col, col + 1) x [row, row + 1)``. Boxes are ``(x0, y0, x1, y1)`` with ``x0 <= x1``,
``y0 <= y1``. "Original" means the pixel grid of the stored DICOM image (Rows x Columns),
"decoded" the grid actually decoded (one decoded pixel = ``decode_scale`` original pixels per
axis), "canonical" the decoded grid flipped so that the chest wall is on the left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, NoReturn, get_args

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage

from mammotriage.errors import ConfigError, DicomReadError
from mammotriage.segmentation import (
    BoolArray,
    FloatArray,
    breast_mask,
    resize_mask,
    segment,
    working_image,
)

if TYPE_CHECKING:
    from mammotriage.dicom.model import Image

__all__ = [
    "Box",
    "Normalisation",
    "PreprocessParams",
    "Transform",
    "breast_mask",
    "flip",
    "preprocess",
    "preprocess_image",
]

Normalisation = Literal["zscore", "minmax"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True, kw_only=True)
class PreprocessParams:
    """How an image becomes a model input; written into the model's sidecar at export.

    Parameters
    ----------
    input_height, input_width
        Model input size in pixels. Mammograms are portrait, hence 512 x 256 by default.
    margin
        Crop margin around the breast's bounding box, as a fraction of the box's extent on
        each axis, so that the skin line is never cut by the crop itself.
    normalisation
        ``"zscore"``: ``(v - mean) / std`` on the [0, 1] intensities, with ``mean`` and
        ``std`` measured on the training set. ``"minmax"``: per image, the breast's darkest
        and brightest pixels map to 0 and 1 (``mean``/``std`` unused).
    mean, std
        Used by ``"zscore"``. The defaults are the identity; real values come from the
        sidecar.
    version
        Preprocessing version; a model refuses inputs made by another version.
    """

    input_height: int = 512
    input_width: int = 256
    margin: float = 0.02
    normalisation: Normalisation = "zscore"
    mean: float = 0.0
    std: float = 1.0
    version: str = "1"

    def __post_init__(self) -> None:
        for name in ("input_height", "input_width", "margin", "mean", "std"):
            value = getattr(self, name)
            kind = int if name.startswith("input") else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                allowed = "an int" if kind is int else "a float"
                _reject(name, value, allowed, TypeError)
            if not math.isfinite(value):
                _reject(name, value, "a finite number")
        if self.input_height < 1 or self.input_width < 1:
            bad = "input_height" if self.input_height < 1 else "input_width"
            _reject(bad, getattr(self, bad), "a positive int")
        if not 0.0 <= self.margin < 0.5:
            _reject("margin", self.margin, "a fraction in [0, 0.5)")
        if self.std <= 0.0:
            _reject("std", self.std, "a positive number")
        if self.normalisation not in get_args(Normalisation):
            _reject("normalisation", self.normalisation, f"one of {get_args(Normalisation)}")
        if not isinstance(self.version, str) or not self.version.strip():
            _reject("version", self.version, "a non-empty string")

    @property
    def background_value(self) -> float:
        """Value of everything outside the breast: what intensity 0 normalises to."""
        if self.normalisation == "zscore":
            return (0.0 - self.mean) / self.std
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for the model sidecar."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessParams:
        """Read the parameters from a model sidecar.

        Every key is required: a missing ``mean`` silently replaced by a default would be
        exactly the train/serve skew this module exists to prevent.

        Raises
        ------
        ConfigError
            If ``data`` is not a mapping, has unknown or missing keys, or holds a value of the
            wrong type or out of range.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"Preprocessing parameters must be a mapping, got {type(data).__name__}."
            )
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names), key=str)
        if unknown:
            raise ConfigError(
                f"Unknown preprocessing parameter(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(names)}."
            )
        missing = [name for name in names if name not in data]
        if missing:
            raise ConfigError(f"Missing preprocessing parameter(s): {', '.join(missing)}.")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid preprocessing parameters: {exc}") from exc


def _reject(
    name: str, value: object, allowed: str, error: type[Exception] = ValueError
) -> NoReturn:
    raise error(f'Argument "{name}" must be {allowed}, got {value!r}.')


@dataclass(frozen=True)
class Transform:
    """Where the model input came from, so that regions map back to the original pixels.

    Forward, an original coordinate is divided by ``decode_scale`` (decoded grid), mirrored
    by the flips (canonical grid), shifted by the crop origin, scaled by ``scale_x`` /
    ``scale_y`` and shifted by the padding offsets. All boxes are pixel-edge coordinates.

    Attributes
    ----------
    decode_scale
        Original pixels per decoded pixel, per axis.
    flip_horizontal, flip_vertical
        Flips applied to the decoded image to reach the canonical orientation.
    decoded_shape, resized_shape, input_shape
        ``(rows, columns)`` of the decoded image, of the crop after resizing, of the input.
    crop_box
        ``(x0, y0, x1, y1)`` of the crop in canonical decoded pixels, ends exclusive.
    pad_top, pad_left
        Where the resized crop sits in the input (top-left: the chest wall stays left).
    """

    decode_scale: float
    flip_horizontal: bool
    flip_vertical: bool
    decoded_shape: tuple[int, int]
    crop_box: tuple[int, int, int, int]
    resized_shape: tuple[int, int]
    pad_top: int
    pad_left: int
    input_shape: tuple[int, int]

    @property
    def scale_x(self) -> float:
        """Input pixels per canonical decoded pixel along x (exact, after rounding)."""
        return self.resized_shape[1] / (self.crop_box[2] - self.crop_box[0])

    @property
    def scale_y(self) -> float:
        """Input pixels per canonical decoded pixel along y (exact, after rounding)."""
        return self.resized_shape[0] / (self.crop_box[3] - self.crop_box[1])

    def to_input(self, box: Box) -> Box:
        """Map a box in original pixel coordinates to model-input coordinates.

        Boxes outside the crop map outside ``[0, input)``; they are not clipped so that
        :meth:`to_original` inverts this exactly.
        """
        x0, y0, x1, y1 = self._mirror(*(float(v) / self.decode_scale for v in box))
        ax, bx, ay, by = self._affine()
        return (x0 * ax + bx, y0 * ay + by, x1 * ax + bx, y1 * ay + by)

    def to_original(self, box: Box) -> Box:
        """Map a box in model-input coordinates back to original pixel coordinates."""
        ax, bx, ay, by = self._affine()
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, y0, x1, y1 = self._mirror(
            (x0 - bx) / ax, (y0 - by) / ay, (x1 - bx) / ax, (y1 - by) / ay
        )
        s = self.decode_scale
        return (x0 * s, y0 * s, x1 * s, y1 * s)

    def _affine(self) -> tuple[float, float, float, float]:
        """Canonical decoded -> input as ``x * ax + bx``, ``y * ay + by``."""
        sx, sy = self.scale_x, self.scale_y
        return sx, self.pad_left - self.crop_box[0] * sx, sy, self.pad_top - self.crop_box[1] * sy

    def _mirror(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        """Decoded <-> canonical (a flip is its own inverse); keeps ``x0 <= x1``, ``y0 <= y1``."""
        rows, cols = self.decoded_shape
        if self.flip_horizontal:
            x0, x1 = cols - x1, cols - x0
        if self.flip_vertical:
            y0, y1 = rows - y1, rows - y0
        return (x0, y0, x1, y1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists), e.g. to store next to a finding."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def preprocess(
    pixels: npt.ArrayLike,
    *,
    params: PreprocessParams,
    flip_horizontal: bool = False,
    flip_vertical: bool = False,
    decode_scale: float = 1.0,
) -> tuple[FloatArray, Transform]:
    """Turn a mammogram into the model input; the one function training and inference share.

    Steps: flip to canonical (chest wall left); segment the breast; crop to the breast's
    bounding box plus margin (the whole image if no breast is found); resize keeping the
    aspect ratio to fit ``(input_height, input_width)`` (area averaging when shrinking, so
    that reduced-resolution and full-resolution decodes look alike); pad at the bottom/right;
    normalise; set everything outside the breast to the background value so that burned-in
    labels and markers never reach the model.

    Parameters
    ----------
    pixels
        2-D intensities in [0, 1], dense tissue bright, in the stored geometry.
    params
        The model's preprocessing parameters.
    flip_horizontal, flip_vertical
        Whether the stored image must be mirrored to put the chest wall on the left and the
        superior/lateral side at the top (decided by the DICOM reader).
    decode_scale
        Original pixels per decoded pixel (e.g. 4 for a JPEG 2000 decode at 1/4 resolution),
        so that the :class:`Transform` maps boxes to and from the original pixels.

    Returns
    -------
    tensor
        float32 array of shape ``(1, input_height, input_width)``.
    transform
        The geometry, for mapping boxes between original pixels and the model input.

    Raises
    ------
    ValueError
        If ``pixels`` is not a non-empty 2-D array of finite values, or ``decode_scale`` is
        not positive.
    """
    array = np.ascontiguousarray(pixels, dtype=np.float32)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f'Argument "pixels" must be a non-empty 2-D array, got {array.shape}.')
    if not (math.isfinite(decode_scale) and decode_scale > 0):
        raise ValueError(f'Argument "decode_scale" must be positive, got {decode_scale}.')
    rows, cols = array.shape
    stored = PILImage.fromarray(array)

    work = flip(working_image(stored), flip_horizontal, flip_vertical)
    mask = segment(work)
    found = bool(mask.any())
    crop = _crop_box(mask, (rows, cols), params.margin) if found else (0, 0, cols, rows)

    crop_w, crop_h = crop[2] - crop[0], crop[3] - crop[1]
    fit = min(params.input_height / crop_h, params.input_width / crop_w)
    out_h = min(params.input_height, max(1, round(crop_h * fit)))
    out_w = min(params.input_width, max(1, round(crop_w * fit)))

    # Resample straight from the stored image (no full-size flipped copy) and flip the small
    # result; BOX averages whole areas when shrinking, BILINEAR interpolates when enlarging.
    x0, x1 = (cols - crop[2], cols - crop[0]) if flip_horizontal else (crop[0], crop[2])
    y0, y1 = (rows - crop[3], rows - crop[1]) if flip_vertical else (crop[1], crop[3])
    resample = PILImage.Resampling.BOX if fit <= 1.0 else PILImage.Resampling.BILINEAR
    resized = np.asarray(stored.resize((out_w, out_h), resample, box=(x0, y0, x1, y1)))
    resized = flip(resized, flip_horizontal, flip_vertical)

    if found:
        inside = resize_mask(mask, (rows, cols), crop, (out_h, out_w))
    else:
        inside = np.ones((out_h, out_w), dtype=bool)

    tensor = np.full(
        (1, params.input_height, params.input_width), params.background_value, dtype=np.float32
    )
    tensor[0, :out_h, :out_w] = _normalise(resized, inside, params)
    transform = Transform(
        decode_scale=float(decode_scale),
        flip_horizontal=bool(flip_horizontal),
        flip_vertical=bool(flip_vertical),
        decoded_shape=(rows, cols),
        crop_box=crop,
        resized_shape=(out_h, out_w),
        pad_top=0,
        pad_left=0,
        input_shape=(params.input_height, params.input_width),
    )
    return tensor, transform


def preprocess_image(image: Image, params: PreprocessParams) -> tuple[FloatArray, Transform]:
    """:func:`preprocess` an :class:`~mammotriage.dicom.model.Image` with its own flips and scale.

    Raises
    ------
    DicomReadError
        If the image carries no pixels (it was not decoded, or was unusable).
    """
    if image.pixels is None:
        raise DicomReadError("image has no pixels")
    return preprocess(
        image.pixels,
        params=params,
        flip_horizontal=image.flip_horizontal,
        flip_vertical=image.flip_vertical,
        decode_scale=image.decode_scale,
    )


# --- geometry and intensities ---------------------------------------------------------------


def flip(array: npt.NDArray[Any], horizontal: bool, vertical: bool) -> npt.NDArray[Any]:
    """Mirror ``array`` (a view); with the reader's flips, from stored to canonical."""
    if horizontal:
        array = array[:, ::-1]
    if vertical:
        array = array[::-1, :]
    return array


def _crop_box(mask: BoolArray, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """Bounding box of the working-grid mask in canonical decoded pixels, plus margin."""
    rows, cols = shape
    sy, sx = rows / mask.shape[0], cols / mask.shape[1]
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    x0, x1 = xs[0] * sx, (xs[-1] + 1) * sx
    y0, y1 = ys[0] * sy, (ys[-1] + 1) * sy
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return (
        max(0, math.floor(x0 - mx)),
        max(0, math.floor(y0 - my)),
        min(cols, math.ceil(x1 + mx)),
        min(rows, math.ceil(y1 + my)),
    )


def _normalise(values: FloatArray, inside: BoolArray, params: PreprocessParams) -> FloatArray:
    """Normalise intensities and set everything outside the breast to the background value."""
    if params.normalisation == "zscore":
        out = (values - np.float32(params.mean)) / np.float32(params.std)
    else:
        breast = values[inside]
        lo = float(breast.min()) if breast.size else 0.0
        hi = float(breast.max()) if breast.size else 0.0
        out = (values - np.float32(lo)) / np.float32(hi - lo) if hi > lo else np.zeros_like(values)
    return np.where(inside, out, np.float32(params.background_value)).astype(np.float32)
