"""The readers' queues: which waiting exams each queue holds, and one exam as a queue shows it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from mammotriage.triage.policy import ReadingMode
from mammotriage.triage.queue import QueueTier
from mammotriage.worklist.models import ReadingStatus
from mammotriage.worklist.order import WorklistEntry


class ReadingQueue(str, enum.Enum):
    """A view of the exams waiting for a reading (the tabs of the reading page, in order)."""

    ALL = "all"
    SINGLE = "single"
    DOUBLE = "double"
    PRIORITY = "priority"
    CONSENSUS = "consensus"
    #: The exams the reader holds a claim on (of every queue).
    MINE = "mine"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value: str) -> ReadingQueue:
        """The queue named ``value``.

        Raises
        ------
        ValueError
            If no queue has that name.
        """
        try:
            return cls(value)
        except ValueError:
            names = tuple(q.value for q in cls)
            raise ValueError(f"queue must be one of {names}, got {value!r}") from None

    @property
    def base(self) -> ReadingQueue:
        """The queue whose exams this one filters: "mine" is the reader's part of "all"."""
        return ReadingQueue.ALL if self is ReadingQueue.MINE else self


#: The queues whose exams are known without knowing the reader ("mine" is not one).
SHARED_QUEUES = tuple(q for q in ReadingQueue if q is not ReadingQueue.MINE)


def in_queue(queue: ReadingQueue, entry: WorklistEntry) -> bool:
    """Whether a waiting exam belongs to one of the :data:`SHARED_QUEUES`."""
    if queue is ReadingQueue.ALL:
        return True
    if queue is ReadingQueue.CONSENSUS:
        return entry.reading_status is ReadingStatus.CONSENSUS
    if queue is ReadingQueue.PRIORITY:
        return bool(entry.decision.priority)
    mode = entry.decision.mode
    return (queue is ReadingQueue.SINGLE and mode is ReadingMode.SINGLE) or (
        queue is ReadingQueue.DOUBLE and mode is ReadingMode.DOUBLE
    )


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

    @classmethod
    def of(
        cls, entry: WorklistEntry, now: datetime, *, claimed_by_me: bool, decisions: int
    ) -> QueueItem:
        return cls(
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
            readers_needed=entry.decision.mode.reads,
            claimed_by_me=claimed_by_me,
        )


@dataclass(frozen=True)
class QueuePage:
    items: tuple[QueueItem, ...]
    total: int
    offset: int
    limit: int
    #: Waiting time of the longest-waiting exam of the whole queue (not only this page).
    oldest_waiting: timedelta | None


__all__ = ["SHARED_QUEUES", "QueueItem", "QueuePage", "ReadingQueue", "in_queue"]
