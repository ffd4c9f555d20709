"""Simulation of a policy on scored exams with known outcome, checked by hand on a toy set."""

from __future__ import annotations

import csv
import json
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from mammotriage.errors import ConfigError
from mammotriage.synth.batch import TRUTH_COLUMNS
from mammotriage.triage import (
    SimExam,
    TriagePolicy,
    load_sim_inputs,
    plot_workload_curve,
    policy_from_dict,
    simulate,
    workload_curve,
)

CRD = TriagePolicy(version="toy")  # single reading <= 5, priority 10, safety net > 90
RULE_OUT_2 = policy_from_dict(
    {"version": "toy-ro", "rule_out": {"enabled": True, "max_category": 2}}
)


def toy() -> list[SimExam]:
    """Ten exams, one per category; cancers in categories 1, 3, 4, 8 and 10."""
    return [
        SimExam("e01", 1, 3, None, cancer=True),  # an interval-like cancer the AI missed
        SimExam("e02", 2, 12, None, cancer=False, partial=True),
        SimExam("e03", 3, 25, 95, cancer=True),  # safety net: finding 95 > 90
        SimExam("e04", 4, 33, 40, cancer=True),
        SimExam("e05", 5, 45, None, cancer=False),
        SimExam("e06", 6, 55, None, cancer=False),
        SimExam("e07", 7, 65, None, cancer=False),
        SimExam("e08", 8, 75, 80, cancer=True),
        SimExam("e09", 9, 85, None, cancer=False),
        SimExam("e10", 10, 97, 99, cancer=True),
    ]


def value(estimate: dict) -> float:
    return estimate["value"]


def test_toy_set_under_the_danish_policy_matches_the_hand_count() -> None:
    # single: e01 e02 e04 e05 (categories <= 5, no finding > 90)      -> 4/10
    # double: e03 (safety net) e06 e07 e08 e09 e10                     -> 6/10
    # reads: 4 x 1 + 6 x 2 = 16 of 10 x 2 = 20                        -> workload 4/5, -1/5
    # cancers e01 e03 e04 e08 e10 (5): single e01 e04 -> 2/5; double e03 e08 e10 -> 3/5
    result = simulate(toy(), CRD, n_boot=200, seed=1)
    assert result["n_exams"] == 10 and result["n_cancers"] == 5
    assert value(result["mode_share"]["single"]) == pytest.approx(F(4, 10))
    assert value(result["mode_share"]["double"]) == pytest.approx(F(6, 10))
    assert value(result["mode_share"]["rule-out"]) == 0
    assert value(result["priority_share"]) == pytest.approx(F(1, 10))
    assert value(result["workload"]) == pytest.approx(F(16, 20))
    assert value(result["workload_change"]) == pytest.approx(F(-4, 20))
    assert result["cancers_by_mode"] == {"single": 2, "double": 3, "rule-out": 0}
    assert result["cancers_single_read"]["count"] == 2
    assert value(result["cancers_single_read"]["share"]) == pytest.approx(F(2, 5))
    assert value(result["cancers_double_read"]["share"]) == pytest.approx(F(3, 5))
    assert value(result["cancers_ruled_out"]["share"]) == 0
    assert result["by_category"]["3"] == {"exams": 1, "cancers": 1}
    assert result["by_category"]["9"] == {"exams": 1, "cancers": 0}
    assert result["policy_version"] == "toy"


def test_toy_set_with_rule_out_matches_the_hand_count() -> None:
    # rule-out <= category 2: e01 ruled out; e02 is partial, so single reading instead
    # rule-out: e01 -> 1/10; single: e02 e04 e05 -> 3/10; double: as before -> 6/10
    # reads: 0 + 3 x 1 + 6 x 2 = 15 of 20                              -> workload 3/4
    # cancers: ruled out e01 -> 1/5; single e04 -> 1/5; double e03 e08 e10 -> 3/5
    result = simulate(toy(), RULE_OUT_2, n_boot=200, seed=1)
    assert value(result["mode_share"]["rule-out"]) == pytest.approx(F(1, 10))
    assert value(result["mode_share"]["single"]) == pytest.approx(F(3, 10))
    assert value(result["workload"]) == pytest.approx(F(15, 20))
    assert value(result["cancers_ruled_out"]["share"]) == pytest.approx(F(1, 5))
    assert value(result["cancers_single_read"]["share"]) == pytest.approx(F(1, 5))
    assert value(result["cancers_double_read"]["share"]) == pytest.approx(F(3, 5))


