"""One file -> one :class:`Image`. Never raises for a bad file: it says why instead.

A PACS batch job reads whatever arrives, for months. A damaged, hostile or simply
non-screening file therefore becomes ``Image(usable=False, reason=...)`` so that the worker
records the reason and carries on; nothing here lets a file crash the caller or allocate
without bound (see :class:`mammotriage.dicom.decode.DecodeLimits`).
"""

from __future__ import annotations

import logging
import re
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag
from pydicom.uid import UID

from mammotriage.dicom import attributes as attrs
from mammotriage.dicom.decode import (
    DecodeLimits,
    check_dimensions,
    decode_stored,
    is_codec_failure,
    one_line,
)
from mammotriage.dicom.model import (
    Image,
    Laterality,
    PresentationIntentType,
    Source,
    exam_key,
)
from mammotriage.dicom.voi import coded, to_display, voi_params
from mammotriage.errors import DicomReadError

log = logging.getLogger(__name__)

_UID_CHARS = set("0123456789.")
_UNDEFINED_LENGTH = 0xFFFFFFFF
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
#: pydicom parses each sequence item into a Dataset (~40 us): 400,000 empty items, 3 MB of
#: file, cost over 10 s. A mammogram's sequences hold a handful of items.
_MAX_ITEMS = 10_000
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")  # (FFFE,E000) little, big endian
_PROJECTION_MODALITIES = frozenset({"CR", "DX", "OT", "SC", ""})
#: Default for :func:`read_image`: a frozen dataclass, so one shared instance is safe.
_DEFAULT_LIMITS = DecodeLimits()


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed element raises on access in pydicom
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _valid_uid(value: str | None) -> bool:
    """PS3.5 9.1: digits and dots, at most 64 characters, no empty or zero-led components."""
    if not value or len(value) > 64 or not set(value) <= _UID_CHARS:
        return False
    return all(part and (part == "0" or part[0] != "0") for part in value.split("."))


def _presentation_intent(ds: Dataset) -> PresentationIntentType | None:
    value = (_text(ds, "PresentationIntentType") or "").upper()
    if value in (p.value for p in PresentationIntentType):
        return PresentationIntentType(value)
    sop = _text(ds, "SOPClassUID") or ""
    if sop.endswith(".1.2.1") or sop.endswith(".13.1.5"):
        return PresentationIntentType.FOR_PROCESSING
    if sop in attrs.SOP_DIGITAL_MAMMOGRAPHY:
        return PresentationIntentType.FOR_PRESENTATION
    return None


def _pixel_spacing(ds: Dataset) -> float | None:
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        try:
            spacing = float(value[0]) if value else None
        except (TypeError, ValueError, IndexError):
            spacing = None
        if spacing and 0 < spacing < 10:
            return spacing
    return None


