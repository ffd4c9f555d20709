"""Thumbnails of the views for the reading service, rendered from the DICOM at viewing size.

The worker renders them while it still has the files (a PACS source's download is removed
when the job ends); the reading service draws the findings on them. Pixels are shown as the
reader reads them (after VOI, dense tissue bright), hung as screening readers hang them: the
reader's flips to the canonical orientation (:func:`mammotriage.preprocess.flip`, as for the
model), the right breast then mirrored so that the chest walls meet in the middle (see
:mod:`mammotriage.worklist.hanging`). The flips applied are written into the PNG, so that the
reading service moves finding boxes (original pixel coordinates) with the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from mammotriage.atomic import atomic_write
from mammotriage.dicom.decode import is_codec_failure
from mammotriage.dicom.reader import read_image
from mammotriage.preprocess import flip
from mammotriage.worklist.hanging import ORIENTATION_KEY, Orientation, hanging_orientation

#: Height of a thumbnail in pixels: enough for a reading-room overview, small to send.
THUMBNAIL_HEIGHT = 512


@dataclass(frozen=True)
class Thumbnail:
    path: Path
    #: Size of the original image, to scale finding boxes onto the thumbnail.
    rows: int
    columns: int
    #: The flips from the stored image to the thumbnail (also in the PNG).
    orientation: Orientation = Orientation(False, False)


def render_thumbnail(
    source: Path, target: Path, height: int = THUMBNAIL_HEIGHT
) -> Thumbnail | None:
    """Write ``source``'s PNG thumbnail to ``target``; None when it has no usable pixels.

    JPEG 2000 is decoded at the nearest resolution level above ``height``, so a thumbnail of
    a full-size image costs a fraction of a full decode.
    """
    try:
        image = read_image(source, target_shape=(height, height))
    except BaseException as exc:  # read_image says why itself; this guards a codec panic
        if not is_codec_failure(exc):
            raise
        return None
    if not image.usable or image.pixels is None or image.rows == 0:
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
    with atomic_write(target) as out:
        picture.save(out, format="PNG", optimize=True, pnginfo=info)
    return Thumbnail(target, image.rows, image.columns, orientation)


__all__ = ["THUMBNAIL_HEIGHT", "Thumbnail", "render_thumbnail"]
