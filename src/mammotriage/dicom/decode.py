"""Pixel decoding: every transfer syntax pydicom's plugins know, JPEG 2000 at reduced
resolution, and the size checks that keep a hostile file from allocating without bound.

Why decode at reduced resolution: a 4736x2624 12-bit JPEG 2000 mammogram takes ~1.1 s to
decode at full size and ~80 ms at resolution level 2, and the model sees it at a fraction
of full size anyway. The wavelet's low-pass band at level ``k`` is the image averaged over
``2**k`` pixels, so for the other transfer syntaxes we decode fully and block-average by the
same factor: every image reaches VOI with the same geometry and meaning, whatever its codec.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    HTJ2K,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
)

from mammotriage.dicom.voi import mask_bits
from mammotriage.errors import DicomReadError, MissingCodecError

J2K_SYNTAXES = frozenset({JPEG2000, JPEG2000Lossless, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL})


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds that turn absurd or hostile files into a recorded reason, not an allocation.

    The largest mammography detectors are about 4096x5120 (21 Mpx); 60 Mpx leaves room for
    anything real while capping one image at ~240 MB of float32.
    """

    max_pixels: int = 60_000_000
    max_side: int = 16384
    max_file_bytes: int = 1 << 30


@dataclass(frozen=True)
class J2KHeader:
    """What the SIZ and COD markers of a JPEG 2000 codestream say."""

    columns: int
    rows: int
    components: int
    precision: int
    signed: bool
    levels: int


def j2k_header(data: bytes) -> J2KHeader:
    """Parse SIZ (ISO/IEC 15444-1 A.5.1) and COD (A.6.1) from a codestream or a JP2 file.

    Raises
    ------
    DicomReadError
        If the markers are missing or malformed.
    """
    start = data.find(b"\xff\x4f\xff\x51")  # SOC followed by SIZ; also finds it inside a JP2 box
    if start < 0 or len(data) < start + 42:
        raise DicomReadError("JPEG 2000 codestream has no SIZ marker (damaged pixel data)")
    siz = start + 4
    (_lsiz, _rsiz, xsiz, ysiz, xosiz, yosiz) = struct.unpack(">HHIIII", data[siz : siz + 20])
    (csiz,) = struct.unpack(">H", data[siz + 36 : siz + 38])
    if csiz < 1 or len(data) < siz + 38 + 3 * csiz:
        raise DicomReadError("JPEG 2000 SIZ marker is truncated")
    ssiz = data[siz + 38]
    cod = data.find(b"\xff\x52", siz)
    levels = data[cod + 2 + 2 + 5] if 0 <= cod < len(data) - 10 else 0
    return J2KHeader(
        columns=xsiz - xosiz,
        rows=ysiz - yosiz,
        components=csiz,
        precision=(ssiz & 0x7F) + 1,
        signed=bool(ssiz & 0x80),
        levels=levels,
    )


def check_dimensions(ds: Dataset, limits: DecodeLimits) -> tuple[int, int]:
    """Rows and Columns, refused when missing, zero or beyond the limits.

    Raises
    ------
    DicomReadError
        With the reason, before anything is allocated.
    """
    rows = int(ds.get("Rows", 0) or 0)
    columns = int(ds.get("Columns", 0) or 0)
    if rows <= 0 or columns <= 0:
        raise DicomReadError(f"missing or zero image size (Rows={rows}, Columns={columns})")
    if rows > limits.max_side or columns > limits.max_side or rows * columns > limits.max_pixels:
        raise DicomReadError(
            f"absurd image size {rows}x{columns} exceeds the limit of "
            f"{limits.max_pixels} pixels / {limits.max_side} per side"
        )
    return rows, columns


def reduce_level(rows: int, columns: int, target_shape: tuple[int, int] | None) -> int:
    """The number of halvings ``k`` that keeps the image at least ``target_shape``.

    ``k = 0`` when no target is given or the image is less than twice the target.
    """
    if target_shape is None:
        return 0
    th, tw = target_shape
    k = 0
    while (rows >> (k + 1)) >= th and (columns >> (k + 1)) >= tw and k < 6:
        k += 1
    return k


