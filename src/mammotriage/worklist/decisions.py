"""Decisions: a reader's recall / no recall on an exam they hold, and where it leaves the exam.

A screening decision is an :class:`ScreeningOutcome` (no recall, recall for assessment,
technical recall), the site's decision category that gave it (a code, e.g. ``recall``) and
the reasons chosen (codes, e.g. ``mass``); the site configures the categories and reasons
(the reading service's ``decision_categories``). Whether two readers agree is decided on
recall alone: no recall against either recall is a disagreement; recall for assessment
against technical recall is not (both call the woman back, and both decisions are kept).

Single reading ends with one decision; double reading with two, by two readers: if they
disagree on recall the exam goes to consensus, which the policy's consensus mode ends: one
arbitrator's or first reader's decision, or both first readers' agreeing decisions. A reader
has one consensus decision per exam (the unique constraint on decisions): deciding again,
after a disagreeing pair, replaces it, so each reader's latest consensus decision counts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from mammotriage.errors import ConflictError
from mammotriage.triage.policy import ConsensusMode
from mammotriage.worklist.claims import deciders, drop_claim, live_claims, locked_assignment
from mammotriage.worklist.models import AssignmentRow, DecisionRow, ReadingStatus
from mammotriage.worklist.rules import consensus_closes, why_not_consensus_reader

#: BI-RADS assessment categories (the JSON API's optional field; the screening form offers
#: the site's decision categories instead).
BIRADS = range(0, 7)
#: Longest decision category or reason code stored.
CODE_LENGTH = 40


class ScreeningOutcome(str, Enum):
    """What a screening reading decides for the woman."""

    NO_RECALL = "no-recall"
    RECALL = "recall"
    #: Called back for repeat images (inadequate ones), not for assessment.
    TECHNICAL_RECALL = "technical-recall"

    @property
    def recall(self) -> bool:
        """Whether she is called back: what two readers' agreement is decided on."""
        return self is not ScreeningOutcome.NO_RECALL


@dataclass(frozen=True)
class Decision:
    reader: str
    recall: bool
    birads: int | None
    note: str | None
    decided_at: datetime
    consensus: bool
    #: The outcome, decision category and reason codes chosen (None / empty: a decision
    #: recorded before categories, or through the API's plain ``recall``).
    outcome: ScreeningOutcome | None = None
    category: str | None = None
    reasons: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    """What a decision did to the exam.

    For a consensus decision: the consensus decisions that count so far and how many the
    policy's consensus mode needs (:attr:`ConsensusMode.reads`).
    """

    status: ReadingStatus
    decisions: int
    readers_needed: int


def check_birads(birads: int | None) -> None:
    """Raises ValueError for a BI-RADS other than None or an integer 0-6."""
    if birads is not None and not (isinstance(birads, int) and birads in BIRADS):
        raise ValueError(f"BI-RADS must be an integer 0-6, got {birads!r}")


def check_choice(
    recall: bool, outcome: ScreeningOutcome | None, category: str | None, reasons: Sequence[str]
) -> None:
    """Raises ValueError for an outcome that contradicts ``recall``, reasons without a
    category, or a code that is empty or longer than :data:`CODE_LENGTH`."""
    if outcome is not None and outcome.recall != recall:
        raise ValueError(f"outcome {outcome.value} contradicts recall={recall}")
    if reasons and category is None:
        raise ValueError("reasons need a decision category")
    for code in (category, *reasons):
        if code is not None and not 0 < len(code) <= CODE_LENGTH:
            raise ValueError(f"a decision code must be 1-{CODE_LENGTH} characters, got {code!r}")


def stored_reasons(reasons: Sequence[str]) -> str | None:
    """The reason codes as the decisions table keeps them (a JSON list; None: none)."""
    return json.dumps(list(reasons)) if reasons else None


def loaded_reasons(stored: str | None) -> tuple[str, ...]:
    """:func:`stored_reasons` read back."""
    return tuple(json.loads(stored)) if stored else ()


