"""Scoring exams: DICOM files in, one :class:`~mammotriage.infer.scores.ExamScore` per exam out.

The pipeline, in the order a batch job meets it:

1. Headers (``read_image(load_pixels=False)``) for every file, then :func:`group_exams`:
   which exam each file belongs to and which image fills each view slot. Only the
   selected images (the four screening views plus any supplementary views) are decoded.
2. Decode at reduced resolution (``target_shape`` = the model input) and preprocess, in a
   pool that works ahead of inference: while ONNX Runtime runs one batch, the pool
   prepares the next. Only the preprocessed tensor and its :class:`Transform` survive a
   prepared image; decoded pixels are dropped at once, so memory holds two batches of
   model inputs, not a study's worth of mammograms.
3. Batches are cut across exam boundaries (a four-view exam does not waste half a batch
   of eight), and each exam is handed back as soon as its last image is scored.
4. Image probabilities -> breast -> exam score as the sidecar says, the calibrated
   category from the sidecar's thresholds, findings from the suspicion maps.

Why threads by default (measured on the 2-core development machine, with a training job
taking ~1.3 cores; 6 synthetic full-size exams, 24 files in six transfer syntaxes, a
0.35 s conv net at 384 x 192, ORT 1 thread, batch 8):

============  ============  ===========================================
decode pool   wall time     note
============  ============  ===========================================
none          2.85-3.06 s   headers 0.34 + decode 2.39 + inference 0.35
1 thread      2.52-2.82 s   inference hidden behind decoding
2 threads     2.70-2.81 s   no free core to decode on in parallel
2 processes   3.0-3.1 s     steady state; +0.9 s to start the pool
============  ============  ===========================================

ONNX Runtime releases the GIL for the whole run and the codecs, numpy and Pillow release
it in their C loops, so one decode thread already overlaps decoding with inference, with
no process start and no tensor pickling. Decoding dominates (30-200 ms per image against ~15 ms
of inference here), so the gain is bounded by the inference time. A GIL probe (a Python
loop beside a decoding thread) ran at 28 % (JPEG-LS) to 68 % (JPEG 2000) of its idle speed,
so part of every decode still holds the GIL: on a worker with free cores a process pool
(``executor="process"``) may decode faster; measure there. Processes also isolate a
codec that crashes on a hostile file: the file is marked unusable and the pool restarts.

Never raises for a bad file: it becomes an unusable image with its reason.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from mammotriage.dicom import Exam, Image, group_exams, iter_files, read_image
from mammotriage.dicom.decode import one_line
from mammotriage.dicom.exams import slot_of
from mammotriage.dicom.model import STANDARD_VIEWS, view_label
from mammotriage.errors import DicomReadError
from mammotriage.infer.findings import DEFAULT_MIN_SCORE, DEFAULT_TOP_K, find_regions, sigmoid
from mammotriage.infer.scores import ExamScore, Finding, ImageScore, aggregate, category_of
from mammotriage.infer.session import OnnxModel
from mammotriage.preprocess import PreprocessParams, Transform, preprocess_image

log = logging.getLogger(__name__)

Executors = Literal["thread", "process"]
EXECUTORS: tuple[str, ...] = ("thread", "process")
#: ``progress(label, done, total)``: "reading headers" per file, "scoring" per image.
Progress = Callable[[str, int, int], None]
_STANDARD_SLOTS = tuple(view_label(lat, view) for lat, view in STANDARD_VIEWS)
_CRASHED = "the decoder crashed on this file (the worker process died)"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Prepared:
    """One selected image made ready for the model, or the reason it could not be.

    Holds the preprocessed tensor, never the decoded pixels.
    """

    tensor: np.ndarray | None
    transform: Transform | None
    reason: str | None = None


@dataclass(frozen=True)
class _Scored:
    probability: float | None
    logit: float | None
    findings: tuple[Finding, ...]
    reason: str | None


def prepare_image(image: Image, params: PreprocessParams) -> Prepared:
    """Decode (when the image carries no pixels) and preprocess one image.

    Runs in the decode pool, so it is a module-level function of picklable arguments. The
    file is decoded at reduced resolution for the model input; the decoded pixels go out
    of scope on return.
    """
    source = image
    try:
        if image.pixels is None:
            if image.path is None:
                return Prepared(None, None, "no pixels and no file to read them from")
            source = read_image(image.path, target_shape=(params.input_height, params.input_width))
            if not source.usable:
                return Prepared(None, None, source.reason)
            if source.sop_instance_uid != image.sop_instance_uid:
                return Prepared(None, None, "file changed since its header was read")
        tensor, transform = preprocess_image(source, params)
    except DicomReadError as exc:
        return Prepared(None, None, exc.reason)
    except Exception as exc:  # a hostile file must never stop the batch
        return Prepared(None, None, f"cannot preprocess: {type(exc).__name__}: {one_line(exc)}")
    return Prepared(tensor, transform)


def _read_header(path: Path) -> Image:
    return read_image(path, load_pixels=False)


def _crashed_header(path: Path) -> Image:
    return Image(path=path, usable=False, reason=_CRASHED)


@dataclass(frozen=True)
class _Job:
    exam_index: int
    image: Image


def _prepare_job(job: _Job, *, params: PreprocessParams) -> Prepared:
    return prepare_image(job.image, params)


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
        ``"thread"`` (default: the decoders release the GIL) or ``"process"``.
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
        self._pool: Executor | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ScoringEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the decode pool (a later call starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> Executor | None:
        if self.decode_workers == 0:
            return None
        if self._pool is None:
            if self.executor == "process":
                self._pool = ProcessPoolExecutor(self.decode_workers, mp_context=_process_context())
            else:
                self._pool = ThreadPoolExecutor(
                    self.decode_workers, thread_name_prefix="mammotriage-decode"
                )
        return self._pool

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

    def read_headers(
        self, paths: Iterable[str | Path], *, progress: Progress | None = None
    ) -> list[Image]:
        """Read every file's header (no pixels kept), in file order."""
        files = list(iter_files(paths))
        images = []
        for _, image in self._ordered_map(
            _read_header, files, _crashed_header, depth=4 * max(1, self.decode_workers)
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
        jobs = [_Job(index, image) for index, exam in enumerate(exams) for image in _to_score(exam)]
        remaining = [0] * len(exams)
        for job in jobs:
            remaining[job.exam_index] += 1
        scored: dict[int, _Scored] = {}  # id(image) -> result, per pending exam
        next_exam = 0
        done = 0

        def finished() -> Iterator[ExamScore]:
            nonlocal next_exam
            while next_exam < len(exams) and remaining[next_exam] == 0:
                yield self._exam_score(exams[next_exam], scored)
                for image in exams[next_exam].images:
                    scored.pop(id(image), None)
                next_exam += 1

        yield from finished()
        batch: list[tuple[_Job, Prepared]] = []
        stream = self._prepared(jobs)
        try:
            for job, prepared in stream:
                if prepared.tensor is None:
                    scored[id(job.image)] = _Scored(None, None, (), prepared.reason)
                    remaining[job.exam_index] -= 1
                    done += 1
                else:
                    batch.append((job, prepared))
                if len(batch) == self.batch_size:
                    done += self._run(batch, scored, remaining)
                    batch = []
                if progress is not None:
                    progress("scoring", done, len(jobs))
                yield from finished()
            if batch:
                done += self._run(batch, scored, remaining)
                if progress is not None:
                    progress("scoring", done, len(jobs))
            yield from finished()
        finally:
            stream.close()

    # --- internals ---------------------------------------------------------------------------

    def _prepared(self, jobs: Sequence[_Job]) -> Generator[tuple[_Job, Prepared], None, None]:
        """Prepared images in job order, decoded up to two batches ahead of the consumer."""
        # Pixels already decoded by the caller travel along; otherwise only the header does
        # and the worker reads the file.
        return self._ordered_map(
            partial(_prepare_job, params=self.params),
            jobs,
            lambda job: Prepared(None, None, _CRASHED),
            depth=2 * self.batch_size,
        )

    def _ordered_map(
        self,
        fn: Callable[[_T], _R],
        items: Sequence[_T],
        crashed: Callable[[_T], _R],
        *,
        depth: int,
    ) -> Generator[tuple[_T, _R], None, None]:
        """``(item, fn(item))`` in order, with up to ``depth`` items in the pool at a time.

        A worker process that dies (a codec crashing on a hostile file) breaks the whole
        pool: the pool is restarted and each item that was in flight is run again on its
        own, so that only the item that crashes a worker twice becomes ``crashed(item)``.
        """
        pool = self._executor()
        if pool is None:
            for item in items:
                yield item, fn(item)
            return
        window: deque[tuple[_T, Future[_R], Executor]] = deque()
        pending = iter(items)

        def submit() -> None:
            for item in pending:  # at most one
                executor = self._executor()
                assert executor is not None
                window.append((item, executor.submit(fn, item), executor))
                return

        try:
            for _ in range(depth):
                submit()
            while window:
                item, future, executor = window.popleft()
                try:
                    result = future.result()
                except BrokenExecutor:
                    if executor is self._pool:
                        log.warning("a decode worker died; restarting the decode pool")
                        self.close()
                    result = self._alone(fn, item, crashed)
                submit()
                yield item, result
        finally:
            for _, future, _ in window:
                future.cancel()

    def _alone(self, fn: Callable[[_T], _R], item: _T, crashed: Callable[[_T], _R]) -> _R:
        """Run ``item`` in a one-worker pool of its own: ``crashed(item)`` if it kills that
        worker too, so a crash is pinned on the file that caused it, not its neighbours."""
        if self.executor != "process":
            return fn(item)
        with ProcessPoolExecutor(1, mp_context=_process_context()) as solo:
            try:
                return solo.submit(fn, item).result()
            except BrokenExecutor:
                return crashed(item)

    def _run(
        self,
        batch: list[tuple[_Job, Prepared]],
        scored: dict[int, _Scored],
        remaining: list[int],
    ) -> int:
        tensors = np.stack([prepared.tensor for _, prepared in batch])  # type: ignore[misc]
        logits, maps = self.model.predict(tensors)
        for i, (job, prepared) in enumerate(batch):
            image = job.image
            logit = float(logits[i])
            shape = (image.rows, image.columns) if image.rows and image.columns else None
            regions = find_regions(
                maps[i],
                prepared.transform,  # type: ignore[arg-type]
                self.sidecar.map_stride,
                min_score=self.min_finding_score,
                top_k=self.findings_per_image,
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
            scored[id(image)] = _Scored(float(sigmoid(logit)), logit, findings, None)
            remaining[job.exam_index] -= 1
        return len(batch)

    def _exam_score(self, exam: Exam, scored: dict[int, _Scored]) -> ExamScore:
        images = []
        findings: list[Finding] = []
        scored_slots = set()
        for image in exam.images:
            result = scored.get(id(image))
            if not image.usable:
                images.append(_image_score(image, usable=False, reason=image.reason))
            elif result is None:
                images.append(_image_score(image, usable=True, reason=_why_not_scored(image, exam)))
            elif result.reason is not None:
                images.append(_image_score(image, usable=False, reason=result.reason))
            else:
                images.append(
                    _image_score(
                        image,
                        usable=True,
                        reason=None,
                        probability=result.probability,
                        logit=result.logit,
                    )
                )
                findings.extend(result.findings)
                scored_slots.add(slot_of(image))
        aggregation = self.sidecar.aggregation
        score, breasts = aggregate(images, aggregation.breast, aggregation.exam)
        category = (
            category_of(score, self.sidecar.calibration.thresholds) if score is not None else None
        )
        missing = tuple(slot for slot in _STANDARD_SLOTS if slot not in scored_slots)
        findings.sort(key=lambda f: -f.score)
        return ExamScore(
            exam_id=exam.exam_id,
            score=score,
            category=category,
            partial=bool(missing),
            breasts=breasts,
            findings=tuple(findings),
            images=tuple(images),
            model_name=self.sidecar.name,
            model_sha256=self.sidecar.sha256,
            missing=missing,
        )


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver (spawn off Linux), never fork: this process already runs ONNX Runtime
    threads, and a forked copy of a threaded process may inherit a held lock."""
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _to_score(exam: Exam) -> list[Image]:
    """The exam's selected images (one per view slot, supplementary views included), in
    reading order: standard slots first, then the rest by label."""
    order = {slot: i for i, slot in enumerate(_STANDARD_SLOTS)}
    slots = sorted(exam.selected, key=lambda s: (order.get(s, len(order)), s))
    return [exam.selected[slot] for slot in slots]


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
    )
