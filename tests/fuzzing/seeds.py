"""Seed files for the fuzzer: one valid file per transfer syntax the reader supports, image
variants (LUT, rescale, MONOCHROME1, signed, 8/32-bit), and a few damaged-corpus files.

Sources: the synthetic corpus (``mammotriage.synth.generate``: the six vendor profiles and
their syntaxes), files built with ``dicom_builders``, transcoded with pydicom, Pillow and,
when installed, dcmtk's ``dcmcjpeg`` (JPEG lossless and extended, which pydicom cannot
encode); and a few kinds of ``tests/unit/dicom/test_damaged_files.py``'s corpus.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSNearLossless,
)

from dicom_builders import FOR_PROCESSING, breast_pixels, mg_dataset

#: Kinds of the damaged corpus worth mutating further (already one step from valid).
DAMAGED_KINDS = (
    "encapsulated_missing_offset_table",
    "rle_wrong_number_of_segments",
    "j2k_tiles_missing",
    "jpegls_truncated",
    "deflate_stream_corrupted",
    "odd_pixel_data_length",
    "rows_wrong_value_length",
)


def _bytes(ds: Dataset, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def _synthetic(folder: Path, seed: int) -> dict[str, bytes]:
    from mammotriage.synth import generate

    out = folder / "synth"
    generate(out, exams=6, seed=seed, small=True, workers=1)
    seeds = {}
    for exam in sorted(p for p in out.iterdir() if p.is_dir()):
        path = sorted(exam.glob("*.dcm"))[0]
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        key = f"synth-{ds.Manufacturer.lower().removeprefix('synth-')}"
        seeds[key] = path.read_bytes()
    return seeds


def _built() -> dict[str, Callable[[], bytes]]:
    """Small files from dicom_builders, each stressing one part of the pixel pipeline."""

    def voi_lut() -> bytes:
        ds = mg_dataset(breast_pixels(128, 96))
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 12]
        item.LUTData = (np.arange(4096, dtype=np.uint16) ^ 0).tobytes()
        item["LUTData"].VR = "OW"
        ds.VOILUTSequence = Sequence([item])
        return _bytes(ds)

    def rescaled() -> bytes:
        return _bytes(mg_dataset(breast_pixels(128, 96), RescaleSlope="0.5",
                                 RescaleIntercept="-100", WindowCenter="1000",
                                 WindowWidth="2000", VOILUTFunction="SIGMOID"))

    def signed() -> bytes:
        pixels = breast_pixels(128, 96).astype(np.int16) - 2048
        ds = mg_dataset(pixels.view(np.uint16), PixelRepresentation=1)
        return _bytes(ds)

    def eight_bit() -> bytes:
        pixels = breast_pixels(128, 96, bits=8).astype(np.uint8)
        ds = mg_dataset(BitsAllocated=8, BitsStored=8, HighBit=7, Rows=128, Columns=96)
        ds.PixelData = pixels.tobytes()
        ds["PixelData"].VR = "OB"
        return _bytes(ds)

    def thirty_two_bit() -> bytes:
        pixels = breast_pixels(128, 96).astype(np.uint32)
        ds = mg_dataset(BitsAllocated=32, BitsStored=16, HighBit=15, Rows=128, Columns=96)
        ds.PixelData = pixels.tobytes()
        return _bytes(ds)

    def monochrome1_processing() -> bytes:
        ds = mg_dataset(breast_pixels(128, 96), PhotometricInterpretation="MONOCHROME1",
                        SOPClassUID=FOR_PROCESSING, PresentationIntentType="FOR PROCESSING",
                        ImageLaterality=None, PatientOrientation=None)
        return _bytes(ds)

    def implicit_small() -> bytes:
        ds = mg_dataset(breast_pixels(128, 96))
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        return _bytes(ds)

    def deflated() -> bytes:
        ds = mg_dataset(breast_pixels(256, 192))
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        return _bytes(ds)

    def big_endian() -> bytes:
        ds = mg_dataset(breast_pixels(128, 96))
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        return _bytes(ds, implicit_vr=False, little_endian=False)

    def jpeg_baseline() -> bytes:
        from PIL import Image as PILImage

        pixels = breast_pixels(256, 192, bits=8).astype(np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(pixels, "L").save(buffer, "JPEG", quality=90)
        frame = buffer.getvalue()
        ds = mg_dataset(pixels.astype(np.uint16), BitsAllocated=8, BitsStored=8, HighBit=7)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
        ds["PixelData"].VR = "OB"
        return _bytes(ds)

    def jpegls_near() -> bytes:
        ds = mg_dataset(breast_pixels(256, 192))
        ds.compress(JPEGLSNearLossless, jls_error=2)
        return _bytes(ds)

    return {
        "built-voi-lut": voi_lut,
        "built-rescale-sigmoid": rescaled,
        "built-signed": signed,
        "built-8bit": eight_bit,
        "built-32bit": thirty_two_bit,
        "built-mono1-processing": monochrome1_processing,
        "built-implicit": implicit_small,
        "ts-deflated": deflated,
        "ts-big-endian": big_endian,
        "ts-jpeg-baseline": jpeg_baseline,
        "ts-jpegls-near-lossless": jpegls_near,
    }


def _dcmtk(folder: Path) -> dict[str, bytes]:
    """JPEG lossless (SV1, process 14) and extended (12-bit) through dcmcjpeg."""
    tool = shutil.which("dcmcjpeg")
    if tool is None:
        return {}
    source = folder / "dcmtk-in.dcm"
    source.write_bytes(_bytes(mg_dataset(breast_pixels(256, 192))))
    out = {}
    for name, option in (("ts-jpeg-lossless-sv1", "+e1"), ("ts-jpeg-lossless", "+el"),
                         ("ts-jpeg-extended", "+ee")):
        target = folder / f"{name}.dcm"
        done = subprocess.run([tool, option, str(source), str(target)], capture_output=True,
                              timeout=60, check=False)
        if done.returncode == 0 and target.exists():
            out[name] = target.read_bytes()
    return out


def _damaged(folder: Path) -> dict[str, bytes]:
    """A few kinds of the damaged corpus, built by that test module's own builders."""
    path = Path(__file__).resolve().parents[1] / "unit" / "dicom" / "test_damaged_files.py"
    spec = importlib.util.spec_from_file_location("_fuzz_damaged_corpus", path)
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    except Exception:  # the corpus module is someone else's; a broken one costs us seeds only
        return {}
    out = {}
    for kind in getattr(module, "CORPUS", []):
        if kind.name in DAMAGED_KINDS:
            target = folder / "damaged" / kind.name
            target.mkdir(parents=True, exist_ok=True)
            try:
                out[f"damaged-{kind.name}"] = kind.build(target).read_bytes()
            except Exception:
                continue
    return out


def build_seeds(folder: Path, synth_seed: int = 7) -> dict[str, bytes]:
    """Every seed, by name, also written to ``folder/<name>.dcm``."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        work = Path(tmp)
        seeds = _synthetic(work, synth_seed)
        for name, make in _built().items():
            try:
                seeds[name] = make()
            except Exception as exc:  # an encoder missing here: fewer seeds, say so
                print(f"seed {name} not built: {type(exc).__name__}: {exc}", file=sys.stderr)
        seeds.update(_dcmtk(work))
        seeds.update(_damaged(work))
    for name, data in seeds.items():
        (folder / f"{name}.dcm").write_bytes(data)
    return seeds


def load_seeds(folder: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.dcm"))}
