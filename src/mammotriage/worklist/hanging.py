"""How the reading page hangs an exam: which view goes in which place, how each thumbnail is
oriented, where a finding's box lands on it, and the order findings are listed in.

Screening readers hang R-CC | L-CC above R-MLO | L-MLO, each pair mirror images with the chest
walls meeting in the middle: the right breast with its chest wall on the right edge, the left
breast with its chest wall on the left edge (the IHE Mammography Image profile's display
convention). The orientation is not decided here: the DICOM reader already says how to flip
each stored image to the canonical orientation (chest wall left, superior/lateral side up), and
:func:`mammotriage.preprocess.flip` and :class:`mammotriage.preprocess.Transform` apply it, for
the pixels and for boxes, exactly as for the model's input. Hanging only mirrors the right
breast's canonical image once more.

The worker stores each thumbnail oriented and writes the flips it applied into the PNG (a text
chunk, :data:`ORIENTATION_KEY`), so that the reading service maps finding boxes the same way
without a database column. A thumbnail without that chunk (rendered before orientation was
added) is shown as stored, boxes only scaled, as it always was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mammotriage.dicom.model import STANDARD_SLOTS, Laterality, Slot, ViewPosition
from mammotriage.preprocess import Box, Transform

#: PNG text chunk holding the flips the worker applied to the stored image (JSON).
ORIENTATION_KEY = "mammotriage-orientation"

#: Laterality order wherever scores or findings are listed: right before left.
LATERALITY_ORDER: dict[str, int] = {Laterality.RIGHT.value: 0, Laterality.LEFT.value: 1}


@dataclass(frozen=True)
class Orientation:
    """Flips from the stored image to the hung thumbnail (horizontal first, as in preprocess)."""

    flip_horizontal: bool
    flip_vertical: bool

    def to_text(self) -> str:
        return json.dumps(
            {"flip_horizontal": self.flip_horizontal, "flip_vertical": self.flip_vertical}
        )

    @classmethod
    def from_text(cls, text: str | None) -> Orientation | None:
        """The orientation a PNG's :data:`ORIENTATION_KEY` chunk records; None if unreadable."""
        if not text:
            return None
        try:
            data = json.loads(text)
            h, v = data["flip_horizontal"], data["flip_vertical"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(h, bool) or not isinstance(v, bool):
            return None
        return cls(h, v)


#: A thumbnail shown as stored (old thumbnails, without an orientation record).
AS_STORED = Orientation(False, False)


def hanging_orientation(
    laterality: Laterality, flip_horizontal: bool, flip_vertical: bool
) -> Orientation:
    """Stored -> hung: the reader's flips to canonical (chest wall left), then the right
    breast mirrored so that its chest wall is on the right edge.

    ``flip_horizontal`` / ``flip_vertical`` are the :class:`~mammotriage.dicom.model.Image`'s,
    the very flips :func:`mammotriage.preprocess.preprocess` applies.
    """
    return Orientation(flip_horizontal != (laterality is Laterality.RIGHT), flip_vertical)


def thumbnail_transform(
    orientation: Orientation, rows: int, columns: int, height: int, width: int
) -> Transform:
    """Preprocessing's :class:`~mammotriage.preprocess.Transform` from the original pixels
    (``rows`` x ``columns``) to a ``height`` x ``width`` thumbnail: the flips, no crop."""
    return Transform(
        decode_scale=1.0,
        flip_horizontal=orientation.flip_horizontal,
        flip_vertical=orientation.flip_vertical,
        decoded_shape=(rows, columns),
        crop_box=(0, 0, columns, rows),
        resized_shape=(height, width),
        pad_top=0,
        pad_left=0,
        input_shape=(height, width),
    )


def box_on_thumbnail(
    box: Box, orientation: Orientation, rows: int, columns: int, height: int, width: int
) -> Box:
    """A box in original pixels, as it lands on the oriented thumbnail (scaled and flipped)."""
    return thumbnail_transform(orientation, rows, columns, height, width).to_input(box)


@dataclass(frozen=True)
class Hanging:
    """Where each image of an exam hangs: the four standard places (an image's index, or
    None for a view the exam lacks) in reading order, then every other image."""

    places: tuple[tuple[Slot, int | None], ...]
    extras: tuple[int, ...]


def hang(images: Sequence[tuple[str, str, bool]]) -> Hanging:
    """Hang ``(laterality, view, has_thumbnail)`` images (indexes are their places in the list).

    Each standard slot (R-CC, L-CC, R-MLO, L-MLO; ML and LM count as MLO, as everywhere) takes
    the first image of that slot with a thumbnail, else the first of that slot at all; the
    others (other views, duplicates, unknown laterality or view) follow in the exam's order.
    """
    candidates: dict[Slot, list[int]] = {slot: [] for slot in STANDARD_SLOTS}
    for index, (laterality, view, _) in enumerate(images):
        slot = _slot(laterality, view)
        if slot in candidates:
            candidates[slot].append(index)
    places = []
    for slot in STANDARD_SLOTS:
        found = candidates[slot]
        with_thumbnail = [i for i in found if images[i][2]]
        chosen = with_thumbnail or found
        places.append((slot, chosen[0] if chosen else None))
    hung = {index for _, index in places if index is not None}
    return Hanging(tuple(places), tuple(i for i in range(len(images)) if i not in hung))


def _slot(laterality: str, view: str) -> Slot | None:
    try:
        return Slot.of(Laterality(laterality), ViewPosition(view))
    except ValueError:
        return None


def finding_sort_key(laterality: str | None, score: int) -> tuple[int, int]:
    """Findings listed right breast before left (unknown last), then most suspicious first."""
    return (LATERALITY_ORDER.get(laterality or "", len(LATERALITY_ORDER)), -score)


__all__ = [
    "AS_STORED",
    "LATERALITY_ORDER",
    "ORIENTATION_KEY",
    "Hanging",
    "Orientation",
    "box_on_thumbnail",
    "finding_sort_key",
    "hang",
    "hanging_orientation",
    "thumbnail_transform",
]