def test_intervals_hold_their_estimate_and_are_reproducible_json() -> None:
    result = simulate(toy(), CRD, n_boot=300, seed=7)
    for estimate in (
        result["workload"],
        result["mode_share"]["single"],
        result["cancers_double_read"]["share"],
    ):
        low, high = estimate["ci95"]
        assert 0 <= low <= estimate["value"] <= high <= 1
    assert json.dumps(result, allow_nan=False)
    assert simulate(toy(), CRD, n_boot=300, seed=7) == result


def test_interval_matches_resampling_exams_one_by_one() -> None:
    # The multinomial draw of cell counts must behave like resampling exams with replacement.
    exams = toy()
    reads = np.array([1, 1, 2, 1, 1, 2, 2, 2, 2, 2])  # e01..e10 under the Danish policy
    rng = np.random.default_rng(123)
    naive = reads[rng.integers(0, 10, size=(4000, 10))].sum(axis=1) / 20
    low, high = simulate(exams, CRD, n_boot=4000, seed=5)["workload"]["ci95"]
    assert low == pytest.approx(np.percentile(naive, 2.5), abs=0.051)
    assert high == pytest.approx(np.percentile(naive, 97.5), abs=0.051)


def test_without_cancers_the_cancer_shares_are_null_not_nan() -> None:
    healthy = [SimExam(f"e{c}", c, c * 9, None, cancer=False) for c in range(1, 11)]
    result = simulate(healthy, CRD, n_boot=50)
    assert result["cancers_double_read"]["share"] == {"value": None, "ci95": None}
    assert json.dumps(result, allow_nan=False)


def test_simulate_refuses_empty_duplicate_or_bad_n_boot() -> None:
    with pytest.raises(ConfigError, match="no exams"):
        simulate([], CRD)
    with pytest.raises(ConfigError, match="1 exam ids appear more than once"):
        simulate([*toy(), toy()[0]], CRD)
    with pytest.raises(ConfigError, match="n_boot"):
        simulate(toy(), CRD, n_boot=0)


def test_workload_curve_of_the_toy_set_by_hand() -> None:
    # Plain cut-off at 5 (no safety net): single e01..e05, double e06..e10
    # reads 5 + 10 = 15 of 20 -> 3/4; cancers double-read e08 e10 -> 2/5
    point = workload_curve(toy(), [5])[0]
    assert point.workload == pytest.approx(F(3, 4))
    assert point.single_share == pytest.approx(F(1, 2))
    assert point.cancers_double_read_share == pytest.approx(F(2, 5))
    # With the Danish policy's safety net e03 stays double: 4/5 and 3/5, as simulate says
    with_net = workload_curve(toy(), [5], policy=CRD)[0]
    assert (with_net.workload, with_net.cancers_double_read_share) == pytest.approx((0.8, 0.6))


def test_workload_curve_falls_monotonically_with_the_cut_off() -> None:
    rng = np.random.default_rng(0)
    categories = rng.integers(1, 11, size=400)
    exams = [
        SimExam(
            f"e{i}",
            int(c),
            float(c * 10 - 5),
            float(rng.uniform(1, 100)),
            cancer=bool(rng.random() < c / 40),
        )
        for i, c in enumerate(categories)
    ]
    for kwargs in ({}, {"policy": CRD}):
        curve = workload_curve(exams, range(0, 11), **kwargs)
        workloads = [p.workload for p in curve]
        shares = [
            p.cancers_double_read_share for p in curve if p.cancers_double_read_share is not None
        ]
        assert len(shares) == 11
        assert workloads == sorted(workloads, reverse=True)
        assert shares == sorted(shares, reverse=True)
        assert workloads[0] == 1.0 and shares[0] == 1.0
    plain = workload_curve(exams, [10])[0]
    assert (plain.workload, plain.cancers_double_read_share) == (0.5, 0.0)


