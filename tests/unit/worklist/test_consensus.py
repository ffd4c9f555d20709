"""Consensus after a disagreeing double reading, as the policy's ``consensus`` says: both
first readers (the default), an arbitrator, or either first reader; on SQLite and PostgreSQL,
with the reading rules' own messages."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from test_readings import NOW, POLICY, add_exam

from mammotriage.errors import ConflictError
from mammotriage.triage import ConsensusMode, ReadingMode
from mammotriage.worklist import ReadingStatus, Store
from mammotriage.worklist.models import DecisionRow
from mammotriage.worklist.rules import consensus_closes, why_closed

BOTH = ConsensusMode.BOTH_READERS
THIRD = ConsensusMode.THIRD_READER
EITHER = ConsensusMode.EITHER_READER


def in_consensus(store: Store, study: str) -> uuid.UUID:
    """A double-reading exam anna recalled and ben did not."""
    exam = add_exam(store, study, 7)
    for reader, recall in (("anna", True), ("ben", False)):
        store.readings.claim(exam, reader, NOW)
        store.readings.record_decision(exam, reader, recall=recall, now=NOW)
    return exam


def consensus_queue(store: Store, reader: str, mode: ConsensusMode) -> list[uuid.UUID]:
    policy = POLICY.model_copy(update={"consensus": mode})
    page = store.readings.reader_queue(reader, NOW, policy, queue="consensus")
    return [item.exam_id for item in page.items]


def consensus_rows(store: Store) -> list[tuple[str, bool]]:
    with store.db.session() as session:
        rows = session.execute(
            select(DecisionRow.reader, DecisionRow.recall)
            .where(DecisionRow.consensus.is_(True))
            .order_by(DecisionRow.reader)
        ).all()
    return [(reader, recall) for reader, recall in rows]


def test_the_default_policy_asks_both_first_readers() -> None:
    assert POLICY.consensus is BOTH


def test_both_readers_each_record_the_consensus_and_it_ends_when_they_agree(
    store: Store,
) -> None:
    exam = in_consensus(store, "c.1")
    assert consensus_queue(store, "anna", BOTH) == [exam]
    assert consensus_queue(store, "ben", BOTH) == [exam]
    assert consensus_queue(store, "carl", BOTH) == []
    with pytest.raises(
        ConflictError,
        match=r"consensus needs both first readers \(anna and ben\): you were not one of them",
    ):
        store.readings.claim(exam, "carl", NOW, consensus=BOTH)
    store.readings.claim(exam, "anna", NOW, consensus=BOTH)
    store.readings.claim(exam, "ben", NOW, consensus=BOTH)  # both hold it at once
    first = store.readings.record_decision(exam, "anna", recall=True, now=NOW, consensus=BOTH)
    assert (first.status, first.decisions, first.readers_needed) == (
        ReadingStatus.CONSENSUS,
        1,
        2,
    )
    # ben disagrees again: still consensus, and both may decide again
    second = store.readings.record_decision(exam, "ben", recall=False, now=NOW, consensus=BOTH)
    assert (second.status, second.decisions) == (ReadingStatus.CONSENSUS, 2)
    assert consensus_queue(store, "ben", BOTH) == [exam]
    store.readings.claim(exam, "ben", NOW, consensus=BOTH)
    done = store.readings.record_decision(
        exam, "ben", recall=True, birads=4, note="agreed", now=NOW, consensus=BOTH
    )
    assert (done.status, done.decisions, done.readers_needed) == (ReadingStatus.READ, 2, 2)
    # one consensus row per reader: ben's second consensus decision replaced his first
    assert consensus_rows(store) == [("anna", True), ("ben", True)]
    detail = store.readings.exam_detail(exam, "anna", NOW)
    assert detail.consensus_by == ("anna", "ben")
    (bens,) = [d for d in detail.decisions if d.consensus and d.reader == "ben"]
    assert (bens.birads, bens.note) == (4, "agreed")


def test_both_readers_one_consensus_decision_does_not_close_it(store: Store) -> None:
    exam = in_consensus(store, "c.2")
    store.readings.claim(exam, "ben", NOW, consensus=BOTH)
    outcome = store.readings.record_decision(exam, "ben", recall=True, now=NOW, consensus=BOTH)
    assert outcome.status is ReadingStatus.CONSENSUS
    assert store.readings.exam_detail(exam, "ben", NOW).consensus_by == ("ben",)
    assert consensus_queue(store, "anna", BOTH) == [exam]


def test_third_reader_an_arbitrator_decides_alone_and_the_first_readers_may_not(
    store: Store,
) -> None:
    exam = in_consensus(store, "c.3")
    assert consensus_queue(store, "anna", THIRD) == []
    assert consensus_queue(store, "ben", THIRD) == []
    assert consensus_queue(store, "carl", THIRD) == [exam]
    for first_reader in ("anna", "ben"):
        with pytest.raises(
            ConflictError, match="an arbitrator reads this consensus: you were a first reader"
        ):
            store.readings.claim(exam, first_reader, NOW, consensus=THIRD)
    store.readings.claim(exam, "carl", NOW, consensus=THIRD)
    with pytest.raises(ConflictError, match="another arbitrator holds"):
        store.readings.claim(exam, "dora", NOW, consensus=THIRD)
    assert consensus_queue(store, "dora", THIRD) == []
    done = store.readings.record_decision(exam, "carl", recall=False, now=NOW, consensus=THIRD)
    assert (done.status, done.decisions, done.readers_needed) == (ReadingStatus.READ, 1, 1)
    assert store.readings.exam_detail(exam, "carl", NOW).consensus_by == ("carl",)


def test_either_reader_one_first_reader_closes_it_and_no_one_else_may(store: Store) -> None:
    exam = in_consensus(store, "c.4")
    assert consensus_queue(store, "carl", EITHER) == []
    assert consensus_queue(store, "ben", EITHER) == [exam]
    with pytest.raises(ConflictError, match=r"one of the first readers \(anna and ben\)"):
        store.readings.claim(exam, "carl", NOW, consensus=EITHER)
    store.readings.claim(exam, "ben", NOW, consensus=EITHER)
    with pytest.raises(ConflictError, match="the other first reader holds"):
        store.readings.claim(exam, "anna", NOW, consensus=EITHER)
    done = store.readings.record_decision(exam, "ben", recall=True, now=NOW, consensus=EITHER)
    assert (done.status, done.readers_needed) == (ReadingStatus.READ, 1)
    assert store.readings.exam_detail(exam, "ben", NOW).consensus_by == ("ben",)


def test_a_claim_taken_under_another_consensus_mode_cannot_decide(store: Store) -> None:
    """The decision checks the rule again: the policy may have changed since the claim."""
    exam = in_consensus(store, "c.5")
    store.readings.claim(exam, "carl", NOW, consensus=THIRD)
    with pytest.raises(ConflictError, match="consensus needs both first readers"):
        store.readings.record_decision(exam, "carl", recall=True, now=NOW, consensus=BOTH)
    with store.db.session() as session:
        assert session.scalar(select(func.count()).select_from(DecisionRow)) == 2


@pytest.mark.parametrize("mode", list(ConsensusMode))
def test_the_first_round_is_unchanged_by_the_consensus_mode(mode: ConsensusMode) -> None:
    """Before consensus the mode plays no part: a second reader is anyone but the first."""
    unread = ReadingStatus.IN_PROGRESS
    assert why_closed("ben", ReadingMode.DOUBLE, unread, [], ["anna"], consensus=mode) is None
    assert why_closed("anna", ReadingMode.DOUBLE, unread, [], ["anna"], consensus=mode)


@pytest.mark.parametrize(
    ("mode", "recalls", "closes"),
    [
        (BOTH, {}, False),
        (BOTH, {"anna": True}, False),
        (BOTH, {"anna": True, "ben": False}, False),
        (BOTH, {"anna": False, "ben": False}, True),
        (BOTH, {"anna": True, "carl": True}, False),  # an outsider's row never counts
        (THIRD, {"carl": True}, True),
        (EITHER, {"ben": False}, True),
    ],
)
def test_when_consensus_decisions_close_the_consensus(
    mode: ConsensusMode, recalls: dict[str, bool], closes: bool
) -> None:
    assert consensus_closes(mode, ["anna", "ben"], recalls) is closes
