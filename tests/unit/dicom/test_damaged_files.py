"""A damaged or hostile file is an ``Image(usable=False, reason=...)``: never an exception,
never a crash, never an allocation the file itself can choose.

Every file is made here, from a valid mammogram (``dicom_builders.mg_dataset``), by changing
one element or by cutting, flipping or patching bytes; each shows one way a broken modality,
a half-copied archive or an attacker can hurt the reader. The expected phrase is what the
worker's log and the radiologist's "why was this image skipped?" must say.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from dicom_builders import breast_pixels, mg_dataset, write
from mammotriage.dicom import read_image

# Building invalid UIDs on purpose makes pydicom warn; that is the point, not a problem.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI", "ignore:The value length")

ROWS, COLS = 96, 64
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
ITEM = b"\xfe\xff\x00\xe0"
ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
UNDEFINED = b"\xff\xff\xff\xff"
# The reduced-resolution JPEG 2000 path runs when the image is at least twice this size.
SMALL_TARGET = (32, 24)


# --------------------------------------------------------------------------- byte helpers


def _dataset_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _mg_bytes(**attrs) -> bytes:
    return _dataset_bytes(mg_dataset(**attrs))


def _compressed_bytes(syntax, rows: int = ROWS, columns: int = COLS) -> bytes:
    ds = mg_dataset(breast_pixels(rows, columns))
    ds.compress(syntax)
    return _dataset_bytes(ds)


def _find(data: bytes, tag_and_vr: bytes) -> int:
    """Offset of an element header (tag bytes, little endian, optionally followed by its VR)."""
    offset = data.find(tag_and_vr)
    assert offset >= 0, f"{tag_and_vr!r} not in the file: the builder is wrong"
    return offset


def _pixel_value_offset(data: bytes) -> int:
    """Offset of the Pixel Data value (explicit VR, 4-byte length form)."""
    return _find(data, PIXEL_DATA_TAG) + 12


def _with_pixel_value(data: bytes, value: bytes, length: bytes | None = None) -> bytes:
    """Replace the Pixel Data value (the last element) and its length field."""
    start = _find(data, PIXEL_DATA_TAG)
    if length is None:
        length = struct.pack("<I", len(value))
    return data[:start] + data[start : start + 8] + length + value


def _fragments(data: bytes) -> list[bytes]:
    """The fragments of encapsulated Pixel Data (PS3.5 A.4), after the Basic Offset Table."""
    value = data[_pixel_value_offset(data) :]
    assert value[:4] == ITEM, "expected the Basic Offset Table item"
    fragments, pos = [], 8 + struct.unpack("<I", value[4:8])[0]
    while value[pos : pos + 4] == ITEM:
        (length,) = struct.unpack("<I", value[pos + 4 : pos + 8])
        fragments.append(value[pos + 8 : pos + 8 + length])
        pos += 8 + length
    return fragments


def _with_frame(data: bytes, frame: bytes) -> bytes:
    """Re-encapsulate one changed frame (padded to even length, as PS3.5 A.4 requires)."""
    if len(frame) % 2:
        frame += b"\0"
    return _with_pixel_value(data, encapsulate([frame]) + SEQUENCE_DELIMITER, length=UNDEFINED)


def _j2k_siz_patched(frame: bytes, rows: int, columns: int) -> bytes:
    """Make the codestream's SIZ marker (ISO/IEC 15444-1 A.5.1) declare another size."""
    siz = frame.find(b"\xff\x4f\xff\x51") + 4
    patched = bytearray(frame)
    patched[siz + 4 : siz + 12] = struct.pack(">II", columns, rows)  # after Lsiz, Rsiz: Xsiz, Ysiz
    return bytes(patched)


def _header_patched(data: bytes, rows: int, columns: int) -> bytes:
    """Make the DICOM header's Rows and Columns (US, 2 bytes each) declare another size."""
    out = bytearray(data)
    for tag, value in ((b"\x28\x00\x10\x00US", rows), (b"\x28\x00\x11\x00US", columns)):
        offset = _find(data, tag)
        out[offset + 8 : offset + 10] = struct.pack("<H", value)
    return bytes(out)


def _inserted_before_pixel_data(data: bytes, element: bytes) -> bytes:
    start = _find(data, PIXEL_DATA_TAG)
    return data[:start] + element + data[start:]


# --------------------------------------------------------------------------- the corpus
#
# Each builder gets an empty folder and returns the path to read.