def test_workload_curve_refuses_a_cut_off_below_the_rule_out_band() -> None:
    with pytest.raises(ConfigError, match="rule_out.max_category"):
        workload_curve(toy(), [1], policy=RULE_OUT_2)


def test_default_sweep_starts_at_the_rule_out_band() -> None:
    cut_offs = [p.single_reading_max_category for p in workload_curve(toy(), policy=RULE_OUT_2)]
    assert cut_offs == list(range(2, 11))


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = plot_workload_curve(workload_curve(toy()), tmp_path / "plots" / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- reading scores and truth ----------------------------------------------------------------


def write_truth(path: Path, rows: list[tuple[str, int]], columns=TRUTH_COLUMNS) -> Path:
    """A truth.csv with synth's header; every other column left empty."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for exam_id, cancer in rows:
            writer.writerow(
                {"exam_id": exam_id, "cancer": cancer}
                if "cancer" in columns
                else {"exam_id": exam_id}
            )
    return path


def write_scores(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_load_sim_inputs_joins_scores_with_per_image_truth(tmp_path: Path) -> None:
    truth = write_truth(
        tmp_path / "truth.csv",
        [("a", 0), ("a", 1), ("a", 0), ("a", 0), ("b", 0), ("b", 0), ("c", 0)],
    )
    scores = write_scores(
        tmp_path / "scores.jsonl",
        [
            {
                "exam_id": "a",
                "score": 91.5,
                "category": 10,
                "findings": [{"score": 40}, {"score": 93}],
            },
            {"exam_id": "b", "score": 4.0, "category": 1, "findings": [], "partial": True},
        ],
    )
    a, b = load_sim_inputs(scores, truth)
    assert a == SimExam("a", 10, 91.5, 93, cancer=True)
    assert b == SimExam("b", 1, 4.0, None, cancer=False, partial=True)


def test_truth_file_without_cancer_column_is_refused(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "truth.csv", [("a", 0)], columns=("path", "exam_id"))
    scores = write_scores(tmp_path / "scores.jsonl", [{"exam_id": "a", "score": 1, "category": 1}])
    with pytest.raises(ConfigError, match=r"lacks columns \['cancer'\]"):
        load_sim_inputs(scores, truth)


def test_scored_exams_missing_from_the_truth_are_counted(tmp_path: Path) -> None:
    truth = write_truth(tmp_path / "truth.csv", [("a", 0)])
    scores = write_scores(
        tmp_path / "scores.jsonl",
        [{"exam_id": e, "score": 1, "category": 1} for e in ("a", "x", "y")],
    )
    with pytest.raises(ConfigError, match=r"2 of 3 scored exams are not in .*\['x', 'y'\]"):
        load_sim_inputs(scores, truth)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"scores\.jsonl:2: not valid JSON"),
        ('{"exam_id": "b", "score": 3}', r"scores\.jsonl:2: exam b lacks \['category'\]"),
        ('{"exam_id": "b", "score": 3, "category": 12}', r"scores\.jsonl:2: .*category"),
        ('{"exam_id": "b", "score": 3, "category": 1, "findings": [{}]}', r"findings\[0\]"),
    ],
)
def test_malformed_score_line_is_refused_naming_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    truth = write_truth(tmp_path / "truth.csv", [("a", 0), ("b", 0)])
    scores = tmp_path / "scores.jsonl"
    scores.write_text('{"exam_id": "a", "score": 1, "category": 1}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_sim_inputs(scores, truth)