def screening_exclusion(ds: Dataset) -> str | None:
    """Why this dataset is not a screening mammogram, or None when it is one."""
    modality = (_text(ds, "Modality") or "").upper()
    body_part = (_text(ds, "BodyPartExamined") or "").upper()
    sop = _text(ds, "SOPClassUID") or ""
    texts = " ".join(
        (_text(ds, k) or "")
        for k in ("SeriesDescription", "ProtocolName", "AcquisitionDeviceProcessingDescription")
    ).upper()
    image_type = " ".join(str(v) for v in (ds.get("ImageType") or [])).upper()

    # Screen-film digitisations, CR mammography and research-archive copies come as CR, DX,
    # OT or Secondary Capture with BodyPartExamined BREAST; CT, MR, US ... never are mammograms.
    if modality != "MG" and not (body_part == "BREAST" and modality in _PROJECTION_MODALITIES):
        return (
            f"not a mammogram (Modality {coded(modality) if modality else 'missing'}, "
            f"BodyPartExamined {coded(body_part) if body_part else 'missing'})"
        )
    if sop in attrs.SOP_TOMOSYNTHESIS:
        return "tomosynthesis volume or projection, not a 2D screening view"
    try:
        number_of_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return "invalid NumberOfFrames (not a number)"
    if number_of_frames > 1:
        return (
            f"multi-frame object ({number_of_frames} frames): "
            "tomosynthesis, not a 2D screening view"
        )
    if "PixelData" not in ds:
        return "not an image (no pixel data)"
    if sop and sop not in (
        attrs.SOP_DIGITAL_MAMMOGRAPHY | attrs.SOP_SECONDARY_CAPTURE | attrs.SOP_OTHER_IMAGES
    ):
        return f"not a mammography image object (SOP Class {UID(sop).name})"
    modifiers = attrs.view_modifiers(ds)
    if modifiers & attrs.SPOT_COMPRESSION or "SPOT" in texts:
        return "spot compression view (diagnostic work-up, not screening)"
    if modifiers & attrs.MAGNIFICATION or "MAGNIF" in texts:
        return "magnification view (diagnostic work-up, not screening)"
    try:
        factor = float(ds.get("EstimatedRadiographicMagnificationFactor", 1.0) or 1.0)
    except (TypeError, ValueError):
        factor = 1.0
    if factor >= 1.4:
        return f"magnification view (EstimatedRadiographicMagnificationFactor {factor:.2f})"
    if "CAD" in image_type.split() or re.search(r"(?<![A-Z])CAD(?![A-Z])", texts):
        return "CAD-marked copy (marks burned into the pixels)"
    return None


def _implant_displaced(ds: Dataset) -> bool:
    if attrs.view_modifiers(ds) & attrs.IMPLANT_DISPLACED:
        return True
    position = (_text(ds, "ViewPosition") or "").upper().replace(" ", "")
    text = " ".join((_text(ds, k) or "") for k in ("SeriesDescription", "ProtocolName")).upper()
    return position.endswith("ID") or "IMPLANT DISPLACED" in text or "EKLUND" in text


class _BoundedFile:
    """The file as pydicom reads it, with every read clamped to the bytes that are left.

    An element length is a number the file chooses (up to 0xFFFFFFFE); a plain buffered
    read reserves that many bytes before it finds the file shorter. pydicom also stops
    quietly at a cut: ``partial_read`` records a read that found only part of what it
    asked for (zero padding aside), which at the end of parsing means a file cut inside an
    element header.
    """

    def __init__(self, fp: BinaryIO, size: int, limits: DecodeLimits) -> None:
        self._fp = fp
        self._size = size
        self._inflate_limit = limits.max_dataset_bytes
        self._read_limit = limits.max_dataset_bytes
        self._deadline = time.monotonic() + limits.max_parse_seconds
        self._max_parse_seconds = limits.max_parse_seconds
        self.name = str(getattr(fp, "name", ""))
        self.partial_read = False
        #: Why parsing was stopped from here (pydicom may wrap our error in its own).
        self.stopped: str | None = None
        self.items = 0

    def read(self, n: int | None = -1) -> bytes:
        left = max(self._size - self._fp.tell(), 0)
        if n is None or n < 0:
            # pydicom reads the rest of the file in one go only for a deflated dataset
            # (PS3.5 A.5), which it then inflates whole in memory with zlib. We inflate it
            # here instead, once, bounded and with a faster inflater, and hand pydicom the
            # result as stored deflate blocks, which zlib "inflates" at the speed of a copy.
            return _as_stored_blocks(_inflate(self._fp.read(left), self._inflate_limit))
        if time.monotonic() > self._deadline:  # one clock read per element: cheap
            self.stopped = (
                f"header parsing ran past its time budget of {self._max_parse_seconds:g} s"
            )
            raise DicomReadError(self.stopped)
        if min(n, left) > self._read_limit:  # in a sequence, where _DatasetEnd does not look
            self.stopped = (
                f"an element declares {n} bytes, more than the {self._read_limit} bytes a "
                "mammogram's whole data set may need"
            )
            raise DicomReadError(self.stopped)
        data = self._fp.read(min(n, left))
        self.partial_read = 0 < len(data) < n and any(data)
        if n == 8 and data[:4] in _ITEM_TAGS:  # pydicom reads an item's tag and length
            self.items += 1
            if self.items > _MAX_ITEMS:
                raise DicomReadError(f"more than {_MAX_ITEMS} sequence items in the header")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()


