"""The reading half of the store: readers' queues, claims, decisions, blinded double reading.

The rules, enforced here and nowhere else (the API only translates them):

- single reading needs one decision; double reading two, by two different readers; an exam
  ruled out by the policy is read by no one and is on no reader's queue;
- a reader works on an exam they have claimed; a claim expires after ``claim_timeout``, so
  an abandoned exam comes back. A single-reading exam has one claim at a time; a double-
  reading exam at most two (its first and second readers), never the same reader twice;
- double reading is blinded: a reader sees no other reader's decision or note until both
  have decided. Two decisions that disagree on recall send the exam to the consensus queue,
  where one more (consensus) decision ends it, and both readings are shown;
- every state change happens in one transaction holding the exam's assignment row
  (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two readers
  racing for the last slot cannot both get it.
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mammotriage.errors import ConflictError, ForbiddenError, NotFoundError
from mammotriage.triage import ReadingMode, TriagePolicy
from mammotriage.triage.queue import QueueTier
from mammotriage.worklist.models import (
    AssignmentRow,
    ClaimRow,
    DecisionRow,
    ExamRow,
    FindingRow,
    ImageRow,
    ReadingStatus,
    ScoreRow,
    utcnow,
)

DEFAULT_READING_CLAIM_TIMEOUT = timedelta(minutes=20)
QUEUES = ("all", "single", "double", "priority", "consensus", "mine")
Queue = Literal["all", "single", "double", "priority", "consensus", "mine"]


@dataclass(frozen=True)
class QueueItem:
    """One exam as a reader's worklist shows it (internal id only)."""

    exam_id: uuid.UUID
    received_at: datetime
    waiting: timedelta
    score: float | None
    category: int | None
    mode: ReadingMode
    priority: bool
    overdue: bool
    rule: str
    status: ReadingStatus
    partial: bool
    #: Decisions made so far and how many the exam needs (2 for double reading).
    decisions: int
    readers_needed: int
    claimed_by_me: bool


@dataclass(frozen=True)
class QueuePage:
    items: tuple[QueueItem, ...]
    total: int
    offset: int
    limit: int
    #: Waiting time of the longest-waiting exam of the whole queue (not only this page).
    oldest_waiting: timedelta | None


@dataclass(frozen=True)
class Decision:
    reader: str
    recall: bool
    birads: int | None
    note: str | None
    decided_at: datetime
    consensus: bool


@dataclass(frozen=True)
class ExamImage:
    sop_instance_uid: str | None
    laterality: str
    view: str
    usable: bool
    reason: str | None
    rows: int | None
    columns: int | None
    thumbnail: str | None


@dataclass(frozen=True)
class ExamFinding:
    sop_instance_uid: str | None
    box: tuple[float, float, float, float]
    score: int


@dataclass(frozen=True)
class ExamDetail:
    """What a reader may see of one exam (others' decisions only once they may)."""

    exam_id: uuid.UUID
    received_at: datetime
    status: ReadingStatus
    mode: ReadingMode
    priority: bool
    rule: str
    policy_version: str
    partial: bool
    score: float | None
    category: int | None
    breasts: dict[str, float | None]
    model_name: str | None
    model_sha256: str | None
    report_sop_instance_uid: str | None
    report_location: str | None
    images: tuple[ExamImage, ...]
    findings: tuple[ExamFinding, ...]
    decisions: tuple[Decision, ...]
    claim_expires_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    """What a decision did to the exam."""

    status: ReadingStatus
    decisions: int
    readers_needed: int


_READERS_NEEDED = {ReadingMode.SINGLE: 1, ReadingMode.DOUBLE: 2}


def readers_needed(mode: ReadingMode) -> int:
    return _READERS_NEEDED.get(mode, 0)


_F = TypeVar("_F", bound=Callable[..., Any])


