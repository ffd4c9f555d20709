"""Claims: a reader opens an exam for a while, renews it, gives it back; abandoned claims
expire. Every function here runs inside the caller's transaction, holding the exam's
assignment row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so
two readers racing for the last slot cannot both get it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mammotriage.errors import ConflictError, NotFoundError
from mammotriage.triage.policy import ConsensusMode
from mammotriage.worklist.models import (
    AssignmentRow,
    ClaimRow,
    DecisionRow,
    ExamRow,
    ReadingStatus,
)
from mammotriage.worklist.rules import why_closed

DEFAULT_READING_CLAIM_TIMEOUT = timedelta(minutes=20)


def claim(
    session: Session,
    exam_id: uuid.UUID,
    reader: str,
    now: datetime,
    timeout: timedelta,
    consensus: ConsensusMode,
) -> datetime:
    """Open ``exam_id`` for ``reader`` until ``now + timeout`` (a claim held is renewed).

    ``consensus`` (the policy's) says who may claim an exam in consensus.

    Raises
    ------
    NotFoundError
        No such exam on the reading lists.
    ConflictError
        Read already, ruled out, decided by this reader, its slots held by others, or in
        consensus and not this reader's to decide (the message says why).
    """
    assignment = locked_assignment(session, exam_id)
    claims = live_claims(session, assignment, now)
    expires = now + timeout
    mine = next((c for c in claims if c.reader == reader), None)
    if mine is not None:
        mine.expires_at = expires
        return expires
    others = [c.reader for c in claims]
    why = why_closed(
        reader,
        assignment.mode,
        assignment.status,
        others,
        deciders(session, assignment),
        consensus=consensus,
    )
    if why is not None:
        raise ConflictError(why)
    session.add(
        ClaimRow(assignment_id=assignment.id, reader=reader, claimed_at=now, expires_at=expires)
    )
    if assignment.status is ReadingStatus.UNREAD:
        assignment.status = ReadingStatus.IN_PROGRESS
    return expires


def release(session: Session, exam_id: uuid.UUID, reader: str, now: datetime) -> None:
    """Give an exam back without deciding; an exam nobody holds or decided is unread again."""
    assignment = locked_assignment(session, exam_id)
    drop_claim(session, assignment, reader)
    if assignment.status is not ReadingStatus.IN_PROGRESS:
        return
    if not live_claims(session, assignment, now) and not deciders(session, assignment):
        assignment.status = ReadingStatus.UNREAD


def locked_assignment(session: Session, exam_id: uuid.UUID) -> AssignmentRow:
    """The exam's assignment row, locked until the transaction ends.

    Raises
    ------
    NotFoundError
        No such exam on the reading lists.
    """
    assignment = session.execute(
        select(AssignmentRow)
        .join(ExamRow, ExamRow.id == AssignmentRow.exam_id)
        .where(ExamRow.public_id == exam_id)
        .with_for_update(of=AssignmentRow)
    ).scalar_one_or_none()
    if assignment is None:
        raise NotFoundError("no such exam on the reading lists")
    return assignment


def live_claims(session: Session, assignment: AssignmentRow, now: datetime) -> list[ClaimRow]:
    """The exam's live claims; expired ones are deleted on the way (abandoned)."""
    session.execute(
        delete(ClaimRow).where(ClaimRow.assignment_id == assignment.id, ClaimRow.expires_at <= now)
    )
    return list(
        session.execute(select(ClaimRow).where(ClaimRow.assignment_id == assignment.id)).scalars()
    )


def drop_claim(session: Session, assignment: AssignmentRow, reader: str) -> None:
    session.execute(
        delete(ClaimRow).where(ClaimRow.assignment_id == assignment.id, ClaimRow.reader == reader)
    )


def deciders(session: Session, assignment: AssignmentRow) -> list[str]:
    """Who made the exam's first-round decisions (not the consensus ones), first first."""
    return list(
        session.execute(
            select(DecisionRow.reader)
            .where(DecisionRow.assignment_id == assignment.id, DecisionRow.consensus.is_(False))
            .order_by(DecisionRow.id)
        ).scalars()
    )


__all__ = [
    "DEFAULT_READING_CLAIM_TIMEOUT",
    "claim",
    "deciders",
    "drop_claim",
    "live_claims",
    "locked_assignment",
    "release",
]
