"""The torch side of the data: a ``Dataset`` over a preprocessed cache, light augmentation, a
balanced sampler.

Augmentation is deliberately light and has no flips. Preprocessing puts every image in one
canonical orientation (chest wall on the left, superior/lateral side at the top), and the
model only ever sees that orientation in service; a flipped MLO (pectoral muscle at the
bottom, or chest wall on the right) is an image that never occurs, so learning to score it
costs capacity and buys nothing. What does vary between sites is the vendor's grey-scale
rendering and the exact crop, hence gamma/contrast jitter and translations of a few pixels.

Randomness is drawn per item from ``numpy.random.default_rng([seed, epoch, index])`` in a
separate step (:meth:`Augmentation.draw`) from the pure array math (:func:`apply_jitter`),
so an epoch is the same whatever the number of loader workers or the order they run in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from mammotriage.model.cache import IMAGES_FILE, PreparedSet
from mammotriage.model.datasets import balanced_sample_weights
from mammotriage.model.records import Box
from mammotriage.preprocess import PreprocessParams

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Jitter:
    """One draw of :class:`Augmentation`: what happens to one image in one epoch."""

    gamma: float
    contrast: float
    shift_y: int
    shift_x: int


@dataclass(frozen=True)
class Augmentation:
    """Light intensity and position jitter (see the module docstring for why no flips).

    Parameters
    ----------
    gamma
        Gamma is drawn log-uniformly from ``[exp(-gamma), exp(gamma)]`` and applied to the
        [0, 1] intensities (vendors' display curves differ roughly so). 0 disables it.
    contrast
        Contrast factor drawn from ``[1 - contrast, 1 + contrast]``, about the breast's mean.
    translate
        Largest shift, as a fraction of the input height/width (the crop margin varies so).
    """

    gamma: float = 0.2
    contrast: float = 0.1
    translate: float = 0.03

    def __post_init__(self) -> None:
        for name, upper in (("gamma", 1.0), ("contrast", 0.5), ("translate", 0.25)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f'Argument "{name}" must be a float, got {value!r}.')
            if not (math.isfinite(value) and 0.0 <= value <= upper):
                raise ValueError(f'Argument "{name}" must be within [0, {upper}], got {value!r}.')

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> Jitter:
        """Draw one :class:`Jitter` for an input of ``shape`` (height, width)."""
        height, width = shape
        max_y, max_x = round(self.translate * height), round(self.translate * width)
        return Jitter(
            gamma=float(np.exp(rng.uniform(-self.gamma, self.gamma))),
            contrast=float(rng.uniform(1.0 - self.contrast, 1.0 + self.contrast)),
            shift_y=int(rng.integers(-max_y, max_y + 1)),
            shift_x=int(rng.integers(-max_x, max_x + 1)),
        )


def apply_jitter(image: FloatArray, jitter: Jitter, params: PreprocessParams) -> FloatArray:
    """Apply ``jitter`` to one model input ``(1, H, W)``; pure array math.

    Gamma acts on the [0, 1] intensities (the normalisation is undone, then redone), the
    contrast about the breast's mean; the background stays exactly the background value, as
    :func:`mammotriage.preprocess.preprocess` makes it, and the shift fills with it.
    """
    background = np.float32(params.background_value)
    # The cache stores float16: its background is the float16 rounding of the true value.
    inside = image != np.float32(np.float16(params.background_value))
    if params.normalisation == "zscore":
        values = np.clip(image * np.float32(params.std) + np.float32(params.mean), 0.0, 1.0)
        values = (values ** np.float32(jitter.gamma) - params.mean) / params.std
    else:
        values = np.clip(image, 0.0, 1.0) ** np.float32(jitter.gamma)
    if inside.any():
        mean = values[inside].mean()
        values = mean + (values - mean) * np.float32(jitter.contrast)
    out = np.where(inside, values, background).astype(np.float32)
    return _shift(out, jitter.shift_y, jitter.shift_x, background)


def _shift(image: FloatArray, dy: int, dx: int, fill: np.float32) -> FloatArray:
    if dy == 0 and dx == 0:
        return image
    out = np.full_like(image, fill)
    height, width = image.shape[-2:]
    src_y, dst_y = slice(max(0, -dy), height - max(0, dy)), slice(max(0, dy), height - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), width - max(0, dx)), slice(max(0, dx), width - max(0, -dx))
    out[..., dst_y, dst_x] = image[..., src_y, src_x]
    return out


class CachedImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Items ``(image float32 (1, H, W), label float32 (), index)`` from a :class:`PreparedSet`.

    ``index`` is the row in the prepared set (``prepared.records[index]``), so a training
    loop can reach the record, its subgroup attributes and :meth:`boxes`.

    The memory map is opened lazily in each process and left out of pickling, so that
    spawned loader workers map the cache file instead of receiving a copy of it. Call
    :meth:`set_epoch` before each epoch; with ``persistent_workers=True`` the workers keep
    the epoch they were started with.

    Parameters
    ----------
    prepared
        The cache.
    indices
        Rows to serve (e.g. ``prepared.indices_of(split["train"])``); default: every
        usable row.
    augment
        The jitter to apply: an :class:`Augmentation`, True for the default one, or
        None/False (validation and test).
    seed
        Seeds the augmentation together with the epoch and the row index.

    Raises
    ------
    ValueError
        If an index is out of range or names an unusable row.
    """

    def __init__(
        self,
        prepared: PreparedSet,
        indices: npt.ArrayLike | None = None,
        *,
        augment: Augmentation | bool | None = None,
        seed: int = 0,
    ) -> None:
        rows = prepared.usable_indices if indices is None else np.asarray(indices, dtype=np.int64)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= len(prepared))):
            raise ValueError(f'Argument "indices" must be row indices below {len(prepared)}.')
        unusable = [int(i) for i in rows if not prepared.usable[i]]
        if unusable:
            raise ValueError(
                f'Argument "indices" names unusable rows {unusable[:5]}: '
                f"{prepared.reasons[unusable[0]]}."
            )
        self.indices = rows
        self.labels = prepared.labels.astype(np.float32)
        self.records = prepared.records
        self.params = prepared.params
        self.boxes_input = prepared.boxes_input
        if augment is True:
            augment = Augmentation()
        self.augmentation = augment if isinstance(augment, Augmentation) else None
        self.seed = seed
        self.epoch = 0
        self._path: Path = prepared.cache_dir / IMAGES_FILE
        self._images: np.memmap | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (each epoch sees new, reproducible ones)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        index = int(self.indices[position])
        image = np.array(self._memmap()[index], dtype=np.float32)
        jitter = self.jitter(index)
        if jitter is not None:
            image = apply_jitter(image, jitter, self.params)
        return torch.from_numpy(image), torch.tensor(self.labels[index]), index

    def jitter(self, index: int) -> Jitter | None:
        """The augmentation draw of row ``index`` in the current epoch (None without one)."""
        if self.augmentation is None:
            return None
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return self.augmentation.draw(rng, (self.params.input_height, self.params.input_width))

    def boxes(self, index: int) -> tuple[Box, ...]:
        """Lesion boxes of row ``index`` in input pixels, moved as this epoch's shift moved
        the image (clipped; boxes shifted wholly out are dropped)."""
        jitter = self.jitter(index)
        if jitter is None:
            return self.boxes_input[index]
        height, width = self.params.input_height, self.params.input_width
        out = []
        for x0, y0, x1, y1 in self.boxes_input[index]:
            dx, dy = jitter.shift_x, jitter.shift_y
            box = (
                min(max(x0 + dx, 0.0), width),
                min(max(y0 + dy, 0.0), height),
                min(max(x1 + dx, 0.0), width),
                min(max(y1 + dy, 0.0), height),
            )
            if box[2] > box[0] and box[3] > box[1]:
                out.append(box)
        return tuple(out)

    def _memmap(self) -> np.memmap:
        if self._images is None:
            self._images = np.load(self._path, mmap_mode="r")
        return self._images

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_images"] = None
        return state


def balanced_sampler(
    dataset: CachedImageDataset, *, seed: int = 0, num_samples: int | None = None
) -> WeightedRandomSampler:
    """A sampler that draws cancers and normals equally often, seeded for reproducibility.

    Raises
    ------
    ValueError
        If the dataset lacks cancers or normals.
    """
    records = [dataset.records[int(i)] for i in dataset.indices]
    weights = balanced_sample_weights(records)
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        weights.tolist(),
        num_samples=len(records) if num_samples is None else num_samples,
        replacement=True,
        generator=generator,
    )
