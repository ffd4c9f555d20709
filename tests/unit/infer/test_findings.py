"""Specification of :mod:`mammotriage.infer.findings`: suspicion map -> regions in the
ORIGINAL pixels of the stored image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from infer_builders import tiny_model, view_pixels, write_view
from mammotriage.dicom import read_image
from mammotriage.infer.engine import ScoringEngine
from mammotriage.infer.findings import find_regions, label_components
from mammotriage.preprocess import Transform

STRIDE = 16
HOT, COLD = 3.0, -3.0  # logits: ~95 and ~5


def identity(input_shape=(128, 64)) -> Transform:
    """Input pixels are original pixels: no decode scale, flip, crop or resize."""
    return Transform(
        decode_scale=1.0,
        flip_horizontal=False,
        flip_vertical=False,
        decoded_shape=input_shape,
        crop_box=(0, 0, input_shape[1], input_shape[0]),
        resized_shape=input_shape,
        pad_top=0,
        pad_left=0,
        input_shape=input_shape,
    )


def cold_map(rows=8, cols=4) -> np.ndarray:
    return np.full((1, rows, cols), COLD, dtype=np.float32)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_components_join_side_neighbours_but_not_diagonal_ones():
    mask = np.array(
        [
            [1, 1, 0, 0],
            [0, 1, 0, 1],
            [0, 0, 1, 0],
        ],
        dtype=bool,
    )
    labels = label_components(mask)
    assert labels[0, 0] == labels[0, 1] == labels[1, 1] > 0
    assert len(np.unique(labels[mask])) == 3
    assert (labels[~mask] == 0).all()


def test_a_hot_region_becomes_one_box_of_its_cells_times_the_stride():
    suspicion = cold_map()
    suspicion[0, 2:4, 1:3] = HOT
    [region] = find_regions(suspicion, identity(), STRIDE, box_inset=0.0)
    assert region.box_input == (16.0, 32.0, 48.0, 64.0)
    assert region.box_original == region.box_input
    assert region.score == 95 and region.cells == 4


def test_box_follows_the_cells_near_the_peak_not_the_whole_hot_region():
    suspicion = cold_map()
    suspicion[0, 1:5, 0:4] = 1.0  # a broad region above the threshold (score 73)
    suspicion[0, 2, 1] = 6.0  # its peak, more than 2 logits above the rest
    [region] = find_regions(suspicion, identity(), STRIDE)
    assert region.box_input == (16.0, 32.0, 32.0, 48.0)
    assert region.cells == 16 and region.score == 100
    [whole] = find_regions(suspicion, identity(), STRIDE, peak_drop=None)
    assert whole.box_input == (0.0, 16.0, 64.0, 80.0)


def test_box_inset_trims_each_side_by_a_fraction_of_a_cell():
    suspicion = cold_map()
    suspicion[0, 2:4, 1:3] = HOT
    [region] = find_regions(suspicion, identity(), STRIDE, box_inset=0.25)
    quarter = STRIDE / 4
    assert region.box_input == (16.0 + quarter, 32.0 + quarter, 48.0 - quarter, 64.0 - quarter)


def test_regions_are_sorted_by_score_and_cut_to_top_k():
    suspicion = cold_map()
    suspicion[0, 0, 0] = 1.0
    suspicion[0, 3, 3] = 4.0
    suspicion[0, 6, 1] = 2.0
    regions = find_regions(suspicion, identity(), STRIDE, top_k=2, box_inset=0.0)
    assert [r.score for r in regions] == [98, 88]
    assert regions[0].box_input == (48.0, 48.0, 64.0, 64.0)


def test_cells_below_min_score_make_no_finding():
    suspicion = cold_map()
    suspicion[0, 1, 1] = 0.0  # exactly 50
    assert len(find_regions(suspicion, identity(), STRIDE, min_score=50)) == 1
    assert find_regions(suspicion, identity(), STRIDE, min_score=51) == []
    assert find_regions(cold_map(), identity(), STRIDE) == []


def test_a_region_over_the_padding_only_is_no_finding():
    transform = Transform(
        decode_scale=1.0,
        flip_horizontal=False,
        flip_vertical=False,
        decoded_shape=(100, 40),
        crop_box=(0, 0, 40, 100),
        resized_shape=(100, 40),
        pad_top=0,
        pad_left=0,
        input_shape=(128, 64),
    )
    suspicion = cold_map()
    suspicion[0, 7, 3] = HOT  # input pixels x 48-64, y 112-128: padding
    suspicion[0, 6, 2] = 2.0  # x 32-48, y 96-112: half over the image
    [region] = find_regions(suspicion, transform, STRIDE, box_inset=0.0)
    assert region.box_input == (32.0, 96.0, 40.0, 100.0)


def test_boxes_map_back_through_flip_and_decode_scale():
    # A 256 x 128 original decoded at half resolution (128 x 64) and mirrored.
    transform = Transform(
        decode_scale=2.0,
        flip_horizontal=True,
        flip_vertical=False,
        decoded_shape=(128, 64),
        crop_box=(0, 0, 64, 128),
        resized_shape=(128, 64),
        pad_top=0,
        pad_left=0,
        input_shape=(128, 64),
    )
    suspicion = cold_map()
    suspicion[0, 0, 0] = HOT  # input x 0-16 (chest wall, left after the flip), y 0-16
    [region] = find_regions(suspicion, transform, STRIDE, box_inset=0.0)
    assert region.box_original == (96.0, 0.0, 128.0, 32.0)


@pytest.mark.parametrize("shape", [(8, 4, 2), (2, 8, 4)])
def test_a_map_of_the_wrong_shape_is_refused(shape):
    with pytest.raises(ValueError, match="suspicion_map"):
        find_regions(np.zeros(shape), identity(), STRIDE)


def test_finding_lands_on_the_blob_in_original_pixels_of_a_flipped_reduced_resolution_image(
    tmp_path: Path,
):
    """End to end through the real reader, preprocessing and an ONNX model: a right CC
    stored with its chest wall on the right (so preprocessing flips it), 4x the model input
    (so it is decoded at reduced resolution), with a bright blob where the model must point."""
    blob = (150, 200, 230, 300)  # x0, y0, x1, y1 in stored pixels
    pixels = view_pixels("R", "CC", rows=512, columns=256, blob=blob)
    path = write_view(tmp_path / "RCC.dcm", "R", "CC", study=generate_uid(), pixels=pixels)
    model = tiny_model(tmp_path / "model")

    decoded = read_image(path, target_shape=(128, 64))
    assert decoded.flip_horizontal and decoded.decode_scale > 1  # what the test is about

    with ScoringEngine(model, decode_workers=0) as engine:
        [exam] = engine.score_paths([path])
    top = exam.findings[0]
    assert (top.laterality.value, top.view.value) == ("R", "CC")
    assert iou(top.box_original, blob) >= 0.3, top.box_original
    # and nowhere near the mirrored position, where a forgotten flip would put it
    mirrored = (256 - blob[2], blob[1], 256 - blob[0], blob[3])
    assert iou(top.box_original, mirrored) == 0.0
