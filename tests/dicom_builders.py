"""Hand-built DICOM for reader tests, independent of mammotriage.synth so that the reader
is checked against files we did not write with the same assumptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def breast_pixels(
    rows: int = 96, columns: int = 64, *, chest_wall: str = "left", bits: int = 12
) -> np.ndarray:
    """A bright half-disc against one edge on a dark background (MONOCHROME2 values)."""
    y, x = np.mgrid[0:rows, 0:columns]
    cx = 0 if chest_wall == "left" else columns - 1
    inside = ((x - cx) / (0.8 * columns)) ** 2 + ((y - rows / 2) / (0.45 * rows)) ** 2 <= 1
    top = (1 << bits) - 1
    arr = np.where(inside, int(top * 0.7), int(top * 0.05)).astype(np.uint16)
    arr += (np.arange(columns, dtype=np.uint16)[None, :] % 7)
    return arr


def mg_dataset(pixels: np.ndarray | None = None, **attrs: Any) -> Dataset:
    """A minimal valid Digital Mammography For Presentation dataset; ``attrs`` override."""
    if pixels is None:
        pixels = breast_pixels()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = FOR_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "TEST0001"
    ds.PatientName = "TEST^PHANTOM"
    ds.StudyDate = "20260101"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "MG"
    ds.BodyPartExamined = "BREAST"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    ds.PatientOrientation = ["A", "R"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in attrs.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def saved_in(src: Path, dst: Path, syntax: str, **compress: Any) -> Path:
    """``src`` written again at ``dst`` in transfer syntax ``syntax``: re-encoded for the
    native syntaxes (explicit, implicit, deflated), compressed by pydicom's encoders
    (``compress``: their options, e.g. ``j2k_cr``) for the others."""
    import pydicom
    from pydicom.uid import UID, ImplicitVRLittleEndian

    ds = pydicom.dcmread(src)
    if UID(syntax).is_compressed:  # (deflate is a native syntax to pydicom)
        ds.compress(syntax, **compress)
        ds.save_as(dst, enforce_file_format=True)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(
            dst,
            implicit_vr=syntax == ImplicitVRLittleEndian,
            little_endian=True,
            enforce_file_format=True,
        )
    return dst
