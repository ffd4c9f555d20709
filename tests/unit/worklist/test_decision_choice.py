"""A screening decision as the reader chose it (outcome, the site's category and reasons)
is stored and read back, first round and consensus alike; a contradiction is refused."""

from __future__ import annotations

import pytest
from test_readings import NOW, add_exam

from mammotriage.worklist import ReadingStatus, Store
from mammotriage.worklist.decisions import ScreeningOutcome


def test_the_outcome_category_and_reasons_are_kept_through_consensus(store: Store) -> None:
    exam = add_exam(store, "9.1", 8)  # double reading
    chosen = {
        "anna": (ScreeningOutcome.TECHNICAL_RECALL, "technical-recall", ("motion",)),
        "ben": (ScreeningOutcome.NO_RECALL, "no-recall", ()),
    }
    for reader, (outcome, category, reasons) in chosen.items():
        store.readings.claim(exam, reader, NOW)
        result = store.readings.record_decision(
            exam,
            reader,
            recall=outcome.recall,
            now=NOW,
            outcome=outcome,
            category=category,
            reasons=reasons,
        )
    assert result.status is ReadingStatus.CONSENSUS  # technical recall is a recall
    store.readings.claim(exam, "anna", NOW)
    store.readings.record_decision(
        exam,
        "anna",
        recall=True,
        now=NOW,
        outcome=ScreeningOutcome.RECALL,
        category="recall",
        reasons=("mass", "asymmetry"),
    )
    shown = {
        (d.reader, d.consensus): (d.outcome, d.category, d.reasons)
        for d in store.readings.exam_detail(exam, "anna", NOW).decisions
    }
    assert shown == {
        ("anna", False): (ScreeningOutcome.TECHNICAL_RECALL, "technical-recall", ("motion",)),
        ("ben", False): (ScreeningOutcome.NO_RECALL, "no-recall", ()),
        ("anna", True): (ScreeningOutcome.RECALL, "recall", ("mass", "asymmetry")),
    }


def test_a_decision_without_a_category_reads_back_without_one(store: Store) -> None:
    exam = add_exam(store, "9.2", 2)
    store.readings.claim(exam, "anna", NOW)
    store.readings.record_decision(exam, "anna", recall=False, now=NOW)
    (decision,) = store.readings.exam_detail(exam, "anna", NOW).decisions
    assert (decision.outcome, decision.category, decision.reasons) == (None, None, ())


@pytest.mark.parametrize(
    ("recall", "outcome", "category", "reasons", "message"),
    [
        (False, ScreeningOutcome.RECALL, "recall", (), "contradicts"),
        (True, None, None, ("mass",), "need a decision category"),
        (True, ScreeningOutcome.RECALL, "r" * 41, (), "1-40 characters"),
    ],
)
def test_a_contradictory_choice_is_refused(
    store: Store,
    recall: bool,
    outcome: ScreeningOutcome | None,
    category: str | None,
    reasons: tuple[str, ...],
    message: str,
) -> None:
    exam = add_exam(store, "9.3", 2)
    store.readings.claim(exam, "anna", NOW)
    with pytest.raises(ValueError, match=message):
        store.readings.record_decision(
            exam,
            "anna",
            recall=recall,
            now=NOW,
            outcome=outcome,
            category=category,
            reasons=reasons,
        )
    assert store.readings.exam_detail(exam, "anna", NOW).decisions == ()
