"""The batch loop: poll the source, claim a job, read, score, decide, store, write back, done.

Jobs go through a pipeline of four stages, each in its own thread, joined by queues:

1. **fetch** (claim the next job, bring its files: a PACS download, a folder's copy),
2. **decode** (headers, grouping into exams, decode at reduced resolution and preprocess in
   the engine's decode pool, two studies at once; each view's thumbnail is made from the
   same decoded pixels),
3. **score** (ONNX Runtime),
4. **outputs** (in the calling thread: the exam stored with its decision and HL7 results,
   thumbnails written, the SR and the other DICOM objects sent, the job done),

so that while one study is scored the next is fetched and decoded and the previous one's
outputs are written. At most ``studies_in_flight`` studies are held at once (claimed, not
done); a study is done only when its outputs are stored, exactly as when one study went
through at a time (``studies_in_flight=1``).

Exactly-once rests on the store, not on this loop: a study is one job
(``UNIQUE(source, study)``), an exam one row (``UNIQUE(study)``), a score one row per model
(``UNIQUE(exam, model sha256)``), and the SR's SOPInstanceUID is derived from what it
reports, so a PACS keeps one copy however often it is sent. A worker killed at any moment
leaves its claimed jobs RUNNING; it releases them when it starts again (or another worker
takes them over after the claim timeout), and processing them again overwrites the same rows.
With the pipeline a killed worker leaves up to ``studies_in_flight`` jobs RUNNING; all are
released together.

What can go wrong, and what happens:

- the source is down or slow, the disk is full: the job goes back to the queue with backoff
  (:class:`~mammotriage.worker.config.RetrySettings`) and fails for good after the last try;
- the study is gone, or holds no mammogram: recorded with the reason, never retried;
- an image cannot be read: the exam is stored with that image's reason, scored on the rest;
- an output of a stored exam (its thumbnails) cannot be written: the other outputs (the SR)
  are still made, the failure is logged, counted (``mammotriage_output_failures_total``)
  and kept on the job, which is retried like a passing fault;
- the database is locked or gone: the loop logs it, waits and tries again; the jobs it held
  stay RUNNING until released.
"""

from __future__ import annotations

import errno
import logging
import queue
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from mammotriage.dicom import group_exams
from mammotriage.dicom.report import warm_up as warm_up_reports
from mammotriage.errors import (
    MammotriageError,
    SourceError,
    SourceUnavailableError,
    StoreError,
)
from mammotriage.infer.engine import ScoringEngine
from mammotriage.infer.exam_batch import PreparedExam
from mammotriage.infer.scores import ExamScore
from mammotriage.triage import TriageDecision, TriagePolicy, decide_scored
from mammotriage.worker.config import RetrySettings
from mammotriage.worker.crashpoints import crash_point
from mammotriage.worker.hl7_output import OutboxSender, ResultMessageError, ResultMessages
from mammotriage.worker.identifiers import study_identifiers
from mammotriage.worker.metrics import WorkerMetrics
from mammotriage.worker.report import ReportWriter
from mammotriage.worker.source import Source
from mammotriage.worker.thumbnails import ThumbnailView, thumbnail_view, write_thumbnail
from mammotriage.worklist import ExamStatus, Job, JobStatus, Store
from mammotriage.worklist.database import StoreDataError
from mammotriage.worklist.exams import exam_status
from mammotriage.worklist.jobs import instance_id
from mammotriage.worklist.models import OutboxState, utcnow

log = logging.getLogger("mammotriage.worker")
_T = TypeVar("_T")

#: Studies in the decode stage at once (each in its own thread, one decode pool).
_DECODING_AT_ONCE = 2
#: errno values of a full or read-only disk: passing faults, retried like a PACS outage.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


class OutputError(MammotriageError):
    """An output of a stored exam (its thumbnails) could not be written; the others were."""


@dataclass(eq=False)
class _Study:
    """One claimed job on its way through the pipeline: what each stage made of it, or the
    first error, which the outputs stage settles (retry, fail) as for any job."""

    job: Job
    scratch: Path
    context: dict[str, object]
    started: float
    paths: list[Path] = field(default_factory=list)
    prepared: list[PreparedExam] = field(default_factory=list)
    scores: list[ExamScore] = field(default_factory=list)
    error: BaseException | None = None


