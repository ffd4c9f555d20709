"""Pixel decoding: every transfer syntax pydicom's plugins know, each through the fastest
correct codec installed (:data:`DECODERS`, with fallbacks), JPEG 2000 and 8-bit JPEG at
reduced resolution, and the size checks that keep a hostile file from allocating without
bound.

Why a chain of decoders and not pydicom's first available plugin: the codecs differ
several-fold in speed on a mammogram (``scripts/bench_codecs.py``), and they differ in
what they do with damaged data: some refuse it, some return noise without an error. A
decoder of the second kind never runs after another one refused a frame.

Why decode at reduced resolution: the model sees a mammogram at a fraction of its full size,
and JPEG 2000 decodes an order of magnitude faster at a lower resolution level than in full
(figures, and the command that measures them, in ``docs/benchmarks.md``). The wavelet's
low-pass band at level ``k`` is the image averaged over ``2**k`` pixels, so for the other
transfer syntaxes we decode fully and block-average by the same factor: every image reaches
VOI with the same geometry and meaning, whatever its codec. 8-bit JPEG is decoded at 1/2,
1/4 or 1/8 size by libjpeg-turbo's DCT scaling, which is that block mean to within one
stored value (the rounding of the mean to an integer), and block-averaged beyond 1/8.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from mammotriage.dicom.voi import mask_bits
from mammotriage.errors import DicomReadError, MissingCodecError

if TYPE_CHECKING:
    from PIL.Jpeg2KImagePlugin import Jpeg2KImageFile

J2K_SYNTAXES = frozenset({JPEG2000, JPEG2000Lossless, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL})
JPEG_SYNTAXES = frozenset(JPEGTransferSyntaxes) | frozenset(JPEGLSTransferSyntaxes)
# Start of frame: SOF0-SOF15 less DHT (C4), JPG (C8) and DAC (CC), ISO/IEC 10918-1 B.1.1.3;
# SOF55 (F7) for JPEG-LS, ISO/IEC 14495-1 C.2.2.
_JPEG_SOF = (frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field
_ALL_PLUGINS_FAILED = "Unable to decode as exceptions were raised by all available plugins:"


#: What a codec may raise that is not a failure of the file: an interrupt or an exit goes on.
_NOT_CODEC_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)


def is_codec_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised while decoding pixels, means "this file cannot be decoded".

    Every ``Exception`` does, and so do the ``BaseException`` subclasses that codecs raise
    themselves: a Rust codec (pylibjpeg-rle, through pyo3) turns a panic into
    ``pyo3_runtime.PanicException``, which derives from ``BaseException`` so that ``except
    Exception`` misses it, and which no import can name (each extension module makes its
    own class). Interrupts and exits are not failures of a file. Every place that decodes
    pixels catches ``BaseException`` and re-raises what this says is not a codec failure.
    """
    return not isinstance(exc, _NOT_CODEC_FAILURES)


