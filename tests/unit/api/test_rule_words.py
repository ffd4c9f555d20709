"""The triage rule in a reader's words, for each rule the policy writes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mammotriage.api.rule_words import rule_in_words
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.triage.policy import decide_unscored

POLICY = TriagePolicy.model_validate(
    {"version": "t", "max_wait_days": 5, "rule_out": {"enabled": True, "max_category": 1}}
)
NOW = datetime(2024, 3, 11, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("category", "finding", "partial", "words"),
    [
        (4, 30, False, "single reading: category 4"),
        (8, 30, False, "double reading: category 8"),
        (10, 30, False, "read first: category 10 (double reading)"),
        (3, 95, False, "double reading: category 3, an AI finding above the safety net"),
        (1, 10, True, "single reading: category 1, views missing"),
        (1, 10, False, "no reader: category 1"),
    ],
)
def test_each_rule_in_words(category: int, finding: float, partial: bool, words: str) -> None:
    exam = ExamForTriage("e", 10.0 * category, category, finding, partial, NOW)
    made = decide(POLICY, exam)
    assert rule_in_words(made.mode, category, made.priority, made.rule) == words


def test_an_unscored_exam_in_words() -> None:
    made = decide_unscored(POLICY, "e", "no usable mammography image")
    assert rule_in_words(made.mode, None, made.priority, made.rule) == (
        "double reading: not scored by the AI"
    )
