"""Breast segmentation: which pixels of a mammogram are breast (pectoral muscle included).

The mask decides the crop and what is blanked before an image reaches the model, so that
burned-in labels, markers and collimator edges never do. The segmentation itself is array
math on a ~256-pixel working grid (plane-fitted background, noise-level threshold, opening,
4-connected labelling, hole filling); Pillow only resamples onto and off that grid, with the
same calls :func:`mammotriage.preprocess.preprocess` uses, so that the mask and the crop agree.
The chest wall is expected on the left, as in the canonical orientation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Longest side of the grid the breast is segmented on. The mask only decides the crop and
#: what is blanked, so ~1 mm pixels (24 cm detector) are plenty and keep labelling cheap.
_WORKING_SIZE = 256
#: A "breast" smaller than this fraction of the image is a label, a marker or noise.
_MIN_BREAST_FRACTION = 0.02
#: Below this intensity range the image is blank; nothing to segment.
_MIN_CONTRAST = 1e-3


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
    mask = segment(working_image(PILImage.fromarray(array)))
    return resize_mask(mask, (rows, cols), (0, 0, cols, rows), (rows, cols))


def working_image(image: PILImage.Image) -> FloatArray:
    """Box-average down to ~``_WORKING_SIZE`` on the longest side: the grid :func:`segment` runs on.

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


def segment(work: FloatArray) -> BoolArray:
    """Breast mask on the :func:`working_image` grid (chest wall on the left)."""
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



def resize_mask(
    mask: BoolArray,
    shape: tuple[int, int],
    crop: tuple[int, int, int, int],
    size: tuple[int, int],
) -> BoolArray:
    """The working-grid mask resampled onto the resized crop (bilinear, then halfway cut).

    ``shape`` is the full-size grid the working grid was reduced from, ``crop`` a box on it
    (ends exclusive) and ``size`` the ``(rows, columns)`` to resample that box onto.
    """
    rows, cols = shape
    sy, sx = mask.shape[0] / rows, mask.shape[1] / cols
    box = (crop[0] * sx, crop[1] * sy, crop[2] * sx, crop[3] * sy)
    image = PILImage.fromarray(np.ascontiguousarray(mask, dtype=np.float32))
    out_h, out_w = size
    resized = image.resize((out_w, out_h), PILImage.Resampling.BILINEAR, box=box)
    return np.asarray(resized) >= 0.5

