"""Worklist order: overdue first, then priority, then category, then the longest wait."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mammotriage.errors import ConfigError
from mammotriage.triage import (
    ExamForTriage,
    QueueTier,
    ReadingMode,
    TriageDecision,
    TriagePolicy,
    TriageRule,
    WorklistItem,
    decide,
    order_key,
    order_worklist,
)

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=timezone.utc)
POLICY = TriagePolicy(version="test-1", max_wait_days=5)


def item(exam_id: str, category: int, waited: timedelta) -> WorklistItem:
    exam = ExamForTriage(
        exam_id=exam_id,
        score=category * 10 - 5,
        category=category,
        max_finding_score=None,
        partial=False,
        received_at=NOW - waited,
    )
    return WorklistItem(decide(POLICY, exam), exam)


def ruled_out(exam_id: str, waited: timedelta) -> WorklistItem:
    exam = item(exam_id, 1, waited).exam
    decision = TriageDecision(
        exam_id, ReadingMode.RULE_OUT, False, "rule-out", "test-1", TriageRule.RULE_OUT
    )
    return WorklistItem(decision, exam)


def ids(items: list[WorklistItem]) -> list[str]:
    return [i.exam.exam_id for i in items]


HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def test_priority_exam_is_read_first_even_when_it_arrived_last() -> None:
    items = [item("cat9-old", 9, 3 * DAY), item("cat10-new", 10, HOUR)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["cat10-new", "cat9-old"]


def test_higher_category_is_read_before_longer_wait() -> None:
    items = [item("cat2-old", 2, 4 * DAY), item("cat7-new", 7, HOUR), item("cat5", 5, DAY)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["cat7-new", "cat5", "cat2-old"]


def test_within_a_category_the_oldest_is_read_first() -> None:
    items = [item("new", 6, HOUR), item("old", 6, 2 * DAY), item("mid", 6, DAY)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["old", "mid", "new"]


def test_overdue_exam_outranks_a_priority_exam() -> None:
    # "Past a maximum wait any exam rises to the top": a category-1 exam waiting six days
    # goes before today's category-10 exam, so low categories are never starved.
    items = [item("priority", 10, HOUR), item("overdue-cat1", 1, 6 * DAY)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["overdue-cat1", "priority"]
    assert order_key(items[1].decision, items[1].exam, NOW, POLICY).tier is QueueTier.OVERDUE


def test_overdue_exams_are_read_oldest_first_whatever_their_category() -> None:
    items = [item("overdue-cat9", 9, 6 * DAY), item("overdue-cat1", 1, 8 * DAY)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["overdue-cat1", "overdue-cat9"]


def test_exam_at_exactly_the_maximum_wait_is_not_yet_overdue() -> None:
    items = [item("at-limit", 1, 5 * DAY), item("priority", 10, HOUR)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["priority", "at-limit"]


def test_ruled_out_exam_stays_on_the_list_last_and_is_never_overdue() -> None:
    items = [ruled_out("no-reader", 30 * DAY), item("cat1", 1, HOUR)]
    assert ids(order_worklist(items, NOW, POLICY)) == ["cat1", "no-reader"]


def test_equal_keys_are_ordered_by_exam_id_not_input_order() -> None:
    a, b = item("a", 4, DAY), item("b", 4, DAY)
    assert ids(order_worklist([b, a], NOW, POLICY)) == ["a", "b"]


def test_order_worklist_returns_a_new_list_and_leaves_the_input_alone() -> None:
    items = [item("low", 1, HOUR), item("high", 8, HOUR)]
    ordered = order_worklist(items, NOW, POLICY)
    assert ids(items) == ["low", "high"]
    assert sorted(ids(ordered)) == sorted(ids(items))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ConfigError, match="now must be a timezone-aware"):
        order_worklist([item("a", 1, HOUR)], datetime(2024, 3, 11, 12, 0), POLICY)


def test_decision_of_another_exam_is_refused() -> None:
    a, b = item("a", 1, HOUR), item("b", 1, HOUR)
    with pytest.raises(ConfigError, match="'a'.*'b'"):
        WorklistItem(a.decision, b.exam)
    with pytest.raises(ConfigError, match="'a'.*'b'"):
        order_key(a.decision, b.exam, NOW, POLICY)
