"""Specification of :mod:`mammotriage.preprocess`, the one image -> tensor function."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mammotriage.dicom.model import Image
from mammotriage.errors import ConfigError, DicomReadError
from mammotriage.preprocess import (
    PreprocessParams,
    Transform,
    breast_mask,
    preprocess,
    preprocess_image,
)

PARAMS = PreprocessParams()
LABEL = (0.78, 0.12, 0.88, 0.17)  # (x0, y0, x1, y1) as fractions of the stored image


def phantom(
    rows: int = 832,
    cols: int = 640,
    *,
    chest_wall: str = "left",
    label: bool = False,
    offset: float = 0.0,
    noise: float = 0.0,
    gradient: float = 0.0,
    pectoral: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A half-ellipse breast against the chest wall, with blocky texture.

    Returns the pixels and the true breast mask, both in stored orientation. The label sits
    in the far corner, inside the breast's bounding box but outside the breast; the
    pectoral muscle is a bright triangle in the upper chest-wall corner, as on an MLO.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    d = (xx / (cols * 0.9)) ** 2 + ((yy - rows / 2) / (rows * 0.4)) ** 2
    truth = d < 1
    texture = np.kron(rng.random((rows // 16 + 1, cols // 16 + 1)), np.ones((16, 16)))
    pixels = np.where(truth, 0.3 + 0.4 * texture[:rows, :cols] * (1 - d), 0.0)
    if pectoral:
        muscle = xx / (cols * 0.3) + yy / (rows * 0.4) < 1
        pixels[muscle] = 0.9
        truth = truth | muscle
    pixels = pixels + offset + gradient * xx / cols + noise * rng.standard_normal((rows, cols))
    if label:
        x0, y0, x1, y1 = LABEL
        pixels[int(y0 * rows) : int(y1 * rows), int(x0 * cols) : int(x1 * cols)] = 1.0
    pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    if chest_wall == "right":
        return pixels[:, ::-1].copy(), truth[:, ::-1].copy()
    return pixels, truth


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# --- output -------------------------------------------------------------------------------


def test_output_shape_and_dtype_follow_params() -> None:
    params = PreprocessParams(input_height=320, input_width=160)
    tensor, transform = preprocess(phantom()[0], params=params)
    assert tensor.shape == (1, 320, 160)
    assert tensor.dtype == np.float32
    assert transform.input_shape == (320, 160)


@pytest.mark.parametrize("chest_wall", ["left", "right"])
def test_chest_wall_ends_up_on_the_left(chest_wall: str) -> None:
    pixels, _ = phantom(chest_wall=chest_wall)
    tensor, _ = preprocess(pixels, params=PARAMS, flip_horizontal=chest_wall == "right")
    half = PARAMS.input_width // 2
    assert tensor[0, :, :half].sum() > 1.5 * tensor[0, :, half:].sum()
    assert (tensor[0, :, 0] > 0.25).sum() > 0.5 * PARAMS.input_height * 0.8


def test_breast_fills_the_input_along_its_limiting_axis() -> None:
    tensor, transform = preprocess(phantom()[0], params=PARAMS)
    rows, cols = transform.resized_shape
    assert rows == PARAMS.input_height or cols == PARAMS.input_width


def test_corner_label_does_not_reach_the_model() -> None:
    rows, cols = 832, 640
    pixels, _ = phantom(rows, cols, label=True)
    tensor, transform = preprocess(pixels, params=PARAMS)
    x0, y0, x1, y1 = LABEL
    ix0, iy0, ix1, iy1 = transform.to_input((x0 * cols, y0 * rows, x1 * cols, y1 * rows))
    assert 0 <= ix0 < ix1 <= PARAMS.input_width, "label should lie inside the crop"
    region = tensor[0, int(iy0) : int(np.ceil(iy1)), int(ix0) : int(np.ceil(ix1))]
    assert np.all(region == PARAMS.background_value)
    assert tensor.max() < 0.95


def test_zscore_background_is_what_intensity_zero_maps_to() -> None:
    params = PreprocessParams(mean=0.5, std=0.25)
    tensor, _ = preprocess(phantom()[0], params=params)
    assert params.background_value == -2.0
    assert tensor[0, -1, -1] == pytest.approx(-2.0)


def test_minmax_maps_the_breast_onto_the_unit_range() -> None:
    params = PreprocessParams(normalisation="minmax")
    tensor, _ = preprocess(phantom(offset=0.2)[0], params=params)
    assert tensor.min() == pytest.approx(0.0)
    assert tensor.max() == pytest.approx(1.0)


def test_blank_image_does_not_crash() -> None:
    tensor, transform = preprocess(np.zeros((300, 200), np.float32), params=PARAMS)
    assert np.all(tensor == PARAMS.background_value)
    assert transform.crop_box == (0, 0, 200, 300)


def test_same_input_gives_the_same_output() -> None:
    pixels, _ = phantom(noise=0.03, label=True, pectoral=True)
    first, t1 = preprocess(pixels, params=PARAMS, flip_horizontal=True)
    second, t2 = preprocess(pixels.copy(), params=PARAMS, flip_horizontal=True)
    assert np.array_equal(first, second)
    assert t1 == t2


def test_input_pixels_are_not_modified() -> None:
    pixels, _ = phantom(label=True)
    before = pixels.copy()
    preprocess(pixels, params=PARAMS, flip_horizontal=True, flip_vertical=True)
    assert np.array_equal(pixels, before)


def test_pixels_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match='"pixels"'):
        preprocess(np.zeros((2, 8, 8), np.float32), params=PARAMS)


def test_pixels_must_be_finite() -> None:
    pixels, _ = phantom()
    pixels[500, 333] = np.nan
    with pytest.raises(ValueError, match='"pixels" must be finite'):
        preprocess(pixels, params=PARAMS)


def test_image_smaller_than_the_input_is_enlarged() -> None:
    tensor, transform = preprocess(phantom(120, 90)[0], params=PARAMS)
    assert transform.resized_shape[0] == PARAMS.input_height or (
        transform.resized_shape[1] == PARAMS.input_width
    )
    assert tensor.shape == (1, PARAMS.input_height, PARAMS.input_width)


# --- segmentation and crop ----------------------------------------------------------------


def test_breast_mask_matches_the_breast() -> None:
    pixels, truth = phantom(label=True)
    mask = breast_mask(pixels)
    assert mask.shape == pixels.shape and mask.dtype == bool
    assert (mask & truth).sum() / (mask | truth).sum() > 0.97


@pytest.mark.parametrize(
    "background",
    [
        {"offset": 0.1, "noise": 0.05},
        {"offset": 0.05, "gradient": 0.15, "noise": 0.02},
    ],
    ids=["noisy-offset", "gradient"],
)
def test_nonzero_background_does_not_defeat_the_crop(background: dict[str, Any]) -> None:
    rows, cols = 832, 640
    pixels, truth = phantom(rows, cols, label=True, **background)
    _, transform = preprocess(pixels, params=PARAMS)
    tolerance = 0.04 * np.array([cols, rows, cols, rows])
    assert np.all(np.abs(np.subtract(transform.crop_box, bounding_box(truth))) <= tolerance)


def test_pectoral_muscle_stays_in_the_mask() -> None:
    pixels, truth = phantom(pectoral=True, noise=0.02)
    muscle = pixels > 0.85
    mask = breast_mask(pixels)
    assert mask[muscle].mean() > 0.99
    assert (mask & truth).sum() / (mask | truth).sum() > 0.97


def test_faint_breast_next_to_bright_pectoral_muscle_is_kept() -> None:
    pixels, truth = phantom(pectoral=True)
    faint = np.where(pixels < 0.85, pixels * 0.3, pixels).astype(np.float32)
    mask = breast_mask(faint)
    assert (mask & truth).sum() / (mask | truth).sum() > 0.97


def test_dark_region_enclosed_by_the_breast_stays_in_the_mask() -> None:
    pixels, truth = phantom()
    yy, xx = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    hole = (yy - 416) ** 2 + (xx - 200) ** 2 < 60**2
    pixels[hole] = 0.0
    assert breast_mask(pixels)[hole].all()


def test_blank_image_has_an_empty_mask() -> None:
    assert not breast_mask(np.zeros((64, 48), np.float32)).any()


# --- geometry -----------------------------------------------------------------------------


@pytest.mark.parametrize("flips", [(False, False), (True, False), (True, True)])
def test_box_round_trips_through_the_input_at_decode_scale_4(flips: tuple[bool, bool]) -> None:
    pixels, _ = phantom(832, 640)  # decoded at 1/4 of a 3328 x 2560 original
    _, transform = preprocess(
        pixels, params=PARAMS, flip_horizontal=flips[0], flip_vertical=flips[1], decode_scale=4
    )
    box = (400.0, 1200.0, 700.0, 1500.0)
    there = transform.to_input(box)
    assert 0 <= there[0] < there[2] <= PARAMS.input_width
    assert 0 <= there[1] < there[3] <= PARAMS.input_height
    assert transform.to_original(there) == pytest.approx(box, abs=1.0)


@pytest.mark.parametrize("flips", [(False, False), (True, False), (False, True), (True, True)])
def test_marked_spot_lands_where_to_input_says(flips: tuple[bool, bool]) -> None:
    scale, rows, cols = 4, 832, 640
    pixels, _ = phantom(rows, cols)
    spot = (1000.0, 1400.0, 1040.0, 1440.0)  # original pixels: 10 x 10 decoded pixels
    x0, y0, x1, y1 = (int(v / scale) for v in spot)
    pixels[y0:y1, x0:x1] = 1.0
    if flips[0]:
        pixels = pixels[:, ::-1]
    if flips[1]:
        pixels = pixels[::-1, :]
    # The stored spot moved with the flip; so does the box that marks it in original pixels.
    stored = (
        cols * scale - spot[2] if flips[0] else spot[0],
        rows * scale - spot[3] if flips[1] else spot[1],
        cols * scale - spot[0] if flips[0] else spot[2],
        rows * scale - spot[1] if flips[1] else spot[3],
    )
    tensor, transform = preprocess(
        pixels, params=PARAMS, flip_horizontal=flips[0], flip_vertical=flips[1], decode_scale=scale
    )
    row, col = np.unravel_index(np.argmax(tensor[0]), tensor[0].shape)
    ix0, iy0, ix1, iy1 = transform.to_input(stored)
    assert ix0 - 1 <= col + 0.5 <= ix1 + 1
    assert iy0 - 1 <= row + 0.5 <= iy1 + 1


def test_reduced_resolution_decode_gives_nearly_the_same_input() -> None:
    full, _ = phantom(1664, 1280, label=True, pectoral=True)
    quarter = full.reshape(416, 4, 320, 4).mean(axis=(1, 3))  # what a 1/4 decode yields
    a, at_full = preprocess(full, params=PARAMS)
    b, at_quarter = preprocess(quarter, params=PARAMS, decode_scale=4)
    assert np.abs(a - b).mean() < 0.02
    box = (40.0, 100.0, 120.0, 180.0)
    assert at_full.to_original(box) == pytest.approx(at_quarter.to_original(box), abs=4.0)


def test_transform_to_dict_is_json_ready() -> None:
    _, transform = preprocess(phantom()[0], params=PARAMS, decode_scale=2)
    data: dict[str, Any] = json.loads(json.dumps(transform.to_dict()))
    assert data["decode_scale"] == 2.0
    assert data["crop_box"] == list(transform.crop_box)
    rebuilt: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    assert Transform(**rebuilt) == transform


# --- preprocess_image -----------------------------------------------------------------------


def test_preprocess_image_applies_the_images_own_flips_and_scale() -> None:
    pixels, _ = phantom(chest_wall="right")
    image = Image(path=None, usable=True, pixels=pixels, flip_horizontal=True, decode_scale=2.0)
    tensor, transform = preprocess_image(image, PARAMS)
    expected, _ = preprocess(pixels, params=PARAMS, flip_horizontal=True, decode_scale=2.0)
    assert np.array_equal(tensor, expected)
    assert transform.flip_horizontal and transform.decode_scale == 2.0


def test_preprocess_image_without_pixels_raises_dicom_read_error() -> None:
    with pytest.raises(DicomReadError, match="image has no pixels"):
        preprocess_image(Image(path=None, usable=False), PARAMS)


# --- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"input_height": 0}, ValueError, ['"input_height"', "0", "positive"]),
        ({"input_width": 256.0}, TypeError, ['"input_width"', "256.0", "int"]),
        ({"input_width": True}, TypeError, ['"input_width"', "True", "int"]),
        ({"margin": 0.7}, ValueError, ['"margin"', "0.7", "[0, 0.5)"]),
        ({"std": 0.0}, ValueError, ['"std"', "0.0", "positive"]),
        ({"mean": float("nan")}, ValueError, ['"mean"', "nan", "finite"]),
        ({"normalisation": "zscale"}, ValueError, ['"normalisation"', "'zscale'", "'minmax'"]),
        ({"version": ""}, ValueError, ['"version"', "''", "non-empty"]),
    ],
)
def test_invalid_params_are_named_with_value_and_allowed_values(
    changes: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        replace(PARAMS, **changes)
    for word in words:
        assert word in str(caught.value)


def test_params_round_trip_through_the_sidecar_dict() -> None:
    params = PreprocessParams(input_height=640, normalisation="minmax", mean=0.2, version="2")
    assert PreprocessParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params


def test_from_dict_rejects_unknown_keys() -> None:
    data = {**PARAMS.to_dict(), "input_size": 512}
    with pytest.raises(ConfigError, match="'input_size'"):
        PreprocessParams.from_dict(data)


def test_from_dict_rejects_missing_keys() -> None:
    data = PARAMS.to_dict()
    del data["mean"]
    with pytest.raises(ConfigError, match="mean"):
        PreprocessParams.from_dict(data)


def test_from_dict_rejects_wrong_types() -> None:
    data = {**PARAMS.to_dict(), "input_height": "512"}
    with pytest.raises(ConfigError, match='"input_height".*int'):
        PreprocessParams.from_dict(data)
