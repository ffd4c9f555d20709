"""The go-live figures: a ten-exam case worked by hand, and the bootstrap checked against a
plain loop over the same resamples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_builders import exam_row, write_outcomes, write_scores

from mammotriage import defaults
from mammotriage.evaluation import evaluate
from mammotriage.evaluation import metrics as metrics_module
from mammotriage.evaluation.join import join_outcomes, load_exams
from mammotriage.evaluation.metrics import exam_arrays, figures
from mammotriage.evaluation.outcomes import read_outcomes
from mammotriage.triage import load_policy

# The ten exams, under the packaged policy (crd-2024.2: categories 1-5 one reader, 6-10
# two, 10 priority; safety net: a finding above 90 -> two readers; no rule-out).
#
#  exam  score cat finding  screen interval recall  station  -> reading
#  e01     5    1    -        0      0       0       A         single
#  e02    12    2    -        0      0       0       A         single
#  e03    25    3    -        0      1       0       A         single   (interval cancer)
#  e04    35    4   95        1      0       1       A         double   (safety net 95 > 90)
#  e05    45    5    -        0      0       1       A         single
#  e06    55    6    -        0      0       0       B         double
#  e07    65    7    -        0      0       1       B         double
#  e08    85    9    -        1      0       1       B         double
#  e09    97   10    -        1      0       1       B         double + priority
#  e10     unscored           0      1       0       B         double (not scored)
#
# Cancers: e03 e04 e08 e09 e10 = 5 (screen-detected 3: e04 e08 e09; interval 2: e03 e10).
# AUC over the 9 scored exams, cancers e03(25) e04(35) e08(85) e09(97) against non-cancers
# 5 12 45 55 65: e03 beats 2, e04 beats 2, e08 beats 5, e09 beats 5 -> 14 of 4 x 5 = 0.70.
# Double reading (scored exams): cancers double e04 e08 e09 -> sensitivity 3/4 = 0.75;
#   non-cancers not double e01 e02 e05 -> specificity 3/5 = 0.60;
#   screen-detected 3/3 = 1.0; interval (scored: e03 only) 0/1 = 0.0.
# Priority (category >= 10): e09 -> sensitivity 1/4 = 0.25, specificity 5/5 = 1.0.
# Workload: 4 single (1 read) + 6 double (2 reads, e10 included) = 16 of 20 -> 0.80.
# Cancers with one reader: e03 -> 1 of 5 (0.2); with two: 4 (0.8).
# Per band: category 3 holds 1 exam, 1 interval cancer, read by one reader; category 8 is
#   empty (rates undefined); "unscored" holds e10, 1 interval cancer.
# Recalls: e04 e05 e07 e08 e09 = 5 of 10 -> 0.5; cancers per 1000: 5/10 -> 500.
# Device A (scored): categories 1-5 one exam each -> 20 % each, 0 % in 6-10.
#   PSI vs 10 %: 5 x (0.2 - 0.1) ln 2 + 5 x (0.0001 - 0.1) ln(0.0001 / 0.1).
# Cut-off sweep (scored exams with an outcome, 9 exams, 18 reads under double reading):
#   cut-off 5:  4 single + 5 double -> (4 + 10) / 18; cancers double 3/4
#   cut-off 10: 8 single + e04 (safety net) -> (8 + 2) / 18; cancers double 1/4
#   cut-off 1:  e01 single, 8 double -> (1 + 16) / 18; cancers double 4/4
HAND = [
    ("e01", 5.0, 1, None, 0, 0, 0, "A"),
    ("e02", 12.0, 2, None, 0, 0, 0, "A"),
    ("e03", 25.0, 3, None, 0, 1, 0, "A"),
    ("e04", 35.0, 4, 95, 1, 0, 1, "A"),
    ("e05", 45.0, 5, None, 0, 0, 1, "A"),
    ("e06", 55.0, 6, None, 0, 0, 0, "B"),
    ("e07", 65.0, 7, None, 0, 0, 1, "B"),
    ("e08", 85.0, 9, None, 1, 0, 1, "B"),
    ("e09", 97.0, 10, None, 1, 0, 1, "B"),
    ("e10", None, None, None, 0, 1, 0, "B"),
]


def write_hand_case(root):
    rows = [
        exam_row(e, score, cat, max_finding_score=finding, station_name=station)
        for e, score, cat, finding, _, _, _, station in HAND
    ]
    scores = write_scores(root / "scores", [rows[:6], rows[6:]])
    outcomes = write_outcomes(
        root / "outcomes.csv", [(e, sd, ic, rc) for e, _, _, _, sd, ic, rc, _ in HAND]
    )
    return scores, outcomes


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    scores, outcomes = write_hand_case(root)
    result = evaluate(
        scores, outcomes, root / "report", policy=defaults.policy_path(), n_boot=200, seed=1
    )
    return result.metrics


def value(estimate):
    return estimate["value"]


def test_hand_case_auc_sensitivity_specificity(hand):
    assert value(hand["auc"]) == pytest.approx(0.70)
    assert hand["auc"]["exams"] == 9 and hand["auc"]["cancers"] == 4
    assert hand["auc"]["unscored_left_out"] == {"exams": 1, "cancers": 1}
    double = hand["double_reading"]
    assert value(double["sensitivity"]) == pytest.approx(0.75)
    assert value(double["specificity"]) == pytest.approx(0.60)
    assert value(double["sensitivity_screen_detected"]) == pytest.approx(1.0)
    assert value(double["sensitivity_interval"]) == pytest.approx(0.0)
    priority = hand["priority"]
    assert value(priority["sensitivity"]) == pytest.approx(0.25)
    assert value(priority["specificity"]) == pytest.approx(1.0)


def test_hand_case_workload_counts_unscored_exams_as_two_reads(hand):
    workload = hand["workload"]
    assert value(workload) == pytest.approx(0.80)
    assert value(workload["change"]) == pytest.approx(-0.20)
    assert workload["reads"] == 16 and workload["reads_double_reading_all"] == 20
    assert workload["exams_by_mode"] == {"single": 4, "double": 6, "rule-out": 0}
    reading = hand["cancers_by_reading"]
    assert reading["one_reader"]["count"] == 1
    assert value(reading["one_reader"]["share"]) == pytest.approx(0.2)
    assert reading["two_readers"]["count"] == 4 and reading["no_reader"]["count"] == 0


def test_hand_case_bands(hand):
    bands = {b["band"]: b for b in hand["bands"]}
    assert list(bands) == [*[str(c) for c in range(1, 11)], "unscored"]
    assert [bands[str(c)]["exams"] for c in range(1, 11)] == [1, 1, 1, 1, 1, 1, 1, 0, 1, 1]
    three = bands["3"]
    assert (three["screen_detected"], three["interval"], three["cancers_one_reader"]) == (0, 1, 1)
    assert value(three["cancer_share"]) == pytest.approx(0.2)
    assert value(three["cancer_rate_per_1000"]) == pytest.approx(1000.0)
    assert [bands[c]["screen_detected"] for c in ("4", "9", "10")] == [1, 1, 1]
    assert sum(b["cancers_one_reader"] for b in bands.values()) == 1
    assert value(bands["8"]["cancer_rate_per_1000"]) is None  # empty band: undefined
    assert (bands["unscored"]["exams"], bands["unscored"]["interval"]) == (1, 1)
    assert [bands[c]["recalls"] for c in ("4", "5", "7", "9", "10")] == [1, 1, 1, 1, 1]
    outcomes = hand["outcomes"]
    assert (outcomes["cancers"], outcomes["screen_detected"], outcomes["interval"]) == (5, 3, 2)
    assert value(outcomes["recall_rate"]) == pytest.approx(0.5)
    assert value(outcomes["cancer_rate_per_1000"]) == pytest.approx(500.0)


def test_hand_case_devices_against_the_calibration_reference(hand):
    devices = {d["device"]: d for d in hand["devices"]}
    a = devices["ACME / Senograph / A"]
    assert a["exams_scored"] == 5
    assert [value(a["share"][str(c)]) for c in range(1, 11)] == [0.2] * 5 + [0.0] * 5
    by_hand = 5 * 0.1 * math.log(2) + 5 * (0.0001 - 0.1) * math.log(0.0001 / 0.1)
    assert value(a["psi"]) == pytest.approx(by_hand)
    b = devices["ACME / Senograph / B"]
    assert b["exams_scored"] == 4  # e10 has no category
    assert [value(b["share"][str(c)]) for c in (6, 7, 8, 9, 10)] == [0.25, 0.25, 0.0, 0.25, 0.25]
    assert devices["all devices"]["exams_scored"] == 9


def test_hand_case_cut_off_sweep(hand):
    rows = {r["single_reading_max_category"]: r for r in hand["cut_offs"]}
    assert sorted(rows) == list(range(1, 11))
    assert [r["single_reading_max_category"] for r in hand["cut_offs"] if r["policy"]] == [5]
    expected = {5: (14 / 18, 3 / 4, 4 / 9), 10: (10 / 18, 1 / 4, 8 / 9), 1: (17 / 18, 1.0, 1 / 9)}
    for cut, (workload, double, single) in expected.items():
        assert value(rows[cut]["workload"]) == pytest.approx(workload)
        assert value(rows[cut]["cancers_double_read_share"]) == pytest.approx(double)
        assert value(rows[cut]["single_share"]) == pytest.approx(single)


def test_every_estimate_has_an_ordered_interval_or_none(hand):
    def walk(node):
        if isinstance(node, dict):
            if "value" in node and "ci95" in node:
                yield node
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    estimates = list(walk(hand))
    assert len(estimates) > 50
    for e in estimates:
        if e["value"] is None:
            assert e["ci95"] is None
        elif e["ci95"] is not None:
            assert e["ci95"][0] <= e["ci95"][1]
    for e in (hand["auc"], hand["workload"], hand["double_reading"]["sensitivity"]):
        assert e["ci95"][0] <= e["value"] <= e["ci95"][1]


def synthetic(root, n=300, seed=3):
    rng = np.random.default_rng(seed)
    cancer = rng.random(n) < 0.08
    score = np.round(np.clip(rng.normal(35 + 25 * cancer, 15), 0, 100), 1)  # ties on purpose
    cats = 1 + np.searchsorted(np.quantile(score, np.linspace(0.1, 0.9, 9)), score)
    rows = [
        exam_row(
            f"s{i:04d}",
            None if i % 37 == 0 else float(score[i]),
            None if i % 37 == 0 else int(cats[i]),
            station_name="AB"[i % 2],
        )
        for i in range(n)
    ]
    scores = write_scores(root / "scores", [rows])
    outcomes = write_outcomes(
        root / "outcomes.csv",
        [(f"s{i:04d}", int(cancer[i]), 0, int(rng.random() < 0.05)) for i in range(n)],
    )
    exams = join_outcomes(load_exams(scores), read_outcomes(outcomes)).exams
    return exam_arrays(exams, load_policy(defaults.policy_path()))


def test_bootstrap_equals_a_plain_loop_over_the_same_resamples(tmp_path, monkeypatch):
    arrays = synthetic(tmp_path)
    n, n_boot = len(arrays), 40
    monkeypatch.setattr(metrics_module, "CHUNK_ELEMENTS", 7 * n)  # six chunks, the last short
    result = figures(arrays, np.zeros((0, n), dtype=np.int64), n_boot=n_boot, seed=11)
    draws = np.random.default_rng(11).integers(0, n, size=(n_boot, n))
    scored, cancer = arrays.scored, arrays.cancer
    for b in range(n_boot):
        idx = draws[b]
        s = scored[idx]
        pos = arrays.score[idx][s & cancer[idx]]
        neg = arrays.score[idx][s & ~cancer[idx]]
        # AUC by the definition: every cancer/non-cancer pair, ties counting one half
        pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        assert result.resampled["auc"][b] == pytest.approx(pairs.mean())
        reads = np.where(arrays.mode[idx] == metrics_module.SINGLE, 1, 2).sum()
        assert result.resampled["workload"][b] == pytest.approx(reads / (2 * n))
        double = arrays.mode[idx] == metrics_module.DOUBLE
        hits = s & cancer[idx]
        assert result.resampled["sensitivity:double"][b] == pytest.approx(
            (hits & double).sum() / hits.sum()
        )


def test_chunk_size_and_seed(tmp_path, monkeypatch):
    arrays = synthetic(tmp_path)
    empty = np.zeros((0, len(arrays)), dtype=np.int64)
    whole = figures(arrays, empty, n_boot=30, seed=5)
    again = figures(arrays, empty, n_boot=30, seed=5)
    other = figures(arrays, empty, n_boot=30, seed=6)
    monkeypatch.setattr(metrics_module, "CHUNK_ELEMENTS", 4 * len(arrays))
    chunked = figures(arrays, empty, n_boot=30, seed=5)
    for name in ("auc", "workload", "site:psi", "band:3:cancer_share"):
        assert np.array_equal(whole.resampled[name], again.resampled[name], equal_nan=True)
        assert np.array_equal(whole.resampled[name], chunked.resampled[name], equal_nan=True)
    assert not np.array_equal(whole.resampled["auc"], other.resampled["auc"])
