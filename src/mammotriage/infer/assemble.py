"""From image results to the exam's score: which images are scored, and what the exam says.

:func:`to_score` picks the images of an exam the model sees (the selected image of every
view slot, standard slots first). Once they are done, :func:`exam_score` lists every image
of the exam with its score or the reason it has none, aggregates image probabilities to
breasts and the exam as the sidecar says, looks up the calibrated category in the
sidecar's thresholds and collects the findings, most suspicious first. Pure: no model, no
pool, no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mammotriage.dicom import Exam, Image
from mammotriage.dicom.exams import slot_of
from mammotriage.dicom.model import STANDARD_SLOTS, Slot
from mammotriage.infer.scores import ExamScore, Finding, ImageScore, aggregate, category_of
from mammotriage.sidecar import Sidecar


@dataclass(frozen=True)
class Scored:
    """What the model made of one image."""

    probability: float
    logit: float
    findings: tuple[Finding, ...]
    #: The codec that read the image's pixels (None: pixels given, or not recorded).
    decoder: str | None = None


@dataclass(frozen=True)
class Failed:
    """Why one selected image could not be scored (it could not be decoded or prepared)."""

    reason: str


ImageResult = Scored | Failed


def to_score(exam: Exam) -> list[Image]:
    """The exam's selected images (one per view slot, supplementary views included), in
    reading order: standard slots first, then the rest by label."""
    order = {slot: i for i, slot in enumerate(STANDARD_SLOTS)}
    slots = sorted(exam.selected, key=lambda s: (order.get(s, len(order)), s.label))
    return [exam.selected[slot] for slot in slots]


def exam_score(exam: Exam, results: Mapping[int, ImageResult], sidecar: Sidecar) -> ExamScore:
    """The exam's :class:`ExamScore`; ``results`` maps ``id(image)`` to what became of it."""
    images = []
    findings: list[Finding] = []
    scored_slots: set[Slot | None] = set()
    for image in exam.images:
        result = results.get(id(image))
        if not image.usable:
            images.append(_image_score(image, usable=False, reason=image.reason))
        elif result is None:
            images.append(_image_score(image, usable=True, reason=_why_not_scored(image, exam)))
        elif isinstance(result, Failed):
            images.append(_image_score(image, usable=False, reason=result.reason))
        else:
            images.append(
                _image_score(
                    image,
                    usable=True,
                    reason=None,
                    probability=result.probability,
                    logit=result.logit,
                    decoder=result.decoder,
                )
            )
            findings.extend(result.findings)
            scored_slots.add(slot_of(image))
    aggregation = sidecar.aggregation
    score, breasts = aggregate(images, aggregation.breast, aggregation.exam)
    category = category_of(score, sidecar.calibration.thresholds) if score is not None else None
    missing = tuple(slot for slot in STANDARD_SLOTS if slot not in scored_slots)
    findings.sort(key=lambda f: -f.score)
    return ExamScore(
        exam_id=exam.exam_id,
        score=score,
        category=category,
        partial=bool(missing),
        breasts=breasts,
        findings=tuple(findings),
        images=tuple(images),
        model_name=sidecar.name,
        model_sha256=sidecar.sha256,
        missing=missing,
    )


def _why_not_scored(image: Image, exam: Exam) -> str:
    slot = slot_of(image)
    if slot is None:
        return "not scored: laterality or view unknown, so the image fills no view of the exam"
    why = exam.choices.get(slot)
    return f"not scored: another image was chosen for {slot}" + (f" ({why})" if why else "")


def _image_score(
    image: Image,
    *,
    usable: bool,
    reason: str | None,
    probability: float | None = None,
    logit: float | None = None,
    decoder: str | None = None,
) -> ImageScore:
    return ImageScore(
        path=image.path,
        sop_instance_uid=image.sop_instance_uid,
        laterality=image.laterality,
        view=image.view,
        usable=usable,
        reason=reason,
        probability=probability,
        logit=logit,
        modality=image.modality,
        decoder=decoder,
    )
