"""Specification of :mod:`mammotriage.model.cache` and :mod:`mammotriage.model.torch_data`:
preprocess once, reuse while nothing changed, serve seeded training items."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fixtures_datasets import VINDR_SUSPICIOUS, vindr
from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.dicom.reader import read_image
from mammotriage.errors import ConfigError
from mammotriage.model import cache
from mammotriage.model.cache import PreparedSet, open_prepared, prepare
from mammotriage.model.datasets import load_vindr
from mammotriage.model.records import ImageRecord
from mammotriage.model.torch_data import (
    Augmentation,
    CachedImageDataset,
    apply_jitter,
    balanced_sampler,
)
from mammotriage.preprocess import PreprocessParams, preprocess_image

PARAMS = PreprocessParams(input_height=64, input_width=32, mean=0.3, std=0.2)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRecord]:
    """The VinDr fixture's eight images, then a file that is not DICOM."""
    root = vindr(tmp_path_factory.mktemp("vindr"))
    broken = root / "images" / "broken.dicom"
    broken.write_bytes(b"not a DICOM file")
    extra = ImageRecord(broken, "BROKEN", "BROKEN", Laterality.LEFT, ViewPosition.CC, 0)
    return [*load_vindr(root), extra]


@pytest.fixture(scope="module")
def prepared(records: list[ImageRecord], tmp_path_factory: pytest.TempPathFactory) -> PreparedSet:
    return prepare(records, PARAMS, tmp_path_factory.mktemp("cache"), workers=1)


def forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was rebuilt: an image was read")

    monkeypatch.setattr(cache, "read_image", fail)


# --- the cache ----------------------------------------------------------------------------------


def test_inputs_are_float16_rows_aligned_with_records(
    prepared: PreparedSet, records: list[ImageRecord]
) -> None:
    assert len(prepared) == len(records) == 9
    assert prepared.images.shape == (9, 1, 64, 32) and prepared.images.dtype == np.float16
    assert prepared.labels.tolist() == [r.label for r in records]
    assert prepared.records == tuple(records) and not prepared.reused
    image = read_image(records[2].path, target_shape=(64, 32))
    expected, _ = preprocess_image(image, PARAMS)
    np.testing.assert_array_equal(prepared.images[2], expected.astype(np.float16))


def test_an_unreadable_image_keeps_its_row_with_a_reason(prepared: PreparedSet) -> None:
    assert prepared.usable.tolist() == [True] * 8 + [False]
    assert prepared.reasons[8] and prepared.reasons[:8] == (None,) * 8
    assert not prepared.images[8].any() and prepared.transforms[8] is None
    assert prepared.usable_indices.tolist() == list(range(8))


def test_lesion_boxes_are_mapped_into_the_input(prepared: PreparedSet) -> None:
    boxed = [i for i, r in enumerate(prepared.records) if r.boxes]
    assert boxed and all(prepared.records[i].label == 1 for i in boxed)
    for i in boxed:
        (box,) = prepared.boxes_input[i]
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 64
        transform = prepared.transforms[i]
        assert transform is not None
        assert box == pytest.approx(transform.to_input(prepared.records[i].boxes[0]))


