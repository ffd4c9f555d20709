"""The reading desk: readers' queues, claims, decisions, blinded double reading, statistics.

The rules, enforced here and nowhere else (the API only translates them), are
:mod:`mammotriage.worklist.rules`:

- single reading needs one decision; double reading two, by two different readers; an exam
  ruled out by the policy is read by no one and is on no reader's queue;
- a reader works on an exam they have claimed; a claim expires after ``claim_timeout``, so
  an abandoned exam comes back. A single-reading exam has one claim at a time; a double-
  reading exam at most two (its first and second readers), never the same reader twice;
- double reading is blinded: a reader sees no other reader's decision or note until both
  have decided. Two decisions that disagree on recall send the exam to the consensus queue,
  where both readings are shown and the policy's consensus mode decides who ends it: both
  first readers (agreeing), an arbitrator who was neither, or either first reader; the
  queue shows it only to them;
- every state change happens in one transaction holding the exam's assignment row
  (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two readers
  racing for the last slot cannot both get it.

Where each part lives: the queue order in :mod:`~mammotriage.worklist.order`, the queues in
:mod:`~mammotriage.worklist.queues` and :mod:`~mammotriage.worklist.snapshot`, claims in
:mod:`~mammotriage.worklist.claims`, decisions in :mod:`~mammotriage.worklist.decisions`,
one exam in :mod:`~mammotriage.worklist.detail`, statistics in
:mod:`~mammotriage.worklist.stats`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from mammotriage.triage.policy import (
    DEFAULT_CONSENSUS,
    ConsensusMode,
    ReadingMode,
    TriagePolicy,
)
from mammotriage.worklist import claims, decisions
from mammotriage.worklist.claims import DEFAULT_READING_CLAIM_TIMEOUT
from mammotriage.worklist.database import Database
from mammotriage.worklist.decisions import Outcome, ScreeningOutcome
from mammotriage.worklist.detail import ExamDetail, exam_detail
from mammotriage.worklist.models import utcnow
from mammotriage.worklist.order import WorklistEntry, ordered_worklist
from mammotriage.worklist.queues import QueuePage, ReadingQueue
from mammotriage.worklist.snapshot import QueueSnapshots, Snapshot, reading_state
from mammotriage.worklist.stats import QueueStats, queue_stats


class ReadingDesk:
    """The human reading of the exams in ``db``.

    Attributes
    ----------
    claim_timeout
        How long a reader's claim lasts unless renewed or decided.
    queue_snapshot_seconds
        How long one ordered snapshot of the queue serves every reader's request. 0 (the
        default) reads the database on every call. A reading service under load sets ~1 s:
        ordering the whole queue is the expensive part, every reader filters the same
        snapshot, and this desk's own claims and decisions drop it at once; what other
        processes (the worker, another service) change shows within that time.
    """

    def __init__(
        self, db: Database, *, claim_timeout: timedelta = DEFAULT_READING_CLAIM_TIMEOUT
    ) -> None:
        self.db = db
        self.claim_timeout = claim_timeout
        self._snapshots = QueueSnapshots(self._take_snapshot)

    @property
    def queue_snapshot_seconds(self) -> float:
        return self._snapshots.seconds

    @queue_snapshot_seconds.setter
    def queue_snapshot_seconds(self, seconds: float) -> None:
        self._snapshots.seconds = seconds

    # -- queues ---------------------------------------------------------------------------

    def worklist(self, now: datetime, policy: TriagePolicy) -> list[WorklistEntry]:
        """Every exam not yet read, in reading order at ``now`` (ruled-out exams last).

        Raises
        ------
        ConfigError
            If ``now`` is naive.
        """
        return ordered_worklist(self.db, now, policy)

    def reader_queue(
        self,
        reader: str | None,
        now: datetime,
        policy: TriagePolicy,
        *,
        queue: ReadingQueue | str = ReadingQueue.ALL,
        offset: int = 0,
        limit: int = 50,
    ) -> QueuePage:
        """The exams ``reader`` can work on, in the policy's reading order.

        ``reader`` None (an admin or a service looking): every exam waiting for a reading.
        For a reader, an exam they already decided, one whose reading slots other readers
        hold, and ruled-out exams are left out. ``queue`` narrows it: single / double
        reading, priority, consensus, or the exams the reader has claimed ("mine").

        Raises
        ------
        ValueError
            If ``queue`` names no queue.
        """
        which = ReadingQueue.of(queue)
        snapshot = self._snapshots.get(now, policy)
        return snapshot.page(reader, now, which, offset=offset, limit=limit)

    def _take_snapshot(self, now: datetime, policy: TriagePolicy) -> Snapshot:
        taken = time.monotonic()
        entries = tuple(
            e for e in self.worklist(now, policy) if e.decision.mode is not ReadingMode.RULE_OUT
        )
        with self.db.session() as session:
            claimed, decided = reading_state(session, now)
        return Snapshot.build(taken, policy, entries, claimed, decided)

    # -- claims and decisions (each drops the snapshot, which may predate it) --------------

    def claim(
        self,
        exam_id: uuid.UUID,
        reader: str,
        now: datetime | None = None,
        *,
        consensus: ConsensusMode = DEFAULT_CONSENSUS,
    ) -> datetime:
        """Open ``exam_id`` for ``reader``; returns when the claim expires.

        Claiming an exam one already holds renews the claim. ``consensus`` is the policy's
        (``policy.consensus``): who may claim an exam in consensus.

        Raises
        ------
        NotFoundError
            No such exam on the reading lists.
        ConflictError
            Read already, ruled out, decided by this reader, its slots held by others, or in
            consensus and not this reader's to decide (the message says why).
        """
        now = utcnow() if now is None else now
        try:
            with self.db.session() as session:
                return claims.claim(session, exam_id, reader, now, self.claim_timeout, consensus)
        finally:
            self._snapshots.forget()

    def release(self, exam_id: uuid.UUID, reader: str, now: datetime | None = None) -> None:
        """Give an exam back without deciding. Releasing what one does not hold is a no-op."""
        now = utcnow() if now is None else now
        try:
            with self.db.session() as session:
                claims.release(session, exam_id, reader, now)
        finally:
            self._snapshots.forget()

    def record_decision(
        self,
        exam_id: uuid.UUID,
        reader: str,
        *,
        recall: bool,
        birads: int | None = None,
        note: str | None = None,
        now: datetime | None = None,
        consensus: ConsensusMode = DEFAULT_CONSENSUS,
        outcome: ScreeningOutcome | None = None,
        category: str | None = None,
        reasons: Sequence[str] = (),
    ) -> Outcome:
        """Record ``reader``'s decision on an exam they hold; returns where the exam now stands.

        ``consensus`` is the policy's (``policy.consensus``): who decides an exam in
        consensus, and whether one decision ends it or both first readers' agreeing ones.
        ``outcome``, ``category`` and ``reasons`` (the site's decision category and reason
        codes, checked by the caller against its configuration) are stored as chosen; the
        readers' agreement is decided on ``recall``.

        Raises
        ------
        ConflictError
            The reader holds no live claim on the exam (never claimed, released, expired),
            or it is in consensus and not theirs to decide.
        ValueError
            BI-RADS outside 0-6, an outcome that contradicts ``recall``, reasons without a
            category, or a code longer than 40 characters.
        """
        try:
            decisions.check_birads(birads)
            decisions.check_choice(recall, outcome, category, reasons)
            now = utcnow() if now is None else now
            with self.db.session() as session:
                return decisions.record(
                    session,
                    exam_id,
                    reader,
                    recall=recall,
                    birads=birads,
                    note=note,
                    now=now,
                    consensus=consensus,
                    outcome=outcome,
                    category=category,
                    reasons=reasons,
                )
        finally:
            self._snapshots.forget()

    # -- one exam, statistics -------------------------------------------------------------

    def exam_detail(
        self, exam_id: uuid.UUID, reader: str | None, now: datetime | None = None
    ) -> ExamDetail:
        """The exam as ``reader`` may see it.

        A reader sees an exam they hold a live claim on, or have decided; another reader's
        decision only once the exam is read or in consensus (blinding). ``reader`` None is
        for the audit trail of an admin tool; the API never passes it.

        Raises
        ------
        NotFoundError
            No such exam.
        ForbiddenError
            The reader neither holds nor has decided it (another reader's exam, or unclaimed).
        """
        now = utcnow() if now is None else now
        with self.db.session() as session:
            return exam_detail(session, exam_id, reader, now)

    def queue_stats(self, now: datetime, policy: TriagePolicy) -> QueueStats:
        """Counts per band and queue, waiting times and throughput, for the admin page."""
        page = self.reader_queue(None, now, policy, limit=10**9)
        with self.db.session() as session:
            return queue_stats(session, page.items, now)


__all__ = ["DEFAULT_READING_CLAIM_TIMEOUT", "ReadingDesk"]
