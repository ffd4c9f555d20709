"""Findings drawn on a view's thumbnail: the worker's PNG (rendered at viewing size, hung) with
each finding's box, scaled and flipped from the original pixels as the PNG's pixels were (see
:mod:`mammotriage.worklist.hanging`), outlined in the colour of its score and labelled with its
number in the page's findings list and its score. A PNG without an orientation record (rendered
by a worker before thumbnails were oriented) is shown as stored, its boxes only scaled.

Pure image work apart from reading the PNG; the boxes are a pointer for the reader, the
diagnostic read happens in the PACS viewer.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mammotriage.errors import NotFoundError
from mammotriage.worklist.hanging import AS_STORED, ORIENTATION_KEY, Orientation, box_on_thumbnail

#: A finding as drawn: its number in the findings list, its box (x0, y0, x1, y1) in the
#: original pixels and its score.
DrawnFinding = tuple[int, tuple[float, float, float, float], int]

#: Finding score (1-100) at or above which a box gets the colour; checked high to low.
SCORE_COLOURS: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (90, (255, 40, 40)),  # red: very suspicious
    (50, (255, 150, 0)),  # orange
    (0, (255, 230, 0)),  # yellow
)


def score_colour(score: int) -> tuple[int, int, int]:
    for threshold, colour in SCORE_COLOURS:
        if score >= threshold:
            return colour
    return SCORE_COLOURS[-1][1]


def draw_findings(
    png: Path,
    rows: int | None,
    columns: int | None,
    findings: Iterable[DrawnFinding],
    highlight: int | None = None,
) -> bytes:
    """The thumbnail at ``png`` with ``(number, box, score)`` findings drawn, as PNG bytes.

    ``box`` is ``(x0, y0, x1, y1)`` in the original image's pixels (``rows`` x ``columns``);
    without the original size the boxes cannot be placed and are left out. Each box carries a
    label ``"number: score"``; the finding numbered ``highlight`` is drawn thicker, ringed in
    white.

    Raises
    ------
    NotFoundError
        If the thumbnail file is missing or not an image.
    """
    try:
        with Image.open(png) as opened:
            recorded = getattr(opened, "text", {}).get(ORIENTATION_KEY)
            image = opened.convert("RGB")
    except (OSError, ValueError) as exc:
        raise NotFoundError("the thumbnail of this view is not available") from exc
    orientation = Orientation.from_text(recorded) or AS_STORED
    if rows and columns:
        width = max(2, round(min(image.width, image.height) / 150))
        font = ImageFont.load_default(size=max(10, round(image.height / 28)))
        draw = ImageDraw.Draw(image)
        for number, box, score in findings:
            x0, y0, x1, y1 = box_on_thumbnail(
                box, orientation, rows, columns, image.height, image.width
            )
            outline = (x0, y0, max(x0, x1 - 1), max(y0, y1 - 1))
            colour = score_colour(score)
            if number == highlight:
                ring = (
                    outline[0] - width,
                    outline[1] - width,
                    outline[2] + width,
                    outline[3] + width,
                )
                draw.rectangle(ring, outline=(255, 255, 255), width=width)
                draw.rectangle(outline, outline=colour, width=2 * width)
            else:
                draw.rectangle(outline, outline=colour, width=width)
            _label(draw, font, f"{number}: {score}", outline, colour, image.size)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _label(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    text: str,
    box: tuple[float, float, float, float],
    colour: tuple[int, int, int],
    size: tuple[int, int],
) -> None:
    """``text`` on a black tag just above ``box`` (below it at the top edge), kept inside."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 4
    x = min(max(0.0, box[0]), max(0.0, size[0] - w))
    y = box[1] - h - 1 if box[1] - h - 1 >= 0 else min(box[3] + 1, size[1] - h)
    draw.rectangle((x, y, x + w, y + h), fill=(0, 0, 0))
    draw.text((x + 2 - left, y + 2 - top), text, fill=colour, font=font)


__all__ = ["SCORE_COLOURS", "DrawnFinding", "draw_findings", "score_colour"]