def test_same_inputs_reuse_the_cache_without_reading(
    prepared: PreparedSet, records: list[ImageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_reading(monkeypatch)
    again = prepare(records, PARAMS, prepared.cache_dir, workers=1)
    assert again.reused and again.fingerprint == prepared.fingerprint
    np.testing.assert_array_equal(again.images, prepared.images)
    assert again.boxes_input == prepared.boxes_input


def test_changed_params_rebuild_the_cache(records: list[ImageRecord], tmp_path: Path) -> None:
    first = prepare(records[:2], PARAMS, tmp_path, workers=1)
    wider = PreprocessParams(input_height=64, input_width=48, mean=0.3, std=0.2)
    second = prepare(records[:2], wider, tmp_path, workers=1)
    assert not second.reused and second.images.shape == (2, 1, 64, 48)
    assert first.images.shape == (2, 1, 64, 32)  # an open set keeps its own file


def test_a_changed_file_rebuilds_the_cache(records: list[ImageRecord], tmp_path: Path) -> None:
    prepare(records[:2], PARAMS, tmp_path, workers=1)
    stat = records[0].path.stat()
    os.utime(records[0].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not prepare(records[:2], PARAMS, tmp_path, workers=1).reused


def test_a_changed_label_rebuilds_the_cache(records: list[ImageRecord], tmp_path: Path) -> None:
    prepare(records[4:6], PARAMS, tmp_path, workers=1)
    relabelled = [
        ImageRecord(r.path, r.patient_id, r.exam_id, r.laterality, r.view, 1) for r in records[4:6]
    ]
    rebuilt = prepare(relabelled, PARAMS, tmp_path, workers=1)
    assert not rebuilt.reused and rebuilt.labels.tolist() == [1, 1]


def test_an_interrupted_build_is_not_taken_for_a_cache(
    records: list[ImageRecord], tmp_path: Path
) -> None:
    prepare(records[:1], PARAMS, tmp_path, workers=1)
    (tmp_path / cache.MANIFEST_FILE).unlink()
    with pytest.raises(ConfigError, match="manifest.json"):
        open_prepared(tmp_path)
    assert not prepare(records[:1], PARAMS, tmp_path, workers=1).reused


def test_worker_processes_give_the_same_cache(
    prepared: PreparedSet, records: list[ImageRecord], tmp_path: Path
) -> None:
    done: list[tuple[int, int]] = []
    pooled = prepare(records, PARAMS, tmp_path, workers=2, progress=lambda *a: done.append(a))
    assert done == [(n, 9) for n in range(1, 10)]
    np.testing.assert_array_equal(pooled.images, prepared.images)
    assert pooled.usable.tolist() == prepared.usable.tolist()


def test_a_cache_opens_on_its_own(prepared: PreparedSet) -> None:
    opened = open_prepared(prepared.cache_dir)
    assert opened.records == prepared.records and opened.params == PARAMS
    assert opened.transforms == prepared.transforms


def test_indices_of_a_subset_skip_unusable_rows(prepared: PreparedSet) -> None:
    subset = [prepared.records[8], prepared.records[3], prepared.records[1]]
    assert prepared.indices_of(subset).tolist() == [3, 1]


# --- the torch dataset --------------------------------------------------------------------------


def test_items_are_float32_tensors_with_label_and_row(prepared: PreparedSet) -> None:
    dataset = CachedImageDataset(prepared)
    assert len(dataset) == 8
    image, label, index = dataset[0]
    assert image.dtype == torch.float32 and image.shape == (1, 64, 32)
    assert label.dtype == torch.float32 and float(label) == prepared.labels[index]
    np.testing.assert_array_equal(image.numpy(), prepared.images[index].astype(np.float32))


def test_unusable_rows_cannot_be_served(prepared: PreparedSet) -> None:
    with pytest.raises(ValueError, match="unusable rows"):
        CachedImageDataset(prepared, [0, 8])


def test_augment_true_means_the_default_augmentation(prepared: PreparedSet) -> None:
    assert CachedImageDataset(prepared, augment=True).augmentation == Augmentation()
    assert CachedImageDataset(prepared, augment=False).augmentation is None


def test_augmentation_is_reproducible_per_seed_and_epoch(prepared: PreparedSet) -> None:
    def draw(seed: int, epoch: int) -> torch.Tensor:
        dataset = CachedImageDataset(prepared, augment=Augmentation(), seed=seed)
        dataset.set_epoch(epoch)
        return dataset[1][0]

    assert torch.equal(draw(0, 0), draw(0, 0))
    assert not torch.equal(draw(0, 0), draw(0, 1))
    assert not torch.equal(draw(0, 0), draw(1, 0))


def test_augmentation_keeps_the_background(prepared: PreparedSet) -> None:
    dataset = CachedImageDataset(prepared, augment=Augmentation(translate=0.0))
    plain = prepared.images[1].astype(np.float32)
    outside = plain == np.float32(np.float16(PARAMS.background_value))
    jittered = dataset[1][0].numpy()
    assert outside.any() and (jittered[outside] == np.float32(PARAMS.background_value)).all()
    assert not np.array_equal(jittered[~outside], plain[~outside])


def test_a_neutral_jitter_changes_nothing_but_rounding(prepared: PreparedSet) -> None:
    from mammotriage.model.torch_data import Jitter

    image = prepared.images[1].astype(np.float32)
    out = apply_jitter(image, Jitter(gamma=1.0, contrast=1.0, shift_y=0, shift_x=0), PARAMS)
    np.testing.assert_allclose(out, image, atol=2e-3)


def test_boxes_move_with_the_image(prepared: PreparedSet) -> None:
    boxed = next(i for i, r in enumerate(prepared.records) if r.boxes)
    dataset = CachedImageDataset(prepared, augment=Augmentation(translate=0.1), seed=5)
    for epoch in range(4):
        dataset.set_epoch(epoch)
        jitter = dataset.jitter(boxed)
        assert jitter is not None
        ((x0, y0, x1, y1),) = prepared.boxes_input[boxed]
        ((bx0, by0, bx1, by1),) = dataset.boxes(boxed)
        assert bx0 == pytest.approx(min(max(x0 + jitter.shift_x, 0), 32))
        assert by1 == pytest.approx(min(max(y1 + jitter.shift_y, 0), 64))


def test_the_dataset_pickles_without_its_pixels(prepared: PreparedSet) -> None:
    dataset = CachedImageDataset(prepared)
    dataset[0]
    copy = pickle.loads(pickle.dumps(dataset))
    assert len(pickle.dumps(dataset)) < prepared.images.nbytes
    assert torch.equal(copy[0][0], dataset[0][0])


def test_balanced_sampler_is_seeded_and_balanced(prepared: PreparedSet) -> None:
    dataset = CachedImageDataset(prepared)
    sampler = balanced_sampler(dataset, seed=1, num_samples=4000)
    draws = list(sampler)
    assert draws == list(balanced_sampler(dataset, seed=1, num_samples=4000))
    labels = dataset.labels[dataset.indices[draws]]
    assert abs(labels.mean() - 0.5) < 0.05
    batch = next(iter(DataLoader(dataset, batch_size=4, sampler=sampler)))
    assert batch[0].shape == (4, 1, 64, 32) and batch[1].shape == (4,)
    assert {r.patient_id for r in prepared.records if r.label} == {VINDR_SUSPICIOUS}
