"""The worklist: every exam waiting for its reading, in the policy's reading order.

The order is triage's (:func:`mammotriage.triage.queue.sort_key`); this module only reads
the rows it needs, as plain columns: it runs for every waiting exam on every refresh.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mammotriage.timeutil import require_aware
from mammotriage.triage.policy import TriageDecision, TriagePolicy
from mammotriage.triage.queue import OrderKey, sort_key
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import (
    AssignmentRow,
    ExamRow,
    ReadingStatus,
    ScoreRow,
)


@dataclass(frozen=True)
class WorklistEntry:
    """One exam waiting for its reading, with the decision triage made and its sort key."""

    exam_public_id: uuid.UUID
    study_instance_uid: str
    received_at: datetime
    partial: bool
    score: float | None
    category: int | None
    decision: TriageDecision
    reading_status: ReadingStatus
    order: OrderKey


def ordered_worklist(db: Database, now: datetime, policy: TriagePolicy) -> list[WorklistEntry]:
    """Exams not yet read, in reading order at ``now`` (:func:`mammotriage.triage.order_key`).

    An exam without a score (no image could be scored) has no category: it keeps the tier
    its decision gives it (overdue, priority or routine) and sorts after every scored exam
    of that tier.

    Raises
    ------
    ConfigError
        If ``now`` is naive.
    """
    require_aware("now", now)
    # Plain columns, not ORM entities: this runs for every waiting exam, and loading
    # two mapped objects per row costs more than ordering them.
    query = (
        select(
            ExamRow.public_id,
            ExamRow.study_instance_uid,
            ExamRow.received_at,
            ExamRow.partial,
            AssignmentRow.mode,
            AssignmentRow.priority,
            AssignmentRow.rule,
            AssignmentRow.policy_version,
            AssignmentRow.rule_code,
            AssignmentRow.category,
            AssignmentRow.status,
            ScoreRow.score,
        )
        .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .outerjoin(ScoreRow, ScoreRow.id == AssignmentRow.score_id)
        .where(AssignmentRow.status != ReadingStatus.READ)
    )
    with db.session() as session:
        rows = session.execute(query).all()
    entries = [_entry(row, now, policy) for row in rows]
    return sorted(entries, key=lambda entry: entry.order)


def _entry(row: Any, now: datetime, policy: TriagePolicy) -> WorklistEntry:
    """One waiting exam from a row of :func:`ordered_worklist`'s query."""
    (
        public_id,
        study_instance_uid,
        received_at,
        partial,
        mode,
        priority,
        rule,
        policy_version,
        rule_code,
        category,
        status,
        score,
    ) = row  # unpacked once: named access on a Row costs more, for every waiting exam
    exam_id = str(public_id)
    decision = TriageDecision(exam_id, mode, priority, rule, policy_version, rule_code)
    # Without a score the exam has no category: it sorts after the scored exams of its tier.
    ranked = category if score is not None else None
    return WorklistEntry(
        exam_public_id=public_id,
        study_instance_uid=study_instance_uid,
        received_at=received_at,
        partial=partial,
        score=score,
        category=category,
        decision=decision,
        reading_status=status,
        order=sort_key(decision, ranked, received_at, exam_id, now, policy),
    )


__all__ = ["WorklistEntry", "ordered_worklist"]
