"""The queue snapshot: the ordered worklist and who holds or decided what, as of one moment,
indexed so that every reader's page is cut from it cheaply (and, under load, shared).

Ordering the whole queue is the expensive part of a reader's request; every reader filters
the same snapshot. Per queue it keeps the positions of its exams in reading order, the same
by arrival (for the oldest), and the positions of touched exams (claimed, decided, in
consensus): only those need the per-reader rules.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from mammotriage.triage.policy import TriagePolicy
from mammotriage.worklist.models import AssignmentRow, ClaimRow, DecisionRow, ExamRow, ReadingStatus
from mammotriage.worklist.order import WorklistEntry
from mammotriage.worklist.queues import (
    SHARED_QUEUES,
    QueueItem,
    QueuePage,
    ReadingQueue,
    in_queue,
)
from mammotriage.worklist.rules import open_to

#: Readers per exam public id (live claims, or first-round decisions).
Readers = dict[uuid.UUID, list[str]]


@dataclass(frozen=True)
class Snapshot:
    """The ordered queue and who holds or decided what, as of one moment (see the module)."""

    taken: float
    policy: TriagePolicy
    entries: tuple[WorklistEntry, ...]
    claims: Readers
    decided: Readers
    by_queue: dict[ReadingQueue, tuple[int, ...]]
    by_arrival: dict[ReadingQueue, tuple[int, ...]]
    touched: dict[ReadingQueue, tuple[int, ...]]

    @classmethod
    def build(
        cls,
        taken: float,
        policy: TriagePolicy,
        entries: tuple[WorklistEntry, ...],
        claims: Readers,
        decided: Readers,
    ) -> Snapshot:
        by_queue: dict[ReadingQueue, list[int]] = {q: [] for q in SHARED_QUEUES}
        for i, entry in enumerate(entries):
            for q in by_queue:
                if in_queue(q, entry):
                    by_queue[q].append(i)

        def is_touched(i: int) -> bool:
            e = entries[i]
            return (
                e.exam_public_id in claims
                or e.exam_public_id in decided
                or e.reading_status is not ReadingStatus.UNREAD
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

    def page(
        self,
        reader: str | None,
        now: datetime,
        queue: ReadingQueue,
        *,
        offset: int,
        limit: int,
    ) -> QueuePage:
        """What ``reader`` (None: anyone looking) sees of ``queue`` from ``offset``."""
        base = queue.base
        closed, mine = self._closed_and_held(reader, base)
        if queue is ReadingQueue.MINE:
            positions: Sequence[int] = sorted(mine)
            total = len(positions)
            first = min((self.entries[i].received_at for i in positions), default=None)
        else:
            positions = self.by_queue[base]
            total = len(positions) - len(closed)
            first = next(
                (self.entries[i].received_at for i in self.by_arrival[base] if i not in closed),
                None,
            )
        open_positions = (i for i in positions if i not in closed)
        page = list(islice(open_positions, offset, offset + limit))
        items = tuple(
            QueueItem.of(
                self.entries[i],
                now,
                claimed_by_me=i in mine,
                decisions=len(self.decided.get(self.entries[i].exam_public_id, ())),
            )
            for i in page
        )
        return QueuePage(items, total, offset, limit, None if first is None else now - first)

    def _closed_and_held(self, reader: str | None, base: ReadingQueue) -> tuple[set[int], set[int]]:
        """Of the touched exams, which ``reader`` may not take (the others all may) and which
        they hold; untouched exams are open to every reader."""
        closed: set[int] = set()
        mine: set[int] = set()
        if reader is None:
            return closed, mine
        for i in self.touched[base]:
            entry = self.entries[i]
            holders = self.claims.get(entry.exam_public_id, ())
            if reader in holders:
                mine.add(i)
            elif not open_to(
                reader,
                entry.decision.mode,
                entry.reading_status,
                holders,
                self.decided.get(entry.exam_public_id, ()),
                consensus=self.policy.consensus,
            ):
                closed.add(i)
        return closed, mine


class QueueSnapshots:
    """One snapshot kept ``seconds`` and shared by every reader's request (0: none kept).

    This process's own changes drop it at once (:meth:`forget`); what other processes (the
    worker, another service) change shows within ``seconds``. Each store has its own.
    """

    def __init__(self, take: Callable[[datetime, TriagePolicy], Snapshot]) -> None:
        self.seconds = 0.0
        self._take = take
        self._cache: Snapshot | None = None
        #: Bumped by every change this process makes: a snapshot begun before it is not kept.
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, now: datetime, policy: TriagePolicy) -> Snapshot:
        if self.seconds <= 0:
            return self._take(now, policy)
        cached = self._cache
        usable = cached is not None and cached.policy is policy
        if usable and cached and self._fresh(cached):
            return cached
        # One reader refreshes; meanwhile the others are served the snapshot just expired
        # rather than queue behind the refresh (without one, they wait for it).
        if not self._lock.acquire(blocking=not usable):
            assert cached is not None
            return cached
        try:
            latest = self._cache
            if latest is not None and latest.policy is policy and self._fresh(latest):
                return latest
            generation = self._generation
            snapshot = self._take(now, policy)
            if generation == self._generation:
                self._cache = snapshot
            return snapshot
        finally:
            self._lock.release()

    def forget(self) -> None:
        self._generation += 1
        self._cache = None

    def _fresh(self, snapshot: Snapshot) -> bool:
        return time.monotonic() - snapshot.taken < self.seconds


def reading_state(session: Session, now: datetime) -> tuple[Readers, Readers]:
    """Live claims and first-round deciders per exam public id."""
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
    by_claim: Readers = {}
    for public_id, who in claims:
        by_claim.setdefault(public_id, []).append(who)
    by_decision: Readers = {}
    for public_id, who in decided:
        by_decision.setdefault(public_id, []).append(who)
    return by_claim, by_decision


__all__ = ["QueueSnapshots", "Readers", "Snapshot", "reading_state"]