@dataclass
class RunSummary:
    """What one ``run`` did (counts; printed by ``mammotriage worker``)."""

    jobs: int = 0
    scored: int = 0
    unscored: int = 0
    rejected: int = 0
    retried: int = 0
    failed: int = 0
    reports: list[str] = field(default_factory=list)
    #: The last poll of the source failed (unreachable, refused): ``--once`` exits 1.
    source_unreachable: bool = False
    #: HL7 results still in the outbox when a ``--once`` run ended (the RIS is away).
    hl7_waiting: int = 0
    #: DICOM objects sent per output (``sr``, ``gsps``, ``sc``) and where they went.
    sent: Counter[str] = field(default_factory=Counter)
    places: set[str] = field(default_factory=set)


class Worker:
    """One worker process: a source, a store, a scoring engine and a policy.

    Parameters
    ----------
    name
        This worker's name in the store (claims are held and released under it).
    source, store, engine, policy
        Where studies come from, where results go, how they are scored and triaged.
    work_dir
        Scratch space: one folder per job, removed when the job ends.
    retry
        Backoff for passing faults.
    reports
        Builds the SR (and presentation state, Secondary Captures) of a scored exam; None:
        no DICOM write-back.
    outputs
        Which of the DICOM objects ``reports`` builds are sent: ``sr``, ``gsps``, ``sc``.
    results, sender
        The HL7 output: builds each exam's result messages (queued with its decision) and
        delivers the outbox in a thread; None: no HL7.
    metrics
        Counters updated as jobs end.
    studies_in_flight
        Studies the pipeline holds at once (claimed, not yet done); 1: no overlap.
    poll_seconds
        Wait between polls when there is nothing to do.
    """

    def __init__(
        self,
        *,
        name: str,
        source: Source,
        store: Store,
        engine: ScoringEngine,
        policy: TriagePolicy,
        work_dir: Path,
        retry: RetrySettings,
        reports: ReportWriter | None,
        metrics: WorkerMetrics | None = None,
        poll_seconds: float = 5.0,
        after_job: Callable[[], None] | None = None,
        thumbnails_dir: Path | None = None,
        instance: str | None = None,
        outputs: frozenset[str] = frozenset({"sr"}),
        results: ResultMessages | None = None,
        sender: OutboxSender | None = None,
        studies_in_flight: int = 3,
    ) -> None:
        if isinstance(studies_in_flight, bool) or studies_in_flight < 1:
            raise ValueError(
                f'Argument "studies_in_flight" must be an int >= 1, got {studies_in_flight!r}.'
            )
        self.name = name
        #: This process's identity in claims (:func:`~mammotriage.worklist.jobs.instance_id`):
        #: two processes sharing ``name`` never release or finish each other's jobs.
        self.instance = instance or instance_id(name)
        self.source = source
        self.store = store
        self.engine = engine
        self.policy = policy
        self.work_dir = Path(work_dir)
        self.retry = retry
        self.reports = reports
        self.metrics = metrics or WorkerMetrics()
        self.poll_seconds = poll_seconds
        self.after_job = after_job
        self.thumbnails_dir = thumbnails_dir
        #: The DICOM outputs sent back (``sr``, ``gsps``, ``sc``): what ``reports`` writes
        #: that is not named here is not sent.
        self.outputs = outputs
        self.results = results
        self.sender = sender
        self.studies_in_flight = studies_in_flight
        self._waiting = 0
        #: Studies claimed and not yet done, in claim order (job ids; the pipeline's state).
        self._in_flight: list[int] = []
        self._in_flight_lock = threading.Lock()

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, once: bool = False) -> RunSummary:
        """Poll and process until ``stop`` is set (or, with ``once``, until nothing is left).

        ``once`` waits for studies still inside their quiet period and for jobs in backoff,
        then returns; without it the loop runs until ``stop``.
        """
        summary = RunSummary()
        if self.reports is not None and "sr" in self.outputs:
            # highdicom's tables of the standard load with the first report: now, while
            # nothing waits, rather than in the first exam's outputs.
            warm_up_reports()
        if self.sender is not None:
            self.sender.start()
        try:
            self._loop(stop, once, summary)
        finally:
            if self.sender is not None:
                self.sender.stop(timeout=self.sender.join_timeout)
        if self.sender is not None and once:
            # What the thread had no time for; what is left waits for the next run.
            self.sender.deliver_now()
            waiting = self._store_call(self.store.outbox.counts, threading.Event())
            summary.hl7_waiting = 0 if waiting is None else waiting[OutboxState.QUEUED]
            self._store_call(self.refresh_output_metrics, threading.Event())
        return summary

    def _loop(self, stop: threading.Event, once: bool, summary: RunSummary) -> None:
        release_pending = True  # a previous run of this name may have died holding a job
        while not stop.is_set():
            if release_pending:
                released = self._store_call(
                    lambda: self.store.jobs.release_claims(self.name, me=self.instance), stop
                )
                if released is not None:
                    release_pending = False
                if released:
                    log.info(
                        "released jobs left by a previous run",
                        extra={"event": "released", "jobs": released},
                    )
            summary.source_unreachable = not self._poll(stop)
            if not self._drain(stop, summary):
                release_pending = True  # our jobs stay RUNNING; released once it is back
                stop.wait(self.poll_seconds)
            # One count serves the queue-depth gauge and the one-shot run's end.
            counts = self._store_call(self.store.jobs.counts, threading.Event())
            if counts is not None:
                self.metrics.set_queue(counts)
                self._store_call(self.refresh_output_metrics, threading.Event())
            if once and not release_pending and counts is not None and self._nothing_left(counts):
                break
            stop.wait(self.poll_seconds)

    def refresh_output_metrics(self) -> None:
        """The per-exam outputs and the outbox, from the store, into the gauges."""
        self.metrics.set_outputs(self.store.outputs.counts())
        if self.results is not None:
            oldest = self.store.outbox.oldest_queued_at()
            age = None if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
            self.metrics.set_outbox(self.store.outbox.counts(), age)

    def _poll(self, stop: threading.Event) -> bool:
        """Enqueue what the source offers; False when the source could not be polled."""
        try:
            cursor = self.store.jobs.cursor(self.source.name)
            polled = self.source.poll(cursor)
            for arrival in polled.arrivals:
                try:
                    self.store.jobs.enqueue(
                        self.source.name, arrival.study_key, arrival.fingerprint
                    )
                except StoreDataError as exc:  # this study only: the others still go in
                    log.error(
                        "study not queued, the worklist database refused it: %s",
                        exc,
                        extra={"event": "enqueue-refused"},
                    )
            if polled.cursor is not None and polled.cursor != cursor:
                self.store.jobs.save_cursor(self.source.name, polled.cursor)
            self._waiting = polled.waiting
            if polled.arrivals:
                log.info(
                    "studies arrived",
                    extra={"event": "arrived", "studies": len(polled.arrivals)},
                )
        except SourceError as exc:
            log.warning("source poll failed: %s", exc, extra={"event": "poll-failed"})
            return False
        except StoreError as exc:
            log.error("worklist database unavailable: %s", exc, extra={"event": "store-down"})
            stop.wait(self.poll_seconds)
        return True

    def _nothing_left(self, counts: dict[JobStatus, int]) -> bool:
        pending = counts[JobStatus.QUEUED] + counts[JobStatus.RUNNING]
        return pending == 0 and self._waiting == 0

    def _store_call(self, call: Callable[[], _T], stop: threading.Event) -> _T | None:
        """A store call whose failure (database locked, gone) is logged, not raised."""
        try:
            return call()
        except StoreError as exc:
            log.error("worklist database unavailable: %s", exc, extra={"event": "store-down"})
            stop.wait(self.poll_seconds)
            return None

    # -- one job --------------------------------------------------------------------------

    def _drain(self, stop: threading.Event, summary: RunSummary) -> bool:
        """Claim and process jobs through the pipeline until none is left (or ``stop``);
        False when the worklist database went away (the jobs it cut short stay RUNNING)."""
        slots = threading.Semaphore(self.studies_in_flight)
        fetched: queue.Queue[_Study | None] = queue.Queue()
        decoded: queue.Queue[_Study | None] = queue.Queue()
        scored: queue.Queue[_Study | None] = queue.Queue()
        store_down = threading.Event()
        halt = threading.Event()  # the outputs stage ended early: claim nothing more

        def ended() -> bool:
            return stop.is_set() or store_down.is_set() or halt.is_set()

        def fetch() -> None:
            try:
                while not ended():
                    if not slots.acquire(timeout=0.2):
                        continue
                    job = None
                    if not ended():
                        job = self._store_call(lambda: self.store.jobs.claim(self.instance), stop)
                    if job is None:
                        slots.release()
                        return
                    fetched.put(self._fetch(self._begin(job)))
            finally:
                fetched.put(None)

        def stage(
            work: Callable[[_Study], _Study],
            source: queue.Queue[_Study | None],
            into: queue.Queue[_Study | None],
            running: list[int],
        ) -> None:
            """One thread of a stage: ``work`` on what ``source`` hands over, until it ends;
            the last thread of the stage to end ends ``into``."""
            while (study := source.get()) is not None:
                into.put(work(study))
            source.put(None)  # for this stage's other threads
            with self._in_flight_lock:
                running[0] -= 1
                last = running[0] == 0
            if last:
                into.put(None)

        # Two studies decode at once, sharing the engine's decode pool: one study's images
        # are too few to keep the pool busy, and its headers must be read (and grouped)
        # before its images can be decoded; a second study fills those gaps.
        decoders = [_DECODING_AT_ONCE]
        scorers = [1]
        threads = [threading.Thread(target=fetch, name="mammotriage-fetch", daemon=True)]
        threads += [
            threading.Thread(
                target=stage,
                args=(self._decode, fetched, decoded, decoders),
                name=f"mammotriage-decode-{n}",
                daemon=True,
            )
            for n in range(_DECODING_AT_ONCE)
        ]
        threads.append(
            threading.Thread(
                target=stage,
                args=(self._score, decoded, scored, scorers),
                name="mammotriage-score",
                daemon=True,
            )
        )
        for thread in threads:
            thread.start()
        try:
            while (study := scored.get()) is not None:
                try:
                    self._finish(study, summary)
                except StoreError as exc:
                    log.error(
                        "worklist database unavailable: %s",
                        exc,
                        extra={"event": "store-down", **study.context},
                    )
                    store_down.set()
                finally:
                    slots.release()
        except BaseException:
            halt.set()  # an interrupt: the studies in flight stay RUNNING, released later
            raise
        finally:
            for thread in threads:
                thread.join()
        return not store_down.is_set()

    def process(self, job: Job, summary: RunSummary | None = None) -> None:
        """Fetch, score, store and report one claimed job, its stages one after the other;
        its status is set whatever happens (the pipeline of :meth:`run` does the same steps
        with the stages of different jobs overlapping)."""
        study = self._score(self._decode(self._fetch(self._begin(job))))
        self._finish(study, summary if summary is not None else RunSummary())

    # -- the stages of one job ------------------------------------------------------------

    def _begin(self, job: Job) -> _Study:
        crash_point("after-claim")
        study = _Study(
            job,
            self.work_dir / f"job-{job.id}",
            {"job_id": job.id, "attempt": job.attempts},
            time.monotonic(),
        )
        with self._in_flight_lock:
            self._in_flight.append(job.id)
        return study

    def _fetch(self, study: _Study) -> _Study:
        """The fetch stage: the study's files into its scratch folder."""
        started = time.monotonic()
        try:
            shutil.rmtree(study.scratch, ignore_errors=True)
            study.scratch.mkdir(parents=True)
            study.paths = list(
                self.source.fetch(study.job.study_instance_uid, study.scratch / "study")
            )
            crash_point("after-fetch")
            with self._in_flight_lock:
                overlapping = self._in_flight.index(study.job.id) > 0
            if overlapping:  # an earlier study is still being decoded, scored or written
                crash_point("fetched-during-overlap")
        except BaseException as exc:  # settled by the outputs stage
            study.error = exc
        self.metrics.stage_seconds.labels(stage="fetch").observe(time.monotonic() - started)
        return study

    def _decode(self, study: _Study) -> _Study:
        """The decode stage: headers, exams, model inputs and thumbnails, one decode per
        image (in the engine's decode pool)."""
        if study.error is not None:
            return study
        started = time.monotonic()
        try:
            exams = group_exams(self.engine.read_headers(study.paths))
            if not exams:
                raise SourceError("the study has no files")
            keep = thumbnail_view if self.thumbnails_dir is not None else None
            study.prepared = self.engine.prepare_exams(exams, keep=keep)
        except BaseException as exc:
            study.error = exc
        self.metrics.stage_seconds.labels(stage="decode").observe(time.monotonic() - started)
        return study

    def _score(self, study: _Study) -> _Study:
        """The score stage: the model on the prepared exams."""
        if study.error is not None:
            return study
        started = time.monotonic()
        try:
            study.scores = self.engine.score_prepared(study.prepared)
            crash_point("after-score")
        except BaseException as exc:
            study.error = exc
        self.metrics.stage_seconds.labels(stage="score").observe(time.monotonic() - started)
        return study

    def _finish(self, study: _Study, summary: RunSummary) -> None:
        """The outputs stage: store each exam with its outputs and end the job; a failure
        of any stage of this job is settled here (retried, failed); the job's status is set
        whatever happened, except when the database is gone (:class:`StoreError` raised,
        the job stays RUNNING)."""
        job, context, scratch = study.job, study.context, study.scratch
        summary.jobs += 1
        started = time.monotonic()
        try:
            if study.error is not None:
                raise study.error
            failed_outputs: list[str] = []
            for exam_score, prepared in zip(study.scores, study.prepared, strict=True):
                failed_outputs += self._store_exam(
                    job, exam_score, prepared, scratch, summary, context
                )
            if failed_outputs:
                raise OutputError("; ".join(failed_outputs))
            if self.store.jobs.done(job) is None:
                self._claim_lost(context)
        except SourceUnavailableError as exc:
            self._retry_or_fail(job, str(exc), summary, context)
        except OutputError as exc:  # the exam is stored; an output may pass: try again
            self._retry_or_fail(job, f"output failed: {exc}", summary, context)
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:
                self._retry_or_fail(job, f"disk full or unwritable: {exc}", summary, context)
            else:
                self._fail(job, f"file error: {exc}", summary, context)
        except StoreDataError as exc:  # a constraint or a value refused: will not pass
            self._fail(job, str(exc), summary, context)
        except StoreError:
            raise  # the loop's caller decides; the job stays RUNNING and is released later
        except MammotriageError as exc:
            self._fail(job, str(exc), summary, context)
        except Exception as exc:  # a bug must not stop the worker; the job records it
            log.exception("internal error", extra={"event": "internal-error", **context})
            self.metrics.failures.labels(kind="error").inc()
            self._fail(job, f"internal error: {type(exc).__name__}: {exc}", summary, context)
        finally:
            with self._in_flight_lock:
                self._in_flight.remove(job.id)
            shutil.rmtree(scratch, ignore_errors=True)
            now = time.monotonic()
            self.metrics.stage_seconds.labels(stage="outputs").observe(now - started)
            self.metrics.job_seconds.observe(now - study.started)
            if self.after_job is not None:
                self.after_job()

    def _store_exam(
        self,
        job: Job,
        exam_score: ExamScore,
        prepared: PreparedExam,
        scratch: Path,
        summary: RunSummary,
        context: dict[str, object],
    ) -> list[str]:
        """Store the exam, then attempt each output (thumbnails, the SR); returns what
        failed among the thumbnails, so that their failure never stops the SR."""
        failed: list[str] = []
        received_at = job.created_at or utcnow()
        decision = self._decide(exam_score, received_at)
        messages, hl7_error = self._result_messages(job, exam_score, decision)
        # The accession number, patient and study date a reader finds the exam by in the
        # PACS: stored, never logged.
        identifiers, acquisition = study_identifiers(
            [im.path for im in exam_score.images if im.path is not None]
        )
        public_id = self.store.exams.save_score(
            exam_score,
            decision,
            received_at,
            messages=messages,
            identifiers=identifiers,
            acquisition=acquisition,
        )
        status = exam_status(exam_score, decision)
        fields = {**context, "exam_id": str(public_id), "status": status.value}
        if hl7_error is not None:  # the study lacks what the RIS needs: retrying cannot help
            # (the result itself may be queued: an order update could not be built)
            self._output_failed(public_id, "hl7", hl7_error, fields)
        if exam_score.category is not None:
            fields["category"] = exam_score.category
        if decision is not None:
            fields["reading"] = decision.mode.value
            fields["priority"] = decision.priority
        self.store.audit.record(
            f"worker:{self.name}",
            "exam-scored",
            public_id,
            {k: v for k, v in fields.items() if k != "exam_id"}
            | {"model_sha256": exam_score.model_sha256},
        )
        crash_point("after-exam-stored")
        # Woken once the exam's rows are all in (its audit line too), not between them: a
        # sender that claims a message leases it for minutes, and a worker killed right
        # after the commit would leave its restart to wait that lease out.
        if messages and self.sender is not None:
            self.sender.wake()
        self.metrics.exams.labels(status=status.value).inc()
        if status is ExamStatus.SCORED:
            summary.scored += 1
            self.metrics.categories.labels(category=str(exam_score.category)).inc()
        elif status is ExamStatus.UNSCORED:
            summary.unscored += 1
        else:
            summary.rejected += 1
        if job.created_at is not None:
            self.metrics.arrival_to_worklist.observe(
                max(0.0, (utcnow() - job.created_at).total_seconds())
            )
        if decision is not None and self.thumbnails_dir is not None:
            try:
                self._thumbnails(exam_score, public_id, _views(prepared))
            except StoreError:
                raise
            except Exception as exc:  # an output failure must not lose the other outputs
                failed.append(f"thumbnails: {type(exc).__name__}: {exc}")
                self._output_failed(public_id, "thumbnails", f"{type(exc).__name__}: {exc}", fields)
            else:
                self.store.outputs.record(public_id, "thumbnails", now=utcnow())
            crash_point("after-thumbnails")
        log.info("exam stored", extra={"event": "exam-stored", **fields})
        if status is ExamStatus.SCORED and self.reports is not None and decision is not None:
            failed += self._dicom_outputs(
                job, exam_score, decision, public_id, scratch, summary, fields
            )
        return failed

    def _result_messages(
        self, job: Job, exam_score: ExamScore, decision: TriageDecision | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        """The exam's HL7 messages to queue with its decision, or why there are none."""
        if self.results is None or decision is None:
            return [], None
        earlier = self.store.outbox.control_ids_of(exam_score.exam_id)
        try:
            messages = self.results.build(
                exam_score, decision, fingerprint=job.fingerprint, earlier=earlier
            )
        except ResultMessageError as exc:
            return [], str(exc)
        return messages, self.results.last_problem

    def _dicom_outputs(
        self,
        job: Job,
        exam_score: ExamScore,
        decision: TriageDecision,
        public_id: uuid.UUID,
        scratch: Path,
        summary: RunSummary,
        fields: dict[str, object],
    ) -> list[str]:
        """Write the exam's DICOM objects and send each output on its own (one failing
        leaves the others sent); returns what failed in a way that may pass (the job is
        retried). A failure that cannot pass is raised once every output was tried."""
        assert self.reports is not None
        previous = self.store.exams.report_of(exam_score.exam_id)
        key = f"{job.fingerprint}|{exam_score.model_sha256}"
        sent = previous is not None and previous.key == key
        if previous is None:
            predecessor, version = None, 1
        elif sent:  # a retry of this job: the same SR again (the PACS keeps one copy)
            predecessor, version = previous.predecessor_uid, previous.version
        else:  # a rescore: a new SR that supersedes the one sent before
            predecessor, version = previous.sop_instance_uid, previous.version + 1
        report = self.reports.write(
            exam_score, decision, scratch / "report", predecessor_uid=predecessor, version=version
        )
        passing: list[str] = []
        lasting: MammotriageError | None = None
        for output, why in report.not_built.items():
            if output in self.outputs:  # the exam's images cannot make it: not retried
                self._output_failed(public_id, output, why, fields)
        for output, paths in report.outputs.items():
            if output not in self.outputs or not paths:
                continue
            if (
                output == "sr"
                and previous is not None
                and report.sop_instance_uid == previous.sop_instance_uid
            ):
                continue  # sent by an earlier attempt of this job: the PACS has it
            try:
                location = self.source.store_reports(job.study_instance_uid, paths)
            except StoreError:
                raise
            except (SourceUnavailableError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno not in _DISK_ERRNOS:
                    raise
                passing.append(f"{output}: {exc}")
                self._output_failed(public_id, output, str(exc), fields)
                continue
            except MammotriageError as exc:
                lasting = lasting or exc
                self._output_failed(public_id, output, str(exc), fields)
                continue
            if output == "sr":
                crash_point("after-report-written")
                self.store.exams.save_report(
                    exam_score.exam_id,
                    report.sop_instance_uid,
                    location,
                    key=key,
                    version=version,
                    predecessor_uid=predecessor,
                )
                self.metrics.reports.inc()
                summary.reports.append(location)
                log.info("report stored", extra={"event": "report-stored", **fields})
                crash_point("after-report-stored")
            self.store.outputs.record(public_id, output, now=utcnow(), location=location)
            summary.sent[output] += len(paths)
            summary.places.add(location)
        if lasting is not None and not passing:
            raise lasting
        return passing

    def _output_failed(
        self, public_id: uuid.UUID, output: str, error: str, fields: dict[str, object]
    ) -> None:
        """Record, count and log an output that was not written."""
        self.store.outputs.record(public_id, output, now=utcnow(), error=error)
        self.metrics.output_failures.labels(output=output).inc()
        log.warning(
            "%s not written: %s",
            output,
            error,
            extra={"event": "output-failed", "output": output, **fields},
        )

    def _thumbnails(
        self, exam_score: ExamScore, public_id: uuid.UUID, views: dict[int, ThumbnailView]
    ) -> None:
        """Write the thumbnails made from the model's decode (``views``, by position in the
        exam; named by internal ids only) and record them. A view the decode made no
        thumbnail of (its pixels were unusable) has none."""
        assert self.thumbnails_dir is not None
        folder = self.thumbnails_dir / str(public_id)
        made = {}
        for n, image in enumerate(exam_score.images):
            view = views.get(n)
            if view is None or not image.usable:
                continue
            thumbnail = write_thumbnail(view, folder / f"{n}.png")
            made[n] = (str(thumbnail.path.resolve()), thumbnail.rows, thumbnail.columns)
        self.store.exams.save_thumbnails(public_id, made)

    def _decide(self, exam_score: ExamScore, received_at: datetime) -> TriageDecision | None:
        if not exam_score.is_mammography:
            return None
        return decide_scored(self.policy, exam_score, received_at)

    def _retry_or_fail(
        self, job: Job, error: str, summary: RunSummary, context: dict[str, object]
    ) -> None:
        delay = self.retry.delay(job.attempts)
        if delay is None:
            self._fail(job, f"gave up after {job.attempts} attempts: {error}", summary, context)
            return
        if self.store.jobs.retry(job, error, delay=delay) is None:
            self._claim_lost(context)
            return
        summary.retried += 1
        self.metrics.failures.labels(kind="retry").inc()
        log.warning(
            "job will be retried: %s",
            error,
            extra={"event": "retry", "delay_seconds": delay.total_seconds(), **context},
        )

    def _fail(self, job: Job, error: str, summary: RunSummary, context: dict[str, object]) -> None:
        if self.store.jobs.fail(job, error) is None:
            self._claim_lost(context)
            return
        summary.failed += 1
        self.metrics.failures.labels(kind="failed").inc()
        log.warning("job failed: %s", error, extra={"event": "failed", **context})

    def _claim_lost(self, context: dict[str, object]) -> None:
        log.warning(
            "job no longer claimed by this worker (taken over after the claim timeout, or "
            "released): left as it is",
            extra={"event": "claim-lost", **context},
        )


def _views(prepared: PreparedExam) -> dict[int, ThumbnailView]:
    """The thumbnails the decode made, by the image's position in the exam."""
    return {
        index: image.kept
        for index, image in prepared.inputs
        if isinstance(image.kept, ThumbnailView)
    }


__all__ = ["RunSummary", "Worker"]
