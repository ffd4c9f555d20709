"""The reading rules, as pure functions: who may claim an exam, and who sees whose decision.

- single reading needs one decision; double reading two, by two different readers
  (:attr:`ReadingMode.reads`); an exam ruled out by the policy is read by no one;
- a single-reading exam has one claim at a time; a double-reading exam at most two (its
  first and second readers), never the same reader twice;
- double reading is blinded: a reader sees no other reader's decision or note until both
  have decided (the exam is read, or in consensus, where both readings are shown).

The store applies them inside its transactions; the API only translates what they say.
"""

from __future__ import annotations

from collections.abc import Sequence

from mammotriage.triage.policy import ReadingMode
from mammotriage.worklist.models import ReadingStatus


def why_closed(
    reader: str,
    mode: ReadingMode,
    status: ReadingStatus,
    others: Sequence[str],
    decided: Sequence[str],
) -> str | None:
    """Why ``reader`` may not claim the exam now, or None when they may.

    ``others`` hold live claims on it; ``decided`` made its first-round decisions.
    """
    if status is ReadingStatus.READ:
        return "the exam has been read"
    if mode is ReadingMode.RULE_OUT:
        return "the policy ruled this exam out: no reader"
    if status is ReadingStatus.CONSENSUS:
        return "another reader holds the consensus reading" if others else None
    if reader in decided:
        return "you have read this exam already; the second reading is another reader's"
    if len(others) + len(decided) >= mode.reads:
        return "this exam is claimed by another reader"
    return None


def open_to(
    reader: str,
    mode: ReadingMode,
    status: ReadingStatus,
    claims: Sequence[str],
    decided: Sequence[str],
) -> bool:
    """Whether ``reader`` may claim the exam (``claims``: every live claim, theirs included)."""
    others = [c for c in claims if c != reader]
    return why_closed(reader, mode, status, others, decided) is None


def others_decisions_shown(status: ReadingStatus) -> bool:
    """Every reader's decision is shown once the exam is read or in consensus."""
    return status in (ReadingStatus.READ, ReadingStatus.CONSENSUS)


def is_blinded(mode: ReadingMode, status: ReadingStatus) -> bool:
    """A double reading not yet complete: the other reader's decision is withheld."""
    return mode is ReadingMode.DOUBLE and not others_decisions_shown(status)


__all__ = ["is_blinded", "open_to", "others_decisions_shown", "why_closed"]
