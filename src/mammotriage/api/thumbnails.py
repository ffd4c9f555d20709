"""Findings drawn on a view's thumbnail: the worker's PNG (rendered at viewing size) with each
finding's box, scaled from the original pixels, outlined in the colour of its score.

Pure image work apart from reading the PNG; the boxes are a pointer for the reader, the
diagnostic read happens in the PACS viewer.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw

from mammotriage.errors import NotFoundError

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
    findings: Iterable[tuple[tuple[float, float, float, float], int]],
) -> bytes:
    """The thumbnail at ``png`` with ``(box, score)`` findings drawn, as PNG bytes.

    ``box`` is ``(x0, y0, x1, y1)`` in the original image's pixels (``rows`` x ``columns``);
    without the original size the boxes cannot be placed and are left out.

    Raises
    ------
    NotFoundError
        If the thumbnail file is missing or not an image.
    """
    try:
        with Image.open(png) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError) as exc:
        raise NotFoundError("the thumbnail of this view is not available") from exc
    if rows and columns:
        sx, sy = image.width / columns, image.height / rows
        width = max(2, round(min(image.width, image.height) / 150))
        draw = ImageDraw.Draw(image)
        for (x0, y0, x1, y1), score in findings:
            box = (x0 * sx, y0 * sy, max(x0 * sx, x1 * sx - 1), max(y0 * sy, y1 * sy - 1))
            draw.rectangle(box, outline=score_colour(score), width=width)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


__all__ = ["SCORE_COLOURS", "draw_findings", "score_colour"]
