"""Scoring exams: DICOM files in, one :class:`~mammotriage.infer.scores.ExamScore` per exam out.

The pipeline, in the order a batch job meets it:

1. Headers (``read_image(load_pixels=False)``) for every file, then :func:`group_exams`:
   which exam each file belongs to and which image fills each view slot. Only the
   selected images (the four screening views plus any supplementary views) are decoded.
2. Decode at reduced resolution (``target_shape`` = the model input) and preprocess, in a
   pool that works ahead of inference (:mod:`.prepare`): while ONNX Runtime runs one batch,
   the pool prepares the next. Only the preprocessed tensor and its :class:`Transform`
   survive a prepared image, so memory holds two batches of model inputs, not a study's
   worth of mammograms.
3. Batches are cut across exam boundaries (a four-view exam does not waste half a batch
   of eight), and each exam is handed back as soon as its last image is scored.
4. A chosen image that does not decode gives its view slot to the view's next candidate
   (:func:`~mammotriage.dicom.exams.candidates`, same rule, best first), so a damaged
   duplicate never costs the exam a view that another file holds.
5. Image probabilities -> breast -> exam score as the sidecar says, the calibrated
   category from the sidecar's thresholds, findings from the suspicion maps
   (:mod:`.assemble`).

The decode pool defaults to threads: decoding dominates (tens to hundreds of milliseconds
per image against a few of inference), the decoders and ONNX Runtime release the GIL, and a
thread pool needs no process start and no tensor pickling. Measured figures (pool kinds and
sizes against wall time) and how to reproduce them are in ``docs/benchmarks.md``.

Never raises for a bad file: it becomes an unusable image with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from mammotriage.dicom import Exam, Image, group_exams, iter_files
from mammotriage.dicom.exams import candidates, slot_of
from mammotriage.infer.assemble import Failed, ImageResult, exam_score, to_score
from mammotriage.infer.exam_batch import PreparedExam, fallback_reason, score_prepared, scored_image
from mammotriage.infer.findings import DEFAULT_MIN_SCORE, DEFAULT_TOP_K
from mammotriage.infer.prepare import (
    CRASHED,
    EXECUTORS,
    DecodePool,
    Executors,
    Keep,
    Prepared,
    Unusable,
    crashed_header,
    prepare_image,
    read_header,
    timed_out_header,
    timed_out_reason,
)
from mammotriage.infer.scores import ExamScore
from mammotriage.infer.session import OnnxModel
from mammotriage.preprocess import PreprocessParams

__all__ = [
    "EXECUTORS",
    "Executors",
    "Prepared",
    "Progress",
    "ScoringEngine",
    "Unusable",
    "prepare_image",
]

log = logging.getLogger(__name__)

#: ``progress(label, done, total)``: "reading headers" per file, "scoring" per image.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class _Job:
    exam_index: int
    image: Image


def _prepare_job(
    job: _Job, *, params: PreprocessParams, keep: Keep | None = None
) -> Prepared | Unusable:
    return prepare_image(job.image, params, keep)


def _crashed_job(job: _Job) -> Prepared | Unusable:
    return Unusable(CRASHED)


def _timed_out_job(seconds: float, job: _Job) -> Prepared | Unusable:
    return Unusable(timed_out_reason(seconds))


class ScoringEngine:
    """Scores exams with one ONNX model and its sidecar.

    Parameters
    ----------
    model
        A loaded :class:`OnnxModel` or the path of a ``.onnx`` file with its sidecar.
    batch_size
        Images per ONNX Runtime call; batches span exams.
    decode_workers
        Workers decoding and preprocessing ahead of inference; 0 decodes in the calling
        thread, between batches (no overlap).
    providers, threads
        ONNX Runtime execution providers and intra-op threads (when ``model`` is a path).
    executor
        ``"thread"`` (default: the decoders release the GIL) or ``"process"``: decoding
        isolated from this process, so a codec that crashes or hangs on a hostile file
        costs that file, not the caller.
    decode_timeout
        Seconds one file's header read or decode may take (``"process"`` only); a file
        that overruns it on its own becomes an unusable image with that reason. None: no
        budget.
    min_finding_score, findings_per_image
        Passed to :func:`~mammotriage.infer.findings.find_regions`.

    Use as a context manager (or call :meth:`close`) to stop the decode pool.

    Raises
    ------
    ConfigError
        If the model or its sidecar is missing or invalid, or a provider is unavailable.
    ValueError
        If a numeric argument is out of range or ``executor`` is unknown.
    """

    def __init__(
        self,
        model: OnnxModel | Path | str,
        *,
        batch_size: int = 8,
        decode_workers: int = 2,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        executor: Executors = "thread",
        decode_timeout: float | None = None,
        min_finding_score: float = DEFAULT_MIN_SCORE,
        findings_per_image: int = DEFAULT_TOP_K,
    ) -> None:
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("decode_workers", decode_workers, 0),
            ("findings_per_image", findings_per_image, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f'Argument "{name}" must be an int >= {low}, got {value!r}.')
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f'Argument "threads" must be a positive int or None, got {threads!r}.')
        if executor not in EXECUTORS:
            raise ValueError(f'Argument "executor" must be one of {EXECUTORS}, got {executor!r}.')
        if not 0.0 <= min_finding_score <= 100.0:
            raise ValueError(
                f'Argument "min_finding_score" must be in [0, 100], got {min_finding_score!r}.'
            )
        self.model = (
            model
            if isinstance(model, OnnxModel)
            else OnnxModel(Path(model), providers=providers, intra_op_threads=threads)
        )
        self.sidecar = self.model.sidecar
        self.params = self.sidecar.preprocess_params
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.executor = executor
        self.min_finding_score = float(min_finding_score)
        self.findings_per_image = findings_per_image
        self.decoder = DecodePool(decode_workers, executor, decode_timeout)

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ScoringEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the decode pool (a later call starts a new one)."""
        self.decoder.close()

    # --- public API --------------------------------------------------------------------------

    def score_paths(
        self, paths: Iterable[str | Path], *, progress: Progress | None = None
    ) -> list[ExamScore]:
        """Score every exam found in ``paths`` (files, or folders walked recursively)."""
        return list(self.iter_paths(paths, progress=progress))

    def iter_paths(
        self, paths: Iterable[str | Path], *, progress: Progress | None = None
    ) -> Iterator[ExamScore]:
        """:meth:`score_paths`, handing back each exam as soon as it is scored."""
        exams = group_exams(self.read_headers(paths, progress=progress))
        yield from self.iter_exams(exams, progress=progress)

    def score_exams(
        self, exams: Sequence[Exam], *, progress: Progress | None = None
    ) -> list[ExamScore]:
        """Score exams already grouped (by :func:`group_exams`); order is kept."""
        return list(self.iter_exams(exams, progress=progress))

    def prepare_exams(
        self, exams: Sequence[Exam], *, keep: Keep | None = None
    ) -> list[PreparedExam]:
        """Decode and preprocess the images of ``exams`` the model sees, in the decode pool,
        with the engine's fall-back to a view's next candidate; one
        :class:`~mammotriage.infer.exam_batch.PreparedExam` per exam, in order.

        The first half of :meth:`score_exams`, for a caller that scores in a stage of its own
        (the worker's pipeline decodes the next study while this one is scored). ``keep``
        makes what else needs the decoded pixels in the same pass
        (:func:`~mammotriage.infer.prepare.prepare_image`); it is in each input's ``kept``.
        """
        exams = list(exams)
        jobs = [_Job(index, image) for index, exam in enumerate(exams) for image in to_score(exam)]
        positions = [{id(image): i for i, image in enumerate(exam.images)} for exam in exams]
        inputs: list[list[tuple[int, Prepared]]] = [[] for _ in exams]
        failed: list[dict[int, str]] = [{} for _ in exams]  # by id(image)
        stream = self._prepared(jobs, keep)
        try:
            for job, prepared in stream:
                e = job.exam_index
                if isinstance(prepared, Unusable):
                    done = {id(exams[e].images[i]) for i, _ in inputs[e]}
                    job, prepared = self._fall_back(
                        exams[e], job, prepared, failed[e], done.__contains__, keep
                    )
                if isinstance(prepared, Unusable):
                    failed[e][id(job.image)] = prepared.reason
                else:
                    inputs[e].append((positions[e][id(job.image)], prepared))
        finally:
            stream.close()
        return [
            PreparedExam(
                exam,
                tuple(inputs[e]),
                {positions[e][key]: reason for key, reason in failed[e].items()},
            )
            for e, exam in enumerate(exams)
        ]

    def score_prepared(self, exams: Sequence[PreparedExam]) -> list[ExamScore]:
        """Score exams made ready by :meth:`prepare_exams`, images batched across exams."""
        return score_prepared(
            self.model,
            exams,
            batch_size=self.batch_size,
            min_finding_score=self.min_finding_score,
            findings_per_image=self.findings_per_image,
        )

    def read_headers(
        self, paths: Iterable[str | Path], *, progress: Progress | None = None
    ) -> list[Image]:
        """Read every file's header (no pixels kept), in file order."""
        files = list(iter_files(paths))
        images = []
        timeout = self.decoder.timeout
        for _, image in self.decoder.ordered_map(
            read_header,
            files,
            crashed_header,
            depth=4 * max(1, self.decode_workers),
            timed_out=None if timeout is None else partial(timed_out_header, timeout),
        ):
            images.append(image)
            if progress is not None:
                progress("reading headers", len(images), len(files))
        return images

    def iter_exams(
        self, exams: Sequence[Exam], *, progress: Progress | None = None
    ) -> Iterator[ExamScore]:
        """Score ``exams``, yielding each (in order) once all its selected images are done."""
        exams = list(exams)
        jobs = [_Job(index, image) for index, exam in enumerate(exams) for image in to_score(exam)]
        remaining = [0] * len(exams)
        for job in jobs:
            remaining[job.exam_index] += 1
        results: dict[int, ImageResult] = {}  # id(image) -> result, per pending exam
        next_exam = 0
        done = 0

        def finished() -> Iterator[ExamScore]:
            nonlocal next_exam
            while next_exam < len(exams) and remaining[next_exam] == 0:
                yield exam_score(exams[next_exam], results, self.sidecar)
                for image in exams[next_exam].images:
                    results.pop(id(image), None)
                next_exam += 1

        yield from finished()
        batch: list[tuple[_Job, Prepared]] = []
        stream = self._prepared(jobs)
        try:
            for job, prepared in stream:
                if isinstance(prepared, Unusable):
                    failed: dict[int, str] = {}
                    job, prepared = self._fall_back(
                        exams[job.exam_index], job, prepared, failed, results.__contains__
                    )
                    results.update((key, Failed(reason)) for key, reason in failed.items())
                if isinstance(prepared, Unusable):
                    results[id(job.image)] = Failed(prepared.reason)
                    remaining[job.exam_index] -= 1
                    done += 1
                else:
                    batch.append((job, prepared))
                if len(batch) == self.batch_size:
                    done += self._run(batch, results, remaining)
                    batch = []
                if progress is not None:
                    progress("scoring", done, len(jobs))
                yield from finished()
            if batch:
                done += self._run(batch, results, remaining)
                if progress is not None:
                    progress("scoring", done, len(jobs))
            yield from finished()
        finally:
            stream.close()

    # --- internals ---------------------------------------------------------------------------

    def _prepared(
        self, jobs: Sequence[_Job], keep: Keep | None = None
    ) -> Generator[tuple[_Job, Prepared | Unusable], None, None]:
        """Prepared images in job order, decoded up to two batches ahead of the consumer."""
        # Pixels already decoded by the caller travel along; otherwise only the header does
        # and the worker reads the file.
        return self.decoder.ordered_map(
            partial(_prepare_job, params=self.params, keep=keep),
            jobs,
            _crashed_job,
            depth=2 * self.batch_size,
            timed_out=self._timed_out_job(),
        )

    def _timed_out_job(self) -> Callable[[_Job], Prepared | Unusable] | None:
        timeout = self.decoder.timeout
        return None if timeout is None else partial(_timed_out_job, timeout)

    def _fall_back(
        self,
        exam: Exam,
        job: _Job,
        prepared: Unusable,
        failed: dict[int, str],
        tried: Callable[[int], bool],
        keep: Keep | None = None,
    ) -> tuple[_Job, Prepared | Unusable]:
        """The chosen image of a view did not decode: try the view's next candidate (a
        duplicate, an older acquisition, a For Processing copy), best first, until one
        decodes or none is left. Each image that failed keeps its own reason, in ``failed``
        (by ``id(image)``); ``tried(id(image))`` says whether an image was tried before."""
        slot = slot_of(job.image)
        result: Prepared | Unusable = prepared
        while isinstance(result, Unusable) and slot is not None:
            untried = (
                im
                for im in candidates(exam, slot)
                if im is not job.image and id(im) not in failed and not tried(id(im))
            )
            following = next(untried, None)
            if following is None:
                break
            failed[id(job.image)] = fallback_reason(result.reason, slot)
            log.info(
                "an image of %s did not decode; trying the next candidate for the view",
                slot,
                extra={"event": "view-fallback", "reason": result.reason},
            )
            job = _Job(job.exam_index, following)
            [(_, result)] = list(
                self.decoder.ordered_map(
                    partial(_prepare_job, params=self.params, keep=keep),
                    [job],
                    _crashed_job,
                    depth=1,
                    timed_out=self._timed_out_job(),
                )
            )
        return job, result

    def _run(
        self,
        batch: list[tuple[_Job, Prepared]],
        results: dict[int, ImageResult],
        remaining: list[int],
    ) -> int:
        """Run one batch through the model; record each image's probability and findings."""
        tensors = np.stack([prepared.tensor for _, prepared in batch])
        logits, maps = self.model.predict(tensors)
        for i, (job, prepared) in enumerate(batch):
            results[id(job.image)] = scored_image(
                job.image,
                float(logits[i]),
                maps[i],
                prepared,
                self.sidecar,
                min_finding_score=self.min_finding_score,
                findings_per_image=self.findings_per_image,
            )
            remaining[job.exam_index] -= 1
        return len(batch)
