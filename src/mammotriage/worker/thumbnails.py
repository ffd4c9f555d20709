"""Thumbnails of the views for the reading service, rendered from the DICOM at viewing size.

The worker makes them from the decode the model's input came from (:func:`thumbnail_view`
is the ``keep`` of :meth:`~mammotriage.infer.engine.ScoringEngine.prepare_exams`, run in the
decode pool on the pixels just decoded at reduced resolution), so no image is decoded twice;
the PNG is written once the exam is stored (:func:`write_thumbnail`). The reading service
draws the findings on them. Pixels are shown as the
reader reads them (after VOI, dense tissue bright), hung as screening readers hang them: the
reader's flips to the canonical orientation (:func:`mammotriage.preprocess.flip`, as for the
model), the right breast then mirrored so that the chest walls meet in the middle (see
:mod:`mammotriage.worklist.hanging`). The flips applied are written into the PNG, so that the
reading service moves finding boxes (original pixel coordinates) with the pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from mammotriage.atomic import atomic_write
from mammotriage.dicom import Image
from mammotriage.preprocess import flip
from mammotriage.worklist.hanging import ORIENTATION_KEY, Orientation, hanging_orientation

#: Height of a thumbnail in pixels: enough for a reading-room overview, small to send.
THUMBNAIL_HEIGHT = 512
#: zlib level of the PNGs. Measured on a 400 x 512 thumbnail of a synthetic full-size view:
#: 8 ms and 83 KB at level 3, against 118 ms and 71 KB with Pillow's ``optimize`` (which
#: made writing thumbnails the slowest step of a job); losslessly the same pixels.
PNG_COMPRESS_LEVEL = 3


@dataclass(frozen=True)
class ThumbnailView:
    """A view's thumbnail, made in the decode pool and written once the exam is stored: the
    PNG itself (hung and sized for the reading service, its flips recorded in it), encoded
    where the decoding happens, off the worker's outputs thread, and small to carry back
    from a decode process (tens of KB)."""

    png: bytes
    #: Size of the original image, to scale finding boxes onto the thumbnail.
    rows: int
    columns: int
    orientation: Orientation


@dataclass(frozen=True)
class Thumbnail:
    path: Path
    #: Size of the original image, to scale finding boxes onto the thumbnail.
    rows: int
    columns: int
    #: The flips from the stored image to the thumbnail (also in the PNG).
    orientation: Orientation = Orientation(False, False)


def thumbnail_view(image: Image, height: int = THUMBNAIL_HEIGHT) -> ThumbnailView | None:
    """The thumbnail of a decoded ``image`` (pixels at any resolution: the reduced one the
    model's input was made from); None when it has no usable pixels.

    The decoded pixels of a full-size image are at least the model's input high (592 rows
    for a 4736-row image and a 384-row model); resizing them to ``height`` costs
    milliseconds, where decoding the file again cost a tenth of a second to a second.
    """
    if not image.usable or image.pixels is None or image.rows == 0 or image.pixels.size == 0:
        return None
    orientation = hanging_orientation(image.laterality, image.flip_horizontal, image.flip_vertical)
    pixels = flip(
        np.clip(image.pixels, 0.0, 1.0), orientation.flip_horizontal, orientation.flip_vertical
    )
    width = max(1, round(image.columns * height / image.rows))
    picture = PILImage.fromarray((pixels * 255.0 + 0.5).astype(np.uint8), mode="L")
    picture = picture.resize((width, height), PILImage.Resampling.LANCZOS)
    info = PngInfo()
    info.add_text(ORIENTATION_KEY, orientation.to_text())
    png = io.BytesIO()
    picture.save(png, format="PNG", compress_level=PNG_COMPRESS_LEVEL, pnginfo=info)
    return ThumbnailView(png.getvalue(), image.rows, image.columns, orientation)


def write_thumbnail(view: ThumbnailView, target: Path) -> Thumbnail:
    """Write ``view``'s PNG at ``target``, atomically."""
    with atomic_write(target) as out:
        out.write(view.png)
    return Thumbnail(target, view.rows, view.columns, view.orientation)


__all__ = [
    "THUMBNAIL_HEIGHT",
    "Thumbnail",
    "ThumbnailView",
    "thumbnail_view",
    "write_thumbnail",
]
