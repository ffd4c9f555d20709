#!/usr/bin/env python
"""Decode benchmark: per transfer syntax, ms per image at full size and at the model's
resolution, and peak memory. A benchmark, not a test: it prints figures.

One full-size synthetic mammogram (default 4736x2624, 12-bit, the size the issue measured)
is written once in each transfer syntax; every (syntax, mode) pair is then timed in a fresh
subprocess so that its peak RSS is its own.

    .venv/bin/python scripts/bench_decode.py [--rows 4736 --columns 2624] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
from mammotriage.dicom import read_image

def hwm_mb():
    # VmHWM belongs to this process's address space; ru_maxrss would carry the parent's
    # peak across fork+exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
path, target, repeat = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
target = tuple(target) if target else None
base = hwm_mb()
read_image(path, target_shape=target)  # warm-up: codec imports, page cache
times = []
for _ in range(repeat):
    t = time.perf_counter()
    image = read_image(path, target_shape=target)
    times.append(time.perf_counter() - t)
    assert image.usable, image.reason
peak = hwm_mb()
print(json.dumps({"ms": 1000 * float(sorted(times)[len(times) // 2]),
                  "shape": list(image.pixels.shape), "decoder": getattr(image, "decoder", None),
                  "peak_rss_mb": peak, "delta_rss_mb": peak - base}))
"""


def _make_reference(rows: int, columns: int, folder: Path) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from mammotriage.dicom.model import Laterality, ViewPosition
    from mammotriage.synth import Density, burn_in_label, render_view, sample_breast

    rng = np.random.default_rng(2024)
    spacing = 0.065
    breast = sample_breast(rng, Laterality.LEFT, Density.C, (rows * spacing, columns * spacing))
    view = render_view(rng, breast, ViewPosition.MLO, (rows, columns), spacing)
    pixels = burn_in_label(view.pixels, "LMLO", view.chest_wall, spacing)
    stored = np.clip(pixels * 4095, 0, 4095).astype(np.uint16)

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.BodyPartExamined = "MG", "BREAST"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality, ds.ViewPosition, ds.PatientOrientation = "L", "MLO", ["A", "F"]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = stored.tobytes()
    path = folder / "explicit.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _variants(reference: Path, folder: Path) -> dict[str, Path]:
    import pydicom
    from pydicom.uid import (
        JPEG2000,
        DeflatedExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGLSLossless,
        RLELossless,
    )

    out = {"Explicit VR Little Endian": reference}

    def save(name: str, mutate) -> None:
        ds = pydicom.dcmread(reference)
        kwargs = mutate(ds) or {}
        path = folder / f"{len(out)}.dcm"
        ds.save_as(path, enforce_file_format=True, **kwargs)
        out[name] = path

    def implicit(ds):
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        return {"implicit_vr": True, "little_endian": True}

    def deflated(ds):
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        return {"implicit_vr": False, "little_endian": True}

    save("Implicit VR Little Endian", implicit)
    save("Deflated Explicit VR Little Endian", deflated)
    save("RLE Lossless", lambda ds: ds.compress(RLELossless))
    save("JPEG-LS Lossless", lambda ds: ds.compress(JPEGLSLossless))
    save("JPEG 2000 Lossless", lambda ds: ds.compress(JPEG2000Lossless))
    save("JPEG 2000 (lossy, 20:1)", lambda ds: ds.compress(JPEG2000, j2k_cr=[20]))
    if shutil.which("dcmcjpeg"):
        for name, flag in (
            ("JPEG Lossless SV1 (dcmtk)", "+e1"),
            ("JPEG Extended 12-bit (dcmtk)", "+ee"),
        ):
            path = folder / f"{len(out)}.dcm"
            subprocess.run(
                ["dcmcjpeg", flag, str(reference), str(path)], check=True, capture_output=True
            )
            out[name] = path
        # 8-bit JPEG Baseline, the one syntax libjpeg-turbo decodes at reduced size: the
        # same picture's top 8 bits.
        ds = pydicom.dcmread(reference)
        top8 = (ds.pixel_array >> 4).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = top8.tobytes()
        ds.WindowCenter, ds.WindowWidth = 128, 256
        src = folder / "8bit.dcm"
        ds.save_as(src, enforce_file_format=True)
        path = folder / f"{len(out)}.dcm"
        subprocess.run(["dcmcjpeg", "+eb", str(src), str(path)], check=True, capture_output=True)
        out["JPEG Baseline 8-bit (dcmtk)"] = path
    return out


def _measure(path: Path, target: tuple[int, int] | None, repeat: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), json.dumps(target), str(repeat)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4736)
    parser.add_argument("--columns", type=int, default=2624)
    parser.add_argument("--target", type=int, nargs=2, default=(512, 256), metavar=("ROWS", "COLS"),
                        help="the model's input size "
                             "(default 512 256, the shipped model's sidecar)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        reference = _make_reference(args.rows, args.columns, folder)
        variants = _variants(reference, folder)
        setup_s = time.perf_counter() - t
        rows = []
        for name, path in variants.items():
            full = _measure(path, None, args.repeat)
            reduced = _measure(path, tuple(args.target), args.repeat)
            rows.append({
                "transfer_syntax": name, "file_mb": path.stat().st_size / 1e6,
                "full_ms": full["ms"], "full_peak_rss_mb": full["peak_rss_mb"],
                "model_ms": reduced["ms"], "model_shape": reduced["shape"],
                "model_peak_rss_mb": reduced["peak_rss_mb"], "speedup": full["ms"] / reduced["ms"],
                "full_decoder": full.get("decoder"), "model_decoder": reduced.get("decoder"),
            })

    meta = {"machine": f"{platform.machine()}, {platform.processor() or '?'}, "
                       f"{__import__('os').cpu_count()} cores", "python": platform.python_version(),
            "image": f"{args.rows}x{args.columns} 12-bit", "target": list(args.target),
            "repeat": args.repeat, "setup_s": round(setup_s, 1)}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"# decode benchmark: {meta['image']} -> model input {args.target[0]}x{args.target[1]}, "
          f"median of {args.repeat}, {meta['machine']}, Python {meta['python']}")
    print("| transfer syntax | file MB | full ms | full peak RSS MB | model-res ms | decoded shape "
          "| model-res peak RSS MB | speedup | decoder (full / model-res) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['transfer_syntax']} | {r['file_mb']:.1f} | {r['full_ms']:.0f} "
              f"| {r['full_peak_rss_mb']:.0f} | {r['model_ms']:.0f} "
              f"| {r['model_shape'][0]}x{r['model_shape'][1]} "
              f"| {r['model_peak_rss_mb']:.0f} | {r['speedup']:.1f}x "
              f"| {r['full_decoder']} / {r['model_decoder']} |")


if __name__ == "__main__":
    main()
