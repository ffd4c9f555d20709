"""Decisions: a reader's recall / no recall on an exam they hold, and where it leaves the exam.

Single reading ends with one decision; double reading with two, by two readers: if they
disagree on recall the exam goes to consensus, where one more decision ends it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mammotriage.errors import ConflictError
from mammotriage.worklist.claims import drop_claim, live_claims, locked_assignment
from mammotriage.worklist.models import AssignmentRow, DecisionRow, ReadingStatus

#: BI-RADS assessment categories.
BIRADS = range(0, 7)


@dataclass(frozen=True)
class Decision:
    reader: str
    recall: bool
    birads: int | None
    note: str | None
    decided_at: datetime
    consensus: bool


@dataclass(frozen=True)
class Outcome:
    """What a decision did to the exam."""

    status: ReadingStatus
    decisions: int
    readers_needed: int


def check_birads(birads: int | None) -> None:
    """Raises ValueError for a BI-RADS other than None or an integer 0-6."""
    if birads is not None and not (isinstance(birads, int) and birads in BIRADS):
        raise ValueError(f"BI-RADS must be an integer 0-6, got {birads!r}")


def record(
    session: Session,
    exam_id: uuid.UUID,
    reader: str,
    *,
    recall: bool,
    birads: int | None,
    note: str | None,
    now: datetime,
) -> Outcome:
    """Record ``reader``'s decision on an exam they hold; their claim ends with it.

    Raises
    ------
    ConflictError
        The reader holds no live claim on the exam (never claimed, released, expired).
    """
    assignment = locked_assignment(session, exam_id)
    if not any(c.reader == reader for c in live_claims(session, assignment, now)):
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
    drop_claim(session, assignment, reader)
    session.flush()
    needed = assignment.mode.reads
    if consensus:
        assignment.status = ReadingStatus.READ
        return Outcome(ReadingStatus.READ, needed, needed)
    recalls = _first_round_recalls(session, assignment)
    if len(recalls) >= needed:
        agree = len(set(recalls)) == 1
        assignment.status = ReadingStatus.READ if agree else ReadingStatus.CONSENSUS
    return Outcome(assignment.status, len(recalls), needed)


def _first_round_recalls(session: Session, assignment: AssignmentRow) -> list[bool]:
    return list(
        session.execute(
            select(DecisionRow.recall).where(
                DecisionRow.assignment_id == assignment.id, DecisionRow.consensus.is_(False)
            )
        ).scalars()
    )


__all__ = ["BIRADS", "Decision", "Outcome", "check_birads", "record"]
