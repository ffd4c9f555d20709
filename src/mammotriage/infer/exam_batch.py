"""Scoring whole exams in two steps that can run in different processes or machines.

:class:`~mammotriage.infer.engine.ScoringEngine` interleaves decoding and inference in one
process. A distributed run (``mammotriage backfill`` on Ray Data) splits them: tasks decode
and preprocess one exam at a time (:func:`prepare_exam`), and a pool of model holders
scores many prepared exams per call (:func:`score_prepared`). What travels between them is
a :class:`PreparedExam`: the exam's headers and its model-input tensors, never the DICOM
bytes or the decoded pixels.

Both steps follow the engine's rules exactly (the same selected images, the same fall-back
to a view's next candidate when the chosen image does not decode, the same reasons, the
same aggregation), so an exam scores the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mammotriage.dicom import Exam, Image
from mammotriage.dicom.exams import candidates, slot_of
from mammotriage.infer.assemble import Failed, ImageResult, Scored, exam_score, to_score
from mammotriage.infer.findings import DEFAULT_MIN_SCORE, DEFAULT_TOP_K, find_regions, sigmoid
from mammotriage.infer.prepare import Prepared, Unusable, prepare_image
from mammotriage.infer.scores import ExamScore, Finding
from mammotriage.infer.session import OnnxModel
from mammotriage.preprocess import PreprocessParams
from mammotriage.sidecar import Sidecar

__all__ = ["PreparedExam", "fallback_reason", "prepare_exam", "scored_image", "score_prepared"]


def fallback_reason(reason: str, slot: object) -> str:
    """The reason kept by a chosen image that did not decode when the view's next candidate
    was tried in its place (the same words whichever scorer tried it)."""
    return f"{reason} (the next image for {slot} was tried in its place)"


@dataclass(frozen=True)
class PreparedExam:
    """One exam made ready for the model: picklable, small (tensors, no pixels).

    ``inputs`` are ``(index into exam.images, Prepared)`` for each image to score;
    ``failed`` maps the index of each selected image that could not be prepared to why.
    """

    exam: Exam
    inputs: tuple[tuple[int, Prepared], ...]
    failed: dict[int, str]

    @property
    def image_count(self) -> int:
        return len(self.inputs)


def prepare_exam(exam: Exam, params: PreprocessParams) -> PreparedExam:
    """Decode and preprocess the images of ``exam`` the model sees, in this thread.

    A chosen image that does not decode hands its view to the view's next candidate, best
    first, as the engine does. Never raises for a bad file: it becomes a failed image.
    """
    index = {id(image): i for i, image in enumerate(exam.images)}
    inputs: list[tuple[int, Prepared]] = []
    failed: dict[int, str] = {}
    for chosen in to_score(exam):
        image: Image = chosen
        result: Prepared | Unusable = prepare_image(image, params)
        slot = slot_of(image)
        while isinstance(result, Unusable) and slot is not None:
            following = next(
                (
                    im
                    for im in candidates(exam, slot)
                    if im is not image and index[id(im)] not in failed
                ),
                None,
            )
            if following is None:
                break
            failed[index[id(image)]] = fallback_reason(result.reason, slot)
            image = following
            result = prepare_image(image, params)
        if isinstance(result, Unusable):
            failed[index[id(image)]] = result.reason
        else:
            inputs.append((index[id(image)], result))
    return PreparedExam(exam, tuple(inputs), failed)


def scored_image(
    image: Image,
    logit: float,
    suspicion_map: np.ndarray,
    prepared: Prepared,
    sidecar: Sidecar,
    *,
    min_finding_score: float = DEFAULT_MIN_SCORE,
    findings_per_image: int = DEFAULT_TOP_K,
) -> Scored:
    """What the model's outputs for one image mean: its probability and its findings, with
    regions mapped back to the file's own pixels."""
    shape = (image.rows, image.columns) if image.rows and image.columns else None
    regions = find_regions(
        suspicion_map,
        prepared.transform,
        sidecar.map_stride,
        min_score=min_finding_score,
        top_k=findings_per_image,
        original_shape=shape,
    )
    findings = tuple(
        Finding(
            sop_instance_uid=image.sop_instance_uid,
            path=image.path,
            laterality=image.laterality,
            view=image.view,
            box_original=region.box_original,
            score=region.score,
        )
        for region in regions
    )
    return Scored(float(sigmoid(logit)), float(logit), findings, prepared.decoder)


def score_prepared(
    model: OnnxModel,
    exams: Sequence[PreparedExam],
    *,
    batch_size: int = 8,
    min_finding_score: float = DEFAULT_MIN_SCORE,
    findings_per_image: int = DEFAULT_TOP_K,
) -> list[ExamScore]:
    """Score prepared exams, ``batch_size`` images per model call across exam boundaries;
    one :class:`ExamScore` per exam, in order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'Argument "batch_size" must be an int >= 1, got {batch_size!r}.')
    sidecar = model.sidecar
    jobs = [(e, i, p) for e, exam in enumerate(exams) for i, p in exam.inputs]
    per_exam: list[dict[int, ImageResult]] = [
        {id(exam.exam.images[i]): Failed(reason) for i, reason in exam.failed.items()}
        for exam in exams
    ]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        logits, maps = model.predict(np.stack([prepared.tensor for _, _, prepared in chunk]))
        for k, (e, i, prepared) in enumerate(chunk):
            image = exams[e].exam.images[i]
            per_exam[e][id(image)] = scored_image(
                image,
                float(logits[k]),
                maps[k],
                prepared,
                sidecar,
                min_finding_score=min_finding_score,
                findings_per_image=findings_per_image,
            )
    return [
        exam_score(exam.exam, results, sidecar)
        for exam, results in zip(exams, per_exam, strict=True)
    ]