def record(
    session: Session,
    exam_id: uuid.UUID,
    reader: str,
    *,
    recall: bool,
    birads: int | None,
    note: str | None,
    now: datetime,
    consensus: ConsensusMode,
    outcome: ScreeningOutcome | None = None,
    category: str | None = None,
    reasons: Sequence[str] = (),
) -> Outcome:
    """Record ``reader``'s decision on an exam they hold; their claim ends with it.

    ``consensus`` (the policy's) decides who may record a consensus decision and when it
    ends the consensus; it is checked again here, for a claim taken under another policy.
    ``outcome``, ``category`` and ``reasons`` are stored as chosen (the caller checked them
    against the site's categories); agreement is decided on ``recall``.

    Raises
    ------
    ConflictError
        The reader holds no live claim on the exam (never claimed, released, expired), or
        the exam is in consensus and not theirs to decide.
    """
    assignment = locked_assignment(session, exam_id)
    if not any(c.reader == reader for c in live_claims(session, assignment, now)):
        raise ConflictError("claim the exam before deciding (no live claim of yours)")
    chosen = {
        "outcome": None if outcome is None else outcome.value,
        "category": category,
        "reasons": stored_reasons(reasons),
    }
    if assignment.status is ReadingStatus.CONSENSUS:
        return _record_consensus(
            session, assignment, reader, recall, birads, note or None, now, consensus, chosen
        )
    session.add(
        DecisionRow(
            assignment_id=assignment.id,
            reader=reader,
            recall=recall,
            birads=birads,
            note=note or None,
            decided_at=now,
            consensus=False,
            **chosen,
        )
    )
    drop_claim(session, assignment, reader)
    session.flush()
    needed = assignment.mode.reads
    recalls = _first_round_recalls(session, assignment)
    if len(recalls) >= needed:
        agree = len(set(recalls)) == 1
        assignment.status = ReadingStatus.READ if agree else ReadingStatus.CONSENSUS
    return Outcome(assignment.status, len(recalls), needed)


def _record_consensus(
    session: Session,
    assignment: AssignmentRow,
    reader: str,
    recall: bool,
    birads: int | None,
    note: str | None,
    now: datetime,
    consensus: ConsensusMode,
    chosen: dict[str, str | None],
) -> Outcome:
    """The reader's consensus decision (replacing an earlier one of theirs), and whether the
    consensus is over (:func:`~mammotriage.worklist.rules.consensus_closes`)."""
    first_readers = deciders(session, assignment)
    why = why_not_consensus_reader(reader, first_readers, consensus)
    if why is not None:
        raise ConflictError(why)
    mine = session.execute(
        select(DecisionRow).where(
            DecisionRow.assignment_id == assignment.id,
            DecisionRow.reader == reader,
            DecisionRow.consensus.is_(True),
        )
    ).scalar_one_or_none()
    if mine is None:
        mine = DecisionRow(assignment_id=assignment.id, reader=reader, consensus=True)
        session.add(mine)
    mine.recall, mine.birads, mine.note, mine.decided_at = recall, birads, note, now
    mine.outcome, mine.category, mine.reasons = (
        chosen["outcome"],
        chosen["category"],
        chosen["reasons"],
    )
    drop_claim(session, assignment, reader)
    session.flush()
    rows = session.execute(
        select(DecisionRow.reader, DecisionRow.recall).where(
            DecisionRow.assignment_id == assignment.id, DecisionRow.consensus.is_(True)
        )
    ).all()
    recalls = {who: recalled for who, recalled in rows}
    if consensus_closes(consensus, first_readers, recalls):
        assignment.status = ReadingStatus.READ
    made = (
        sum(r in recalls for r in first_readers) if consensus is ConsensusMode.BOTH_READERS else 1
    )
    return Outcome(assignment.status, made, consensus.reads)


def _first_round_recalls(session: Session, assignment: AssignmentRow) -> list[bool]:
    return list(
        session.execute(
            select(DecisionRow.recall).where(
                DecisionRow.assignment_id == assignment.id, DecisionRow.consensus.is_(False)
            )
        ).scalars()
    )


__all__ = [
    "BIRADS",
    "CODE_LENGTH",
    "Decision",
    "Outcome",
    "ScreeningOutcome",
    "check_birads",
    "check_choice",
    "loaded_reasons",
    "record",
    "stored_reasons",
]
