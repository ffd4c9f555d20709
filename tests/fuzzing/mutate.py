"""Seeded, reproducible mutations of DICOM files.

A mutant is fully described by (seed bytes, mutation name, rng seed): ``build(seed, name,
rng_seed)`` always returns the same :class:`Mutant`. Mutations work on bytes, through a small
element walker (Part 10 file meta, then the dataset in explicit or implicit VR little endian),
so that they can write what pydicom would refuse to write: values that do not fit their VR,
lengths that lie, VRs that do not exist.

Large files are never materialised: a :class:`Mutant` is a list of byte strings and hole
sizes, and :meth:`Mutant.write` seeks over the holes (a sparse file of zeros), so that a
0.5 GiB element or 100 MB of trailing zeros costs nothing to build.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------- mutant


@dataclass(frozen=True)
class Mutant:
    """Bytes of a mutated file; an ``int`` part is that many zero bytes (a sparse hole)."""

    parts: tuple[bytes | int, ...]
    note: str = ""

    @property
    def size(self) -> int:
        return sum(p if isinstance(p, int) else len(p) for p in self.parts)

    def write(self, path: Path) -> Path:
        with path.open("wb") as fp:
            for part in self.parts:
                if isinstance(part, int):
                    fp.seek(part, 1)
                else:
                    fp.write(part)
            fp.truncate()  # a trailing hole still counts in the size
        return path


def _plain(data: bytes, note: str) -> Mutant:
    return Mutant((data,), note)


# --------------------------------------------------------------------------- element walker

LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
ALL_VRS = (
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
)
UNDEFINED = 0xFFFFFFFF
SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
ITEM_TAG = b"\xfe\xff\x00\xe0"
PIXEL_DATA = 0x7FE00010
IMPLICIT_TS = b"1.2.840.10008.1.2"
DEFLATED_TS = b"1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class Elem:
    """One top-level element as found in the bytes."""

    offset: int
    tag: int
    vr: bytes | None  # None in implicit VR
    length_offset: int
    length_size: int
    value_offset: int
    length: int  # as declared
    end: int  # where the next element starts (after a delimiter for undefined lengths)

    @property
    def group(self) -> int:
        return self.tag >> 16

    @property
    def undefined(self) -> bool:
        return self.length == UNDEFINED


def _walk(data: bytes, pos: int, explicit: bool, meta_only: bool) -> Iterator[Elem]:
    n = len(data)
    while pos + 8 <= n:
        group, element = struct.unpack_from("<HH", data, pos)
        tag = (group << 16) | element
        if meta_only and group != 2:
            return
        vr = data[pos + 4 : pos + 6] if explicit or group == 2 else None
        if vr is not None and vr in LONG_VRS:
            if pos + 12 > n:
                return
            length_offset, length_size = pos + 8, 4
        elif vr is not None:
            length_offset, length_size = pos + 6, 2
        else:
            length_offset, length_size = pos + 4, 4
        fmt = "<I" if length_size == 4 else "<H"
        (length,) = struct.unpack_from(fmt, data, length_offset)
        value_offset = length_offset + length_size
        if length == UNDEFINED and length_size == 4:
            delim = data.find(SEQ_DELIMITER, value_offset)
            end = n if delim < 0 else delim + 8
        else:
            end = value_offset + length
        yield Elem(pos, tag, vr, length_offset, length_size, value_offset, length, end)
        if end <= pos or end > n:
            return
        pos = end


@dataclass(frozen=True)
class Layout:
    """Where the parts of a Part 10 file are."""

    meta: list[Elem]
    body: list[Elem]
    body_start: int
    explicit: bool
    deflated: bool
    has_preamble: bool

    def find(self, tag: int) -> Elem | None:
        for elem in self.meta + self.body:
            if elem.tag == tag:
                return elem
        return None

    @property
    def pixel_data(self) -> Elem | None:
        return self.find(PIXEL_DATA)

    @property
    def header_end(self) -> int:
        pixel = self.pixel_data
        return pixel.value_offset if pixel else (self.body[-1].end if self.body else 0)


def layout(data: bytes) -> Layout:
    has_preamble = data[128:132] == b"DICM"
    start = 132 if has_preamble else 0
    meta = list(_walk(data, start, explicit=True, meta_only=True)) if has_preamble else []
    body_start = meta[-1].end if meta else start
    ts = b""
    for elem in meta:
        if elem.tag == 0x00020010:
            ts = data[elem.value_offset : elem.value_offset + elem.length].rstrip(b"\0 ")
    deflated = ts == DEFLATED_TS
    explicit = ts != IMPLICIT_TS if meta else data[start + 4 : start + 6].isalpha()
    body = [] if deflated else list(_walk(data, body_start, explicit, meta_only=False))
    return Layout(meta, body, body_start, explicit, deflated, has_preamble)


def _pack_length(elem: Elem, length: int) -> bytes:
    if elem.length_size == 2:
        return struct.pack("<H", length & 0xFFFF)
    return struct.pack("<I", length & 0xFFFFFFFF)


def _fix_meta_group_length(data: bytes, delta: int) -> bytes:
    lay = layout(data)
    group_length = lay.find(0x00020000)
    if group_length is None or group_length.length != 4 or not delta:
        return data
    (value,) = struct.unpack_from("<I", data, group_length.value_offset)
    at = group_length.value_offset
    return data[:at] + struct.pack("<I", (value + delta) & 0xFFFFFFFF) + data[at + 4 :]


def replace_value(data: bytes, elem: Elem, value: bytes, fix_length: bool = True) -> bytes:
    """``data`` with ``elem``'s value replaced (its length field following when asked)."""
    end = elem.value_offset + (0 if elem.undefined else elem.length)
    if elem.undefined:
        end = elem.end
    head = data[: elem.length_offset]
    length = _pack_length(elem, len(value)) if fix_length else data[
        elem.length_offset : elem.value_offset
    ]
    out = head + length + value + data[end:]
    if elem.group == 2 and fix_length:
        out = _fix_meta_group_length(out, len(value) - (end - elem.value_offset))
    return out