def one_line(exc: BaseException, limit: int = 100) -> str:
    """An exception's message as one short line, fit for a recorded reason (codec
    messages span several lines and quote whole byte strings)."""
    text = " ".join(str(exc).replace(_ALL_PLUGINS_FAILED, "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds that turn absurd or hostile files into a recorded reason, not an allocation.

    The largest mammography detectors are about 4096x5120 (21 Mpx); 60 Mpx leaves room for
    anything real while capping one image at ~240 MB of float32.
    """

    max_pixels: int = 60_000_000
    max_side: int = 16384
    max_file_bytes: int = 1 << 30
    #: The shortest side a mammogram can have. Real detectors have thousands of pixels a
    #: side; the synthetic ``--small`` profile and the test builders write 512 and 96x64
    #: rows: 32 keeps every one of those and refuses a header that says 3 rows.
    min_side: int = 32
    #: Rows/Columns (and its inverse) at most this: detectors are 18x24 to 24x30 cm
    #: (about 1.3:1), digitised film up to about 2:1; 4 leaves room for any real image
    #: and refuses a strip like 16384x3662 before a decoder allocates it.
    max_aspect: float = 4.0
    #: The largest value a non-pixel element may declare. The biggest legitimate ones
    #: (ICC profiles, overlays, vendor blobs) are a few MB; a 0.5 GiB text element would
    #: cost several copies of itself as it is decoded into str.
    max_element_bytes: int = 64 << 20
    #: Seconds of parsing the header may take (a real file parses in milliseconds).
    max_parse_seconds: float = 10.0

    @property
    def max_dataset_bytes(self) -> int:
        """What a whole data set can need: the largest image at 32 bits a pixel and room
        for the header; a deflated data set may inflate to no more than this."""
        return min(self.max_pixels * 4 + self.max_element_bytes, self.max_file_bytes)


@dataclass(frozen=True)
class J2KHeader:
    """What the SIZ and COD markers of a JPEG 2000 codestream say."""

    columns: int
    rows: int
    components: int
    precision: int
    signed: bool
    levels: int
    tiles: int
    tiles_present: int


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
    (xtsiz, ytsiz, xtosiz, ytosiz, csiz) = struct.unpack(">IIIIH", data[siz + 20 : siz + 38])
    if csiz < 1 or len(data) < siz + 38 + 3 * csiz:
        raise DicomReadError("JPEG 2000 SIZ marker is truncated")
    if xtsiz == 0 or ytsiz == 0 or xtosiz > xsiz or ytosiz > ysiz:
        raise DicomReadError("JPEG 2000 SIZ marker declares an impossible tile grid")
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
        tiles=-(-(xsiz - xtosiz) // xtsiz) * -(-(ysiz - ytosiz) // ytsiz),
        tiles_present=_j2k_tiles_present(data, start + 2),
    )


def _j2k_tiles_present(data: bytes, pos: int) -> int:
    """How many distinct tiles the codestream's tile-parts hold (A.4.2: every tile has at
    least one). Decoders fill missing tiles with zeros without an error, so a few hundred
    bytes can pass for a whole mammogram."""
    while pos + 4 <= len(data) and data[pos : pos + 2] != b"\xff\x90":  # main header segments
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            break
        pos += 2 + length
    tiles: set[int] = set()
    while pos + 12 <= len(data) and data[pos : pos + 2] == b"\xff\x90":  # SOT, A.4.2
        (isot, psot) = struct.unpack(">HI", data[pos + 4 : pos + 10])
        tiles.add(isot)
        if psot < 14:  # 0: the last tile-part runs to EOC; less than SOT + SOD: damaged
            break
        pos += psot
    return len(tiles)


def check_dimensions(ds: Dataset, limits: DecodeLimits) -> tuple[int, int]:
    """Rows and Columns, refused when missing, zero, beyond the limits or not the shape of
    a mammogram (:attr:`DecodeLimits.min_side`, :attr:`DecodeLimits.max_aspect`).

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
    if min(rows, columns) < limits.min_side or max(rows / columns, columns / rows) > (
        limits.max_aspect
    ):
        raise DicomReadError(
            f"implausible image size {rows}x{columns} for a mammogram (at least "
            f"{limits.min_side} pixels a side, sides at most {limits.max_aspect:g}:1)"
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
    """Average over ``2**k`` x ``2**k`` blocks (ceil division at the edges, as JPEG 2000 does).

    Integer pixels (what a decoder gives) are summed exactly in 32 bits (``2**12`` values
    of 16 bits fit), along the rows' blocks first and then the columns': at ``k = 3`` on a
    4736 x 2624 image 33 ms instead of 55 for a mean over a 4-D view of the image, the
    same float32 result. Other pixels are averaged as before.
    """
    if k == 0:
        return arr
    f = 1 << k
    rows, cols = arr.shape
    out_r, out_c = -(-rows // f), -(-cols // f)
    pad_r, pad_c = out_r * f - rows, out_c * f - cols
    if pad_r or pad_c:
        arr = np.pad(arr, ((0, pad_r), (0, pad_c)), mode="edge")
    if arr.dtype.kind not in "iu":
        work = arr.astype(np.float32, copy=False)
        return work.reshape(out_r, f, out_c, f).mean(axis=(1, 3), dtype=np.float32)
    small = arr.dtype.itemsize <= 2 and k <= 6
    total = (np.uint32 if arr.dtype.kind == "u" else np.int32) if small else np.int64
    sums = arr.reshape(out_r * f, out_c, f).sum(axis=2, dtype=total)
    sums = sums.reshape(out_r, f, out_c).sum(axis=1, dtype=total)
    return (sums * np.float32(1.0 / (f * f))).astype(np.float32, copy=False)


def _first_frame_bytes(ds: Dataset) -> bytes:
    from pydicom.encaps import generate_fragmented_frames

    number_of_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = generate_fragmented_frames(ds.PixelData, number_of_frames=number_of_frames)
    try:
        for fragments in frames:
            frame = b"".join(fragments)
            if frame:
                return frame
            break
    except Exception as exc:  # pydicom raises ValueError for bad item tags and offset tables
        raise DicomReadError(f"damaged encapsulated pixel data: {one_line(exc)}") from exc
    raise DicomReadError("encapsulated pixel data holds no frame")


def _jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(lines, samples per line) from the SOF marker, None when there is none before SOS."""
    pos = 2 if data[:2] == b"\xff\xd8" else len(data)  # after SOI
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker in _JPEG_STANDALONE:
            pos += 2
        elif marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            lines, samples = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return lines, samples
        elif marker == 0xDA:  # SOS: the scan begins, and no frame header came
            return None
        else:
            (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
            pos += 2 + length
    return None


def _check_jpeg_frame(data: bytes, tsyntax: UID, rows: int, columns: int) -> None:
    """The frame header against the DICOM header before a decoder allocates what the frame
    says (PS3.5 8.2.1: they shall match), and the EOI marker that ends a whole stream."""
    size = _jpeg_frame_size(data)
    if size is None:
        raise DicomReadError(f"{tsyntax.name} frame has no SOF marker (damaged pixel data)")
    if size != (rows, columns):
        raise DicomReadError(
            f"{tsyntax.name} frame is {size[0]}x{size[1]} but the header says {rows}x{columns} "
            "(possible decompression bomb)"
        )
    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise DicomReadError(f"{tsyntax.name} frame has no EOI marker (truncated pixel data)")


def _check_j2k_frame(data: bytes, rows: int, columns: int) -> J2KHeader:
    """The codestream's own header, refused when it does not describe the DICOM image."""
    header = j2k_header(data)
    if (header.rows, header.columns) != (rows, columns):
        raise DicomReadError(
            f"JPEG 2000 codestream is {header.rows}x{header.columns} but the header says "
            f"{rows}x{columns} (possible decompression bomb)"
        )
    if header.tiles_present < header.tiles:
        raise DicomReadError(
            f"JPEG 2000 codestream holds {header.tiles_present} of its {header.tiles} tiles "
            "(truncated or damaged pixel data)"
        )
    return header


@dataclass(frozen=True)
class Frame:
    """One encoded frame and what the DICOM header says it holds."""

    data: bytes
    ds: Dataset
    tsyntax: UID
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    #: The resolution level wanted: a decoder that can reduce returns this many halvings.
    k: int
    #: The JPEG 2000 codestream's SIZ/COD, for the JPEG 2000 syntaxes.
    j2k: J2KHeader | None = None


class _Unsuitable(Exception):
    """Internal: this decoder does not take this frame (not an error in the file)."""


@dataclass(frozen=True)
class FrameDecoder:
    """One codec's way to decode a frame: a name for :attr:`Image.decoder`, the package
    it needs, and whether it may run after another decoder refused the same frame.

    ``decode`` returns ``(array, k)``: stored values, and the halvings already applied
    (0, or ``frame.k`` for a decoder that reduces while it decodes). It raises
    ``ImportError`` when its package is missing and :class:`_Unsuitable` for a frame it
    does not take; both pass to the next decoder without counting as a refusal.
    """

    name: str
    package: str
    decode: Callable[[Frame], tuple[np.ndarray, int]]
    #: False for a decoder shown to turn damaged data into an image without an error: it
    #: runs only when no decoder before it could try (none installed, none suitable), never
    #: after a refusal, which it would hide.
    after_refusal: bool = True


def _unsigned(frame: Frame) -> None:
    # JPEG and JPEG-LS store no sign: pydicom's plugins sign-correct signed images, the
    # direct decoders do not. Mammograms are unsigned; a signed one goes to pydicom.
    if frame.signed:
        raise _Unsuitable


def _imagecodecs_jpeg8(frame: Frame) -> tuple[np.ndarray, int]:
    """libjpeg-turbo 3: baseline, extended 12-bit and lossless (process 14) JPEG."""
    import imagecodecs

    _unsigned(frame)
    return imagecodecs.jpeg8_decode(frame.data), 0


def _pillow_jpeg_scaled(frame: Frame) -> tuple[np.ndarray, int]:
    """8-bit JPEG decoded at 1/2, 1/4 or 1/8 size by libjpeg-turbo's DCT scaling.

    At 1/8 each output pixel is the DC coefficient, the exact mean of its 8x8 block
    rounded to an integer; 1/2 and 1/4 are reduced inverse DCTs. Measured against
    :func:`block_mean` of the full decode, all three differ by at most one stored value
    (``scripts/bench_codecs.py``; figures in the benchmarks document), which is the
    integer rounding of that same mean: the block-mean rule holds.
    """
    from PIL import Image as PILImage

    if frame.k == 0 or frame.bits_allocated != 8 or frame.bits_stored != 8 or frame.signed:
        raise _Unsuitable
    scale = min(frame.k, 3)
    im = PILImage.open(io.BytesIO(frame.data))
    if im.format != "JPEG" or im.mode != "L":
        raise _Unsuitable
    im.draft("L", (im.width >> scale, im.height >> scale))
    im.load()
    arr = np.asarray(im)
    if arr.shape != (-(-frame.rows >> scale), -(-frame.columns >> scale)):
        raise _Unsuitable  # draft chose another scale: decode in full instead
    return arr, scale


def _imagecodecs_jpegls(frame: Frame) -> tuple[np.ndarray, int]:
    import imagecodecs

    _unsigned(frame)
    return imagecodecs.jpegls_decode(frame.data), 0


def _pylibjpeg_rle(frame: Frame) -> tuple[np.ndarray, int]:
    """pylibjpeg-rle called directly: pydicom's plugin around it costs a third more."""
    import rle

    dtype = np.dtype(f"<{'i' if frame.signed else 'u'}{frame.bits_allocated // 8}")
    out = rle.decode_pixel_data(
        frame.data, version=2, rows=frame.rows, columns=frame.columns,
        bits_allocated=frame.bits_allocated, samples_per_pixel=1,
    )
    if len(out) != frame.rows * frame.columns * dtype.itemsize:
        raise DicomReadError(
            f"{frame.tsyntax.name} frame decodes to {len(out)} bytes, not Rows x Columns"
        )
    return np.frombuffer(out, dtype).reshape(frame.rows, frame.columns), 0


def _imagecodecs_jpeg2k(frame: Frame) -> tuple[np.ndarray, int]:
    """OpenJPEG through imagecodecs: the fastest full-size JPEG 2000 decode measured here
    (it uses every core), but it has no resolution levels: reduced reads go to Pillow."""
    import imagecodecs

    if frame.k:
        raise _Unsuitable
    _unsigned(frame)
    return imagecodecs.jpeg2k_decode(frame.data), 0


def _pillow_jpeg2k(frame: Frame) -> tuple[np.ndarray, int]:
    """Decode a JPEG 2000 frame at resolution level ``k`` (0: full size) with Pillow.

    Pillow returns 16-bit samples scaled up from the codestream's precision; we shift them
    back so that the values mean what BitsStored says.
    """
    from PIL import Image as PILImage

    header = frame.j2k
    if header is None or header.components != 1 or header.signed or header.precision > 16:
        raise _Unsuitable
    k = min(frame.k, header.levels)
    # The codestream opens as Pillow's JPEG 2000 plugin, whose ``reduce`` is a settable
    # property (the resolution level to decode) shadowing ``Image.reduce()``; typed as a
    # plain Image, mypy would see the method.
    im = cast("Jpeg2KImageFile", PILImage.open(io.BytesIO(frame.data)))
    im.reduce = k
    im.load()
    arr = np.asarray(im)
    if arr.dtype == np.uint16 and header.precision < 16 and im.mode.startswith("I;16"):
        arr = arr >> (16 - header.precision)
    return arr, k


def _pydicom_plugin(plugin: str) -> Callable[[Frame], tuple[np.ndarray, int]]:
    """pydicom's decoder for the syntax, through one named plugin ("" for any)."""

    def decode(frame: Frame) -> tuple[np.ndarray, int]:
        from pydicom.pixels import get_decoder, pixel_array

        decoder = get_decoder(frame.tsyntax)
        if plugin and plugin not in decoder.available_plugins:
            raise ImportError(plugin)
        if not plugin and not decoder.is_available:
            raise ImportError(frame.tsyntax.name)
        return pixel_array(frame.ds, index=0, raw=True, decoding_plugin=plugin), 0

    return decode


_NUMPY = FrameDecoder("numpy", "numpy", _pydicom_plugin(""))
_LIBJPEG = FrameDecoder("pylibjpeg-libjpeg", "pylibjpeg-libjpeg",
                        _pydicom_plugin("pylibjpeg"), after_refusal=False)
_JPEG_CHAIN = (
    FrameDecoder("pillow-libjpeg-turbo-scaled", "pillow", _pillow_jpeg_scaled),
    FrameDecoder("imagecodecs.jpeg8", "imagecodecs", _imagecodecs_jpeg8),
    # Turns damaged scans into images where libjpeg-turbo refuses most of them (the
    # probes in tests/unit/dicom/test_decoders.py): a last resort when imagecodecs is
    # missing, never a second opinion.
    _LIBJPEG,
)
_J2K_CHAIN = (
    FrameDecoder("imagecodecs.jpeg2k", "imagecodecs", _imagecodecs_jpeg2k),
    FrameDecoder("pillow-openjpeg", "pillow", _pillow_jpeg2k),
    FrameDecoder("pylibjpeg-openjpeg", "pylibjpeg-openjpeg", _pydicom_plugin("pylibjpeg")),
)

#: Per transfer syntax, the decoders in the order they are tried: the fastest correct one
#: measured by ``scripts/bench_codecs.py`` first. JPEG-LS has only CharLS: pylibjpeg's
#: libjpeg turns a truncated or damaged JPEG-LS scan into noise without an error.
DECODERS: dict[UID, tuple[FrameDecoder, ...]] = {
    **{uid: _JPEG_CHAIN for uid in JPEGTransferSyntaxes},
    **{
        uid: (
            FrameDecoder("pyjpegls", "pyjpegls", _pydicom_plugin("pyjpegls")),
            FrameDecoder("imagecodecs.jpegls", "imagecodecs", _imagecodecs_jpegls),
        )
        for uid in JPEGLSTransferSyntaxes
    },
    # Not GDCM, although it decodes a full-size JPEG 2000 Lossless frame ~1.4x faster in a
    # single call: it holds the GIL for the whole second (python-gdcm is a SWIG wrapper),
    # stalling every other thread of the worker (decode pool, inference), where the
    # OpenJPEG builds release it.
    **{uid: _J2K_CHAIN for uid in J2K_SYNTAXES},
    # Not imagecodecs.dicomrle: it crashes the process (SIGSEGV) on a segment offset past
    # the end of the frame (tests/unit/dicom/test_damaged_files.py), where pylibjpeg-rle
    # raises. pydicom's own RLE decoder accepts segments that run past the frame (with a
    # warning), which pylibjpeg-rle refuses: a last resort, not a second opinion.
    RLELossless: (
        FrameDecoder("pylibjpeg-rle", "pylibjpeg-rle", _pylibjpeg_rle),
        FrameDecoder("pydicom-rle", "pydicom", _pydicom_plugin("pydicom"), after_refusal=False),
    ),
}


@dataclass(frozen=True)
class DecodedPixels:
    """A decoded frame: stored values (float32 block means when reduced), ``k`` (one
    pixel covers ``2**k`` original pixels per axis) and the decoder that read it."""

    stored: np.ndarray
    k: int
    decoder: str


def decode_pixels(
    ds: Dataset,
    *,
    target_shape: tuple[int, int] | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> tuple[np.ndarray, int]:
    """Decode the first frame of ``ds`` as stored values, reduced towards ``target_shape``.

    Returns the array (integer stored values at full resolution, float32 block means when
    reduced) and ``k``: one returned pixel covers ``2**k`` original pixels per axis.
    :func:`decode_stored` also says which decoder read it.

    Raises
    ------
    DicomReadError
        For every reason a frame cannot be decoded (absurd size, short or damaged pixel
        data, codestream not matching the header).
    MissingCodecError
        When the transfer syntax needs a package that is not installed.
    """
    decoded = decode_stored(ds, target_shape=target_shape, limits=limits)
    return decoded.stored, decoded.k


def decode_stored(
    ds: Dataset,
    *,
    target_shape: tuple[int, int] | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> DecodedPixels:
    """:func:`decode_pixels`, with the name of the decoder that read the frame.

    Raises
    ------
    DicomReadError
        As :func:`decode_pixels`.
    MissingCodecError
        As :func:`decode_pixels`.
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
    if not tsyntax.is_transfer_syntax:
        raise DicomReadError("unknown transfer syntax (not a DICOM transfer syntax UID)")
    bits_stored = min(int(ds.get("BitsStored", bits_allocated) or bits_allocated), bits_allocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    k = reduce_level(rows, columns, target_shape)

    j2k = None
    if not tsyntax.is_compressed:
        if ds["PixelData"].is_undefined_length:
            raise DicomReadError(
                f"encapsulated pixel data under the uncompressed transfer syntax {tsyntax.name}"
            )
        expected = rows * columns * (bits_allocated // 8)
        if len(ds.PixelData) < expected:
            raise DicomReadError(
                f"pixel data is {len(ds.PixelData)} bytes, shorter than Rows x Columns needs "
                f"({expected}): truncated file"
            )
        data = b""
    else:
        data = _first_frame_bytes(ds)  # refuses an empty or malformed encapsulation
        if tsyntax in J2K_SYNTAXES:
            j2k = _check_j2k_frame(data, rows, columns)
        elif tsyntax in JPEG_SYNTAXES:
            _check_jpeg_frame(data, tsyntax, rows, columns)
    frame = Frame(data, ds, tsyntax, rows, columns, bits_allocated, bits_stored, signed, k, j2k)

    chain = DECODERS.get(tsyntax, ()) if tsyntax.is_compressed else (_NUMPY,)
    arr, done, name = _decode_with_chain(frame, chain)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.shape != (-(-rows >> done), -(-columns >> done)):  # ceil, as JPEG 2000 levels
        raise DicomReadError(
            f"decoded frame is {arr.shape} at 1/{1 << done} size, header says {rows}x{columns}"
        )
    if arr.dtype.kind in "ui" and arr.dtype.itemsize < bits_allocated // 8:
        arr = arr.astype(f"{arr.dtype.kind}{bits_allocated // 8}")  # as pydicom returns them
    if done < k:
        # Mask before averaging: bits above BitsStored must not leak into the block means.
        arr = block_mean(mask_bits(arr, bits_stored, signed), k - done)
    elif done:
        arr = arr.astype(np.float32)
    return DecodedPixels(arr, k, name)


def _decode_with_chain(
    frame: Frame, chain: tuple[FrameDecoder, ...]
) -> tuple[np.ndarray, int, str]:
    """The first decoder of ``chain`` that reads the frame; a missing or unsuitable one
    passes to the next, and so does one that refuses it (to decoders allowed to follow a
    refusal, :attr:`FrameDecoder.after_refusal`)."""
    refusal: BaseException | None = None
    for decoder in chain:
        if refusal is not None and not decoder.after_refusal:
            continue
        try:
            arr, done = decoder.decode(frame)
        except (ImportError, _Unsuitable):
            continue
        except DicomReadError as exc:
            refusal = refusal or exc
            continue
        except MemoryError as exc:
            raise DicomReadError("pixel data too large to decode") from exc
        except BaseException as exc:  # ValueError, RuntimeError, codec errors, Rust panics
            if not is_codec_failure(exc):
                raise
            refusal = refusal or exc
            continue
        arr = np.asarray(arr)
        if arr.ndim not in (2, 3):
            raise DicomReadError(f"decoded pixel data has shape {arr.shape}, expected one frame")
        return arr, done, decoder.name
    if refusal is not None:
        if isinstance(refusal, DicomReadError):
            raise refusal
        raise DicomReadError(
            f"{frame.tsyntax.name} pixel data could not be decoded: {one_line(refusal)}"
        ) from refusal
    raise MissingCodecError(_missing_reason(frame.tsyntax, chain))


def _missing_reason(tsyntax: UID, chain: tuple[FrameDecoder, ...]) -> str:
    if not chain:
        return f"no codec decodes {tsyntax.name}"
    needs = " or ".join(dict.fromkeys(d.package for d in chain))
    return f"no installed codec decodes {tsyntax.name}: install {needs}"