def block_mean(arr: np.ndarray, k: int) -> np.ndarray:
    """Average over ``2**k`` x ``2**k`` blocks (ceil division at the edges, as JPEG 2000 does)."""
    if k == 0:
        return arr
    f = 1 << k
    rows, cols = arr.shape
    out_r, out_c = -(-rows // f), -(-cols // f)
    pad_r, pad_c = out_r * f - rows, out_c * f - cols
    work = arr.astype(np.float32, copy=False)
    if pad_r or pad_c:
        work = np.pad(work, ((0, pad_r), (0, pad_c)), mode="edge")
    return work.reshape(out_r, f, out_c, f).mean(axis=(1, 3), dtype=np.float32)


def _first_frame_bytes(ds: Dataset) -> bytes:
    from pydicom.encaps import generate_fragmented_frames

    number_of_frames = int(ds.get("NumberOfFrames", 1) or 1)
    for fragments in generate_fragmented_frames(ds.PixelData, number_of_frames=number_of_frames):
        return b"".join(fragments)
    raise DicomReadError("encapsulated pixel data holds no frame")


def _decode_j2k_reduced(ds: Dataset, rows: int, columns: int, k: int) -> tuple[np.ndarray, int]:
    """Decode a JPEG 2000 frame at resolution level ``k`` with Pillow.

    Pillow returns 16-bit samples scaled up from the codestream's precision; we shift them
    back so that the values mean what BitsStored says.
    """
    from PIL import Image as PILImage

    data = _first_frame_bytes(ds)
    header = j2k_header(data)
    if (header.rows, header.columns) != (rows, columns):
        raise DicomReadError(
            f"JPEG 2000 codestream is {header.rows}x{header.columns} but the header says "
            f"{rows}x{columns} (possible decompression bomb)"
        )
    if header.components != 1 or header.signed or header.precision > 16:
        raise _PillowUnsuitable
    k = min(k, header.levels)
    im = PILImage.open(io.BytesIO(data))
    im.reduce = k
    im.load()
    arr = np.asarray(im)
    if arr.dtype == np.uint16 and header.precision < 16 and im.mode.startswith("I;16"):
        arr = arr >> (16 - header.precision)
    return arr, k


class _PillowUnsuitable(Exception):
    """Internal: this codestream goes to pydicom's decoders instead."""


def decode_pixels(
    ds: Dataset,
    *,
    target_shape: tuple[int, int] | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> tuple[np.ndarray, int]:
    """Decode the first frame of ``ds`` as stored values, reduced towards ``target_shape``.

    Returns the array (integer stored values at full resolution, float32 block means when
    reduced) and ``k``: one returned pixel covers ``2**k`` original pixels per axis.

    Raises
    ------
    DicomReadError
        For every reason a frame cannot be decoded (absurd size, short or damaged pixel
        data, codestream not matching the header).
    MissingCodecError
        When the transfer syntax needs a package that is not installed.
    """
    if "PixelData" not in ds:
        raise DicomReadError("no pixel data")
    rows, columns = check_dimensions(ds, limits)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise DicomReadError(f"not a greyscale image (SamplesPerPixel={samples})")
    bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
    if bits_allocated not in (8, 16, 32):
        raise DicomReadError(f"unsupported BitsAllocated {bits_allocated}")
    tsyntax = UID(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    k = reduce_level(rows, columns, target_shape)

    if not tsyntax.is_compressed:
        expected = rows * columns * (bits_allocated // 8)
        if len(ds.PixelData) < expected:
            raise DicomReadError(
                f"pixel data is {len(ds.PixelData)} bytes, shorter than Rows x Columns needs "
                f"({expected}): truncated file"
            )
    elif tsyntax in J2K_SYNTAXES and k > 0:
        try:
            return _decode_j2k_reduced(ds, rows, columns, k)
        except _PillowUnsuitable:
            pass
        except DicomReadError:
            raise
        except Exception as exc:  # Pillow's errors are plain OSError/ValueError
            raise DicomReadError(f"JPEG 2000 decoding failed: {exc}") from exc
    elif tsyntax in J2K_SYNTAXES:
        header = j2k_header(_first_frame_bytes(ds))
        if (header.rows, header.columns) != (rows, columns):
            raise DicomReadError(
                f"JPEG 2000 codestream is {header.rows}x{header.columns} but the header says "
                f"{rows}x{columns} (possible decompression bomb)"
            )

    arr = _decode_with_pydicom(ds, tsyntax)
    if arr.shape != (rows, columns):
        raise DicomReadError(f"decoded frame is {arr.shape}, header says {rows}x{columns}")
    if k:
        # Mask before averaging: bits above BitsStored must not leak into the block means.
        bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        arr = mask_bits(arr, min(bits_stored, bits_allocated), signed)
    return block_mean(arr, k), k


def _decode_with_pydicom(ds: Dataset, tsyntax: UID) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        arr = pixel_array(ds, index=0, raw=True)
    except NotImplementedError as exc:
        raise MissingCodecError(
            f"no installed codec decodes {tsyntax.name} ({tsyntax}); install the pylibjpeg "
            "plugins (pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle) or pyjpegls"
        ) from exc
    except MemoryError as exc:
        raise DicomReadError("pixel data too large to decode") from exc
    except Exception as exc:  # codecs raise ValueError, RuntimeError, struct.error ...
        raise DicomReadError(f"{tsyntax.name} pixel data could not be decoded: {exc}") from exc
    if arr.ndim != 2:
        raise DicomReadError(f"decoded pixel data has shape {arr.shape}, expected one 2-D frame")
    return arr