def encode_element(tag: int, vr: bytes, value: bytes, explicit: bool) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if not explicit and group != 2:
        return struct.pack("<HHI", group, element, len(value)) + value
    if vr in LONG_VRS:
        head = struct.pack("<HH", group, element) + vr + b"\0\0"
        return head + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value) & 0xFFFF) + value


def set_value(data: bytes, tag: int, vr: bytes, value: bytes) -> bytes:
    """Replace the value of ``tag`` or insert the element in tag order."""
    lay = layout(data)
    elems = lay.meta if tag >> 16 == 2 else lay.body
    for elem in elems:
        if elem.tag == tag:
            return replace_value(data, elem, value)
    raw = encode_element(tag, vr, value, lay.explicit)
    at = next((e.offset for e in elems if e.tag > tag), elems[-1].end if elems else len(data))
    out = data[:at] + raw + data[at:]
    if tag >> 16 == 2:
        out = _fix_meta_group_length(out, len(raw))
    return out


def delete_element(data: bytes, elem: Elem) -> bytes:
    out = data[: elem.offset] + data[elem.end :]
    if elem.group == 2:
        out = _fix_meta_group_length(out, elem.offset - elem.end)
    return out


def fragments(data: bytes, pixel: Elem) -> list[tuple[int, int]]:
    """(item offset, value length) of the items of encapsulated pixel data (BOT first)."""
    out = []
    pos = pixel.value_offset
    while pos + 8 <= len(data) and data[pos : pos + 4] == ITEM_TAG:
        (length,) = struct.unpack_from("<I", data, pos + 4)
        out.append((pos, length))
        if length == UNDEFINED:
            break
        pos += 8 + length
    return out


def first_frame(data: bytes) -> tuple[int, int] | None:
    """(offset, length) of the first fragment of encapsulated pixel data."""
    lay = layout(data)
    pixel = lay.pixel_data
    if pixel is None or not pixel.undefined:
        return None
    items = fragments(data, pixel)
    if len(items) < 2:
        return None
    offset, length = items[1]
    return offset + 8, length


# --------------------------------------------------------------------------- value pools

US_VALUES = (
    0, 1, 2, 3, 4, 7, 8, 9, 11, 12, 13, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 1023, 4095,
    4096, 16383, 16384, 16385, 32767, 32768, 65534, 65535,
)
DS_VALUES = (
    "0", "-0", "1", "-1", "0.5", "1e308", "-1e308", "1e-308", "-1e-308", "1E+38", "3.5e38",
    "-3.5e38", "1e39", "NaN", "nan", "inf", "-Infinity", "1e999", "abc", "", " ", "0.0000001",
    "1\\2\\3", "12345678901234567", "-2147483648", "4294967296", "1e20", "-1e20", "+5", "1,5",
    "\\", "1\\", "\0\0",
)
IS_VALUES = ("0", "1", "2", "-1", "99999999", "2147483648", "-2147483649", "abc", "", "1\\2", "1e3")
GARBAGE_TEXT = (
    b"", b" ", b"\\", b"\0\0", b"\xff\xfe\xfd\xfc", b"A" * 64, b"A" * 65, b"X" * 10001,
    "é".encode() * 8, b"\x1b$B", b"1\\2\\3\\4\\5\\6\\7\\8",
)