def _bytes_file(data: bytes, name: str = "file.dcm") -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _from(make_bytes: Callable[[], bytes]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "file.dcm"
        path.write_bytes(make_bytes())
        return path

    return build


def _from_dataset(make: Callable[[], Dataset]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        return write(make(), folder / "file.dcm")

    return build


def _cut(where: Callable[[bytes], int]) -> Callable[[Path], Path]:
    """A valid file cut at the offset ``where`` finds in it."""

    def make() -> bytes:
        data = _mg_bytes()
        return data[: where(data)]

    return _from(make)


def _random_bytes() -> bytes:
    return np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def _text_file() -> bytes:
    return b"PatientID,StudyDate,Laterality\nTEST0001,20260101,L\n" * 40


def _odd_pixel_data_length() -> bytes:
    data = _mg_bytes()
    value = data[_pixel_value_offset(data) :]
    return _with_pixel_value(data, value[:-1])


def _short_pixel_data() -> Dataset:
    ds = mg_dataset()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    return ds


def _absurd_dimensions() -> bytes:
    return _header_patched(_mg_bytes(), 65535, 65535)


def _j2k_header_larger_than_codestream() -> bytes:
    # 96x64 codestream, header says 4096x3072: the reduced-resolution path meets it.
    return _header_patched(_compressed_bytes(JPEG2000Lossless), 4096, 3072)


def _j2k_codestream_larger_than_header() -> bytes:
    # The decompression bomb: a small, valid-looking header over a codestream that declares
    # 60000x60000 (7.2 GB as uint16 if a decoder believed it).
    data = _compressed_bytes(JPEG2000Lossless)
    frame = b"".join(_fragments(data))
    return _with_frame(data, _j2k_siz_patched(frame, 60000, 60000))


def _j2k_codestream_larger_than_header_reduced() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless, rows=256, columns=192)
    frame = b"".join(_fragments(data))
    return _with_frame(data, _j2k_siz_patched(frame, 50000, 40000))


def _j2k_body_corrupted() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    frame = bytearray(b"".join(_fragments(data)))
    sod = frame.find(b"\xff\x93")  # start of data: everything after is coded packets
    frame[sod + 2 :] = b"\xff" * (len(frame) - sod - 2)
    return _with_frame(data, bytes(frame))


def _j2k_cut_after_main_header() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    frame = b"".join(_fragments(data))
    return _with_frame(data, frame[: frame.find(b"\xff\x90")])  # up to the first tile-part


def _j2k_cut_inside_tile(rows: int = ROWS, columns: int = COLS) -> bytes:
    data = _compressed_bytes(JPEG2000Lossless, rows, columns)
    frame = b"".join(_fragments(data))
    return _with_frame(data, frame[: len(frame) * 2 // 3])


def _j2k_tiles_missing() -> bytes:
    # Header and SIZ agree on 4096x3072 in 16x16 tiles, but the codestream holds one tile:
    # decoders fill the other 49151 with zeros and report success.
    data = _compressed_bytes(JPEG2000Lossless)
    frame = bytearray(_j2k_siz_patched(b"".join(_fragments(data)), 4096, 3072))
    siz = frame.find(b"\xff\x4f\xff\x51") + 4
    frame[siz + 20 : siz + 28] = struct.pack(">II", 16, 16)  # XTsiz, YTsiz
    return _header_patched(_with_frame(data, bytes(frame)), 4096, 3072)


def _j2k_no_siz_marker() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    frame = bytearray(b"".join(_fragments(data)))
    frame[:4] = b"\x00\x00\x00\x00"
    return _with_frame(data, bytes(frame))


def _rle_header_first_offset_wrong() -> bytes:
    # PS3.5 G.5: the 64-byte RLE header is followed by the first segment, at offset 64.
    data = _compressed_bytes(RLELossless)
    frame = bytearray(b"".join(_fragments(data)))
    frame[4:8] = struct.pack("<I", 100)
    return _with_frame(data, bytes(frame))


def _rle_offsets_past_end() -> bytes:
    data = _compressed_bytes(RLELossless)
    frame = bytearray(b"".join(_fragments(data)))
    frame[8:12] = struct.pack("<I", 0x7FFFFFF0)  # second segment starts far past the fragment
    return _with_frame(data, bytes(frame))


def _rle_wrong_number_of_segments() -> bytes:
    # 16-bit samples need two segments (high and low bytes); declare one.
    data = _compressed_bytes(RLELossless)
    frame = bytearray(b"".join(_fragments(data)))
    frame[0:4] = struct.pack("<I", 1)
    frame[8:12] = b"\0\0\0\0"
    return _with_frame(data, bytes(frame))


def _jpegls_corrupted() -> bytes:
    # Scan bytes replaced, EOI kept: only a decoder that checks the scan can tell.
    data = _compressed_bytes(JPEGLSLossless)
    frame = bytearray(b"".join(_fragments(data)).rstrip(b"\0"))
    sos = frame.find(b"\xff\xda")
    frame[sos + 12 : -2] = b"\xff" * (len(frame) - sos - 14)
    return _with_frame(data, bytes(frame))


def _jpeg_baseline(frame_edit: Callable[[bytes], bytes]) -> Callable[[], bytes]:
    """An 8-bit JPEG Baseline file (encoded by Pillow) whose stream ``frame_edit`` changes."""

    def make() -> bytes:
        from PIL import Image as PILImage

        pixels = breast_pixels(ROWS, COLS, bits=8).astype(np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(pixels, "L").save(buffer, "JPEG", quality=90)
        frame = frame_edit(buffer.getvalue())
        ds = mg_dataset(pixels.astype(np.uint16), BitsAllocated=8, BitsStored=8, HighBit=7)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
        ds["PixelData"].VR = "OB"
        return _dataset_bytes(ds)

    return make


def _sof_patched(frame: bytes, marker: bytes, rows: int, columns: int) -> bytes:
    """Make the frame header (ISO/IEC 10918-1 B.2.2, 14495-1 C.2.2) declare another size."""
    sof = frame.find(marker)
    assert sof >= 0, f"no {marker!r} in the frame: the builder is wrong"
    return frame[: sof + 5] + struct.pack(">HH", rows, columns) + frame[sof + 9 :]


def _jpegls_sof_larger_than_header() -> bytes:
    # CharLS would allocate 16000x16000x2 bytes (512 MB) for a 1.7 kB stream.
    data = _compressed_bytes(JPEGLSLossless)
    frame = b"".join(_fragments(data))
    return _with_frame(data, _sof_patched(frame, b"\xff\xf7", 16000, 16000))


def _jpegls_truncated() -> bytes:
    data = _compressed_bytes(JPEGLSLossless)
    frame = b"".join(_fragments(data))
    return _with_frame(data, frame[:40])


def _encapsulated_no_fragments() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    return _with_pixel_value(data, ITEM + b"\0\0\0\0" + SEQUENCE_DELIMITER, length=UNDEFINED)


def _encapsulated_missing_offset_table() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    frame = b"".join(_fragments(data))
    value = ITEM + struct.pack("<I", len(frame)) + frame + SEQUENCE_DELIMITER
    return _with_pixel_value(data, value, length=UNDEFINED)


def _encapsulated_garbage_item_tag() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    frame = b"".join(_fragments(data))
    value = ITEM + b"\0\0\0\0" + b"\x12\x34\x56\x78" + struct.pack("<I", len(frame)) + frame
    return _with_pixel_value(data, value + SEQUENCE_DELIMITER, length=UNDEFINED)


def _encapsulated_in_native_syntax() -> bytes:
    # Undefined-length Pixel Data under Explicit VR Little Endian, which has no encapsulation.
    frame = b"".join(_fragments(_compressed_bytes(JPEG2000Lossless)))
    return _with_frame(_mg_bytes(), frame)


def _truncated_encapsulated() -> bytes:
    data = _compressed_bytes(JPEG2000Lossless)
    return data[: _pixel_value_offset(data) + 400]


def _element_length_past_end() -> bytes:
    # StudyDate (DA, 2-byte length) claims 65535 bytes: everything after it is swallowed.
    data = bytearray(_mg_bytes())
    offset = _find(data, b"\x08\x00\x20\x00DA")
    data[offset + 6 : offset + 8] = b"\xff\xff"
    return bytes(data)


def _huge_length_in_non_sequence() -> bytes:
    # A private UN element (4-byte length) claiming 0xFFFFFFFE bytes: reading it must not
    # reserve 4 GB.
    element = struct.pack("<HH", 0x0009, 0x0010) + b"UN\0\0" + struct.pack("<I", 0xFFFFFFFE)
    data = _mg_bytes()
    start = _find(data, b"\x10\x00\x10\x00PN")
    return data[:start] + element + b"\0" * 64


def _pixel_data_length_huge() -> bytes:
    data = bytearray(_mg_bytes())
    offset = _find(data, PIXEL_DATA_TAG)
    data[offset + 8 : offset + 12] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(data)


def _deeply_nested_sequences(depth: int = 2000) -> bytes:
    # ContentSequence, undefined length, holding one undefined-length item, 2000 times over.
    opening = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + UNDEFINED + ITEM + UNDEFINED
    closing = ITEM_DELIMITER + SEQUENCE_DELIMITER
    return _inserted_before_pixel_data(_mg_bytes(), opening * depth + closing * depth)


def _sequence_with_many_items(count: int = 400_000) -> bytes:
    # Found by the fuzzer (tests/fuzzing, mutation many_items): a 3 MB private sequence of
    # empty items cost pydicom over 10 s of CPU, one Dataset per item.
    opening = struct.pack("<HH", 0x0029, 0x1020) + b"SQ\0\0" + UNDEFINED
    items = (ITEM + b"\0\0\0\0") * count
    return _inserted_before_pixel_data(_mg_bytes(), opening + items + SEQUENCE_DELIMITER)


def _number_of_frames_not_a_number() -> bytes:
    data = _mg_bytes(NumberOfFrames=7)
    offset = _find(data, b"\x28\x00\x08\x00IS")
    out = bytearray(data)
    out[offset + 8 : offset + 10] = b"xx"
    return bytes(out)


def _rows_wrong_value_length() -> bytes:
    # Rows (US) with a 3-byte value: not a 16-bit number at all.
    data = _mg_bytes()
    offset = _find(data, b"\x28\x00\x10\x00US")
    value = data[offset + 8 : offset + 10] + b"\x00"
    return data[: offset + 6] + struct.pack("<H", len(value)) + value + data[offset + 10 :]


def _transfer_syntax(uid: str) -> Callable[[], bytes]:
    def make() -> bytes:
        ds = mg_dataset()
        ds.file_meta.TransferSyntaxUID = uid
        buffer = io.BytesIO()
        ds.save_as(buffer, implicit_vr=False, little_endian=True)
        return buffer.getvalue()

    return make


def _deflate_stream_corrupted() -> bytes:
    ds = mg_dataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = bytearray(_dataset_bytes(ds))
    (meta_length,) = struct.unpack("<I", data[140:144])  # (0002,0000) after preamble and DICM
    data[144 + meta_length] = 0xFF  # first deflate block: BTYPE 11 is reserved (RFC 1951 3.2.3)
    return bytes(data)


def _deflate_bomb(inflated_gib: int = 2, *, zeros: int | None = None) -> bytes:
    """A deflated dataset (PS3.5 A.5) of ~2 MB that inflates to 2 GiB: a private OB element
    of zeros after the image. Built from one compressed MiB of zeros repeated, each piece
    independent after a full flush, so that making it takes milliseconds."""
    plain = _mg_bytes()
    (meta_length,) = struct.unpack("<I", plain[140:144])
    body = plain[144 + meta_length :]
    zeros = (1 << 30) * inflated_gib if zeros is None else zeros
    element = struct.pack("<HH", 0x7FE1, 0x0010) + b"OB\0\0" + struct.pack("<I", zeros - 2)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflater.compress(body + element) + deflater.flush(zlib.Z_FULL_FLUSH)
    mib = deflater.compress(b"\0" * (1 << 20)) + deflater.flush(zlib.Z_FULL_FLUSH)
    stream = head + mib * (zeros >> 20) + b"\x03\x00"  # a final, empty fixed-Huffman block

    ds = mg_dataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = _dataset_bytes(ds)
    (meta_length,) = struct.unpack("<I", deflated[140:144])
    return deflated[: 144 + meta_length] + stream


def _deflate_bomb_under_the_file_limit() -> bytes:
    # Found by the fuzzer: ~1 MB inflating to 0.99 GiB passed the old 1 GiB inflate limit,
    # peaked at 2.1 GB and came back usable.
    return _deflate_bomb(zeros=(1 << 30) - (10 << 20))


def _rle(rows: int = ROWS, columns: int = COLS, **attrs: Any) -> bytes:
    ds = mg_dataset(breast_pixels(rows, columns), **attrs)
    ds.compress(RLELossless)
    return _dataset_bytes(ds)


def _rle_runs_past_the_frame() -> bytes:
    # Found by the fuzzer: segments for 96 rows, header says 48. pylibjpeg-rle's Rust decoder
    # panics (pyo3 PanicException, a BaseException that `except Exception` missed).
    return _header_patched(_rle(), ROWS // 2, COLS)


def _rle_three_rows() -> bytes:
    # Found by the fuzzer: Rows 512 -> 3 gave a "usable" image of 3 rows.
    return _header_patched(_rle(512, 384), 3, 384)


def _file_meta_unknown_vr() -> bytes:
    # Found by the fuzzer: the VR of (0002,0002) changed to ZZ raised NotImplementedError.
    data = bytearray(_mg_bytes())
    offset = _find(data, b"\x02\x00\x02\x00UI")
    data[offset + 4 : offset + 6] = b"ZZ"
    return bytes(data)


def _junk_before_pixel_data() -> bytes:
    # 1 MB of zeros parse as 131072 elements (0000,0000): out of order, pydicom took minutes
    # for 100 MB of them.
    data = _mg_bytes()
    start = _find(data, PIXEL_DATA_TAG)
    return data[:start] + b"\0" * (1 << 20) + data[start:]


def _huge_text_element(folder: Path) -> Path:
    # Found by the fuzzer: a 0.5 GiB text element (implicit VR: any element may have a 4-byte
    # length) cost 2.2 GB as it was decoded. The file is sparse: it takes no disk space.
    ds = mg_dataset(SeriesDescription="X")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = _dataset_bytes(ds)
    tag = b"\x08\x00\x3e\x10"  # (0008,103E) SeriesDescription, value "X " (2 bytes)
    offset = _find(data, tag)
    path = folder / "file.dcm"
    with path.open("wb") as fp:
        fp.write(data[:offset] + tag + struct.pack("<I", 1 << 29))
        fp.seek(1 << 29, 1)
        fp.write(data[offset + 10 :])
    return path


def _j2k_strip_16384x3662() -> bytes:
    # Found by the fuzzer: a 30 KB codestream declaring 16384x3662 (header agreeing) took
    # ~1 GB to decode. Header and SIZ both say so here; refused before any decoder runs.
    data = _compressed_bytes(JPEG2000Lossless)
    frame = b"".join(_fragments(data))
    return _header_patched(_with_frame(data, _j2k_siz_patched(frame, 16384, 3662)), 16384, 3662)


def _dicomdir() -> bytes:
    ds = mg_dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir = Dataset()
    dicomdir.file_meta = meta
    dicomdir.FileSetID = "MAMMO"
    dicomdir.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    dicomdir.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    dicomdir.FileSetConsistencyFlag = 0
    record = Dataset()
    record.DirectoryRecordType = "IMAGE"
    record.ReferencedFileID = ["IMAGES", "IM0001"]
    record.ReferencedSOPInstanceUIDInFile = ds.SOPInstanceUID
    dicomdir.DirectoryRecordSequence = [record]
    return _dataset_bytes(dicomdir)


def _structured_report() -> Dataset:
    ds = mg_dataset(
        SOPClassUID="1.2.840.10008.5.1.4.1.1.88.50",  # Mammography CAD SR
        Modality="SR",
        BodyPartExamined=None,
    )
    del ds.PixelData
    ds.ValueType = "CONTAINER"
    return ds


def _mg_without_pixel_data() -> Dataset:
    ds = mg_dataset()
    del ds.PixelData
    return ds


def _symlink_loop(folder: Path) -> Path:
    (folder / "a.dcm").symlink_to(folder / "b.dcm")
    (folder / "b.dcm").symlink_to(folder / "a.dcm")
    return folder / "a.dcm"


def _directory(folder: Path) -> Path:
    path = folder / "IM0001"
    path.mkdir()
    return path


def _unreadable(folder: Path) -> Path:
    path = write(mg_dataset(), folder / "file.dcm")
    path.chmod(0)
    return path


def _larger_than_file_limit(folder: Path) -> Path:
    path = folder / "file.dcm"
    with path.open("wb") as fp:  # sparse: takes no disk space
        fp.truncate((1 << 30) + 1)
    return path


def _in_file_meta_value(data: bytes) -> int:
    return _find(data, b"\x02\x00\x10\x00UI") + 12  # inside TransferSyntaxUID's value


def _in_element_tag(data: bytes) -> int:
    return _find(data, b"\x08\x00\x60\x00CS") + 3  # 3 bytes into Modality's tag


def _in_element_value(data: bytes) -> int:
    return _find(data, b"\x10\x00\x10\x00PN") + 11  # inside PatientName's value


def _before_pixel_value(data: bytes) -> int:
    return _pixel_value_offset(data)


def _in_pixel_data_tag(data: bytes) -> int:
    return _find(data, PIXEL_DATA_TAG) + 6


def _in_native_pixel_data(data: bytes) -> int:
    return _pixel_value_offset(data) + 1000


@dataclass(frozen=True)
class Kind:
    """One way a file can be damaged or hostile, and the phrase its reason must contain."""

    name: str
    build: Callable[[Path], Path]
    phrase: str
    read_kwargs: dict[str, Any] = field(default_factory=dict)


def _mg(**attrs: Any) -> Callable[[Path], Path]:
    return _from_dataset(lambda: mg_dataset(**attrs))


REDUCED = {"target_shape": SMALL_TARGET}

CORPUS: list[Kind] = [
    # not DICOM at all
    Kind("empty_file", _bytes_file(b""), "empty file"),
    Kind("random_bytes", _from(_random_bytes), "not a DICOM file"),
    Kind("text_file", _from(_text_file), "not a DICOM file"),
    Kind("cut_inside_preamble", _bytes_file(b"\0" * 100), "not a DICOM file"),
    Kind("preamble_only", _bytes_file(b"\0" * 128 + b"DICM"), "no data elements"),
    # cut short
    Kind("cut_in_file_meta", _cut(_in_file_meta_value), "truncated"),
    Kind("cut_in_element_tag", _cut(_in_element_tag), "truncated file: it ends inside"),
    Kind("cut_in_element_value", _cut(_in_element_value), "truncated file"),
    Kind("cut_before_pixel_value", _cut(_before_pixel_value), "truncated file"),
    Kind("cut_in_pixel_data_tag", _cut(_in_pixel_data_tag), "truncated file: it ends inside"),
    Kind("cut_in_native_pixel_data", _cut(_in_native_pixel_data), "truncated file"),
    Kind("cut_in_encapsulated_pixel_data", _from(_truncated_encapsulated), "truncated"),
    # lengths that lie
    Kind("element_length_past_end_of_file", _from(_element_length_past_end),
         "wrong element length: (0008,0020) declares 65535 bytes"),
    Kind("huge_length_in_non_sequence", _from(_huge_length_in_non_sequence), "4294967294 bytes"),
    Kind("pixel_data_length_past_end", _from(_pixel_data_length_huge), "wrong element length"),
    Kind("pixel_data_shorter_than_image", _from_dataset(_short_pixel_data), "shorter than rows x"),
    Kind("odd_pixel_data_length", _from(_odd_pixel_data_length), "shorter than rows x"),
    Kind("rows_wrong_value_length", _from(_rows_wrong_value_length), "damaged rows (0028,0010)"),
    Kind("sequences_nested_2000_deep", _from(_deeply_nested_sequences), "nested too deeply"),
    Kind("sequence_with_400000_items", _from(_sequence_with_many_items),
         "more than 10000 sequence items"),
    Kind("deflate_stream_corrupted", _from(_deflate_stream_corrupted), "damaged deflated dataset"),
    Kind("deflate_bomb", _from(_deflate_bomb), "inflates beyond the 307108864 byte limit"),
    # sizes
    Kind("rows_zero", _mg(Rows=0), "missing or zero image size"),
    Kind("columns_missing", _mg(Columns=None), "missing or zero image size"),
    Kind("absurd_dimensions", _from(_absurd_dimensions), "absurd image size 65535x65535"),
    Kind("pixels_beyond_limit", _mg(Rows=10000, Columns=10000), "exceeds the limit"),
    Kind("file_beyond_size_limit", _larger_than_file_limit, "larger than the"),
    # JPEG 2000, the decompression bombs included
    Kind("j2k_header_larger_than_codestream", _from(_j2k_header_larger_than_codestream),
         "decompression bomb", REDUCED),
    Kind("j2k_codestream_larger_than_header", _from(_j2k_codestream_larger_than_header),
         "codestream is 60000x60000 but the header says 96x64"),
    Kind("j2k_codestream_larger_than_header_reduced",
         _from(_j2k_codestream_larger_than_header_reduced), "decompression bomb", REDUCED),
    Kind("j2k_tiles_missing", _from(_j2k_tiles_missing), "holds 1 of its 49152 tiles"),
    Kind("j2k_tiles_missing_reduced", _from(_j2k_tiles_missing), "holds 1 of its 49152 tiles",
         REDUCED),
    Kind("j2k_coded_data_corrupted", _from(_j2k_body_corrupted), "could not be decoded"),
    Kind("j2k_cut_after_main_header", _from(_j2k_cut_after_main_header), "holds 0 of its 1"),
    Kind("j2k_cut_inside_tile", _from(_j2k_cut_inside_tile), "jpeg 2000 image compression"),
    Kind("j2k_cut_inside_tile_reduced", _from(lambda: _j2k_cut_inside_tile(256, 192)),
         "pixel data could not be decoded", REDUCED),
    Kind("j2k_no_siz_marker", _from(_j2k_no_siz_marker), "no siz marker"),
    # RLE, JPEG-LS, JPEG
    Kind("rle_header_first_offset_wrong", _from(_rle_header_first_offset_wrong), "rle lossless"),
    Kind("rle_segment_offset_past_end", _from(_rle_offsets_past_end), "rle lossless"),
    Kind("rle_wrong_number_of_segments", _from(_rle_wrong_number_of_segments), "rle lossless"),
    Kind("jpegls_scan_corrupted", _from(_jpegls_corrupted), "jpeg-ls lossless image compression"),
    Kind("jpegls_truncated", _from(_jpegls_truncated), "no eoi marker"),
    Kind("jpeg_baseline_truncated", _from(_jpeg_baseline(lambda f: f[: len(f) // 2])),
         "no eoi marker"),
    Kind("jpeg_sof_larger_than_header",  # libjpeg would take ~11 GB and a minute
         _from(_jpeg_baseline(lambda f: _sof_patched(f, b"\xff\xc0", 60000, 60000))),
         "frame is 60000x60000 but the header says 96x64"),
    Kind("jpegls_sof_larger_than_header", _from(_jpegls_sof_larger_than_header),
         "frame is 16000x16000 but the header says 96x64"),
    # encapsulation
    Kind("encapsulated_no_fragments", _from(_encapsulated_no_fragments), "holds no frame"),
    Kind("encapsulated_missing_offset_table", _from(_encapsulated_missing_offset_table),
         "basic offset table"),
    Kind("encapsulated_garbage_item_tag", _from(_encapsulated_garbage_item_tag),
         "unexpected tag '(3412,7856)'"),
    Kind("encapsulated_in_native_syntax", _from(_encapsulated_in_native_syntax),
         "encapsulated pixel data under the uncompressed"),
    # identity
    Kind("sop_instance_uid_with_letters", _mg(SOPInstanceUID="1.2.abc.4"), "invalid sopinstance"),
    Kind("sop_instance_uid_too_long", _mg(SOPInstanceUID="1." + "2" * 70), "invalid sopinstance"),
    Kind("sop_instance_uid_leading_zero", _mg(SOPInstanceUID="1.2.03.4"), "invalid sopinstance"),
    Kind("sop_instance_uid_missing", _mg(SOPInstanceUID=None), "missing sopinstanceuid"),
    # pixel description
    Kind("bits_stored_above_bits_allocated", _mg(BitsStored=16, BitsAllocated=8),
         "bitsstored 16 does not fit bitsallocated 8"),
    Kind("bits_allocated_12", _mg(BitsAllocated=12), "unsupported bitsallocated 12"),
    Kind("rgb_copy", _mg(SamplesPerPixel=3, PhotometricInterpretation="RGB"), "not a greyscale"),
    Kind("three_samples_said_monochrome", _mg(SamplesPerPixel=3), "samplesperpixel=3"),
    Kind("palette_color", _mg(PhotometricInterpretation="PALETTE COLOR"), "palette color"),
    Kind("unknown_transfer_syntax", _from(_transfer_syntax("1.2.3.4.5.6.7")),
         "unknown transfer syntax"),
    Kind("garbage_transfer_syntax", _from(_transfer_syntax("JUNK!")), "unknown transfer syntax"),
    # not a 2D screening mammogram
    Kind("fifty_frames", _mg(NumberOfFrames=50), "tomosynthesis"),
    Kind("number_of_frames_not_a_number", _from(_number_of_frames_not_a_number),
         "invalid numberofframes"),
    Kind("modality_ct", _mg(Modality="CT", BodyPartExamined="CHEST"), "not a mammogram"),
    Kind("dicomdir", _from(_dicomdir), "dicomdir"),
    Kind("structured_report", _from_dataset(_structured_report), "not a mammogram"),
    Kind("mammogram_without_pixel_data", _from_dataset(_mg_without_pixel_data), "no pixel data"),
    # not a readable file
    Kind("symlink_loop", _symlink_loop, "cannot read file: too many levels of symbolic links"),
    Kind("directory", _directory, "cannot read file: is a directory"),
    # found by fuzzing the reader (issue 11)
    Kind("rle_runs_past_the_frame_rust_panic", _from(_rle_runs_past_the_frame),
         "rle lossless pixel data could not be decoded"),
    Kind("rle_rust_panic_header_only_read", _from(lambda: _header_patched(
        _rle(PatientOrientation=None), ROWS // 2, COLS)),
         "rle lossless pixel data could not be decoded", {"load_pixels": False}),
    Kind("rle_three_rows", _from(_rle_three_rows), "implausible image size 3x384"),
    Kind("rle_three_rows_header_only", _from(_rle_three_rows), "implausible image size 3x384",
         {"load_pixels": False}),
    Kind("file_meta_unknown_vr", _from(_file_meta_unknown_vr),
         "damaged file meta information: mediastoragesopclassuid (0002,0002)"),
    Kind("rescale_intercept_beyond_float32", _mg(RescaleIntercept=-1e39),
         "rescaleslope or rescaleintercept out of range"),
    Kind("rescale_slope_beyond_float32", _mg(RescaleSlope=1e305),
         "rescaleslope or rescaleintercept out of range"),
    Kind("junk_before_pixel_data", _from(_junk_before_pixel_data),
         "element (0000,0000) out of order after (0028,0103)"),
    Kind("deflate_bomb_0_99_gib", _from(_deflate_bomb_under_the_file_limit),
         "inflates beyond the 307108864 byte limit"),
    Kind("text_element_half_a_gib", _huge_text_element,
         "element (0008,103e) declares 536870912 bytes, more than the 67108864 byte limit"),
    Kind("j2k_strip_16384x3662", _from(_j2k_strip_16384x3662),
         "implausible image size 16384x3662"),
    Kind("modality_free_text", _mg(Modality="PATIENT SECRET NAME", BodyPartExamined="CHEST"),
         "not a mammogram (modality not a valid code"),
]


def test_the_corpus_holds_at_least_32_distinct_kinds():
    names = [kind.name for kind in CORPUS]
    assert len(set(names)) == len(names)
    assert len(names) >= 32


@pytest.mark.parametrize("kind", CORPUS, ids=lambda kind: kind.name)
def test_damaged_file_is_unusable_with_a_reason_that_says_why(kind, tmp_path):
    image = read_image(kind.build(tmp_path), **kind.read_kwargs)
    assert image.usable is False
    assert image.pixels is None
    assert kind.phrase.lower() in (image.reason or "").lower(), image.reason


@pytest.mark.parametrize("kind", CORPUS, ids=lambda kind: kind.name)
def test_reason_is_one_short_line_without_traceback(kind, tmp_path):
    reason = read_image(kind.build(tmp_path), **kind.read_kwargs).reason or ""
    assert 0 < len(reason) < 200, reason
    assert "\n" not in reason and "\r" not in reason, reason
    assert "Traceback" not in reason and 'File "' not in reason, reason


def test_file_without_read_permission_is_unusable_with_a_reason(tmp_path):
    """Root reads every file, so the read runs in a forked child that has dropped to
    the unprivileged uid 65534 (modules are already loaded; only the file is opened)."""
    folder = Path(tempfile.mkdtemp(prefix="mt-perm-"))
    try:
        folder.chmod(0o755)
        path = _unreadable(folder)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.close(read_fd)
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                image = read_image(path)
                os.write(write_fd, json.dumps([image.usable, image.reason]).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            usable, reason = json.loads(pipe.read())
        os.waitpid(pid, 0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert usable is False
    assert "cannot read file: permission denied" in reason.lower()


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from mammotriage.dicom import read_image

    def peak_kib():
        # VmHWM is this process's own high-water mark. ru_maxrss is not: Linux carries the
        # parent's resident size across fork and exec, so a large pytest process would hide
        # everything below its own size.
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    cases = json.loads(sys.argv[1])
    for path in json.loads(sys.argv[2]):  # loads every codec plugin before the baseline
        assert read_image(path).usable, path
    baseline = peak_kib()
    usable = []
    for path, kwargs in cases:
        if "target_shape" in kwargs:
            kwargs["target_shape"] = tuple(kwargs["target_shape"])
        if read_image(path, **kwargs).usable:
            usable.append(path)
    print(json.dumps({
        "baseline_kib": baseline,
        "peak_kib": peak_kib(),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "usable": usable,
    }))
    """
)


def test_reading_the_whole_corpus_keeps_memory_bounded(tmp_path):
    cases = []
    for kind in CORPUS:
        folder = tmp_path / kind.name
        folder.mkdir()
        cases.append((str(kind.build(folder)), kind.read_kwargs))
    warm = []
    for syntax in (None, RLELossless, JPEG2000Lossless, JPEGLSLossless):
        ds = mg_dataset(breast_pixels(ROWS, COLS))
        if syntax is not None:
            ds.compress(syntax)
        warm.append(str(write(ds, tmp_path / f"warm-{len(warm)}.dcm")))

    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, json.dumps(cases), json.dumps(warm)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    grown_mb = (figures["peak_kib"] - figures["baseline_kib"]) / 1024
    print(
        f"\npeak RSS {figures['peak_kib'] / 1024:.0f} MB, {grown_mb:.1f} MB above the "
        f"{figures['baseline_kib'] / 1024:.0f} MB baseline after imports, reading {len(cases)} "
        f"damaged files (ru_maxrss {figures['ru_maxrss_kib'] / 1024:.0f} MB, inherited from pytest)"
    )
    assert grown_mb < 400
    assert figures["usable"] == []


_PEAK_PROBE = textwrap.dedent(
    """
    import json, sys
    from mammotriage.dicom import read_image

    image = read_image(sys.argv[1])
    with open("/proc/self/status") as status:  # VmHWM: this process's own high-water mark
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps([image.usable, image.reason, peak]))
    """
)


def _j2k_of_zeros(rows: int, columns: int) -> bytes:
    """A real codestream (a few hundred bytes) of an all-zero image, in a header that agrees."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((rows, columns), np.uint16)).save(
        buffer, "JPEG2000", irreversible=False, no_jp2=True
    )
    frame = buffer.getvalue()
    ds = mg_dataset(np.zeros((ROWS, COLS), np.uint16))
    ds.Rows, ds.Columns = rows, columns
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    ds["PixelData"].VR = "OB"
    return _dataset_bytes(ds)


# (builder, usable): the fuzzer's memory findings (issue 11), and the largest plausible image
# a hostile codestream may still declare, decoded in full (no target_shape).
MEMORY_BOMBS: dict[str, tuple[Callable[[Path], Path], bool]] = {
    "deflate_0_99_gib": (_from(_deflate_bomb_under_the_file_limit), False),
    "text_element_half_a_gib": (_huge_text_element, False),
    "j2k_zeros_16384x3662": (_from(lambda: _j2k_of_zeros(16384, 3662)), False),
    "j2k_zeros_7680x6144_full_size": (_from(lambda: _j2k_of_zeros(7680, 6144)), True),
}


@pytest.mark.parametrize("name", sorted(MEMORY_BOMBS))
def test_each_memory_bomb_peaks_under_1_5_gb(name, tmp_path):
    build, usable = MEMORY_BOMBS[name]
    path = build(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE, str(path)], capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    was_usable, reason, peak_kib = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\n{name}: peak RSS {peak_kib / 1024:.0f} MB, usable={was_usable}, {reason}")
    assert was_usable is usable, reason
    assert peak_kib < 1_500_000
