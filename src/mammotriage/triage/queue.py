"""Reading order of the worklist: the most suspicious first, but no exam waits for ever.

Ordering alone would starve the low categories on a busy day: there is always another
category-9 exam. So an exam that has waited longer than the policy's ``max_wait_days``
rises above everything else, priority included ("past a maximum wait any exam rises to the
top"); among overdue exams the oldest goes first. Otherwise priority exams come first, then
higher categories, then the longer wait. Ruled-out exams have no reader: they stay on the
list (an exam is never lost) but sort last and are never overdue.

Pure functions of (decision, exam, now, policy): the worklist store calls them; nothing here
reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import NamedTuple

from mammotriage.errors import ConfigError
from mammotriage.timeutil import require_aware
from mammotriage.triage.policy import ExamForTriage, ReadingMode, TriageDecision, TriagePolicy


class QueueTier(IntEnum):
    """The coarse position of an exam on the worklist; lower values are read first."""

    OVERDUE = 0
    PRIORITY = 1
    ROUTINE = 2
    NO_READER = 3


class OrderKey(NamedTuple):
    """Sort key of one exam; compares as a tuple, smallest first."""

    tier: QueueTier
    #: ``-category`` for priority and routine exams (high categories first); 0 for overdue and
    #: ruled-out exams, which are ordered by waiting time alone.
    category_rank: int
    #: Earlier arrivals first within the same tier and category rank.
    received_at: datetime
    #: Last tie-break, so that the order never depends on the input order.
    exam_id: str


@dataclass(frozen=True)
class WorklistItem:
    """One exam on the worklist with the decision triage made for it."""

    decision: TriageDecision
    exam: ExamForTriage

    def __post_init__(self) -> None:
        if self.decision.exam_id != self.exam.exam_id:
            raise ConfigError(
                f"worklist item pairs decision for exam {self.decision.exam_id!r} "
                f"with exam {self.exam.exam_id!r}"
            )


def _check_now(now: datetime) -> None:
    require_aware("now", now)


def waiting_time(exam: ExamForTriage, now: datetime) -> timedelta:
    """How long ``exam`` has waited at ``now`` (negative if it arrived 'after' now: clock skew)."""
    _check_now(now)
    return now - exam.received_at


def is_overdue(
    decision: TriageDecision, exam: ExamForTriage, now: datetime, policy: TriagePolicy
) -> bool:
    """True when an exam that needs a reader has waited strictly longer than ``max_wait_days``."""
    if decision.mode is ReadingMode.RULE_OUT:
        return False
    return waiting_time(exam, now) > timedelta(days=policy.max_wait_days)


def order_key(
    decision: TriageDecision, exam: ExamForTriage, now: datetime, policy: TriagePolicy
) -> OrderKey:
    """The sort key of one exam at ``now``: overdue, then priority, category, oldest.

    Raises
    ------
    ConfigError
        If ``now`` is naive or ``decision`` belongs to another exam.
    """
    if decision.exam_id != exam.exam_id:
        raise ConfigError(
            f"order_key got decision for exam {decision.exam_id!r} with exam {exam.exam_id!r}"
        )
    _check_now(now)
    return sort_key(decision, exam.category, exam.received_at, exam.exam_id, now, policy)


def sort_key(
    decision: TriageDecision,
    category: int | None,
    received_at: datetime,
    exam_id: str,
    now: datetime,
    policy: TriagePolicy,
) -> OrderKey:
    """:func:`order_key` from the exam's parts, unchecked (the worklist store calls it per row).

    ``category`` None (an exam no image of which could be scored) keeps the tier its decision
    gives it and sorts after every scored exam of that tier.
    """
    if decision.mode is ReadingMode.RULE_OUT:
        return OrderKey(QueueTier.NO_READER, 0, received_at, exam_id)
    if now - received_at > timedelta(days=policy.max_wait_days):
        return OrderKey(QueueTier.OVERDUE, 0, received_at, exam_id)
    tier = QueueTier.PRIORITY if decision.priority else QueueTier.ROUTINE
    return OrderKey(tier, 0 if category is None else -category, received_at, exam_id)


def order_worklist(
    items: Iterable[WorklistItem], now: datetime, policy: TriagePolicy
) -> list[WorklistItem]:
    """Return ``items`` in reading order at ``now`` (a new list; every item kept).

    Raises
    ------
    ConfigError
        If ``now`` is naive.
    """
    _check_now(now)
    return sorted(items, key=lambda item: order_key(item.decision, item.exam, now, policy))
