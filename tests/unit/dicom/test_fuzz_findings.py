"""Findings of fuzzing the reader (issue 11): each one a real file that once escaped the
reader, came back usable when it was not, or cost unbounded time or memory."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from pydicom.uid import ImplicitVRLittleEndian, JPEGLSLossless, RLELossless
from typer.testing import CliRunner

from dicom_builders import breast_pixels, mg_dataset, write
from infer_builders import tiny_model, write_view
from mammotriage.cli import app
from mammotriage.dicom import Image, read_image
from mammotriage.dicom.decode import is_codec_failure
from mammotriage.infer.prepare import Unusable, prepare_image
from mammotriage.sidecar import load_sidecar
from mammotriage.worker.thumbnails import thumbnail_view

runner = CliRunner()
# Building invalid values on purpose makes pydicom warn (and quote them, at length).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _rows_patched(data: bytes, rows: int) -> bytes:
    out = bytearray(data)
    offset = data.find(b"\x28\x00\x10\x00US")
    out[offset + 8 : offset + 10] = struct.pack("<H", rows)
    return bytes(out)


def rle_panic_bytes(**attrs) -> bytes:
    """An RLE file whose segments hold 96 rows while the header says 48: the repeat runs
    run past the frame and pylibjpeg-rle's Rust decoder panics (pyo3 PanicException, a
    BaseException); pydicom's own RLE decoder is never reached."""
    ds = mg_dataset(breast_pixels(96, 64), **attrs)
    ds.compress(RLELossless)
    return _rows_patched(_bytes(ds), 48)


# ----------------------------------------------------------------- 1: the Rust panic


def test_the_rle_recipe_really_panics_in_the_codec():
    """The recipe must keep reaching the real panic, or the tests below prove nothing."""
    import pydicom
    from pydicom.pixels import pixel_array

    ds = pydicom.dcmread(io.BytesIO(rle_panic_bytes()))
    with pytest.raises(BaseException) as caught:
        pixel_array(ds, index=0, raw=True, decoding_plugin="pylibjpeg")
    assert type(caught.value).__name__ == "PanicException"
    assert not isinstance(caught.value, Exception)
    assert is_codec_failure(caught.value)


def test_codec_failures_are_not_interrupts_or_exits():
    assert is_codec_failure(ValueError("x"))
    for exc in (KeyboardInterrupt(), SystemExit(1), GeneratorExit()):
        assert not is_codec_failure(exc)


@pytest.mark.parametrize("load_pixels", [True, False])
def test_rle_panic_is_an_unusable_image(tmp_path, load_pixels):
    # Without PatientOrientation a header-only read decodes pixels to infer orientation.
    path = tmp_path / "panic.dcm"
    path.write_bytes(rle_panic_bytes(PatientOrientation=None))
    image = read_image(path, load_pixels=load_pixels)
    assert image.usable is False
    assert "rle lossless pixel data could not be decoded" in (image.reason or "").lower()


def test_rle_panic_in_prepare_is_unusable(tmp_path):
    path = tmp_path / "panic.dcm"
    path.write_bytes(rle_panic_bytes())  # with PatientOrientation: the header reads usable
    header = read_image(path, load_pixels=False)
    assert header.usable
    params = load_sidecar(tiny_model(tmp_path / "model")).preprocess_params
    result = prepare_image(header, params)
    assert isinstance(result, Unusable) and "could not be decoded" in result.reason


def test_rle_panic_gives_no_thumbnail(tmp_path):
    path = tmp_path / "panic.dcm"
    path.write_bytes(rle_panic_bytes())
    assert thumbnail_view(read_image(path)) is None


def test_inspect_over_a_folder_with_a_panicking_file_reports_it(tmp_path):
    (tmp_path / "panic.dcm").write_bytes(rle_panic_bytes(PatientOrientation=None))
    result = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    image = next(r for r in records if r["kind"] == "image")
    assert image["usable"] is False and "could not be decoded" in image["reason"]