def _inflate(data: bytes, limit: int) -> bytes:
    """A deflated data set inflated, refused when it inflates beyond ``limit`` bytes
    (deflate expands up to ~1000:1: a file of a few MB can inflate to gigabytes).

    libdeflate (imagecodecs), about 3x faster than zlib here (``scripts/bench_codecs.py``),
    inflates into a buffer of a fixed size and stops when it is full: a first try with
    room for 8:1 (images deflate ~1.5:1) reads real files in one pass. Past that, the
    inflated size is first counted a piece at a time (nothing kept, so a bomb costs no
    memory), then the data set is inflated into exactly that size.
    """
    try:
        import imagecodecs
    except ImportError:
        return zlib.decompress(data, -zlib.MAX_WBITS, _inflated_size(data, limit))
    try:
        return bytes(imagecodecs.deflate_decode(data, raw=True, out=8 * len(data) + 4096))
    except imagecodecs.DeflateError as exc:
        if "INSUFFICIENT_SPACE" not in str(exc):
            raise DicomReadError(f"damaged deflated dataset: {one_line(exc)}") from exc
    size = _inflated_size(data, limit)
    return bytes(imagecodecs.deflate_decode(data, raw=True, out=size))


def _inflated_size(data: bytes, limit: int) -> int:
    """How many bytes ``data`` inflates to, counted a bounded piece at a time."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size = 0
    try:
        for start in range(0, len(data), 1 << 16):
            piece = data[start : start + (1 << 16)]
            while piece:
                size += len(inflater.decompress(piece, 1 << 20))
                if size > limit:
                    raise DicomReadError(f"deflated dataset inflates beyond the {limit} byte limit")
                piece = inflater.unconsumed_tail
    except zlib.error as exc:
        raise DicomReadError(f"damaged deflated dataset: {one_line(exc)}") from exc
    if not inflater.eof:
        raise DicomReadError("damaged deflated dataset: the deflate stream is truncated")
    return size


def _as_stored_blocks(data: bytes) -> bytes:
    """``data`` as a raw deflate stream of stored (uncompressed) blocks, RFC 1951 3.2.4:
    a one-byte block header (BFINAL on the last), LEN and its complement, the bytes."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    step = 0xFFFF
    for start in range(0, max(len(data), 1), step):
        chunk = view[start : start + step]
        final = start + step >= len(data)
        parts += (struct.pack("<BHH", final, len(chunk), len(chunk) ^ 0xFFFF), chunk)
    return b"".join(parts)


def _check_complete(ds: Dataset, fp: _BoundedFile) -> None:
    """Refuse a dataset that pydicom read from a cut or mis-measured file without saying so."""
    if fp.partial_read:
        raise DicomReadError("truncated file: it ends inside an element header")
    if len(ds) == 0:
        raise DicomReadError(
            "no data elements after the file meta information (empty or truncated file)"
        )
    for elem in ds.elements():
        if (
            isinstance(elem, RawDataElement)
            and elem.value is not None
            and elem.length != _UNDEFINED_LENGTH
            and len(elem.value) < elem.length
        ):
            raise DicomReadError(
                f"truncated file or wrong element length: {elem.tag} declares {elem.length} "
                f"bytes, {len(elem.value)} remain"
            )
    for elem in ds.elements():  # the Image Pixel module: convert now, name what is broken
        if elem.tag.group == 0x0028:
            try:
                ds[elem.tag]
            except Exception as exc:
                raise DicomReadError(
                    f"damaged {keyword_for_tag(elem.tag) or 'element'} {elem.tag}: its value "
                    f"does not fit VR {elem.VR}"
                ) from exc


