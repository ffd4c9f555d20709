"""Finding regions from the model's suspicion map, in the original pixels of the image.

The network's suspicion map holds one malignancy logit per ``map_stride`` x ``map_stride``
cell of the model input. Cells whose probability reaches ``min_score`` are joined into
regions (4-neighbour connected components); each region's box is mapped from input pixels
back through :meth:`mammotriage.preprocess.Transform.to_original`, which undoes the
padding, resize, crop, flip and reduced-resolution decoding, so that a box drawn on the
stored DICOM image (or written into an SR/GSPS) lands on the pixels the model looked at.

Pure array code: map and transform in, regions out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mammotriage.preprocess import Transform

Box = tuple[float, float, float, float]
#: Probability (as 0-100) a cell must reach to be part of a finding.
DEFAULT_BOX_INSET = 0.0
DEFAULT_PEAK_DROP: float | None = 2.0
DEFAULT_MIN_SCORE = 50.0
#: Findings kept per image, most suspicious first.
DEFAULT_TOP_K = 3


@dataclass(frozen=True)
class Region:
    """One suspicious region of one image.

    ``box_input`` is in model-input pixels, ``box_original`` in the stored image's pixels;
    both ``(x0, y0, x1, y1)`` pixel-edge coordinates. ``score`` is 1-100, the probability of
    the region's most suspicious cell; ``cells`` is the region's size in map cells.
    """

    box_input: Box
    box_original: Box
    score: int
    cells: int


def sigmoid(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Logistic function that neither overflows nor warns for large logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def to_score(logit: float) -> int:
    """A logit as a 1-100 score (a finding is never scored 0: it was found)."""
    return int(np.clip(np.rint(100.0 * float(sigmoid(logit))), 1, 100))


def label_components(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Label the 4-neighbour connected components of a 2-D mask (0 = background).

    Each cell repeatedly takes the smallest label among itself and its four neighbours
    until nothing changes: as many vectorised steps as the longest region is long, which
    for a suspicion map (tens of cells a side) is a handful.
    """
    rows, cols = mask.shape
    outside = rows * cols + 1
    labels = np.where(mask, np.arange(1, rows * cols + 1).reshape(rows, cols), outside)
    while True:
        padded = np.pad(labels, 1, constant_values=outside)
        smallest = np.minimum.reduce(
            [
                padded[1:-1, 1:-1],
                padded[:-2, 1:-1],
                padded[2:, 1:-1],
                padded[1:-1, :-2],
                padded[1:-1, 2:],
            ]
        )
        smallest = np.where(mask, smallest, outside)
        if np.array_equal(smallest, labels):
            break
        labels = smallest
    return np.where(mask, labels, 0).astype(np.int64)


def find_regions(
    suspicion_map: npt.ArrayLike,
    transform: Transform,
    map_stride: int,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    box_inset: float = DEFAULT_BOX_INSET,
    peak_drop: float | None = DEFAULT_PEAK_DROP,
    top_k: int = DEFAULT_TOP_K,
    original_shape: tuple[int, int] | None = None,
) -> list[Region]:
    """The ``top_k`` most suspicious regions of one image, most suspicious first.

    Parameters
    ----------
    suspicion_map
        Logits, shape ``(1, h, w)`` or ``(h, w)``; cell ``(r, c)`` covers input pixels
        ``[c * map_stride, (c + 1) * map_stride) x [r * map_stride, (r + 1) * map_stride)``.
    transform
        The image's :class:`~mammotriage.preprocess.Transform` from preprocessing.
    map_stride
        Input pixels per map cell (the sidecar's ``map_stride``).
    min_score
        A cell belongs to a region when ``100 * sigmoid(logit) >= min_score``.
    top_k
        How many regions to keep.
    original_shape
        ``(Rows, Columns)`` of the stored image, to clip boxes to; defaults to the decoded
        grid times the decode scale.

    Raises
    ------
    ValueError
        If the map is not 2-D (after dropping a leading channel of 1), ``map_stride`` is not
        a positive int, ``min_score`` is outside 0-100 or ``top_k`` is negative.
    """
    logits = np.asarray(suspicion_map, dtype=np.float64)
    if logits.ndim == 3 and logits.shape[0] == 1:
        logits = logits[0]
    if logits.ndim != 2:
        raise ValueError(
            f'Argument "suspicion_map" must have shape (1, h, w) or (h, w), got {logits.shape}.'
        )
    if isinstance(map_stride, bool) or not isinstance(map_stride, int) or map_stride < 1:
        raise ValueError(f'Argument "map_stride" must be a positive int, got {map_stride!r}.')
    if not 0.0 <= min_score <= 100.0:
        raise ValueError(f'Argument "min_score" must be in [0, 100], got {min_score!r}.')
    if top_k < 0:
        raise ValueError(f'Argument "top_k" must be >= 0, got {top_k!r}.')
    if top_k == 0 or logits.size == 0:
        return []

    mask = 100.0 * sigmoid(logits) >= min_score
    if not mask.any():
        return []
    labels = label_components(mask)

    # Boxes are clipped to where the image lies in the input: cells over the padding hold
    # no tissue, and a region entirely there is no finding.
    image_x1 = transform.pad_left + transform.resized_shape[1]
    image_y1 = transform.pad_top + transform.resized_shape[0]
    if original_shape is None:
        rows, cols = transform.decoded_shape
        original_shape = (
            round(rows * transform.decode_scale),
            round(cols * transform.decode_scale),
        )

    regions = []
    for label in np.unique(labels[labels > 0]):
        r, c = np.nonzero(labels == label)
        peak = float(logits[r, c].max())
        cells = int(r.size)
        if peak_drop is not None:
            # Confident maps saturate over every cell near a lesion; the box follows the
            # cells within ``peak_drop`` logits of the region's peak, which trace the lesion.
            near = logits[r, c] >= peak - peak_drop
            r, c = r[near], c[near]
        # The map marks every cell a lesion touches, and a lesion touching a cell covers
        # on average half of it at the region's edge: trim that much from each side.
        inset = box_inset * map_stride
        x0 = max(float(c.min() * map_stride) + inset, float(transform.pad_left))
        y0 = max(float(r.min() * map_stride) + inset, float(transform.pad_top))
        x1 = min(float((c.max() + 1) * map_stride) - inset, float(image_x1))
        y1 = min(float((r.max() + 1) * map_stride) - inset, float(image_y1))
        if x1 <= x0 or y1 <= y0:
            continue
        box_input = (x0, y0, x1, y1)
        ox0, oy0, ox1, oy1 = transform.to_original(box_input)
        box_original = (
            max(ox0, 0.0),
            max(oy0, 0.0),
            min(ox1, float(original_shape[1])),
            min(oy1, float(original_shape[0])),
        )
        regions.append((peak, Region(box_input, box_original, to_score(peak), cells)))
    regions.sort(key=lambda item: (-item[0], -item[1].cells))
    return [region for _, region in regions[:top_k]]
