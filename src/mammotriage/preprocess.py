"""THE image -> tensor function: one code path for training and inference.

A model learns whatever the preprocessing shows it, so training and serving must run the very
same function; anything else (a different crop, flip or normalisation) is train/serve skew that
silently costs sensitivity. Everything here is pure array math: pixels in, a channel-first
float32 tensor and a :class:`Transform` out. The parameters travel in the model's sidecar file
(:meth:`PreprocessParams.to_dict` / :meth:`PreprocessParams.from_dict`), not in code constants.

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

if TYPE_CHECKING:
    from mammotriage.dicom.model import Image

Normalisation = Literal["zscore", "minmax"]
Box = tuple[float, float, float, float]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Longest side of the grid the breast is segmented on. The mask only decides the crop and
#: what is blanked, so ~1 mm pixels (24 cm detector) are plenty and keep labelling cheap.
_WORKING_SIZE = 256
#: A "breast" smaller than this fraction of the image is a label, a marker or noise.
_MIN_BREAST_FRACTION = 0.02
#: Below this intensity range the image is blank; nothing to segment.
_MIN_CONTRAST = 1e-3


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

    work = _flip(_working_image(stored), flip_horizontal, flip_vertical)
    mask = _segment(work)
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
    resized = _flip(resized, flip_horizontal, flip_vertical)

    if found:
        inside = _resize_mask(mask, (rows, cols), crop, (out_h, out_w))
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


def breast_mask(pixels: npt.ArrayLike) -> BoolArray:
    """Segment the breast (pectoral muscle included) at the image's own size.

    The image is segmented on a ~256-pixel working grid: box-averaged (which also averages
    away noise); background offset and gradient removed by a plane fitted to the background;
    thresholded just above the background noise (so the faint fatty periphery stays in, and
    a bright pectoral muscle cannot pull the threshold up as it pulls Otsu's); opened;
    reduced to the breast component (the largest touching the left edge, or the largest
    overall when no large one does) so that labels and markers fall away; hole-filled. The
    chest wall is expected on the left, as in the canonical orientation.

    Returns
    -------
    numpy.ndarray
        Boolean mask of ``pixels``' shape; all False if there is no breast.
    """
    array = np.ascontiguousarray(pixels, dtype=np.float32)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f'Argument "pixels" must be a non-empty 2-D array, got {array.shape}.')
    rows, cols = array.shape
    mask = _segment(_working_image(PILImage.fromarray(array)))
    return _resize_mask(mask, (rows, cols), (0, 0, cols, rows), (rows, cols))


# --- segmentation -----------------------------------------------------------------------


def _working_image(image: PILImage.Image) -> FloatArray:
    """Box-average down to ~``_WORKING_SIZE`` on the longest side.

    The working grid is a uniform scaling of the decoded grid (``shape / size``), so it
    flips along with it; Pillow's integer pre-reduction (``reducing_gap``) keeps that mapping
    to within a fraction of a working pixel at the far edges, at a third of the cost.
    """
    cols, rows = image.size
    scale = min(1.0, _WORKING_SIZE / max(rows, cols))
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    small = (
        image
        if size == (cols, rows)
        else image.resize(size, PILImage.Resampling.BOX, reducing_gap=2.0)
    )
    work = np.asarray(small, dtype=np.float32)
    # Averaging spreads any NaN or infinity into its block, so checking here is cheap.
    if not np.isfinite(work).all():
        raise ValueError('Argument "pixels" must be finite, got NaN or infinite values.')
    return work


def _segment(work: FloatArray) -> BoolArray:
    """Breast mask on the working grid (chest wall on the left)."""
    if float(work.max() - work.min()) < _MIN_CONTRAST:
        return np.zeros(work.shape, dtype=bool)
    flat, noise = _flatten_background(work)
    above = flat[flat > 5.0 * noise]
    tissue = float(np.median(above)) if above.size else 0.0
    # As low as the noise allows, so that the faint periphery near the skin line stays in;
    # a tenth of the typical tissue value keeps quantisation and compression ripple out, and
    # half of Otsu's threshold caps it when the noise estimate is off.
    threshold = min(max(5.0 * noise, 0.1 * tissue, _MIN_CONTRAST), 0.5 * _otsu(flat))
    foreground = _open(flat > threshold, 1)
    breast = _breast_component(foreground)
    if breast.sum() < _MIN_BREAST_FRACTION * breast.size:
        return np.zeros(work.shape, dtype=bool)
    return _fill_holes(breast)


def _otsu(values: npt.NDArray[np.floating[Any]], bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) over a 256-bin histogram."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 0.0:
        return hi
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    p = hist.astype(np.float64) / hist.sum()
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)[:-1]
    mu0 = np.cumsum(p * centres)[:-1]
    total = float(np.sum(p * centres))
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where((w0 > 0) & (w1 > 0), (total * w0 - mu0) ** 2 / (w0 * w1), 0.0)
    return float(edges[int(np.argmax(between)) + 1])


def _flatten_background(image: FloatArray) -> tuple[npt.NDArray[np.float64], float]:
    """Subtract a plane fitted to the background; return the result and its noise level.

    For Processing images, odd VOI and detector heel effect leave an offset or a gradient
    under the breast that one global threshold would cut through. The fit starts from the
    darkest tenth of the image (background in any mammogram) and grows to every pixel within
    3 sigma of the plane, which stays clear of the breast however bright or faint the breast
    is; a threshold between class means (Otsu) does not when a bright pectoral muscle or a
    dense breast makes the histogram three-peaked.
    """
    # Every other pixel is plenty for three coefficients, at a quarter of the cost.
    rows, cols = image.shape
    y = np.linspace(0.0, 1.0, rows, endpoint=False)
    x = np.linspace(0.0, 1.0, cols, endpoint=False)
    sample = image[::2, ::2].astype(np.float64).ravel()
    ys, xs = np.meshgrid(y[::2], x[::2], indexing="ij")
    design = np.stack([np.ones(sample.size), xs.ravel(), ys.ravel()], axis=1)
    selected = sample <= np.percentile(sample, 10)
    coef = np.array([float(np.median(sample[selected])), 0.0, 0.0])
    noise = 0.0
    for _ in range(3):
        if selected.sum() < 3:
            break
        coef, *_ = np.linalg.lstsq(design[selected], sample[selected], rcond=None)
        residual = sample - design @ coef
        noise = 1.4826 * float(np.median(np.abs(residual[selected])))
        selected = np.abs(residual) <= 3.0 * max(noise, 1e-6)
    plane = coef[0] + coef[1] * x[None, :] + coef[2] * y[:, None]
    return image - plane, noise


def _box_sum(image: npt.NDArray[Any], radius: int) -> npt.NDArray[np.float64]:
    """Sum over a (2r+1)^2 window via an integral image; outside counts as zero."""
    k = 2 * radius + 1
    padded = np.pad(image.astype(np.float64), ((radius + 1, radius), (radius + 1, radius)))
    integral = padded.cumsum(axis=0).cumsum(axis=1)
    return integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]


def _open(mask: BoolArray, radius: int) -> BoolArray:
    """Morphological opening with a square: drops specks and thin bridges narrower than it."""
    k2 = (2 * radius + 1) ** 2
    eroded = _box_sum(mask, radius) >= k2 - 0.5
    return _box_sum(eroded, radius) > 0.5


def _label(mask: BoolArray) -> npt.NDArray[np.intp]:
    """4-connected component labels: each pixel gets its component's smallest flat index.

    Vectorised union-find: every edge between two foreground pixels hooks the larger root to
    the smaller, then pointer jumping compresses all paths; edges whose ends already share a
    root are dropped. This converges in a few dozen cheap passes on a working-size image,
    where a pixel-by-pixel flood fill would need one pass per pixel of path length.
    Background pixels keep their own index and are meaningless.
    """
    rows, cols = mask.shape
    index = np.arange(mask.size).reshape(rows, cols)
    horizontal = mask[:, :-1] & mask[:, 1:]
    vertical = mask[:-1, :] & mask[1:, :]
    a = np.concatenate([index[:, :-1][horizontal], index[:-1, :][vertical]])
    b = np.concatenate([index[:, 1:][horizontal], index[1:, :][vertical]])
    parent = np.arange(mask.size)
    while a.size:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
        if not a.size:
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    return parent.reshape(rows, cols)


def _breast_component(foreground: BoolArray) -> BoolArray:
    """Keep the breast: the largest component touching the chest wall (left edge).

    Falls back to the largest component overall when nothing comparable touches the left
    edge (flags that were wrong), so a mis-oriented breast still beats a corner label.
    """
    if not foreground.any():
        return foreground
    labels = _label(foreground)
    sizes = np.bincount(labels[foreground], minlength=foreground.size)
    largest = int(np.argmax(sizes))
    edge_roots = np.unique(labels[:, 0][foreground[:, 0]])
    if edge_roots.size:
        at_wall = int(edge_roots[np.argmax(sizes[edge_roots])])
        if sizes[at_wall] >= 0.25 * sizes[largest]:
            largest = at_wall
    return foreground & (labels == largest)


def _fill_holes(mask: BoolArray) -> BoolArray:
    """Fill dark regions enclosed by the breast (fatty lobules below the threshold)."""
    outside = ~mask
    labels = _label(outside)
    edge = np.zeros_like(mask)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    return mask | (outside & ~np.isin(labels, labels[outside & edge]))


# --- geometry and intensities ---------------------------------------------------------------


def _flip(array: npt.NDArray[Any], horizontal: bool, vertical: bool) -> npt.NDArray[Any]:
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


def _resize_mask(
    mask: BoolArray,
    shape: tuple[int, int],
    crop: tuple[int, int, int, int],
    size: tuple[int, int],
) -> BoolArray:
    """The working-grid mask resampled onto the resized crop (bilinear, then halfway cut)."""
    rows, cols = shape
    sy, sx = mask.shape[0] / rows, mask.shape[1] / cols
    box = (crop[0] * sx, crop[1] * sy, crop[2] * sx, crop[3] * sy)
    image = PILImage.fromarray(np.ascontiguousarray(mask, dtype=np.float32))
    out_h, out_w = size
    resized = image.resize((out_w, out_h), PILImage.Resampling.BILINEAR, box=box)
    return np.asarray(resized) >= 0.5


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