class _DatasetEnd:
    """pydicom's ``stop_when`` for the top-level data set: where the data set ends, and
    element lengths no mammogram needs.

    PS3.5 7.1 orders a data set's elements by ascending tag, and group FFFE (items and
    delimiters) never stands at the top level. What breaks that order is not part of the
    data set: pydicom would parse it anyway, 8 bytes at a time, and 100 MB of zeros cost it
    minutes of CPU. So parsing stops at the first such element.

    After the Pixel Data that is trailing junk, and it is ignored: the image is whole (its
    length is checked later), and storage systems and file copies do leave padding and
    leftovers after the data set. Before the Pixel Data it is a damaged header: the file is
    refused with :meth:`check`'s reason. A non-pixel element longer than
    :attr:`DecodeLimits.max_element_bytes` is refused the same way, before it is read.
    """

    def __init__(self, limits: DecodeLimits) -> None:
        self._limits = limits
        self._last = -1
        self._calls = 0
        self.reason: str | None = None

    def __call__(self, tag: BaseTag, vr: str | None, length: int) -> bool:
        self._calls += 1
        repeat = tag == self._last and self._calls > 2  # pydicom may ask twice for the first
        if tag < self._last or repeat or tag >> 16 == 0xFFFE:
            if self._last < 0x7FE00010:
                self.reason = (
                    f"damaged DICOM header: element {_tag(tag)} out of order after "
                    f"{_tag(self._last)} (PS3.5 7.1: tags ascend)"
                )
            return True
        pixels = tag >> 16 == 0x7FE0  # Pixel Data, Float and Double Float Pixel Data
        if not pixels and self._limits.max_element_bytes < length != _UNDEFINED_LENGTH:
            self.reason = (
                f"element {_tag(tag)} declares {length} bytes, more than the "
                f"{self._limits.max_element_bytes} byte limit for a non-pixel element"
            )
            return True
        self._last = max(self._last, int(tag))
        return False

    def check(self) -> None:
        if self.reason is not None:
            raise DicomReadError(self.reason)


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag >= 0 else "the file meta"


