"""Queue statistics for the people running the service: counts per queue and category,
waiting times and the last day's throughput."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from mammotriage.category import CATEGORIES
from mammotriage.triage.policy import ReadingMode
from mammotriage.worklist.models import AssignmentRow, DecisionRow, ExamRow, ReadingStatus
from mammotriage.worklist.queues import QueueItem


@dataclass(frozen=True)
class QueueCounts:
    """Waiting exams per queue (an exam may count in several)."""

    single: int
    double: int
    priority: int
    consensus: int
    overdue: int
    unscored: int

    def by_name(self) -> dict[str, int]:
        """The counts by queue name, in the order above."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class WaitingSeconds:
    """How long the waiting exams have waited; None when none waits."""

    median: float | None
    max: float | None


@dataclass(frozen=True)
class Throughput:
    decisions: int
    exams_received: int


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    by_queue: QueueCounts
    #: Waiting exams per AI category, every category 1-10 present (lowest first).
    by_category: dict[int, int]
    waiting_seconds: WaitingSeconds
    #: Over the last 24 hours.
    throughput_24h: Throughput
    read_total: int


def queue_stats(session: Session, items: Sequence[QueueItem], now: datetime) -> QueueStats:
    """The statistics of the waiting ``items`` (every exam waiting), and of the last day."""
    waits = sorted(item.waiting.total_seconds() for item in items)
    per_category = dict.fromkeys(CATEGORIES, 0)
    for item in items:
        if item.category is not None:
            per_category[item.category] += 1
    return QueueStats(
        waiting=len(items),
        by_queue=QueueCounts(
            single=sum(i.mode is ReadingMode.SINGLE for i in items),
            double=sum(i.mode is ReadingMode.DOUBLE for i in items),
            priority=sum(i.priority for i in items),
            consensus=sum(i.status is ReadingStatus.CONSENSUS for i in items),
            overdue=sum(i.overdue for i in items),
            unscored=sum(i.category is None for i in items),
        ),
        by_category=per_category,
        waiting_seconds=WaitingSeconds(
            median=statistics.median(waits) if waits else None,
            max=waits[-1] if waits else None,
        ),
        throughput_24h=_throughput(session, now - timedelta(days=1)),
        read_total=_count(
            session,
            select(func.count())
            .select_from(AssignmentRow)
            .where(AssignmentRow.status == ReadingStatus.READ),
        ),
    )


def _throughput(session: Session, since: datetime) -> Throughput:
    return Throughput(
        decisions=_count(
            session,
            select(func.count()).select_from(DecisionRow).where(DecisionRow.decided_at >= since),
        ),
        exams_received=_count(
            session,
            select(func.count()).select_from(ExamRow).where(ExamRow.received_at >= since),
        ),
    )


def _count(session: Session, query: Select[int]) -> int:
    return int(session.execute(query).scalar_one())


__all__ = ["QueueCounts", "QueueStats", "Throughput", "WaitingSeconds", "queue_stats"]
