"""Which codec reads each transfer syntax: the fastest correct one measured
(``scripts/bench_codecs.py``), the next one when it fails, never a lenient one that would
turn damaged data into an image, and the choice recorded on the image."""

from __future__ import annotations

import io
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
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
from mammotriage.dicom.decode import block_mean, decode_stored

ROWS, COLS = 256, 192


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A 12-bit mammogram-like image with noise (so every codec has real work), written
    uncompressed, and what the reader makes of it."""
    rng = np.random.default_rng(7)
    stored = breast_pixels(ROWS, COLS) + rng.integers(0, 200, (ROWS, COLS)).astype(np.uint16)
    path = write(mg_dataset(stored, WindowCenter=1500, WindowWidth=3000),
                 tmp_path_factory.mktemp("ref") / "ref.dcm")
    image = read_image(path)
    assert image.usable, image.reason
    return path, stored, image


def _dcmtk(src, dst, flag):
    assert shutil.which("dcmcjpeg"), "dcmcjpeg missing: make test installs dcmtk"
    subprocess.run(["dcmcjpeg", flag, str(src), str(dst)], check=True, capture_output=True)
    return dst


def _with_frame(path, frame):
    """The file at ``path`` with its one encapsulated frame replaced."""
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    ds.save_as(path, enforce_file_format=True)
    return path


def _frame(path):
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _scan_corrupted(frame):
    """The middle third of the entropy-coded scan overwritten with 0xFF, SOI/SOF/EOI kept:
    only a decoder that checks the scan can tell (pylibjpeg's libjpeg decodes it, as noise,
    for both JPEG and JPEG-LS)."""
    frame = bytearray(frame.rstrip(b"\0"))
    sos = frame.find(b"\xff\xda")
    third = (len(frame) - sos - 14) // 3
    frame[sos + 12 + third : sos + 12 + 2 * third] = b"\xff" * third
    return bytes(frame)


@pytest.mark.parametrize(
    "syntax,decoder",
    [
        (ExplicitVRLittleEndian, "numpy"),
        (ImplicitVRLittleEndian, "numpy"),
        (DeflatedExplicitVRLittleEndian, "numpy"),
        (RLELossless, "pylibjpeg-rle"),
        (JPEGLSLossless, "pyjpegls"),
        (JPEG2000Lossless, "imagecodecs.jpeg2k"),
    ],
    ids=lambda v: getattr(v, "name", v),
)
def test_lossless_syntax_decodes_pixel_identical_through_its_chosen_decoder(
    reference, tmp_path, syntax, decoder
):
    src, stored, expected = reference
    image = read_image(saved_in(src, tmp_path / "x.dcm", syntax))
    assert image.usable, image.reason
    assert image.decoder == decoder
    assert np.array_equal(image.pixels, expected.pixels)
    assert np.array_equal(decode_stored(pydicom.dcmread(tmp_path / "x.dcm")).stored, stored)


@pytest.mark.integration
def test_jpeg_lossless_written_by_dcmtk_decodes_pixel_identical_with_libjpeg_turbo(
    reference, tmp_path
):
    src, stored, expected = reference
    image = read_image(_dcmtk(src, tmp_path / "x.dcm", "+e1"))
    assert image.transfer_syntax_uid == JPEGLosslessSV1
    assert image.decoder == "imagecodecs.jpeg8"
    assert np.array_equal(image.pixels, expected.pixels)


@pytest.mark.integration
def test_jpeg_extended_decodes_with_libjpeg_turbo_within_the_idct_rounding_of_libjpeg(
    reference, tmp_path, monkeypatch
):
    src, _, _ = reference
    path = _dcmtk(src, tmp_path / "x.dcm", "+ee")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == JPEGExtended12Bit
    turbo = decode_stored(pydicom.dcmread(path))
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # not installed: libjpeg reads it
    libjpeg = decode_stored(pydicom.dcmread(path))
    assert (turbo.decoder, libjpeg.decoder) == ("imagecodecs.jpeg8", "pylibjpeg-libjpeg")
    # Two correct decoders of a lossy stream differ by their inverse DCT's rounding only.
    diff = np.abs(turbo.stored.astype(np.int32) - libjpeg.stored.astype(np.int32))
    assert diff.max() <= 4


def _baseline_8bit(tmp_path):
    from PIL import Image as PILImage

    pixels = (breast_pixels(ROWS * 2, COLS * 2, bits=8)
              + np.random.default_rng(1).integers(0, 30, (ROWS * 2, COLS * 2))).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "L").save(buffer, "JPEG", quality=92)
    ds = mg_dataset(pixels.astype(np.uint16), BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    frame = buffer.getvalue()
    ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    ds["PixelData"].VR = "OB"
    return write(ds, tmp_path / "baseline.dcm")


@pytest.mark.parametrize("k", [1, 2, 3])
def test_8bit_baseline_at_reduced_size_is_the_block_mean_within_one_stored_value(tmp_path, k):
    path = _baseline_8bit(tmp_path)
    full = decode_stored(pydicom.dcmread(path))
    reduced = decode_stored(pydicom.dcmread(path), target_shape=(2 * ROWS >> k, 2 * COLS >> k))
    assert full.decoder == "imagecodecs.jpeg8"
    assert reduced.decoder == "pillow-libjpeg-turbo-scaled"
    assert reduced.k == k
    assert reduced.stored.dtype == np.float32
    assert np.abs(reduced.stored - block_mean(full.stored, k)).max() <= 1.0


def test_reduced_jpeg_2000_is_read_by_pillow_at_a_resolution_level(reference, tmp_path):
    src, _, _ = reference
    image = read_image(saved_in(src, tmp_path / "x.dcm", JPEG2000Lossless),
                       target_shape=(ROWS // 4, COLS // 4))
    assert image.decoder == "pillow-openjpeg"
    assert image.decode_scale == 4.0


def _fails(*args, **kwargs):
    raise RuntimeError("codec fault")


def test_when_charls_in_pyjpegls_raises_imagecodecs_reads_the_jpeg_ls_image(
    reference, tmp_path, monkeypatch
):
    import jpeg_ls

    # A fault of the codec itself cannot be made to happen with a valid file: mock it.
    monkeypatch.setattr(jpeg_ls, "decode_pixel_data", _fails)
    src, _, expected = reference
    image = read_image(saved_in(src, tmp_path / "x.dcm", JPEGLSLossless))
    assert image.usable, image.reason
    assert image.decoder == "imagecodecs.jpegls"
    assert np.array_equal(image.pixels, expected.pixels)


def test_when_imagecodecs_raises_pillow_reads_the_jpeg_2000_image(
    reference, tmp_path, monkeypatch
):
    import imagecodecs

    monkeypatch.setattr(imagecodecs, "jpeg2k_decode", _fails)
    src, _, expected = reference
    image = read_image(saved_in(src, tmp_path / "x.dcm", JPEG2000Lossless))
    assert image.usable, image.reason
    assert image.decoder == "pillow-openjpeg"
    assert np.array_equal(image.pixels, expected.pixels)


def test_with_imagecodecs_missing_jpeg_falls_to_pylibjpeg_libjpeg(tmp_path, monkeypatch):
    path = _baseline_8bit(tmp_path)
    turbo = read_image(path)
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    libjpeg = read_image(path)
    assert (turbo.decoder, libjpeg.decoder) == ("imagecodecs.jpeg8", "pylibjpeg-libjpeg")
    # Two decoders of a lossy stream: the same picture, to the rounding of the inverse DCT.
    assert np.abs(turbo.pixels - libjpeg.pixels).max() <= 2 / 255


@pytest.mark.parametrize("pyjpegls_fails", [False, True], ids=["pyjpegls", "imagecodecs"])
def test_damaged_jpeg_ls_scan_is_refused_and_never_handed_to_libjpeg(
    reference, tmp_path, monkeypatch, pyjpegls_fails
):
    import jpeg_ls

    src, _, _ = reference
    path = saved_in(src, tmp_path / "x.dcm", JPEGLSLossless)
    _with_frame(path, _scan_corrupted(_frame(path)))
    if pyjpegls_fails:  # then imagecodecs' CharLS must refuse it too
        monkeypatch.setattr(jpeg_ls, "decode_pixel_data", _fails)
    image = read_image(path)
    assert image.usable is False
    assert "jpeg-ls lossless image compression pixel data could not be decoded" in (
        image.reason or "").lower()


def test_damaged_jpeg_scan_refused_by_libjpeg_turbo_is_not_retried_by_libjpeg(tmp_path):
    path = _baseline_8bit(tmp_path)
    _with_frame(path, _scan_corrupted(_frame(path)))
    image = read_image(path)
    assert image.usable is False
    assert "could not be decoded" in (image.reason or "")


def test_rle_segments_running_past_the_frame_are_not_retried_by_pydicoms_lenient_rle(
    tmp_path,
):
    # pylibjpeg-rle refuses (a Rust panic); pydicom's own RLE decoder would accept the
    # frame with a warning about padding. Segments for twice the rows the header says:
    ds = mg_dataset(breast_pixels(2 * ROWS, COLS))
    ds.compress(RLELossless)
    ds.Rows = ROWS
    image = read_image(write(ds, tmp_path / "rle.dcm"))
    assert image.usable is False
    assert "rle lossless pixel data could not be decoded" in (image.reason or "").lower()


def test_decoder_is_none_when_no_pixels_were_decoded(reference):
    src, _, _ = reference
    image = read_image(src, load_pixels=False)
    assert image.usable
    assert image.decoder is None


def test_image_with_its_decoder_survives_pickling(reference):
    _, _, image = reference
    copy = pickle.loads(pickle.dumps(image))
    assert copy.decoder == "numpy"
    assert np.array_equal(copy.pixels, image.pixels)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8, np.int32, np.float32])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_block_mean_is_the_mean_of_each_block_edges_included(dtype, k):
    """Each output pixel is the mean of its 2**k x 2**k block; a block cut by the image's
    edge is filled with the edge pixels (ceil division, as JPEG 2000 reduces)."""
    rng = np.random.default_rng(k)
    image = (rng.random((53, 38)) * 4000 - (1000 if np.dtype(dtype).kind == "i" else 0))
    image = image.astype(dtype)
    f = 1 << k
    got = block_mean(image, k)
    rows, cols = -(-53 // f), -(-38 // f)
    assert got.shape == (rows, cols) and got.dtype == np.float32
    padded = np.pad(image.astype(np.float64), ((0, rows * f - 53), (0, cols * f - 38)), "edge")
    for r, c in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 3)]:
        block = padded[r * f : (r + 1) * f, c * f : (c + 1) * f]
        assert got[r, c] == pytest.approx(block.mean(), rel=1e-6)