#: keyword -> (tag, VR, choices). Text choices are str or bytes; US choices are ints.
HEADER_FIELDS: dict[str, tuple[int, bytes, tuple[object, ...]]] = {
    "Rows": (0x00280010, b"US", US_VALUES),
    "Columns": (0x00280011, b"US", US_VALUES),
    "BitsAllocated": (0x00280100, b"US", US_VALUES),
    "BitsStored": (0x00280101, b"US", US_VALUES),
    "HighBit": (0x00280102, b"US", US_VALUES),
    "PixelRepresentation": (0x00280103, b"US", (0, 1, 2, 255, 65535)),
    "SamplesPerPixel": (0x00280002, b"US", (0, 1, 2, 3, 4, 255, 65535)),
    "PlanarConfiguration": (0x00280006, b"US", (0, 1, 2, 65535)),
    "SmallestImagePixelValue": (0x00280106, b"US", (0, 1, 32767, 32768, 65535)),
    "LargestImagePixelValue": (0x00280107, b"US", (0, 1, 32767, 32768, 65535)),
    "PixelPaddingValue": (0x00280120, b"US", (0, 1, 4095, 32768, 65535)),
    "NumberOfFrames": (0x00280008, b"IS", IS_VALUES),
    "PhotometricInterpretation": (0x00280004, b"CS", (
        "MONOCHROME1", "MONOCHROME2", "MONOCHROME3", "RGB", "YBR_FULL", "YBR_FULL_422",
        "YBR_ICT", "PALETTE COLOR", "monochrome2", "MONOCHROME2\\MONOCHROME1", "",
    )),
    "WindowCenter": (0x00281050, b"DS", DS_VALUES),
    "WindowWidth": (0x00281051, b"DS", DS_VALUES),
    "RescaleSlope": (0x00281053, b"DS", DS_VALUES),
    "RescaleIntercept": (0x00281052, b"DS", DS_VALUES),
    "VOILUTFunction": (
        0x00281056, b"CS", ("LINEAR", "LINEAR_EXACT", "SIGMOID", "sigmoid", "X", "")
    ),
    "PresentationLUTShape": (0x20500020, b"CS", ("IDENTITY", "INVERSE", "X", "")),
    "RescaleType": (0x00281054, b"LO", ("US", "OD", "HU", "")),
    "Modality": (0x00080060, b"CS", ("MG", "CT", "DX", "CR", "OT", "SR", "mg", "", "MG\\CT")),
    "BodyPartExamined": (0x00180015, b"CS", ("BREAST", "CHEST", "", "breast")),
    "ImageLaterality": (0x00200062, b"CS", ("L", "R", "B", "U", "", "LR", "l", "X")),
    "Laterality": (0x00200060, b"CS", ("L", "R", "B", "", "X")),
    "ViewPosition": (0x00185101, b"CS", (
        "CC", "MLO", "ML", "LM", "XCCL", "SPOT", "CCID", "MLOID", "", "cc", "CC\\MLO", "XX",
    )),
    "PatientOrientation": (0x00200020, b"CS", ("A\\R", "P\\L", "A\\F", "", "A", "A\\R\\F", "X\\Y")),
    "PresentationIntentType": (0x00080068, b"CS", (
        "FOR PRESENTATION", "FOR PROCESSING", "", "FOR SOMETHING",
    )),
    "ImagerPixelSpacing": (0x00181164, b"DS", DS_VALUES),
    "PixelSpacing": (0x00280030, b"DS", DS_VALUES),
    "EstimatedRadiographicMagnificationFactor": (0x00181114, b"DS", DS_VALUES),
    "SOPClassUID": (0x00080016, b"UI", (
        "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1",
        "1.2.840.10008.5.1.4.1.1.13.1.3", "1.2.840.10008.5.1.4.1.1.7", "1.2.3", "", "abc",
    )),
    "SOPInstanceUID": (0x00080018, b"UI", ("1.2.3", "", "1." + "2" * 80, "1.02.3", "abc")),
    "StudyInstanceUID": (0x0020000D, b"UI", ("1.2.3", "", "1." + "2" * 80, "abc")),
    "SpecificCharacterSet": (0x00080005, b"CS", (
        "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 87", "GB18030", "JUNK", "ISO_IR 100\\ISO_IR 999",
    )),
    "SeriesDescription": (0x0008103E, b"LO", ("SPOT", "MAGNIFICATION", "L CC CAD", "R MLO", "")),
    "ProtocolName": (0x00181030, b"LO", ("IMPLANT DISPLACED", "L MLO", "")),
    "AcquisitionDeviceProcessingDescription": (0x00181400, b"LO", ("SPOT", "CAD", "L CC")),
}


def _text_value(choice: object) -> bytes:
    raw = choice if isinstance(choice, bytes) else str(choice).encode("utf-8", "replace")
    return raw + (b" " if len(raw) % 2 else b"")


