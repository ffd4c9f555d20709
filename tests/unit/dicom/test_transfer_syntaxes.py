"""Every transfer syntax a PACS sends decodes to the same picture, and JPEG 2000 decodes at
reduced resolution when the model needs a smaller image."""

import shutil
import subprocess

import numpy as np
import pytest
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from dicom_builders import breast_pixels, mg_dataset, saved_in, write
from mammotriage.dicom import read_image
from mammotriage.dicom.decode import block_mean

ROWS, COLS = 256, 192


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uncompressed 12-bit mammogram-like image and its decoded pixels."""
    rng = np.random.default_rng(0)
    pixels = breast_pixels(ROWS, COLS) + rng.integers(0, 50, (ROWS, COLS)).astype(np.uint16)
    ds = mg_dataset(pixels, WindowCenter=1500, WindowWidth=3000)
    path = write(ds, tmp_path_factory.mktemp("ref") / "ref.dcm")
    return path, read_image(path).pixels


@pytest.mark.parametrize(
    "syntax,kwargs",
    [
        (ExplicitVRLittleEndian, None),
        (ImplicitVRLittleEndian, None),
        (DeflatedExplicitVRLittleEndian, None),
        (RLELossless, {}),
        (JPEGLSLossless, {}),
        (JPEG2000Lossless, {}),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_lossless_syntaxes_decode_to_identical_pixels(reference, tmp_path, syntax, kwargs):
    src, expected = reference
    dst = saved_in(src, tmp_path / "x.dcm", syntax, **(kwargs or {}))
    image = read_image(dst)
    assert image.usable, image.reason
    assert image.transfer_syntax_uid == syntax
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)


def test_lossy_jpeg_2000_decodes_close_to_the_original(reference, tmp_path):
    src, expected = reference
    dst = saved_in(src, tmp_path / "x.dcm", JPEG2000, j2k_cr=[10])
    image = read_image(dst)
    assert image.usable, image.reason
    assert float(np.abs(image.pixels - expected).mean()) < 0.02


DCMTK = [
    ("dcmcjpeg", ["+e1"], JPEGLosslessSV1, 0.0),
    ("dcmcjpeg", ["+ee"], JPEGExtended12Bit, 0.02),
]


@pytest.mark.integration
@pytest.mark.parametrize(
    "tool,args,syntax,tolerance", DCMTK, ids=["jpeg-lossless", "jpeg-extended"]
)
def test_jpeg_written_by_dcmtk_decodes(reference, tmp_path, tool, args, syntax, tolerance):
    assert shutil.which(tool), f"{tool} missing: make test installs dcmtk"
    src, expected = reference
    dst = tmp_path / "x.dcm"
    subprocess.run([tool, *args, str(src), str(dst)], check=True, capture_output=True)
    image = read_image(dst)
    assert image.usable, image.reason
    assert image.transfer_syntax_uid == syntax
    assert float(np.abs(image.pixels - expected).mean()) <= tolerance + 1e-6


@pytest.mark.integration
def test_8bit_jpeg_baseline_written_by_dcmtk_decodes(tmp_path):
    assert shutil.which("dcmcjpeg"), "dcmcjpeg missing: make test installs dcmtk"
    pixels = (breast_pixels(ROWS, COLS, bits=8)).astype(np.uint8)
    ds = mg_dataset(pixels.astype(np.uint16), BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.PixelData = pixels.tobytes()
    src = write(ds, tmp_path / "src.dcm")
    dst = tmp_path / "x.dcm"
    subprocess.run(["dcmcjpeg", "+eb", str(src), str(dst)], check=True, capture_output=True)
    image = read_image(dst)
    assert image.usable, image.reason
    assert image.transfer_syntax_uid == JPEGBaseline8Bit
    assert float(np.abs(image.pixels - read_image(src).pixels).mean()) < 0.02


def test_jpeg_2000_is_decoded_at_reduced_resolution_when_the_model_needs_a_quarter(
    reference, tmp_path
):
    src, _ = reference
    full = read_image(src).pixels
    dst = saved_in(src, tmp_path / "x.dcm", JPEG2000Lossless)
    image = read_image(dst, target_shape=(ROWS // 4, COLS // 4))
    assert image.decode_scale == 4.0
    assert image.pixels.shape == (ROWS // 4, COLS // 4)
    # The wavelet low-pass band approximates the block mean of the full image.
    assert float(np.abs(image.pixels - block_mean(full, 2)).mean()) < 0.03


def test_other_syntaxes_are_block_averaged_to_the_same_geometry(reference, tmp_path):
    src, _ = reference
    dst = saved_in(src, tmp_path / "x.dcm", RLELossless)
    image = read_image(dst, target_shape=(ROWS // 4, COLS // 4))
    assert image.decode_scale == 4.0
    assert image.pixels.shape == (ROWS // 4, COLS // 4)


def test_no_reduction_when_the_image_is_less_than_twice_the_target(reference):
    src, _ = reference
    image = read_image(src, target_shape=(ROWS // 2 + 1, COLS // 2))
    assert image.decode_scale == 1.0
    assert image.pixels.shape == (ROWS, COLS)
