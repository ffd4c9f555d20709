"""The reading rules, as pure functions: who may claim an exam, and who sees whose decision.

- single reading needs one decision; double reading two, by two different readers
  (:attr:`ReadingMode.reads`); an exam ruled out by the policy is read by no one;
- a single-reading exam has one claim at a time; a double-reading exam at most two (its
  first and second readers), never the same reader twice;
- double reading is blinded: a reader sees no other reader's decision or note until both
  have decided (the exam is read, or in consensus, where both readings are shown);
- a double reading whose readers disagree on recall goes to consensus, decided as the
  policy's :class:`~mammotriage.triage.policy.ConsensusMode` says: by both first readers
  (each records the decision; both may hold the exam at once), by an arbitrator who was
  neither, or by either first reader alone. No one else may claim it.

The store applies them inside its transactions; the API only translates what they say.
"""

from __future__ import annotations

from collections.abc import Sequence

from mammotriage.triage.policy import ConsensusMode, ReadingMode
from mammotriage.worklist.models import ReadingStatus


def why_closed(
    reader: str,
    mode: ReadingMode,
    status: ReadingStatus,
    others: Sequence[str],
    decided: Sequence[str],
    *,
    consensus: ConsensusMode,
) -> str | None:
    """Why ``reader`` may not claim the exam now, or None when they may.

    ``others`` hold live claims on it; ``decided`` made its first-round decisions (in
    consensus: the two first readers); ``consensus`` is the policy's consensus mode.
    """
    if status is ReadingStatus.READ:
        return "the exam has been read"
    if mode is ReadingMode.RULE_OUT:
        return "the policy ruled this exam out: no reader"
    if status is ReadingStatus.CONSENSUS:
        return why_not_consensus_reader(reader, decided, consensus) or _consensus_held(
            others, consensus
        )
    if reader in decided:
        return "you have read this exam already; the second reading is another reader's"
    if len(others) + len(decided) >= mode.reads:
        return "this exam is claimed by another reader"
    return None


def why_not_consensus_reader(
    reader: str, first_readers: Sequence[str], consensus: ConsensusMode
) -> str | None:
    """Why ``reader`` may not decide this consensus at all, or None when they may."""
    first = reader in first_readers
    names = " and ".join(sorted(first_readers))
    if consensus is ConsensusMode.THIRD_READER:
        return "an arbitrator reads this consensus: you were a first reader" if first else None
    if first:
        return None
    if consensus is ConsensusMode.BOTH_READERS:
        return f"consensus needs both first readers ({names}): you were not one of them"
    return f"one of the first readers ({names}) closes this consensus: you were not one of them"


def _consensus_held(others: Sequence[str], consensus: ConsensusMode) -> str | None:
    """Both first readers may hold a both-readers consensus at once; otherwise one reader."""
    if not others or consensus is ConsensusMode.BOTH_READERS:
        return None
    if consensus is ConsensusMode.THIRD_READER:
        return "another arbitrator holds this consensus reading"
    return "the other first reader holds this consensus reading"


def open_to(
    reader: str,
    mode: ReadingMode,
    status: ReadingStatus,
    claims: Sequence[str],
    decided: Sequence[str],
    *,
    consensus: ConsensusMode,
) -> bool:
    """Whether ``reader`` may claim the exam (``claims``: every live claim, theirs included)."""
    others = [c for c in claims if c != reader]
    return why_closed(reader, mode, status, others, decided, consensus=consensus) is None


def consensus_closes(
    consensus: ConsensusMode, first_readers: Sequence[str], recalls: dict[str, bool]
) -> bool:
    """Whether the consensus decisions recorded so far (reader -> latest recall) end it.

    Both readers: when both first readers have recorded one and they agree on recall (a
    disagreeing pair leaves the exam in consensus, each may decide again). Otherwise the
    one decision (an arbitrator's, or either first reader's) ends it.
    """
    if consensus is not ConsensusMode.BOTH_READERS:
        return bool(recalls)
    theirs = [recalls[r] for r in first_readers if r in recalls]
    return len(theirs) == len(first_readers) >= 2 and len(set(theirs)) == 1


def others_decisions_shown(status: ReadingStatus) -> bool:
    """Every reader's decision is shown once the exam is read or in consensus."""
    return status in (ReadingStatus.READ, ReadingStatus.CONSENSUS)


def is_blinded(mode: ReadingMode, status: ReadingStatus) -> bool:
    """A double reading not yet complete: the other reader's decision is withheld."""
    return mode is ReadingMode.DOUBLE and not others_decisions_shown(status)


__all__ = [
    "consensus_closes",
    "is_blinded",
    "open_to",
    "others_decisions_shown",
    "why_closed",
    "why_not_consensus_reader",
]