def _field_value(
    rng: random.Random, vr: bytes, choices: tuple[object, ...], current: bytes
) -> bytes:
    if vr == b"US":
        roll = rng.random()
        if roll < 0.1:
            return bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 3, 4, 6))))
        if roll < 0.3 and len(current) >= 2:
            (now,) = struct.unpack_from("<H", current)
            value = rng.choice((now - 1, now + 1, now * 2, now // 2, now + 8, now - 8)) & 0xFFFF
        else:
            value = int(choices[rng.randrange(len(choices))])  # type: ignore[call-overload]
        return struct.pack("<H", value)
    if rng.random() < 0.15:
        return _text_value(rng.choice(GARBAGE_TEXT))
    if vr == b"DS" and rng.random() < 0.3:  # multi-valued, mismatched counts
        count = rng.choice((2, 3, 8))
        return _text_value("\\".join(str(rng.choice(choices)) for _ in range(count)))
    return _text_value(rng.choice(choices))


# --------------------------------------------------------------------------- mutations

Mutation = Callable[[bytes, random.Random], Mutant]
#: name -> (function, which seeds it applies to: "any", "native", "explicit", "j2k", "rle",
#: "jpeg", "jpegls", "encapsulated")
MUTATIONS: dict[str, tuple[Mutation, str]] = {}


def mutation(name: str, applies: str = "any") -> Callable[[Mutation], Mutation]:
    def register(fn: Mutation) -> Mutation:
        MUTATIONS[name] = (fn, applies)
        return fn

    return register


@mutation("header_value")
def _header_value(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    edits: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        keyword = rng.choice(sorted(HEADER_FIELDS))
        tag, vr, choices = HEADER_FIELDS[keyword]
        elem = layout(data).find(tag) if edits else lay.find(tag)
        current = data[elem.value_offset : elem.value_offset + 2] if elem else b""
        value = _field_value(rng, vr, choices, current)
        data = set_value(data, tag, vr, value)
        edits.append(f"{keyword}={value[:24]!r}")
    return _plain(data, ", ".join(edits))


@mutation("geometry", "native")
def _geometry(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    rows_e, cols_e = lay.find(0x00280010), lay.find(0x00280011)
    if rows_e is None or cols_e is None:
        return _plain(data, "no geometry")
    (rows,) = struct.unpack_from("<H", data, rows_e.value_offset)
    (cols,) = struct.unpack_from("<H", data, cols_e.value_offset)
    choice = rng.choice(("swap", "halve_rows", "double_cols", "rows_1", "cols_1", "tiny",
                         "same_area", "rows_3"))
    new = {
        "swap": (cols, rows),
        "halve_rows": (rows // 2, cols),
        "double_cols": (rows, cols * 2),
        "rows_1": (1, cols),
        "cols_1": (rows, 1),
        "tiny": (rng.randint(1, 8), rng.randint(1, 8)),
        "same_area": (rows * 2, cols // 2),
        "rows_3": (3, cols),
    }[choice]
    r, c = (min(max(v, 0), 65535) for v in new)
    data = set_value(data, 0x00280010, b"US", struct.pack("<H", r))
    data = set_value(data, 0x00280011, b"US", struct.pack("<H", c))
    return _plain(data, f"{choice}: {rows}x{cols} -> {r}x{c}")


def _lut_item(rng: random.Random, explicit: bool) -> bytes:
    entries = rng.choice((0, 1, 2, 256, 4096, 65535, 65536 & 0xFFFF))
    first = rng.choice((0, 1, 4095, 32768, 65535))
    bits = rng.choice((0, 1, 8, 10, 12, 16, 17, 32, 65535))
    n_data = rng.choice((0, 1, 2, entries, entries + 1, max(entries - 1, 0), 100000))
    lut_data = bytes(rng.getrandbits(8) for _ in range(min(n_data, 64))) * (
        max(n_data, 1) * 2 // max(min(n_data, 64), 1)
    ) if n_data else b""
    lut_data = lut_data[: n_data * 2] if n_data else b""
    if len(lut_data) % 2:
        lut_data += b"\0"
    descriptor = struct.pack("<HHH", entries, first, bits)
    if rng.random() < 0.2:
        descriptor = descriptor[: rng.choice((0, 2, 4))]
    elements = [encode_element(0x00283002, b"US", descriptor, explicit)]
    if rng.random() < 0.9:
        elements.append(encode_element(0x00283006, b"OW", lut_data, explicit))
    if rng.random() < 0.3:
        elements.append(encode_element(0x00283003, b"LO", b"FUZZ", explicit))
    body = b"".join(elements)
    return ITEM_TAG + struct.pack("<I", len(body)) + body


@mutation("lut")
def _lut(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    if lay.deflated:
        return _plain(data, "deflated: no LUT edit")
    tag = rng.choice((0x00283010, 0x00283010, 0x00283000))  # VOI LUT / Modality LUT Sequence
    items = b"".join(_lut_item(rng, lay.explicit) for _ in range(rng.choice((0, 1, 1, 2, 3))))
    data = set_value(data, tag, b"SQ", items)
    if rng.random() < 0.3:  # with or without windows beside it
        for window in (0x00281050, 0x00281051):
            elem = layout(data).find(window)
            if elem is not None:
                data = delete_element(data, elem)
    return _plain(data, f"{tag:08x} with {items.count(ITEM_TAG)} items")


@mutation("delete_element")
def _delete(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    important = [e for e in lay.meta + lay.body if e.group in (2, 0x28, 0x7FE0, 8, 0x20, 0x18)]
    pool = important if important and rng.random() < 0.8 else lay.meta + lay.body
    if not pool:
        return _plain(data, "nothing to delete")
    elem = rng.choice(pool)
    return _plain(delete_element(data, elem), f"deleted {elem.tag:08x}")


@mutation("vr_flip")
def _vr_flip(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    pool = [e for e in lay.meta + lay.body if e.vr is not None]
    if not pool:
        return _plain(data, "no explicit VR")
    if lay.meta and rng.random() < 0.3:
        pool = [e for e in pool if e.group == 2] or pool
    elem = rng.choice(pool)
    new = rng.choice((*ALL_VRS, b"\0\0", b"ZZ", b"ob", b"\xff\xff", b"  "))
    out = data[: elem.offset + 4] + new + data[elem.offset + 6 :]
    return _plain(out, f"{elem.tag:08x} VR {elem.vr!r} -> {new!r}")


@mutation("length")
def _length(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    pool = lay.meta + lay.body
    if not pool:
        return _plain(data, "no elements")
    elem = rng.choice(pool)
    top = 0xFFFF if elem.length_size == 2 else 0xFFFFFFFF
    base = 0 if elem.undefined else elem.length
    new = rng.choice((0, 1, base + 1, max(base - 1, 0), base * 2, base + 2, top, top - 1,
                      top >> 1, UNDEFINED, 0x7FFFFFFF, len(data))) & top
    at = elem.length_offset
    out = data[:at] + _pack_length(elem, new) + data[at + elem.length_size :]
    return _plain(out, f"{elem.tag:08x} length {elem.length} -> {new}")


def _region(data: bytes, rng: random.Random, where: str) -> tuple[int, int]:
    lay = layout(data)
    split = lay.header_end or min(len(data), 2048)
    if where == "header":
        return (128 if lay.has_preamble else 0), max(split, 129)
    return split, len(data)


def _byte_mutation(where: str, op: str) -> Mutation:
    def mutate(data: bytes, rng: random.Random) -> Mutant:
        lo, hi = _region(data, rng, where)
        hi = min(hi, len(data))
        if hi <= lo:
            lo, hi = 0, len(data)
        if not data:
            return Mutant((data,), "empty: nothing to change")
        buf = bytearray(data)
        if op == "flip":
            count = rng.choice((1, 1, 2, 4, 16, 64))
            for _ in range(count):
                at = rng.randrange(lo, hi)
                buf[at] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
            return Mutant((bytes(buf),), f"{count} bytes flipped in {where}")
        at = rng.randrange(lo, hi)
        if op == "insert":
            n = rng.choice((1, 2, 3, 4, 8, 100, 4096))
            blob = bytes(rng.getrandbits(8) for _ in range(min(n, 256))) * (n // min(n, 256) + 1)
            buf[at:at] = blob[:n]
            return Mutant((bytes(buf),), f"{n} bytes inserted at {at}")
        if op == "delete":
            n = rng.choice((1, 2, 3, 4, 8, 100, 4096))
            del buf[at : at + n]
            return Mutant((bytes(buf),), f"{n} bytes deleted at {at}")
        return Mutant((bytes(buf[:at]),), f"truncated at {at} of {len(data)}")

    return mutate


for _where in ("header", "pixels"):
    for _op in ("flip", "insert", "delete", "truncate"):
        mutation(f"{_op}_{_where}")(_byte_mutation(_where, _op))


@mutation("transfer_syntax")
def _transfer_syntax(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    elem = lay.find(0x00020010)
    if elem is None:
        return _plain(data, "no transfer syntax")
    uid = rng.choice((
        "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203",
        "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.1.98", "1.2.3", "", "\xff",
    ))
    return _plain(replace_value(data, elem, _text_value(uid)), f"TransferSyntaxUID -> {uid!r}")


@mutation("file_meta")
def _file_meta(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    choice = rng.choice(("no_preamble", "no_meta", "dicm", "group_length", "meta_vr",
                         "meta_length", "preamble_garbage", "version"))
    group_length = lay.find(0x00020000)
    if choice == "no_preamble" and lay.has_preamble:
        out = data[132:]
    elif choice == "no_meta" and lay.has_preamble:
        out = data[:132] + data[lay.body_start :]
    elif choice == "dicm":
        out = data[:128] + rng.choice((b"DICN", b"dicm", b"\0\0\0\0")) + data[132:]
    elif choice == "group_length" and group_length is not None:
        at = group_length.value_offset
        (value,) = struct.unpack_from("<I", data, at)
        new = rng.choice((0, 1, value + 1, value - 1, value + 100, 0xFFFFFFFF, value * 1000))
        out = data[:at] + struct.pack("<I", new & 0xFFFFFFFF) + data[at + 4 :]
    elif choice == "meta_vr" and lay.meta:
        elem = rng.choice(lay.meta)
        new = rng.choice((b"OB", b"UN", b"SQ", b"US", b"ZZ", b"\0\0", b"UT", b"OW"))
        out = data[: elem.offset + 4] + new + data[elem.offset + 6 :]
        return _plain(out, f"meta {elem.tag:08x} VR -> {new!r}")
    elif choice == "meta_length" and lay.meta:
        elem = rng.choice(lay.meta)
        new = rng.choice((0, 1, elem.length + 1, 0xFFFF, 0xFFFFFFFF))
        at = elem.length_offset
        out = data[:at] + _pack_length(elem, new) + data[at + elem.length_size :]
        return _plain(out, f"meta {elem.tag:08x} length -> {new}")
    elif choice == "preamble_garbage":
        out = bytes(rng.getrandbits(8) for _ in range(128)) + data[128:]
    else:
        version = lay.find(0x00020001)
        if version is None:
            return _plain(data, "no version")
        out = replace_value(data, version, rng.choice((b"", b"\x00", b"\xff\xff\xff\xff")))
    return _plain(out, f"file meta: {choice}")


# ------------------------------------------------------------------ codestreams


def _patch_frame(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


@mutation("j2k_siz", "j2k")
def _j2k_siz(data: bytes, rng: random.Random) -> Mutant:
    siz = data.find(b"\xff\x4f\xff\x51")
    if siz < 0:
        return _plain(data, "no SIZ")
    at = siz + 4  # Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz Ssiz..
    fields = {"Lsiz": (0, ">H"), "Rsiz": (2, ">H"), "Xsiz": (4, ">I"), "Ysiz": (8, ">I"),
              "XOsiz": (12, ">I"), "YOsiz": (16, ">I"), "XTsiz": (20, ">I"), "YTsiz": (24, ">I"),
              "XTOsiz": (28, ">I"), "YTOsiz": (32, ">I"), "Csiz": (36, ">H"), "Ssiz": (38, ">B")}
    name = rng.choice(sorted(fields))
    off, fmt = fields[name]
    (old,) = struct.unpack_from(fmt, data, at + off)
    top = {">H": 0xFFFF, ">I": 0xFFFFFFFF, ">B": 0xFF}[fmt]
    new = rng.choice((0, 1, 2, 3, old + 1, old - 1, old * 2, old // 2, 3662, 16384, 60000,
                      top, top - 1, 0x80, 0x8F, 0x0F, 0x1F)) & top
    out = _patch_frame(data, at + off, struct.pack(fmt, new))
    return _plain(out, f"SIZ {name} {old} -> {new}")


@mutation("j2k_marker", "j2k")
def _j2k_marker(data: bytes, rng: random.Random) -> Mutant:
    frame = first_frame(data)
    if frame is None:
        return _plain(data, "no frame")
    start, length = frame
    body = data[start : start + length]
    markers = [i for i in range(len(body) - 1) if body[i] == 0xFF and 0x4F <= body[i + 1] <= 0x93]
    if not markers:
        return _plain(data, "no markers")
    at = rng.choice(markers[:50])
    choice = rng.choice(("marker_byte", "segment_length", "cod_levels", "sot_psot", "kill_eoc"))
    buf = bytearray(body)
    if choice == "marker_byte":
        buf[at + 1] = rng.randrange(256)
    elif choice == "segment_length" and at + 4 <= len(buf):
        buf[at + 2 : at + 4] = struct.pack(">H", rng.choice((0, 1, 2, 3, 0xFFFF, 0x8000)))
    elif choice == "cod_levels":
        cod = body.find(b"\xff\x52")
        if cod >= 0 and cod + 10 < len(buf):
            buf[cod + 9] = rng.choice((0, 1, 5, 32, 33, 255))
    elif choice == "sot_psot":
        sot = body.find(b"\xff\x90")
        if sot >= 0 and sot + 10 < len(buf):
            buf[sot + 6 : sot + 10] = struct.pack(">I", rng.choice((0, 1, 14, 0xFFFFFFFF)))
    else:
        eoc = body.rfind(b"\xff\xd9")
        if eoc >= 0:
            buf[eoc : eoc + 2] = b"\0\0"
    return _plain(_patch_frame(data, start, bytes(buf)), f"j2k {choice} at {at}")


@mutation("rle_header", "rle")
def _rle_header(data: bytes, rng: random.Random) -> Mutant:
    frame = first_frame(data)
    if frame is None or frame[1] < 64:
        return _plain(data, "no RLE frame")
    start, length = frame
    header = bytearray(data[start : start + 64])
    segments, *offsets = struct.unpack("<16I", header)
    choice = rng.choice(("segments", "offset", "offset", "zero_all", "segment_bytes"))
    if choice == "segments":
        segments = rng.choice((0, 1, 2, 3, 4, 15, 16, 255, 0xFFFFFFFF))
    elif choice == "offset":
        i = rng.randrange(15)
        offsets[i] = rng.choice((0, 1, 63, 64, 65, length - 1, length, length + 1, 0xFFFFFFFF,
                                 offsets[i] + 1, max(offsets[i] - 1, 0)))
    elif choice == "zero_all":
        segments, offsets = 0, [0] * 15
    else:  # damage a run inside the first segment
        body = bytearray(data[start : start + length])
        for _ in range(rng.choice((1, 8, 64))):
            at = rng.randrange(64, len(body))
            body[at] = rng.choice((0x80, 0x81, 0x7F, 0x00, 0xFF))
        return _plain(_patch_frame(data, start, bytes(body)), "RLE runs damaged")
    new = struct.pack("<16I", segments & 0xFFFFFFFF, *(o & 0xFFFFFFFF for o in offsets))
    return _plain(_patch_frame(data, start, new), f"RLE header {choice}")


@mutation("jpeg_marker", "jpeg")
def _jpeg_marker(data: bytes, rng: random.Random) -> Mutant:
    frame = first_frame(data)
    if frame is None:
        return _plain(data, "no frame")
    start, length = frame
    body = bytearray(data[start : start + length])
    sof = next((i for i in range(len(body) - 9) if body[i] == 0xFF
                and (0xC0 <= body[i + 1] <= 0xCF and body[i + 1] not in (0xC4, 0xC8, 0xCC)
                     or body[i + 1] == 0xF7)), -1)
    choice = rng.choice(("sof_rows", "sof_cols", "sof_precision", "sof_components",
                         "marker_length", "kill_eoi", "sos", "dht", "lse"))
    if choice.startswith("sof") and sof >= 0:
        off = {"sof_rows": 5, "sof_cols": 7, "sof_precision": 4, "sof_components": 9}[choice]
        if choice in ("sof_rows", "sof_cols"):
            body[sof + off : sof + off + 2] = struct.pack(">H", rng.choice(
                (0, 1, 3, 2, 100, 3662, 16384, 60000, 65535)))
        else:
            body[sof + off] = rng.choice((0, 1, 2, 3, 4, 8, 12, 16, 17, 255))
    elif choice == "marker_length":
        markers = [i for i in range(len(body) - 3) if body[i] == 0xFF and body[i + 1] >= 0xC0
                   and body[i + 1] not in (0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7,
                                           0xD8, 0xD9, 0xFF)]
        if markers:
            at = rng.choice(markers[:20])
            body[at + 2 : at + 4] = struct.pack(">H", rng.choice((0, 1, 2, 3, 0xFFFF)))
    elif choice == "kill_eoi":
        eoi = body.rfind(b"\xff\xd9")
        if eoi >= 0:
            body[eoi : eoi + 2] = b"\xff\x00"
    else:
        marker = {"sos": b"\xff\xda", "dht": b"\xff\xc4", "lse": b"\xff\xf8"}[choice]
        at = body.find(marker)
        if at < 0:
            at = body.find(b"\xff\xda")
        if at >= 0:
            for _ in range(rng.choice((1, 2, 4))):
                pos = min(at + rng.randrange(2, 20), len(body) - 1)
                body[pos] = rng.randrange(256)
    return _plain(_patch_frame(data, start, bytes(body)), f"jpeg {choice}")


@mutation("fragments", "encapsulated")
def _fragments(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    pixel = lay.pixel_data
    if pixel is None or not pixel.undefined:
        return _plain(data, "not encapsulated")
    items = fragments(data, pixel)
    choice = rng.choice(("split_many", "bot_garbage", "item_length", "drop_delimiter",
                         "empty_frame", "cut_frame"))
    frame = first_frame(data)
    if frame is None:
        return _plain(data, "no frame")
    start, length = frame
    tail_at = start + length
    if choice == "split_many":  # one frame across many small fragments
        size = rng.choice((2, 4, 16))
        body = data[start:tail_at]
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        pieces = [p + b"\0" * (len(p) % 2) for p in pieces]
        out = data[: start - 8] + b"".join(
            ITEM_TAG + struct.pack("<I", len(p)) + p for p in pieces
        ) + data[tail_at:]
        return _plain(out, f"frame in {len(pieces)} fragments")
    if choice == "bot_garbage":
        bot_offset, bot_length = items[0]
        table = struct.pack("<II", rng.choice((0, 1, 0xFFFFFFFF)), rng.choice((7, 2**31)))
        out = data[: bot_offset + 4] + struct.pack("<I", len(table)) + table + data[
            bot_offset + 8 + bot_length :
        ]
        return _plain(out, "basic offset table garbage")
    if choice == "item_length":
        at = start - 4
        new = rng.choice((0, 1, length + 1, length - 1, length * 2, 0xFFFFFFFF, 0xFFFFFFFE))
        return _plain(data[:at] + struct.pack("<I", new) + data[at + 4 :], f"item length {new}")
    if choice == "drop_delimiter":
        at = data.rfind(SEQ_DELIMITER)
        return _plain(data[:at] if at >= 0 else data, "sequence delimiter dropped")
    if choice == "empty_frame":
        return _plain(data[: start - 4] + struct.pack("<I", 0) + data[tail_at:], "empty frame")
    cut = rng.randrange(0, max(length, 1)) & ~1
    out = data[: start - 4] + struct.pack("<I", cut) + data[start : start + cut] + data[tail_at:]
    return _plain(out, f"frame cut to {cut} of {length}")


# ------------------------------------------------------------------ bombs


@mutation("trailing_garbage")
def _trailing(data: bytes, rng: random.Random) -> Mutant:
    choice = rng.choice(("zeros", "zeros", "random", "element", "items"))
    if choice == "zeros":
        size = rng.choice((1, 7, 1 << 20, 16 << 20, 100 << 20, 150 << 20))
        return Mutant((data, size), f"{size} zero bytes after the dataset")
    if choice == "random":
        blob = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 3, 100, 4096))))
        return _plain(data + blob, f"{len(blob)} random bytes after the dataset")
    if choice == "element":  # a private element after PixelData, huge declared length
        length = rng.choice((8, 1 << 20, 0xFFFFFFF0))
        head = struct.pack("<HH", 0x7FE1, 0x0010) + b"OB\0\0" + struct.pack("<I", length)
        return Mutant((data, head, min(length, 8 << 20)), f"element of length {length} after")
    item = ITEM_TAG + b"\0\0\0\0"
    return _plain(data + item * 50000, "50000 empty items after the dataset")


@mutation("huge_element")
def _huge_element(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    pixel = lay.pixel_data
    if lay.deflated or pixel is None:
        return _plain(data, "no place for it")
    size = rng.choice((64 << 20, 256 << 20, 512 << 20, 600 << 20))
    tag, vr = rng.choice(((0x00104000, b"LT"), (0x00291010, b"OB"), (0x00291010, b"UN"),
                          (0x00204000, b"LT"), (0x00291010, b"UT")))
    if not lay.explicit:
        head = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, size)
    elif vr in LONG_VRS:
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + b"\0\0" + struct.pack("<I", size)
    else:  # a short-VR text element cannot be this big: declare it UT-like via UN
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"UN\0\0" + struct.pack("<I", size)
    at = next((e.offset for e in lay.body if e.tag > tag), pixel.offset)
    return Mutant((data[:at], head, size, data[at:]), f"{tag:08x} {vr!r} of {size} bytes")


@mutation("many_items")
def _many_items(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    if lay.deflated or lay.pixel_data is None:
        return _plain(data, "no place for it")
    count = rng.choice((10000, 100000, 400000))
    explicit = lay.explicit
    empty = ITEM_TAG + b"\0\0\0\0"
    if rng.random() < 0.5:
        item = empty
    else:
        inner = encode_element(0x00080100, b"SH", b"FUZZ", explicit)
        item = ITEM_TAG + struct.pack("<I", len(inner)) + inner
    tag = rng.choice((0x00283010, 0x00540220, 0x00291020))
    if explicit:
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"SQ\0\0"
        head += struct.pack("<I", UNDEFINED)
    else:
        head = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, UNDEFINED)
    seq = head + item * count + SEQ_DELIMITER
    existing = lay.find(tag)
    if existing is not None:
        data = delete_element(data, existing)
        lay = layout(data)
    at = next((e.offset for e in lay.body if e.tag > tag), len(data))
    return _plain(data[:at] + seq + data[at:], f"{tag:08x} with {count} items")


def _deflate_bomb_stream(body: bytes, inflated: int) -> bytes:
    element = struct.pack("<HH", 0x7FE1, 0x0010) + b"OB\0\0" + struct.pack("<I", inflated - 2)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflater.compress(body + element) + deflater.flush(zlib.Z_FULL_FLUSH)
    mib = deflater.compress(b"\0" * (1 << 20)) + deflater.flush(zlib.Z_FULL_FLUSH)
    return head + mib * (inflated >> 20) + b"\x03\x00"


@mutation("deflate_bomb", "explicit")
def _deflate_bomb(data: bytes, rng: random.Random) -> Mutant:
    lay = layout(data)
    ts = lay.find(0x00020010)
    if ts is None or not lay.explicit or lay.deflated:
        return _plain(data, "not explicit little endian")
    inflated = rng.choice((256 << 20, 1 << 30, 2 << 30, 3 << 30))
    body = data[lay.body_start :]
    if rng.random() < 0.5:  # the bomb inside the image's own pixel data is also possible
        pixel = lay.pixel_data
        if pixel is not None:
            body = data[lay.body_start : pixel.offset]
    meta = replace_value(data[: lay.body_start], ts, _text_value("1.2.840.10008.1.2.1.99"))
    return _plain(meta + _deflate_bomb_stream(body, inflated), f"deflate bomb of {inflated}")


# --------------------------------------------------------------------------- building

#: Mutations whose mutants cost seconds to read when the reader does its job (bounded
#: inflating, parsing many items): a fixed-seed test takes a few of them, not its share.
HEAVY = frozenset({"deflate_bomb", "huge_element", "many_items", "trailing_garbage"})


def applies(data: bytes, kind: str) -> bool:
    """Whether a mutation of ``kind`` makes sense for the seed ``data``."""
    if kind == "any":
        return True
    lay = layout(data)
    ts_elem = lay.find(0x00020010)
    ts = (
        data[ts_elem.value_offset : ts_elem.value_offset + ts_elem.length].rstrip(b"\0 ").decode(
            "ascii", "replace"
        )
        if ts_elem
        else ""
    )
    pixel = lay.pixel_data
    encapsulated = pixel is not None and pixel.undefined
    if kind == "native":
        return not encapsulated and not lay.deflated
    if kind == "explicit":
        return lay.explicit and not lay.deflated and not encapsulated
    if kind == "encapsulated":
        return encapsulated
    if kind == "j2k":
        return encapsulated and (
            ts.startswith("1.2.840.10008.1.2.4.20")
            or ts in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
        )
    if kind == "rle":
        return encapsulated and ts == "1.2.840.10008.1.2.5"
    if kind == "jpeg":
        return encapsulated and ts.startswith("1.2.840.10008.1.2.4.") and ts[20:] in (
            "50", "51", "57", "70", "80", "81")
    return False


def build(seed: bytes, name: str, rng_seed: int) -> Mutant:
    """The mutant (seed, ``name``, ``rng_seed``): the same arguments, the same bytes."""
    fn, _kind = MUTATIONS[name]
    rng = random.Random(f"{name}:{rng_seed}")
    return fn(seed, rng)


@mutation("stack")
def _stack(data: bytes, rng: random.Random) -> Mutant:
    """Two to four light mutations one after the other (each on the previous result)."""
    notes = []
    for _ in range(rng.choice((2, 2, 3, 4))):
        names = sorted(
            n for n, (_, kind) in MUTATIONS.items()
            if n not in HEAVY and n != "stack" and applies(data, kind)
        )
        name = rng.choice(names)
        step = MUTATIONS[name][0](data, rng)
        data = b"".join(p for p in step.parts if isinstance(p, bytes))
        notes.append(f"{name}({step.note[:40]})")
    return _plain(data, "; ".join(notes))
