"""Grouping images into exams and choosing one image per view.

An exam is what arrived together: the StudyInstanceUID, else the AccessionNumber, else the
patient and the study date. No "exactly four files" assumption: partial exams (a missing
view) and single images are exams too, marked partial, and duplicates are resolved by a
stated rule rather than by file order.
"""

from __future__ import annotations

from collections.abc import Iterable

from mammotriage.dicom.model import (
    Exam,
    Image,
    PresentationIntentType,
    Slot,
    ViewPosition,
    exam_key,
)


def slot_of(image: Image) -> Slot | None:
    """The exam slot an image can fill: L-CC, R-MLO (ML and LM fill the MLO slot), or
    its own slot for supplementary views (XCCL, FB ...); None when unplaceable."""
    return Slot.of(image.laterality, image.view)


def _preference(image: Image) -> tuple[int, int, int, str]:
    """Higher is better: For Presentation, a true MLO over ML/LM, not implant-displaced,
    latest acquisition."""
    return (
        int(image.presentation_intent is not PresentationIntentType.FOR_PROCESSING),
        int(image.view not in (ViewPosition.ML, ViewPosition.LM)),
        int(not image.implant_displaced),
        image.acquisition_datetime or "",
    )


def _why(best: Image, others: list[Image]) -> str:
    reasons = []
    if any(o.presentation_intent is PresentationIntentType.FOR_PROCESSING for o in others) and (
        best.presentation_intent is not PresentationIntentType.FOR_PROCESSING
    ):
        reasons.append("For Presentation chosen over For Processing")
    if (
        any(o.view in (ViewPosition.ML, ViewPosition.LM) for o in others)
        and best.view is ViewPosition.MLO
    ):
        reasons.append("MLO chosen over a lateral view")
    if any(o.implant_displaced for o in others) and not best.implant_displaced:
        reasons.append("standard view chosen over implant-displaced")
    if not reasons:
        reasons.append("latest acquisition chosen")
    return f"{'; '.join(reasons)} ({len(others) + 1} candidates)"


def candidates(exam: Exam, slot: Slot) -> list[Image]:
    """The exam's usable images that can fill ``slot``, best first (the rule
    :func:`build_exam` chooses by): when the chosen one cannot be decoded, the scorer falls
    back to the next."""
    found = [im for im in exam.images if im.usable and slot_of(im) == slot]
    return sorted(found, key=_preference, reverse=True)


def build_exam(exam_id: str, source: str, images: list[Image]) -> Exam:
    """Choose one usable image per slot and record why when there was a choice."""
    candidates: dict[Slot, list[Image]] = {}
    for image in images:
        slot = slot_of(image)
        if image.usable and slot is not None:
            candidates.setdefault(slot, []).append(image)
    selected: dict[Slot, Image] = {}
    choices: dict[Slot, str] = {}
    for slot, found in candidates.items():
        ranked = sorted(found, key=_preference, reverse=True)
        selected[slot] = ranked[0]
        if len(ranked) > 1:
            choices[slot] = _why(ranked[0], ranked[1:])
    ordered = tuple(sorted(images, key=lambda im: (str(im.path), im.sop_instance_uid or "")))
    return Exam(
        exam_id=exam_id,
        exam_id_source=source,
        images=ordered,
        selected=selected,
        choices=choices,
    )


def group_exams(images: Iterable[Image]) -> list[Exam]:
    """Group images into exams, in order of first appearance."""
    groups: dict[str, tuple[str, list[Image]]] = {}
    for image in images:
        exam_id, source = exam_key(image)
        groups.setdefault(exam_id, (source, []))[1].append(image)
    return [build_exam(exam_id, source, found) for exam_id, (source, found) in groups.items()]