def _drops_snapshot(method: _F) -> _F:
    """The queue snapshot is dropped after the change commits (or fails): a snapshot taken
    while it ran may predate it."""

    @functools.wraps(method)
    def wrapper(self: ReadingDesk, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._forget_snapshot()

    return cast(_F, wrapper)


@dataclass(frozen=True)
class _Snapshot:
    """The ordered queue and who holds or decided what, as of one moment.

    Indexed so that a reader's page costs the page and the few exams someone has touched,
    not the whole queue: per queue, the positions of its exams in reading order, the same
    by arrival (for the oldest), and the positions of touched exams (claimed, decided, in
    consensus): only those need the per-reader rules.
    """

    taken: float
    policy: TriagePolicy
    entries: tuple[Any, ...]
    claims: dict[uuid.UUID, list[str]]
    decided: dict[uuid.UUID, list[str]]
    by_queue: dict[str, tuple[int, ...]]
    by_arrival: dict[str, tuple[int, ...]]
    touched: dict[str, tuple[int, ...]]

    @classmethod
    def build(
        cls,
        taken: float,
        policy: TriagePolicy,
        entries: tuple[Any, ...],
        claims: dict[uuid.UUID, list[str]],
        decided: dict[uuid.UUID, list[str]],
    ) -> _Snapshot:
        by_queue: dict[str, list[int]] = {q: [] for q in QUEUES if q != "mine"}
        for i, entry in enumerate(entries):
            for q in by_queue:
                if _in_queue(q, entry, entry.reading_status, False):
                    by_queue[q].append(i)
        untouched = ReadingStatus.UNREAD

        def is_touched(i: int) -> bool:
            e = entries[i]
            return (
                e.exam_public_id in claims
                or e.exam_public_id in decided
                or e.reading_status is not untouched
            )

        return cls(
            taken,
            policy,
            entries,
            claims,
            decided,
            by_queue={q: tuple(ix) for q, ix in by_queue.items()},
            by_arrival={
                q: tuple(sorted(ix, key=lambda i: entries[i].received_at))
                for q, ix in by_queue.items()
            },
            touched={q: tuple(i for i in ix if is_touched(i)) for q, ix in by_queue.items()},
        )


class ReadingDesk:
    """Reading methods of :class:`~mammotriage.worklist.store.Store`."""

    reading_claim_timeout: timedelta = DEFAULT_READING_CLAIM_TIMEOUT
    #: How long one ordered snapshot of the queue serves every reader's request (seconds).
    #: 0 (the default) reads the database on every call. A reading service under load sets
    #: ~1 s: ordering the whole queue is the expensive part, every reader filters the same
    #: snapshot, and this process's own claims and decisions drop it at once; what other
    #: processes (the worker, another service) change shows within that time.
    queue_snapshot_seconds: float = 0.0
    _snapshot_cache: _Snapshot | None = None
    #: Bumped by every change this process makes: a snapshot begun before it is not kept.
    _snapshot_generation: int = 0
    _snapshot_lock = threading.Lock()

    def _session(self) -> AbstractContextManager[Session]:  # pragma: no cover - Store's
        raise NotImplementedError

    def worklist(self, now: datetime, policy: TriagePolicy) -> list[Any]:  # pragma: no cover
        raise NotImplementedError

    # -- queues ---------------------------------------------------------------------------

    def reader_queue(
        self,
        reader: str | None,
        now: datetime,
        policy: TriagePolicy,
        *,
        queue: Queue = "all",
        offset: int = 0,
        limit: int = 50,
    ) -> QueuePage:
        """The exams ``reader`` can work on, in the policy's reading order.

        ``reader`` None (an admin or a service looking): every exam waiting for a reading.
        For a reader, an exam they already decided, one whose reading slots other readers
        hold, and ruled-out exams are left out. ``queue`` narrows it: single / double
        reading, priority, consensus, or the exams the reader has claimed ("mine").
        """
        if queue not in QUEUES:
            raise ValueError(f"queue must be one of {QUEUES}, got {queue!r}")
        snapshot = self._snapshot(now, policy)
        entries, claims, decided = snapshot.entries, snapshot.claims, snapshot.decided
        base = "all" if queue == "mine" else queue
        # Of the touched exams, which this reader may not take (the others all may) and which
        # they hold; untouched exams are open to every reader.
        closed: set[int] = set()
        mine: set[int] = set()
        if reader is not None:
            for i in snapshot.touched[base]:
                entry = entries[i]
                holders = claims.get(entry.exam_public_id, ())
                if reader in holders:
                    mine.add(i)
                elif not _open_to(
                    reader,
                    entry.decision.mode,
                    entry.reading_status,
                    holders,
                    decided.get(entry.exam_public_id, ()),
                ):
                    closed.add(i)
        if queue == "mine":
            positions: Sequence[int] = sorted(mine)
            total = len(positions)
        else:
            positions = snapshot.by_queue[base]
            total = len(positions) - len(closed)
        page: list[int] = []
        skipped = 0
        for i in positions:
            if i in closed:
                continue
            if skipped < offset:
                skipped += 1
                continue
            page.append(i)
            if len(page) == limit:
                break
        if queue == "mine":
            first = min((entries[i].received_at for i in positions), default=None)
        else:
            first = next(
                (entries[i].received_at for i in snapshot.by_arrival[base] if i not in closed),
                None,
            )
        items = tuple(
            _queue_item(
                entries[i],
                now,
                claimed_by_me=i in mine,
                decisions=len(decided.get(entries[i].exam_public_id, ())),
            )
            for i in page
        )
        return QueuePage(items, total, offset, limit, None if first is None else now - first)

    def _snapshot(self, now: datetime, policy: TriagePolicy) -> _Snapshot:
        if self.queue_snapshot_seconds <= 0:
            return self._take_snapshot(now, policy)
        cached = self._snapshot_cache
        usable = cached is not None and cached.policy is policy
        if usable and cached and time.monotonic() - cached.taken < self.queue_snapshot_seconds:
            return cached
        # One reader refreshes; meanwhile the others are served the snapshot just expired
        # rather than queue behind the refresh (without one, they wait for it).
        if not self._snapshot_lock.acquire(blocking=not usable):
            assert cached is not None
            return cached
        try:
            latest = self._snapshot_cache
            if (
                latest is not None
                and latest.policy is policy
                and time.monotonic() - latest.taken < self.queue_snapshot_seconds
            ):
                return latest
            generation = self._snapshot_generation
            snapshot = self._take_snapshot(now, policy)
            if generation == self._snapshot_generation:
                self._snapshot_cache = snapshot
            return snapshot
        finally:
            self._snapshot_lock.release()

    def _take_snapshot(self, now: datetime, policy: TriagePolicy) -> _Snapshot:
        taken = time.monotonic()
        entries = tuple(
            e for e in self.worklist(now, policy) if e.decision.mode is not ReadingMode.RULE_OUT
        )
        claims, decided = self._reading_state(now)
        return _Snapshot.build(taken, policy, entries, claims, decided)

    def _forget_snapshot(self) -> None:
        self._snapshot_generation += 1
        self._snapshot_cache = None

    def _reading_state(
        self, now: datetime
    ) -> tuple[dict[uuid.UUID, list[str]], dict[uuid.UUID, list[str]]]:
        """Active claims and first-round deciders per exam public id."""
        with self._session() as session:
            claims = session.execute(
                select(ExamRow.public_id, ClaimRow.reader)
                .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
                .join(ClaimRow, ClaimRow.assignment_id == AssignmentRow.id)
                .where(ClaimRow.expires_at > now)
            ).all()
            decided = session.execute(
                select(ExamRow.public_id, DecisionRow.reader)
                .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
                .join(DecisionRow, DecisionRow.assignment_id == AssignmentRow.id)
                .where(AssignmentRow.status != ReadingStatus.READ, DecisionRow.consensus.is_(False))
            ).all()
        by_claim: dict[uuid.UUID, list[str]] = {}
        for public_id, who in claims:
            by_claim.setdefault(public_id, []).append(who)
        by_decision: dict[uuid.UUID, list[str]] = {}
        for public_id, who in decided:
            by_decision.setdefault(public_id, []).append(who)
        return by_claim, by_decision

    # -- claims and decisions -------------------------------------------------------------

    @_drops_snapshot
    def claim_reading(
        self, exam_id: uuid.UUID, reader: str, now: datetime | None = None
    ) -> datetime:
        """Open ``exam_id`` for ``reader``; returns when the claim expires.

        Claiming an exam one already holds renews the claim.

        Raises
        ------
        NotFoundError
            No such exam on the reading lists.
        ConflictError
            Read already, ruled out, decided by this reader, or its slots held by others.
        """
        now = utcnow() if now is None else now
        with self._session() as session:
            assignment = self._locked_assignment(session, exam_id)
            claims = self._live_claims(session, assignment, now)
            decided = self._deciders(session, assignment)
            mine = next((c for c in claims if c.reader == reader), None)
            expires = now + self.reading_claim_timeout
            if mine is not None:
                mine.expires_at = expires
                return expires
            why = _why_closed(
                reader, assignment.mode, assignment.status, [c.reader for c in claims], decided
            )
            if why is not None:
                raise ConflictError(why)
            session.add(
                ClaimRow(
                    assignment_id=assignment.id, reader=reader, claimed_at=now, expires_at=expires
                )
            )
            if assignment.status is ReadingStatus.UNREAD:
                assignment.status = ReadingStatus.IN_PROGRESS
            return expires

    @_drops_snapshot
    def release_reading(self, exam_id: uuid.UUID, reader: str, now: datetime | None = None) -> None:
        """Give an exam back without deciding. Releasing what one does not hold is a no-op."""
        now = utcnow() if now is None else now
        with self._session() as session:
            assignment = self._locked_assignment(session, exam_id)
            session.execute(
                delete(ClaimRow).where(
                    ClaimRow.assignment_id == assignment.id, ClaimRow.reader == reader
                )
            )
            self._settle_unread(session, assignment, now)

    @_drops_snapshot
    def record_decision(
        self,
        exam_id: uuid.UUID,
        reader: str,
        *,
        recall: bool,
        birads: int | None = None,
        note: str | None = None,
        now: datetime | None = None,
    ) -> Outcome:
        """Record ``reader``'s decision on an exam they hold; returns where the exam now stands.

        Raises
        ------
        ConflictError
            The reader holds no live claim on the exam (never claimed, released, expired).
        ValueError
            BI-RADS outside 0-6.
        """
        if birads is not None and not (isinstance(birads, int) and 0 <= birads <= 6):
            raise ValueError(f"BI-RADS must be an integer 0-6, got {birads!r}")
        now = utcnow() if now is None else now
        with self._session() as session:
            assignment = self._locked_assignment(session, exam_id)
            claims = self._live_claims(session, assignment, now)
            if not any(c.reader == reader for c in claims):
                raise ConflictError("claim the exam before deciding (no live claim of yours)")
            consensus = assignment.status is ReadingStatus.CONSENSUS
            session.add(
                DecisionRow(
                    assignment_id=assignment.id,
                    reader=reader,
                    recall=recall,
                    birads=birads,
                    note=note or None,
                    decided_at=now,
                    consensus=consensus,
                )
            )
            session.execute(
                delete(ClaimRow).where(
                    ClaimRow.assignment_id == assignment.id, ClaimRow.reader == reader
                )
            )
            session.flush()
            needed = readers_needed(assignment.mode)
            if consensus:
                assignment.status = ReadingStatus.READ
                return Outcome(ReadingStatus.READ, needed, needed)
            recalls = (
                session.execute(
                    select(DecisionRow.recall).where(
                        DecisionRow.assignment_id == assignment.id, DecisionRow.consensus.is_(False)
                    )
                )
                .scalars()
                .all()
            )
            if len(recalls) >= needed:
                agree = len(set(recalls)) == 1
                assignment.status = ReadingStatus.READ if agree else ReadingStatus.CONSENSUS
            return Outcome(assignment.status, len(recalls), needed)

    # -- one exam -------------------------------------------------------------------------

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
        with self._session() as session:
            row = session.execute(
                select(ExamRow, AssignmentRow)
                .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
                .where(ExamRow.public_id == exam_id)
            ).one_or_none()
            if row is None:
                raise NotFoundError("no such exam on the reading lists")
            exam, assignment = row
            claims = self._live_claims(session, assignment, now)
            decisions = (
                session.execute(
                    select(DecisionRow)
                    .where(DecisionRow.assignment_id == assignment.id)
                    .order_by(DecisionRow.decided_at, DecisionRow.id)
                )
                .scalars()
                .all()
            )
            my_claim = next((c for c in claims if c.reader == reader), None)
            if (
                reader is not None
                and my_claim is None
                and all(d.reader != reader for d in decisions)
            ):
                held = [c.reader for c in claims]
                raise ForbiddenError(
                    "this exam is claimed by another reader"
                    if held
                    else "claim the exam to open it"
                )
            unblinded = assignment.status in (ReadingStatus.READ, ReadingStatus.CONSENSUS)
            visible = [d for d in decisions if reader is None or unblinded or d.reader == reader]
            score = (
                session.get(ScoreRow, assignment.score_id)
                if assignment.score_id is not None
                else None
            )
            images = (
                session.execute(
                    select(ImageRow).where(ImageRow.exam_id == exam.id).order_by(ImageRow.id)
                )
                .scalars()
                .all()
            )
            findings: Sequence[FindingRow] = (
                session.execute(
                    select(FindingRow)
                    .where(FindingRow.score_id == score.id)
                    .order_by(FindingRow.score.desc())
                )
                .scalars()
                .all()
                if score is not None
                else []
            )
            return ExamDetail(
                exam_id=exam.public_id,
                received_at=exam.received_at,
                status=assignment.status,
                mode=assignment.mode,
                priority=assignment.priority,
                rule=assignment.rule,
                policy_version=assignment.policy_version,
                partial=exam.partial,
                score=None if score is None else score.score,
                category=assignment.category,
                breasts=dict(score.breasts) if score is not None else {},
                model_name=None if score is None else score.model_name,
                model_sha256=None if score is None else score.model_sha256,
                report_sop_instance_uid=exam.report_sop_instance_uid,
                report_location=exam.report_location,
                images=tuple(
                    ExamImage(
                        im.sop_instance_uid,
                        im.laterality.value,
                        im.view.value,
                        im.usable,
                        im.reason,
                        im.rows,
                        im.columns,
                        im.thumbnail,
                    )
                    for im in images
                ),
                findings=tuple(
                    ExamFinding(f.sop_instance_uid, (f.x0, f.y0, f.x1, f.y1), f.score)
                    for f in findings
                ),
                decisions=tuple(
                    Decision(d.reader, d.recall, d.birads, d.note, d.decided_at, d.consensus)
                    for d in visible
                ),
                claim_expires_at=None if my_claim is None else my_claim.expires_at,
            )

    # -- statistics -----------------------------------------------------------------------

    def queue_stats(self, now: datetime, policy: TriagePolicy) -> dict[str, Any]:
        """Counts per band and queue, waiting times and throughput, for the admin page."""
        page = self.reader_queue(None, now, policy, limit=10**9)
        items = page.items
        waits = sorted(item.waiting.total_seconds() for item in items)
        per_category = {str(c): 0 for c in range(1, 11)}
        for item in items:
            if item.category is not None:
                per_category[str(item.category)] += 1
        day = now - timedelta(days=1)
        with self._session() as session:
            decided = session.execute(
                select(func.count()).select_from(DecisionRow).where(DecisionRow.decided_at >= day)
            ).scalar_one()
            read = session.execute(
                select(func.count())
                .select_from(AssignmentRow)
                .where(AssignmentRow.status == ReadingStatus.READ)
            ).scalar_one()
            received = session.execute(
                select(func.count()).select_from(ExamRow).where(ExamRow.received_at >= day)
            ).scalar_one()
        return {
            "waiting": len(items),
            "by_queue": {
                "single": sum(i.mode is ReadingMode.SINGLE for i in items),
                "double": sum(i.mode is ReadingMode.DOUBLE for i in items),
                "priority": sum(i.priority for i in items),
                "consensus": sum(i.status is ReadingStatus.CONSENSUS for i in items),
                "overdue": sum(i.overdue for i in items),
                "unscored": sum(i.category is None for i in items),
            },
            "by_category": per_category,
            "waiting_seconds": {
                "median": statistics.median(waits) if waits else None,
                "max": waits[-1] if waits else None,
            },
            "throughput_24h": {"decisions": int(decided), "exams_received": int(received)},
            "read_total": int(read),
        }

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _locked_assignment(session: Session, exam_id: uuid.UUID) -> AssignmentRow:
        assignment = session.execute(
            select(AssignmentRow)
            .join(ExamRow, ExamRow.id == AssignmentRow.exam_id)
            .where(ExamRow.public_id == exam_id)
            .with_for_update(of=AssignmentRow)
        ).scalar_one_or_none()
        if assignment is None:
            raise NotFoundError("no such exam on the reading lists")
        return assignment

    @staticmethod
    def _live_claims(session: Session, assignment: AssignmentRow, now: datetime) -> list[ClaimRow]:
        """The exam's live claims; expired ones are deleted on the way (abandoned)."""
        session.execute(
            delete(ClaimRow).where(
                ClaimRow.assignment_id == assignment.id, ClaimRow.expires_at <= now
            )
        )
        return list(
            session.execute(
                select(ClaimRow).where(ClaimRow.assignment_id == assignment.id)
            ).scalars()
        )

    @staticmethod
    def _deciders(session: Session, assignment: AssignmentRow) -> list[str]:
        return list(
            session.execute(
                select(DecisionRow.reader).where(
                    DecisionRow.assignment_id == assignment.id, DecisionRow.consensus.is_(False)
                )
            ).scalars()
        )

    def _settle_unread(self, session: Session, assignment: AssignmentRow, now: datetime) -> None:
        if assignment.status is not ReadingStatus.IN_PROGRESS:
            return
        if not self._live_claims(session, assignment, now) and not self._deciders(
            session, assignment
        ):
            assignment.status = ReadingStatus.UNREAD


def _queue_item(entry: Any, now: datetime, *, claimed_by_me: bool, decisions: int) -> QueueItem:
    return QueueItem(
        exam_id=entry.exam_public_id,
        received_at=entry.received_at,
        waiting=now - entry.received_at,
        score=entry.score,
        category=entry.category,
        mode=entry.decision.mode,
        priority=entry.decision.priority,
        overdue=entry.order.tier is QueueTier.OVERDUE,
        rule=entry.decision.rule,
        status=entry.reading_status,
        partial=entry.partial,
        decisions=decisions,
        readers_needed=readers_needed(entry.decision.mode),
        claimed_by_me=claimed_by_me,
    )


def _why_closed(
    reader: str,
    mode: ReadingMode,
    status: ReadingStatus,
    others: Sequence[str],
    decided: Sequence[str],
) -> str | None:
    """Why ``reader`` may not claim the exam now, or None when they may."""
    if status is ReadingStatus.READ:
        return "the exam has been read"
    if mode is ReadingMode.RULE_OUT:
        return "the policy ruled this exam out: no reader"
    if status is ReadingStatus.CONSENSUS:
        return "another reader holds the consensus reading" if others else None
    if reader in decided:
        return "you have read this exam already; the second reading is another reader's"
    if len(others) + len(decided) >= readers_needed(mode):
        return "this exam is claimed by another reader"
    return None


def _open_to(
    reader: str,
    mode: ReadingMode,
    status: ReadingStatus,
    claims: Sequence[str],
    decided: Sequence[str],
) -> bool:
    others = [c for c in claims if c != reader]
    return _why_closed(reader, mode, status, others, decided) is None


def _in_queue(queue: str, entry: Any, status: ReadingStatus, mine: bool) -> bool:
    if queue == "all":
        return True
    if queue == "mine":
        return mine
    if queue == "consensus":
        return status is ReadingStatus.CONSENSUS
    if queue == "priority":
        return bool(entry.decision.priority)
    mode = entry.decision.mode
    return (queue == "single" and mode is ReadingMode.SINGLE) or (
        queue == "double" and mode is ReadingMode.DOUBLE
    )


__all__ = [
    "DEFAULT_READING_CLAIM_TIMEOUT",
    "QUEUES",
    "Decision",
    "ExamDetail",
    "ExamFinding",
    "ExamImage",
    "Outcome",
    "Queue",
    "QueueItem",
    "QueuePage",
    "ReadingDesk",
    "readers_needed",
]
