"""Preprocess a data set once into a memory-mapped cache that training reads for every epoch.

Decoding a full-field mammogram and running :func:`mammotriage.preprocess.preprocess` costs
far more than a training step on the result, and gives the same answer every epoch. So the
model inputs are computed once, in worker processes, through exactly the reader and
preprocessing function the inference side uses (no train/serve skew), and stored as
float16 in one ``.npy`` file that the data loader memory-maps.

Layout of ``cache_dir``:

``images.npy``
    ``(N, 1, H, W)`` float16, row ``i`` for ``records[i]``. An image that cannot be read or
    preprocessed keeps its row (zeros) and is marked ``usable=False`` with its reason, so
    that rows and records stay aligned by index and the reason is kept for the data report;
    training uses :attr:`PreparedSet.usable_indices`.
``index.json``
    The records, and per image: usable, reason, the :class:`~mammotriage.preprocess.Transform`
    and the lesion boxes mapped to input coordinates (for optional map supervision).
``manifest.json``
    Preprocessing parameters, shape and a fingerprint of everything the cache depends on:
    the parameters, the cache format and package version, every record, and each file's
    size and modification time. Written last, so that an interrupted build is never taken
    for a complete one. A second :func:`prepare` with the same fingerprint reuses the cache
    without reading any image; any change rebuilds it.

No torch here: the cache also serves validation of exported ONNX models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import mammotriage
from mammotriage.dicom.reader import read_image
from mammotriage.errors import ConfigError
from mammotriage.model.records import Box, ImageRecord
from mammotriage.preprocess import PreprocessParams, Transform, preprocess_image

log = logging.getLogger(__name__)

CACHE_FORMAT = "1"
IMAGES_FILE = "images.npy"
INDEX_FILE = "index.json"
MANIFEST_FILE = "manifest.json"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True, eq=False)
class PreparedSet:
    """A preprocessed data set: model inputs aligned by index with their records.

    Attributes
    ----------
    cache_dir
        Where the cache lives.
    records
        The records, in the order given to :func:`prepare`.
    params
        The preprocessing parameters the inputs were made with.
    images
        Read-only memory map ``(N, 1, H, W)`` float16; rows of unusable images are zeros.
    labels
        ``(N,)`` int64, ``records[i].label``.
    usable
        ``(N,)`` bool: whether row ``i`` holds a real input.
    reasons
        Why each unusable image is unusable (None for usable ones).
    boxes_input
        Lesion boxes of each image in input pixel coordinates, clipped to the input; boxes
        that fall wholly outside the breast crop are dropped.
    transforms
        The geometry of each usable image (None for unusable ones), to map boxes and
        suspicion-map cells back to the original pixels.
    fingerprint
        What the cache was built from (see the module docstring).
    reused
        True when :func:`prepare` found the cache complete and read no image.
    """

    cache_dir: Path
    records: tuple[ImageRecord, ...]
    params: PreprocessParams
    images: np.memmap
    labels: npt.NDArray[np.int64]
    usable: npt.NDArray[np.bool_]
    reasons: tuple[str | None, ...]
    boxes_input: tuple[tuple[Box, ...], ...]
    transforms: tuple[Transform | None, ...]
    fingerprint: str
    reused: bool = False

    def __len__(self) -> int:
        return len(self.records)

    @property
    def usable_indices(self) -> npt.NDArray[np.int64]:
        """Indices of the rows that hold real inputs: what a training set iterates over."""
        return np.flatnonzero(self.usable).astype(np.int64)

    def indices_of(self, records: Iterable[ImageRecord]) -> npt.NDArray[np.int64]:
        """Usable row indices of ``records`` (e.g. one subset of a split), in their order.

        Raises
        ------
        KeyError
            If a record is not in this set.
        """
        position = {record: i for i, record in enumerate(self.records)}
        wanted = [position[record] for record in records]
        return np.array([i for i in wanted if self.usable[i]], dtype=np.int64)


@dataclass(frozen=True)
class _Prepared:
    """What a worker hands back for one image."""

    pixels: npt.NDArray[np.float16] | None
    reason: str | None
    transform: dict[str, Any] | None
    boxes_input: tuple[Box, ...]


def prepare(
    records: Sequence[ImageRecord],
    params: PreprocessParams,
    cache_dir: Path,
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> PreparedSet:
    """Preprocess ``records`` into ``cache_dir``, or reuse the cache there if it is current.

    Parameters
    ----------
    records
        The images, e.g. from :func:`mammotriage.model.datasets.load_dataset`.
    params
        Preprocessing parameters (those the model will be exported with).
    cache_dir
        Folder for the cache; created if needed. A stale cache there is replaced.
    workers
        Processes that read and preprocess (started with "spawn", so a calling script needs
        the usual ``__main__`` guard); 1 works in the calling process.
    progress
        Called as ``progress(done, total)`` after each image.

    Raises
    ------
    ValueError
        If ``records`` is empty or ``workers`` < 1.
    """
    records = tuple(records)
    if not records:
        raise ValueError('Argument "records" must hold at least one record, got none.')
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f'Argument "workers" must be an int >= 1, got {workers!r}.')
    cache_dir = Path(cache_dir)
    fingerprint = fingerprint_of(records, params)
    try:
        existing = open_prepared(cache_dir)
    except ConfigError:
        existing = None
    if existing is not None and existing.fingerprint == fingerprint:
        log.info("reusing the preprocessed cache (%d images)", len(records))
        return _with(existing, records=records, reused=True)

    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / MANIFEST_FILE).unlink(missing_ok=True)  # the old cache is no longer valid
    shape = (len(records), 1, params.input_height, params.input_width)
    partial_images = cache_dir / f"partial-{IMAGES_FILE}"
    images = np.lib.format.open_memmap(partial_images, mode="w+", dtype=np.float16, shape=shape)
    entries = []
    for i, result in enumerate(_run(records, params, workers)):
        if result.pixels is not None:
            images[i] = result.pixels
        entries.append(
            {
                "usable": result.pixels is not None,
                "reason": result.reason,
                "transform": result.transform,
                "boxes_input": [list(b) for b in result.boxes_input],
            }
        )
        if progress is not None:
            progress(i + 1, len(records))
    images.flush()
    del images
    # Replace, never overwrite in place: a PreparedSet still mapping the old file keeps it.
    os.replace(partial_images, cache_dir / IMAGES_FILE)
    index = {"format": CACHE_FORMAT, "records": [r.to_dict() for r in records], "images": entries}
    _write_json(cache_dir / INDEX_FILE, index)
    manifest = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "params": params.to_dict(),
        "shape": list(shape),
        "count": len(records),
        "unusable": sum(not e["usable"] for e in entries),
    }
    _write_json(cache_dir / MANIFEST_FILE, manifest)
    log.info("prepared %d images (%d unusable) into the cache", len(records), manifest["unusable"])
    return _with(open_prepared(cache_dir), records=records, reused=False)


def open_prepared(cache_dir: Path) -> PreparedSet:
    """Open a complete cache written by :func:`prepare` (e.g. in a validation script).

    Raises
    ------
    ConfigError
        If the cache is missing, incomplete, of another format or inconsistent.
    """
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ConfigError(
            f"No complete preprocessed cache in {cache_dir} ({MANIFEST_FILE} missing)."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        index = json.loads((cache_dir / INDEX_FILE).read_text(encoding="utf-8"))
        if manifest.get("format") != CACHE_FORMAT or index.get("format") != CACHE_FORMAT:
            raise ConfigError(
                f"Preprocessed cache {cache_dir} has format {manifest.get('format')!r}; "
                f"this version reads {CACHE_FORMAT!r}. Run prepare again."
            )
        params = PreprocessParams.from_dict(manifest["params"])
        images = np.load(cache_dir / IMAGES_FILE, mmap_mode="r")
        records = tuple(ImageRecord.from_dict(r) for r in index["records"])
        entries = index["images"]
        shape = tuple(manifest["shape"])
        if (
            images.shape != shape
            or images.dtype != np.float16
            or not (len(records) == len(entries) == shape[0])
        ):
            raise ConfigError(
                f"Preprocessed cache {cache_dir} is inconsistent: images {images.shape}, "
                f"{len(records)} records, {len(entries)} index entries, manifest {shape}."
            )
        return PreparedSet(
            cache_dir=cache_dir,
            records=records,
            params=params,
            images=images,
            labels=np.array([r.label for r in records], dtype=np.int64),
            usable=np.array([bool(e["usable"]) for e in entries], dtype=bool),
            reasons=tuple(e["reason"] for e in entries),
            boxes_input=tuple(
                tuple(
                    (float(x0), float(y0), float(x1), float(y1))
                    for x0, y0, x1, y1 in e["boxes_input"]
                )
                for e in entries
            ),
            transforms=tuple(_transform(e["transform"]) for e in entries),
            fingerprint=str(manifest["fingerprint"]),
        )
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"Preprocessed cache {cache_dir} is unreadable: {exc}") from exc


def fingerprint_of(records: Sequence[ImageRecord], params: PreprocessParams) -> str:
    """SHA-256 of everything a cache depends on; a changed file changes its size or mtime."""
    digest = hashlib.sha256()
    head = {"format": CACHE_FORMAT, "version": mammotriage.__version__, "params": params.to_dict()}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for record in records:
        try:
            stat = record.path.stat()
            file_state: list[int] | None = [stat.st_size, stat.st_mtime_ns]
        except OSError:
            file_state = None
        digest.update(json.dumps([record.to_dict(), file_state], sort_keys=True).encode())
    return digest.hexdigest()


def _run(
    records: Sequence[ImageRecord], params: PreprocessParams, workers: int
) -> Iterator[_Prepared]:
    """Results in record order, from ``workers`` spawned processes (or this one)."""
    paths = [record.path for record in records]
    boxes = [record.boxes for record in records]
    if workers == 1 or len(records) == 1:
        yield from map(_prepare_one, paths, boxes, repeat(params))
        return
    chunksize = max(1, min(16, len(records) // (4 * workers)))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_prepare_one, paths, boxes, repeat(params), chunksize=chunksize)


def _prepare_one(path: Path, boxes: tuple[Box, ...], params: PreprocessParams) -> _Prepared:
    """Read, preprocess and convert one image; any failure becomes a reason, not a crash.

    One damaged file among 50,000 must not cost the hours already spent on the others.
    """
    image = read_image(path, target_shape=(params.input_height, params.input_width))
    if not image.usable:
        return _Prepared(None, image.reason or "unusable", None, ())
    try:
        tensor, transform = preprocess_image(image, params)
    except Exception as exc:  # noqa: BLE001 - recorded as the image's reason
        return _Prepared(None, f"preprocessing failed: {type(exc).__name__}: {exc}", None, ())
    if not np.all(np.abs(tensor) <= _FLOAT16_MAX):
        return _Prepared(None, "input values overflow float16 (check mean/std)", None, ())
    height, width = params.input_height, params.input_width
    mapped = []
    for box in boxes:
        x0, y0, x1, y1 = transform.to_input(box)
        clipped = (
            min(max(x0, 0.0), width),
            min(max(y0, 0.0), height),
            min(max(x1, 0.0), width),
            min(max(y1, 0.0), height),
        )
        if clipped[2] > clipped[0] and clipped[3] > clipped[1]:
            mapped.append(clipped)
    return _Prepared(tensor.astype(np.float16), None, transform.to_dict(), tuple(mapped))


def _transform(data: dict[str, Any] | None) -> Transform | None:
    if data is None:
        return None
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Transform(**fields)


def _with(prepared: PreparedSet, *, records: tuple[ImageRecord, ...], reused: bool) -> PreparedSet:
    """The cache, carrying the caller's record objects (equal to the stored ones)."""
    fields = dict(prepared.__dict__)
    fields.update(records=records, reused=reused)
    return PreparedSet(**fields)


def _write_json(path: Path, data: object) -> None:
    partial = path.with_name(f"partial-{path.name}")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)