def test_score_over_a_folder_with_a_panicking_file_reports_it(tmp_path):
    data = tmp_path / "data"
    study = "1.2.826.0.1.3680043.8.498.77"
    write_view(data / "LCC.dcm", "L", "CC", study=study)
    (data / "panic.dcm").write_bytes(
        rle_panic_bytes(StudyInstanceUID=study, ImageLaterality="R", PatientOrientation=None)
    )
    model = tiny_model(tmp_path / "model")
    result = runner.invoke(app, ["score", str(data), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    images = [im for record in records for im in record["images"]]
    panic = next(im for im in images if im["path"].endswith("panic.dcm"))
    assert panic["usable"] is False and "could not be decoded" in panic["reason"]


# ----------------------------------------------------------------- 2: file meta VR


def test_unknown_vr_in_the_file_meta_is_an_unusable_image(tmp_path):
    data = bytearray(_bytes(mg_dataset()))
    offset = data.find(b"\x02\x00\x02\x00UI")
    data[offset + 4 : offset + 6] = b"ZZ"
    path = tmp_path / "zz.dcm"
    path.write_bytes(bytes(data))
    image = read_image(path)
    assert image.usable is False
    assert "file meta information" in (image.reason or "").lower()


# ----------------------------------------------------------------- 3: non-finite pixels


@pytest.mark.parametrize(
    "attrs",
    [
        dict(WindowCenter=1e308, WindowWidth=1e308),
        dict(WindowCenter=1e39, WindowWidth=1e39),
        dict(RescaleIntercept=-1e39),
        dict(RescaleSlope=1e30),
        dict(RescaleSlope=1e305),
        dict(WindowCenter=2000, WindowWidth=1e-46, VOILUTFunction="SIGMOID"),
        dict(WindowCenter=2000, WindowWidth=1e-46, VOILUTFunction="LINEAR_EXACT"),
        dict(WindowCenter=2000, WindowWidth=1e-46),
    ],
    ids=repr,
)
def test_extreme_rescale_or_window_never_gives_non_finite_pixels(tmp_path, attrs):
    image = read_image(write(mg_dataset(**attrs), tmp_path / "f.dcm"))
    if image.usable:
        assert image.pixels is not None and np.isfinite(image.pixels).all()
        assert image.pixels.min() >= 0.0 and image.pixels.max() <= 1.0
    else:
        assert "not finite" in (image.reason or "") or "out of range" in (image.reason or "")


@pytest.mark.parametrize("attrs", [dict(RescaleIntercept=-1e39), dict(RescaleSlope=1e305)])
def test_rescale_beyond_float_range_is_unusable(tmp_path, attrs):
    image = read_image(write(mg_dataset(**attrs), tmp_path / "f.dcm"))
    assert image.usable is False and "rescale" in (image.reason or "").lower()


def test_a_usable_image_never_holds_non_finite_pixels():
    pixels = np.full((64, 48), 0.5, np.float32)
    pixels[3, 3] = np.nan
    image = Image(path=None, usable=True, pixels=pixels)
    assert image.usable is False and image.pixels is None
    assert "not finite" in (image.reason or "")


# ----------------------------------------------------------------- 6: reasons


def test_reason_is_capped_at_one_place():
    image = Image(path=None, usable=False, reason="x" * 70_000)
    assert image.reason is not None and len(image.reason) <= 200


def test_reason_never_quotes_a_free_text_modality(tmp_path):
    secret = "PATIENT-SECRET-" + "Q" * 60_000
    ds = mg_dataset(Modality=secret, BodyPartExamined="CHEST")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # 4-byte lengths for any VR
    path = write(ds, tmp_path / "m.dcm")
    image = read_image(path)
    assert image.usable is False
    assert "SECRET" not in (image.reason or "") and len(image.reason or "") <= 200


def test_reason_never_quotes_an_invalid_uid(tmp_path):
    image = read_image(write(mg_dataset(SOPInstanceUID="1.2.abc.4"), tmp_path / "u.dcm"))
    assert image.usable is False and "abc" not in (image.reason or "")


# ----------------------------------------------------------------- 7: geometry


@pytest.mark.parametrize("load_pixels", [True, False])
def test_an_rle_mammogram_of_three_rows_is_unusable(tmp_path, load_pixels):
    ds = mg_dataset(breast_pixels(512, 384))
    ds.compress(RLELossless)
    path = tmp_path / "rows3.dcm"
    path.write_bytes(_rows_patched(_bytes(ds), 3))
    image = read_image(path, load_pixels=load_pixels)
    assert image.usable is False
    assert "implausible image size 3x384" in (image.reason or "")


@pytest.mark.parametrize("shape", [(20, 64), (64, 20), (400, 64), (64, 400)])
def test_implausible_geometry_is_unusable(tmp_path, shape):
    image = read_image(write(mg_dataset(breast_pixels(*shape)), tmp_path / "g.dcm"))
    assert image.usable is False and "implausible image size" in (image.reason or "")


@pytest.mark.parametrize("shape", [(96, 64), (64, 96), (128, 32), (512, 384), (4096, 3328)])
def test_plausible_geometry_is_usable(tmp_path, shape):
    image = read_image(write(mg_dataset(breast_pixels(*shape)), tmp_path / "g.dcm"),
                       load_pixels=False)
    assert image.usable, image.reason


# ----------------------------------------------------------------- 21: missing codec


_HIDDEN_CODECS = textwrap.dedent(
    """
    import json, sys
    for name in ("pylibjpeg", "libjpeg", "openjpeg", "jpeg_ls", "gdcm", "rle", "imagecodecs"):
        sys.modules[name] = None  # a real hide: importing any of them fails
    from mammotriage.dicom import read_image
    image = read_image(sys.argv[1])
    print(json.dumps([image.usable, image.reason]))
    """
)


def test_missing_codec_names_the_package_to_install(tmp_path):
    ds = mg_dataset(breast_pixels(96, 64))
    ds.compress(JPEGLSLossless)
    path = write(ds, tmp_path / "ls.dcm")
    result = subprocess.run(
        [sys.executable, "-c", _HIDDEN_CODECS, str(path)], capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    usable, reason = json.loads(result.stdout.strip().splitlines()[-1])
    assert usable is False
    assert reason.startswith("no installed codec decodes JPEG-LS Lossless"), reason
    assert "pyjpegls" in reason and "all plugins are miss" not in reason
    assert len(reason) <= 200


# ----------------------------------------------------------------- 4, 5: time and memory


def test_trailing_zeros_after_pixel_data_are_read_fast(tmp_path):
    path = tmp_path / "trailing.dcm"
    path.write_bytes(_bytes(mg_dataset()) + b"\0" * (20 << 20))
    start = time.process_time()
    image = read_image(path)
    assert time.process_time() - start < 2.0
    assert image.usable, image.reason  # the junk after the data set is ignored (see reader)


def test_trailing_items_after_pixel_data_are_read_fast(tmp_path):
    path = tmp_path / "trailing.dcm"
    item = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    path.write_bytes(_bytes(mg_dataset()) + item * ((20 << 20) // 8))
    start = time.process_time()
    image = read_image(path)
    assert time.process_time() - start < 2.0
    assert image.usable, image.reason


def test_junk_before_pixel_data_is_unusable_and_fast(tmp_path):
    data = _bytes(mg_dataset())
    start = data.find(b"\xe0\x7f\x10\x00")
    path = tmp_path / "junk.dcm"
    path.write_bytes(data[:start] + b"\0" * (20 << 20) + data[start:])
    began = time.process_time()
    image = read_image(path)
    assert time.process_time() - began < 2.0
    assert image.usable is False and "out of order" in (image.reason or "")
