#!/usr/bin/env python
"""Codec comparison: for each transfer syntax, every decoder installed here, side by side.
A benchmark, not a test: it prints figures.

One full-size synthetic mammogram (default 4736x2624, 12-bit; the picture
``scripts/bench_decode.py`` writes) is written once in each transfer syntax. For each
syntax every decoder that can read it decodes the same frame bytes (already in memory, so
file reading and header parsing are left out: this compares decoders, not readers),
``--repeat`` times after a warm-up; the median is printed. Each result is checked pixel for
pixel: lossless syntaxes against the stored values of the uncompressed original
(``array_equal``), lossy JPEG Extended against the other decoders (and its error against
the original is printed). The decoder ``decode.py`` chose is timed too, through
:func:`mammotriage.dicom.decode.decode_stored` (frame checks included), and named.

    .venv/bin/python scripts/bench_codecs.py [--rows 4736 --columns 2624] [--repeat 5]
        [--json] [--save FILE.json]

Deflated Explicit VR Little Endian compresses the whole data set, not a frame: its
"decoders" inflate the deflated data set (after the file meta information) to bytes, which
is where a reader spends its time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_decode  # noqa: E402  (the picture and the variants both scripts time)

Decoder = Callable[[Any, bytes], np.ndarray]


def _frame(ds: Any) -> bytes:
    from pydicom.encaps import generate_frames

    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _via_pydicom(plugin: str) -> Decoder:
    def decode(ds: Any, frame: bytes) -> np.ndarray:
        from pydicom.pixels import pixel_array

        return pixel_array(ds, index=0, raw=True, decoding_plugin=plugin)

    return decode


def _imagecodecs(name: str) -> Decoder:
    def decode(ds: Any, frame: bytes) -> np.ndarray:
        import imagecodecs

        return getattr(imagecodecs, name)(frame)

    return decode


def _imagecodecs_dicomrle(ds: Any, frame: bytes) -> np.ndarray:
    import imagecodecs

    out = imagecodecs.dicomrle_decode(frame, "<u2")
    return np.frombuffer(out, "<u2").reshape(ds.Rows, ds.Columns)


def _pylibjpeg_rle(ds: Any, frame: bytes) -> np.ndarray:
    import rle

    out = rle.decode_pixel_data(frame, version=2, rows=ds.Rows, columns=ds.Columns,
                                bits_allocated=ds.BitsAllocated, samples_per_pixel=1)
    return np.frombuffer(out, "<u2").reshape(ds.Rows, ds.Columns)


def _libjpeg(ds: Any, frame: bytes) -> np.ndarray:
    import libjpeg

    return libjpeg.decode(frame)


def _charls_pyjpegls(ds: Any, frame: bytes) -> np.ndarray:
    import jpeg_ls

    return jpeg_ls.jlsread(io.BytesIO(frame))


def _openjpeg(ds: Any, frame: bytes) -> np.ndarray:
    import openjpeg

    return openjpeg.decode(frame)


def _pillow(ds: Any, frame: bytes) -> np.ndarray:
    from PIL import Image

    im = Image.open(io.BytesIO(frame))
    im.load()
    arr = np.asarray(im)
    if im.format == "JPEG2000" and arr.dtype == np.uint16:
        arr = arr >> (16 - int(ds.BitsStored))
    return arr


def _dicomsdl(raw: bytes) -> Decoder:
    def decode(ds: Any, frame: bytes) -> np.ndarray:
        import dicomsdl

        return dicomsdl.open_memory(raw).pixelData()

    return decode


def _native_numpy(ds: Any, frame: bytes) -> np.ndarray:
    return np.frombuffer(ds.PixelData, "<u2", ds.Rows * ds.Columns).reshape(ds.Rows, ds.Columns)


def _deflated_payload(raw: bytes) -> tuple[bytes, int]:
    """The deflated data set (after the file meta information) and its inflated size."""
    import pydicom

    fp = io.BytesIO(raw)
    fp.seek(128 + 4)  # preamble and "DICM"
    pydicom.filereader._read_file_meta_info(fp)
    payload = raw[fp.tell():]
    return payload, len(zlib.decompress(payload, -zlib.MAX_WBITS))


def _inflaters(payload: bytes, size: int) -> dict[str, Callable[[], bytes]]:
    out: dict[str, Callable[[], bytes]] = {
        "zlib (stdlib)": lambda: zlib.decompress(payload, -zlib.MAX_WBITS),
    }
    try:
        from isal import isal_zlib

        out["python-isal"] = lambda: isal_zlib.decompress(payload, -zlib.MAX_WBITS)
    except ImportError:
        pass
    try:
        import imagecodecs

        out["imagecodecs.deflate (libdeflate)"] = lambda: imagecodecs.deflate_decode(
            payload, raw=True, out=size)
        out["imagecodecs.zlibng"] = lambda: imagecodecs.zlibng_decode(payload, out=size)
    except ImportError:
        pass
    return out


#: syntax name -> decoders worth trying on it (name, function). The functions import their
#: package on first use: one not installed is reported as such.
def _decoders(syntax: str, raw: bytes) -> list[tuple[str, Decoder]]:
    gdcm = ("gdcm (python-gdcm, via pydicom)", _via_pydicom("gdcm"))
    sdl = ("dicomsdl (whole file from memory)", _dicomsdl(raw))
    if "Little Endian" in syntax and "Deflated" not in syntax:
        return [("numpy (frombuffer)", _native_numpy), ("pydicom.pixel_array", _via_pydicom("")),
                sdl]
    if syntax.startswith("RLE"):
        return [("pylibjpeg-rle (direct)", _pylibjpeg_rle),
                ("pylibjpeg-rle (via pydicom)", _via_pydicom("pylibjpeg")),
                ("pydicom native RLE", _via_pydicom("pydicom")),
                ("imagecodecs.dicomrle", _imagecodecs_dicomrle), gdcm, sdl]
    if syntax.startswith("JPEG-LS"):
        return [("imagecodecs.jpegls (CharLS)", _imagecodecs("jpegls_decode")),
                ("pyjpegls (CharLS, direct)", _charls_pyjpegls),
                ("pyjpegls (via pydicom)", _via_pydicom("pyjpegls")),
                ("pylibjpeg-libjpeg (direct)", _libjpeg),
                ("pylibjpeg-libjpeg (via pydicom)", _via_pydicom("pylibjpeg")), gdcm, sdl]
    if syntax.startswith("JPEG 2000"):
        return [("pillow (OpenJPEG)", _pillow),
                ("imagecodecs.jpeg2k (OpenJPEG)", _imagecodecs("jpeg2k_decode")),
                ("pylibjpeg-openjpeg (direct)", _openjpeg),
                ("pylibjpeg-openjpeg (via pydicom)", _via_pydicom("pylibjpeg")), gdcm, sdl]
    if syntax.startswith("JPEG Lossless"):
        return [("imagecodecs.ljpeg (liblj92)", _imagecodecs("ljpeg_decode")),
                ("imagecodecs.jpegsof3", _imagecodecs("jpegsof3_decode")),
                ("imagecodecs.jpeg8 (libjpeg-turbo 3)", _imagecodecs("jpeg8_decode")),
                ("pylibjpeg-libjpeg (direct)", _libjpeg),
                ("pylibjpeg-libjpeg (via pydicom)", _via_pydicom("pylibjpeg")), gdcm, sdl]
    if syntax.startswith("JPEG"):  # Baseline 8-bit, Extended 12-bit
        return [("imagecodecs.jpeg8 (libjpeg-turbo 3)", _imagecodecs("jpeg8_decode")),
                ("pylibjpeg-libjpeg (direct)", _libjpeg),
                ("pylibjpeg-libjpeg (via pydicom)", _via_pydicom("pylibjpeg")),
                ("pillow (libjpeg-turbo)", _pillow), gdcm, sdl]
    return []


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = fn()  # warm-up: imports, first allocations
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), result


def _error(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:90]


def _chosen(path: Path, repeat: int) -> tuple[str | None, float, np.ndarray | None]:
    """What decode.py picks for this file, and its time on the whole decode step."""
    import pydicom

    from mammotriage.dicom import decode as decode_module

    ds = pydicom.dcmread(path)
    outcome: dict[str, Any] = {}

    def run() -> np.ndarray:
        decoded = decode_module.decode_stored(ds)
        outcome["decoder"] = decoded.decoder
        return decoded.stored

    try:
        ms, arr = _time(run, repeat)
    except Exception as exc:  # a codec missing, a file refused
        return f"error: {_error(exc)}", float("nan"), None
    return outcome.get("decoder"), ms, arr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4736)
    parser.add_argument("--columns", type=int, default=2624)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the JSON to this file")
    parser.add_argument("--only", default="", metavar="TEXT",
                        help="time only the transfer syntaxes whose name contains TEXT")
    args = parser.parse_args()

    import pydicom

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference = bench_decode._make_reference(args.rows, args.columns, folder)
        variants = bench_decode._variants(reference, folder)
        truth16 = pydicom.dcmread(reference).pixel_array
        truth8 = (truth16 >> 4).astype(np.uint8)

        for syntax, path in variants.items():
            if args.only.lower() not in syntax.lower():
                continue
            raw = path.read_bytes()
            ds = pydicom.dcmread(path)
            lossy = "lossy" in syntax or "Extended" in syntax or "Baseline" in syntax
            truth = truth8 if "8-bit" in syntax else truth16
            results: list[dict[str, Any]] = []
            if "Deflated" in syntax:
                payload, size = _deflated_payload(raw)
                inflated_ref = zlib.decompress(payload, -zlib.MAX_WBITS)
                for name, fn in _inflaters(payload, size).items():
                    try:
                        ms, out = _time(fn, args.repeat)
                        results.append({"decoder": name, "ms": ms,
                                        "correct": bytes(out) == inflated_ref})
                    except Exception as exc:
                        results.append({"decoder": name, "ms": None, "correct": None,
                                        "error": _error(exc)})
            else:
                frame = ds.PixelData if not ds.file_meta.TransferSyntaxUID.is_compressed \
                    else _frame(ds)
                arrays: dict[str, np.ndarray] = {}
                for name, fn in _decoders(syntax, raw):
                    try:
                        ms, out = _time(lambda fn=fn, ds=ds, frame=frame: fn(ds, frame),
                                        args.repeat)
                        out = np.asarray(out).reshape(truth.shape)
                    except BaseException as exc:  # a Rust panic is a BaseException
                        if isinstance(exc, KeyboardInterrupt):
                            raise
                        results.append({"decoder": name, "ms": None, "correct": None,
                                        "error": _error(exc)})
                        continue
                    arrays[name] = out
                    diff = np.abs(out.astype(np.int32) - truth.astype(np.int32))
                    row = {"decoder": name, "ms": ms, "max_abs_error": int(diff.max()),
                           "mean_abs_error": float(diff.mean())}
                    row["correct"] = bool(np.array_equal(out, truth)) if not lossy else None
                    results.append(row)
                if lossy and arrays:  # agreement among decoders, against the first one
                    first_name, first = next(iter(arrays.items()))
                    for row in results:
                        if row["decoder"] in arrays:
                            d = np.abs(arrays[row["decoder"]].astype(np.int32) - first)
                            row["vs_first_max"] = int(d.max())
                            row["vs_first_identical"] = bool(not d.any())
                    results.append({"note": f"agreement measured against {first_name}"})
            if "Deflated" in syntax:  # the reader inflates; the pixels are then native
                from mammotriage.dicom.decode import DecodeLimits
                from mammotriage.dicom.reader import _inflate

                limit = DecodeLimits().max_dataset_bytes
                ms, out = _time(lambda p=payload, n=limit: _inflate(p, n), args.repeat)
                chosen, chosen_ms, chosen_arr = "reader._inflate (libdeflate)", ms, None
                chosen_ok = bytes(out) == inflated_ref
                rows.append({"transfer_syntax": syntax, "file_mb": path.stat().st_size / 1e6,
                             "decoders": results, "chosen": chosen, "chosen_ms": chosen_ms,
                             "chosen_correct": chosen_ok})
                continue
            chosen, chosen_ms, chosen_arr = _chosen(path, args.repeat)
            chosen_ok = None
            if chosen_arr is not None and "Deflated" not in syntax:
                chosen_ok = bool(np.array_equal(chosen_arr, truth)) if not lossy else None
            rows.append({"transfer_syntax": syntax, "file_mb": path.stat().st_size / 1e6,
                         "decoders": results, "chosen": chosen, "chosen_ms": chosen_ms,
                         "chosen_correct": chosen_ok})

    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
                       f"{os.getloadavg()[0]:.2f} at the end",
            "python": platform.python_version(), "image": f"{args.rows}x{args.columns} 12-bit",
            "repeat": args.repeat, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.save:
        args.save.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"# codec comparison: {meta['image']}, median of {args.repeat}, {meta['machine']}, "
          f"Python {meta['python']}, {meta['date']}")
    print("| transfer syntax | decoder | ms | correct | note |")
    print("|---|---|---:|---|---|")
    for r in rows:
        for d in r["decoders"]:
            if "note" in d:
                continue
            ms = f"{d['ms']:.0f}" if d.get("ms") is not None else "-"
            if d.get("error"):
                correct, note = "-", d["error"]
            elif d["correct"] is None:
                correct = "lossy"
                note = (f"max |err| vs original {d.get('max_abs_error')}, mean "
                        f"{d.get('mean_abs_error', 0):.3f}; "
                        + ("identical to the first decoder" if d.get("vs_first_identical")
                           else f"differs from the first decoder by up to {d.get('vs_first_max')}"))
            else:
                correct, note = ("yes" if d["correct"] else "NO"), ""
            print(f"| {r['transfer_syntax']} | {d['decoder']} | {ms} | {correct} | {note} |")
        ok = {True: "yes", False: "NO", None: "-"}[r["chosen_correct"]]
        print(f"| {r['transfer_syntax']} | **decode.py -> {r['chosen']}** | "
              f"{r['chosen_ms']:.0f} | {ok} | the whole decode step, checks included |")


if __name__ == "__main__":
    main()
