"""The triage policy: each rule fires as documented, and bad policies are refused by name."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mammotriage import defaults
from mammotriage.errors import ConfigError
from mammotriage.triage import (
    ConsensusMode,
    ExamForTriage,
    ReadingMode,
    TriagePolicy,
    TriageRule,
    decide,
    load_policy,
    policy_from_dict,
)

SHIPPED_POLICY = defaults.policy_path()
ARRIVED = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)


def exam(
    category: int,
    *,
    finding: float | None = None,
    score: float | None = None,
    partial: bool = False,
) -> ExamForTriage:
    return ExamForTriage(
        exam_id=f"exam-{category}",
        score=category * 10 - 5 if score is None else score,
        category=category,
        max_finding_score=finding,
        partial=partial,
        received_at=ARRIVED,
    )


def policy(*, safety_net: bool = True, rule_out: bool = False, **values: Any) -> TriagePolicy:
    return policy_from_dict(
        {
            "version": "test-1",
            "safety_net": {"enabled": safety_net, "finding_score_threshold": 90},
            "rule_out": {"enabled": rule_out, "max_category": 1},
            **values,
        }
    )


S, D, R = TriageRule.CATEGORY_SINGLE, TriageRule.CATEGORY_DOUBLE, TriageRule.RULE_OUT
NET = TriageRule.SAFETY_NET
#: The rule that decides an exam of each category with one finding scored 95, under the
#: default cut-offs (single reading <= 5, rule-out <= 1, safety net > 90), per switch setting:
#:          (net on, rule-out on), (net on, off), (net off, rule-out on), (net off, off)
RULE_TABLE: dict[int, tuple[TriageRule, TriageRule, TriageRule, TriageRule]] = {
    1: (NET, NET, R, S),
    2: (NET, NET, S, S),
    3: (NET, NET, S, S),
    4: (NET, NET, S, S),
    5: (NET, NET, S, S),
    6: (D, D, D, D),
    7: (D, D, D, D),
    8: (D, D, D, D),
    9: (D, D, D, D),
    10: (D, D, D, D),
}
SWITCHES = ((True, True), (True, False), (False, True), (False, False))
MODE_OF_RULE = {
    S: ReadingMode.SINGLE,
    D: ReadingMode.DOUBLE,
    NET: ReadingMode.DOUBLE,
    R: ReadingMode.RULE_OUT,
}


@pytest.mark.parametrize("category", range(1, 11))
@pytest.mark.parametrize(("safety_net", "rule_out"), SWITCHES)
def test_each_rule_fires_as_the_table_says(category: int, safety_net: bool, rule_out: bool) -> None:
    expected = RULE_TABLE[category][SWITCHES.index((safety_net, rule_out))]
    decision = decide(policy(safety_net=safety_net, rule_out=rule_out), exam(category, finding=95))
    assert decision.rule_code is expected
    assert decision.mode is MODE_OF_RULE[expected]
    assert decision.priority is (category == 10)
    assert decision.policy_version == "test-1"
    assert decision.exam_id == f"exam-{category}"


@pytest.mark.parametrize(
    ("category", "finding", "rule"),
    [
        (3, None, "category 3 <= 5: single reading"),
        (7, None, "category 7 > 5: double reading"),
        (3, 93, "safety net: finding 93 > 90: double reading"),
        (10, None, "category 10 > 5: double reading; category 10 >= 10: priority"),
    ],
)
def test_decision_records_the_rule_in_words(
    category: int, finding: float | None, rule: str
) -> None:
    assert decide(policy(), exam(category, finding=finding)).rule == rule


def test_safety_net_needs_a_finding_strictly_above_the_threshold() -> None:
    at_threshold = decide(policy(), exam(2, finding=90))
    assert (at_threshold.mode, at_threshold.rule_code) == (ReadingMode.SINGLE, S)


def test_safety_net_outranks_rule_out() -> None:
    decision = decide(policy(rule_out=True), exam(1, finding=91))
    assert (decision.mode, decision.rule_code) == (ReadingMode.DOUBLE, NET)


def test_partial_exam_is_never_ruled_out_but_gets_single_reading() -> None:
    decision = decide(policy(rule_out=True), exam(1, partial=True))
    assert decision.mode is ReadingMode.SINGLE
    assert decision.rule_code is TriageRule.PARTIAL_NOT_RULED_OUT
    assert decision.rule == "partial exam, never ruled out (category 1 <= 1): single reading"


@pytest.mark.parametrize(("category", "mode"), [(3, ReadingMode.SINGLE), (7, ReadingMode.DOUBLE)])
def test_partial_exam_otherwise_follows_its_category(category: int, mode: ReadingMode) -> None:
    assert decide(policy(rule_out=True), exam(category, partial=True)).mode is mode


@pytest.mark.parametrize(
    ("score", "mode"), [(4.0, ReadingMode.RULE_OUT), (6.0, ReadingMode.SINGLE)]
)
def test_rule_out_by_score_alone(score: float, mode: ReadingMode) -> None:
    by_score = policy_from_dict(
        {"version": "v", "rule_out": {"enabled": True, "max_category": None, "max_score": 5}}
    )
    assert decide(by_score, exam(2, score=score)).mode is mode


def test_rule_out_with_both_limits_needs_both() -> None:
    both = policy_from_dict(
        {"version": "v", "rule_out": {"enabled": True, "max_category": 1, "max_score": 5}}
    )
    rule = "rule-out: category 1 <= 1 and score 4 <= 5: no human reader"
    assert decide(both, exam(1, score=4)).rule == rule
    assert decide(both, exam(1, score=6)).mode is ReadingMode.SINGLE
    assert decide(both, exam(2, score=4)).mode is ReadingMode.SINGLE


def test_cut_off_zero_double_reads_every_exam() -> None:
    assert decide(policy(single_reading_max_category=0), exam(1)).mode is ReadingMode.DOUBLE


def test_shipped_policy_is_the_capital_region_of_denmark_policy() -> None:
    shipped = load_policy(SHIPPED_POLICY)
    assert shipped.version == "crd-2024.2"
    assert shipped.single_reading_max_category == 5
    assert shipped.priority_min_category == 10
    assert shipped.rule_out.enabled is False
    assert shipped.safety_net.enabled is True
    assert shipped.safety_net.finding_score_threshold == 90
    assert shipped.max_wait_days == 5
    assert shipped.consensus is ConsensusMode.BOTH_READERS


def test_defaults_are_the_documented_ones() -> None:
    assert TriagePolicy(version="v") == load_policy(SHIPPED_POLICY).model_copy(
        update={"version": "v"}
    )


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"single_reading_max_category": 11}, "single_reading_max_category"),
        ({"single_reading_max_category": "5"}, "single_reading_max_category"),
        ({"priority_min_category": 0}, "priority_min_category"),
        ({"max_wait_days": 0}, "max_wait_days"),
        ({"version": ""}, "version"),
        ({"version": 2024.1}, "version"),
        ({"safety_net": {"finding_score_threshold": 120}}, "safety_net.finding_score_threshold"),
        ({"safety_net": {"treshold": 80}}, "safety_net.treshold"),
        ({"rule_out": {"enabled": True, "max_category": 6}}, "rule_out.max_category"),
        ({"rule_out": {"enabled": True, "max_category": None}}, "rule_out.max_score"),
        ({"rule_out": {"max_score": -1}}, "rule_out.max_score"),
        ({"priority": 10}, "priority"),
    ],
)
def test_invalid_policy_value_is_refused_naming_the_field(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        policy_from_dict({"version": "v", **values})


@pytest.mark.parametrize("mode", list(ConsensusMode))
def test_consensus_is_read_by_its_yaml_name(tmp_path: Path, mode: ConsensusMode) -> None:
    path = tmp_path / "triage.yaml"
    path.write_text(f'version: "x"\nconsensus: {mode.value}\n')
    assert load_policy(path).consensus is mode


def test_unknown_consensus_mode_is_refused_with_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "triage.yaml"
    path.write_text('version: "x"\nconsensus: majority\n')
    allowed = "'either-reader', 'both-readers' or 'third-reader'"
    with pytest.raises(ConfigError, match=rf"triage\.yaml: consensus: .*{allowed}.*got 'majority'"):
        load_policy(path)


def test_invalid_value_in_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "triage.yaml"
    path.write_text('version: "x"\npriority_min_category: 11\n')
    with pytest.raises(ConfigError, match=r"triage\.yaml: priority_min_category: .*got 11"):
        load_policy(path)


def test_missing_or_unparsable_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("version: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_policy(tmp_path / "list.yaml")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("category", 0),
        ("category", 11),
        ("category", 5.0),
        ("category", True),
        ("score", 101.0),
        ("score", float("nan")),
        ("max_finding_score", -1.0),
        ("received_at", datetime(2024, 3, 1, 8, 0)),
        ("exam_id", ""),
    ],
)
def test_exam_with_invalid_value_is_refused_naming_the_field(field: str, value: Any) -> None:
    fields: dict[str, Any] = {
        "exam_id": "e1",
        "score": 10.0,
        "category": 2,
        "max_finding_score": None,
        "partial": False,
        "received_at": ARRIVED,
    }
    with pytest.raises(ConfigError, match=field):
        ExamForTriage(**{**fields, field: value})


def test_unscored_exam_gets_double_reading_without_priority() -> None:
    from mammotriage.triage import TriageRule, decide_unscored

    decision = decide_unscored(TriagePolicy(version="v9"), "exam-1", "no usable image")
    assert decision.mode is ReadingMode.DOUBLE
    assert decision.priority is False
    assert decision.rule_code is TriageRule.NOT_SCORED
    assert "no usable image" in decision.rule
    assert decision.policy_version == "v9"