def _check_file_meta(ds: Dataset) -> None:
    """Convert every file meta element now, so that a damaged one (an unknown VR, a value
    that does not fit its VR) is a reason here and not an exception later."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag in list(meta.keys()):
        try:
            meta[tag]
        except Exception as exc:
            raise DicomReadError(
                f"damaged file meta information: {keyword_for_tag(tag) or 'element'} "
                f"{_tag(int(tag))} cannot be read (unknown VR or a value that does not fit it)"
            ) from exc
    if meta.get("MediaStorageSOPClassUID") == _MEDIA_STORAGE_DIRECTORY:
        raise DicomReadError("a DICOMDIR (media directory), not an image")


def _read_dataset(path: Path, limits: DecodeLimits) -> Dataset:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DicomReadError(
            f"file is {size} bytes, larger than the {limits.max_file_bytes} byte limit"
        )
    if size == 0:
        raise DicomReadError("empty file (0 bytes)")
    with path.open("rb") as raw:  # OSError (a directory, no permission) is the caller's
        fp = _BoundedFile(raw, size, limits)
        end = _DatasetEnd(limits)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds = read_partial(fp, stop_when=end)  # type: ignore[arg-type]
                except InvalidDicomError:
                    # Old archives hold files without the Part 10 preamble; accept them only
                    # when what was read looks like an image object.
                    fp.seek(0)
                    end = _DatasetEnd(limits)
                    ds = read_partial(fp, stop_when=end, force=True)  # type: ignore[arg-type]
                    if "SOPClassUID" not in ds or "PixelData" not in ds:
                        raise DicomReadError("not a DICOM file (no DICM preamble)") from None
                end.check()
                _check_complete(ds, fp)
                _check_file_meta(ds)
        except DicomReadError:
            raise
        except RecursionError as exc:
            raise DicomReadError("damaged DICOM header: sequences nested too deeply") from exc
        except zlib.error as exc:
            raise DicomReadError(f"damaged deflated dataset: {one_line(exc)}") from exc
        except Exception as exc:  # truncated headers, wrong lengths: pydicom raises many kinds
            if fp.stopped:  # pydicom turns our error into an OSError
                raise DicomReadError(fp.stopped) from exc
            if fp.items > _MAX_ITEMS:  # pydicom turns our error into an OSError
                raise DicomReadError(
                    f"more than {_MAX_ITEMS} sequence items in the header"
                ) from exc
            reason = f"damaged DICOM header: {type(exc).__name__}: {one_line(exc)}"
            raise DicomReadError(reason) from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        if not little:
            raise DicomReadError("file meta information has no TransferSyntaxUID")
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian
        )
    return ds


def read_image(
    path: str | Path,
    *,
    target_shape: tuple[int, int] | None = None,
    load_pixels: bool = True,
    limits: DecodeLimits = _DEFAULT_LIMITS,
) -> Image:
    """Read one DICOM file as an :class:`Image`.

    Parameters
    ----------
    path
        The file.
    target_shape
        The (rows, columns) the model needs. When the image is at least twice that size,
        JPEG 2000 is decoded at a reduced resolution level and other syntaxes are block-
        averaged by the same factor; ``Image.decode_scale`` records the factor.
    load_pixels
        When False, pixels are decoded only if the metadata cannot settle laterality or
        orientation (the pixel fallback), and then at a small size; ``Image.pixels`` is None.
    limits
        Size bounds for hostile files.

    Returns
    -------
    Image
        ``usable=False`` with a ``reason`` for every file that cannot be scored.
    """
    path = Path(path)
    try:
        ds = _read_dataset(path, limits)
    except DicomReadError as exc:
        return Image(path=path, usable=False, reason=exc.reason)
    except OSError as exc:
        return Image(path=path, usable=False, reason=f"cannot read file: {exc.strerror or exc}")
    try:
        return _image_from_dataset(ds, path, target_shape, load_pixels, limits)
    except DicomReadError as exc:
        return Image(path=path, usable=False, reason=exc.reason, **_identity(ds))
    except (MemoryError, RecursionError) as exc:
        reason = f"file too large or deeply nested: {type(exc).__name__}"
        return Image(path=path, usable=False, reason=reason)
    except BaseException as exc:  # a hostile file must never crash the worker
        if not is_codec_failure(exc):  # an interrupt or an exit goes on
            raise
        log.warning("unexpected failure reading an image", extra={"error": type(exc).__name__})
        reason = f"unreadable: {type(exc).__name__}: {one_line(exc)}"
        return Image(path=path, usable=False, reason=reason, **_identity(ds))


def read_exam_key(
    path: str | Path, *, limits: DecodeLimits = _DEFAULT_LIMITS
) -> tuple[str, str]:
    """The key of the exam a file belongs to (:func:`~mammotriage.dicom.model.exam_key`),
    from its header alone: the key :func:`read_image` would give, without ever decoding
    pixels (``read_image(load_pixels=False)`` decodes a small copy when the header cannot
    settle laterality or orientation). For a source that groups files into studies before
    anything is scored; the scorer reads each file again."""
    path = Path(path)
    identity: dict[str, Any] = {}
    try:
        identity = _identity(_read_dataset(path, limits))
    except (DicomReadError, OSError, MemoryError, RecursionError):
        pass  # an unreadable file is an exam of its own, as read_image makes it
    except BaseException as exc:  # a hostile file must never crash the worker
        if not is_codec_failure(exc):
            raise
    return exam_key(Image(path=path, usable=False, reason="header only", **identity))


def _identity(ds: Dataset) -> dict[str, Any]:
    """The identifying attributes, each only when valid (a bad UID is dropped, not trusted)."""
    out: dict[str, Any] = {}
    for field, keyword in (
        ("sop_instance_uid", "SOPInstanceUID"),
        ("sop_class_uid", "SOPClassUID"),
        ("study_instance_uid", "StudyInstanceUID"),
        ("series_instance_uid", "SeriesInstanceUID"),
    ):
        value = _text(ds, keyword)
        out[field] = value if _valid_uid(value) else None
    for field, keyword in (
        ("accession_number", "AccessionNumber"),
        ("patient_id", "PatientID"),
        ("study_date", "StudyDate"),
        ("modality", "Modality"),
        ("manufacturer", "Manufacturer"),
        ("manufacturer_model_name", "ManufacturerModelName"),
        ("station_name", "StationName"),
    ):
        out[field] = _text(ds, keyword)
    out["acquisition_datetime"] = _text(ds, "AcquisitionDateTime") or (
        ((_text(ds, "ContentDate") or "") + (_text(ds, "ContentTime") or "")) or None
    )
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    out["transfer_syntax_uid"] = str(tsyntax) if tsyntax else None
    return out


def _image_from_dataset(
    ds: Dataset,
    path: Path,
    target_shape: tuple[int, int] | None,
    load_pixels: bool,
    limits: DecodeLimits,
) -> Image:
    ident = _identity(ds)
    for keyword in ("SOPInstanceUID", "StudyInstanceUID"):
        value = _text(ds, keyword)
        if value is not None and not _valid_uid(value):
            raise DicomReadError(
                f"invalid {keyword} (PS3.5 9.1: digits and dots, <= 64 chars)"
            )
    if ident["sop_instance_uid"] is None:
        raise DicomReadError("missing SOPInstanceUID")

    sop = ident["sop_class_uid"] or ""
    base: dict[str, Any] = dict(
        ident,
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        bits_stored=int(ds.get("BitsStored", 0) or 0) or None,
        photometric_interpretation=_text(ds, "PhotometricInterpretation"),
        presentation_intent=_presentation_intent(ds),
        secondary_capture=sop in attrs.SOP_SECONDARY_CAPTURE,
        implant_displaced=_implant_displaced(ds),
        pixel_spacing_mm=_pixel_spacing(ds),
    )
    laterality, laterality_source = attrs.infer_laterality(ds, path)
    view, view_source = attrs.infer_view(ds, path)
    base.update(
        laterality=laterality,
        laterality_source=laterality_source,
        view=view,
        view_source=view_source,
    )

    exclusion = screening_exclusion(ds)
    if exclusion is not None:
        return Image(path=path, usable=False, reason=exclusion, **base)
    # Size and shape before any header-only verdict: a header that says 3 rows is no
    # mammogram, whether or not its pixels are decoded now.
    check_dimensions(ds, limits)

    flips = attrs.orientation_from_tags(ds, view, laterality)
    needs_pixels = load_pixels or flips is None or laterality is Laterality.UNKNOWN
    if not needs_pixels:
        flip_h, flip_v = flips  # type: ignore[misc]
        return Image(
            path=path, usable=True, flip_horizontal=flip_h, flip_vertical=flip_v,
            orientation_source=Source.PATIENT_ORIENTATION, **base,
        )

    shape = target_shape if load_pixels else (256, 128)
    use_voi = base["presentation_intent"] is not PresentationIntentType.FOR_PROCESSING
    params = voi_params(ds, use_voi=use_voi)
    decoded = decode_stored(ds, target_shape=shape, limits=limits)
    pixels = to_display(decoded.stored, params)
    k, decoder = decoded.k, decoded.decoder
    del decoded  # the stored values: up to ~100 MB a mammogram, not needed past VOI

    if flips is not None:
        flip_h, flip_v = flips
        orientation_source = Source.PATIENT_ORIENTATION
    else:
        flip_h, flip_v = attrs.chest_wall_on_right(pixels), False
        orientation_source = Source.PIXELS
    if laterality is Laterality.UNKNOWN:
        # Display convention (IHE Mammography Image profile): the right breast is shown
        # with its chest wall on the right of the image, the left breast on the left.
        chest_right = attrs.chest_wall_on_right(pixels)
        base["laterality"] = Laterality.RIGHT if chest_right else Laterality.LEFT
        base["laterality_source"] = Source.PIXELS
    return Image(
        path=path,
        usable=True,
        flip_horizontal=flip_h,
        flip_vertical=flip_v,
        orientation_source=orientation_source,
        pixels=pixels if load_pixels else None,
        decode_scale=float(1 << k),
        decoder=decoder,
        **base,
    )
