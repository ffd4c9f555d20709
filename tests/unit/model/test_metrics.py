"""Specification of :mod:`mammotriage.model.metrics`: validation numbers a programme can trust."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from mammotriage.model import evaluation, metrics
from mammotriage.model.evaluation import ScoredImages, evaluate, reading_levels
from mammotriage.model.metrics import (
    aggregate_scores,
    bootstrap_ci,
    brier_score,
    expected_calibration_error,
    operating_point,
    probabilistic_f1,
    reliability_curve,
    roc_auc,
    roc_curve,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

LEVEL_KEYS = {
    "auc",
    "auc_ci",
    "sensitivity_at_specificity_0.90",
    "sensitivity_at_specificity_0.95",
    "specificity_at_sensitivity_0.85",
    "specificity_at_sensitivity_0.90",
    "pf1",
    "brier",
    "ece",
    "n",
    "n_positive",
}


def tied_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores rounded to one decimal, so that many scores tie across classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = (0, 1)
    return labels, np.round(rng.normal(size=n) + labels, 1)


def screening_table(n_exams: int = 300, seed: int = 0, **overrides: object) -> ScoredImages:
    """Four views per exam, two exams per woman, ~5 % cancer breasts seen in both views."""
    rng = np.random.default_rng(seed)
    n = 4 * n_exams
    label = np.repeat(rng.random(2 * n_exams) < 0.05, 2).astype(int)
    per_breast = rng.choice(list("12345"), 2 * n_exams)
    fields: dict[str, object] = {
        "exam_id": np.repeat([f"E{i:05d}" for i in range(n_exams)], 4),
        "laterality": np.tile(["L", "L", "R", "R"], n_exams),
        "view": np.tile(["CC", "MLO"], 2 * n_exams),
        "patient_id": np.repeat([f"P{i // 2:05d}" for i in range(n_exams)], 4),
        "label": label,
        "probability": np.clip(rng.beta(2, 8, n) + 0.3 * label * rng.random(n), 0, 1),
        "attrs": {
            "density": np.repeat(rng.choice(list("ABCD"), n_exams), 4),
            "manufacturer": np.repeat(rng.choice(["GE", "Hologic", "Siemens"], n_exams), 4),
            "subtlety": np.where(label == 1, np.repeat(per_breast, 2), ""),
            "lesion_type": np.where(label == 1, "mass", ""),
        },
    }
    fields.update(overrides)
    return ScoredImages(**fields)  # type: ignore[arg-type]


# --- ROC, AUC and operating points -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_roc_auc_equals_sklearn_on_scores_with_ties(seed: int) -> None:
    labels, scores = tied_scores(40 + 37 * seed, seed)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_counts_a_tie_between_classes_as_half_a_win() -> None:
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1], [0.2, 0.5, 0.5]) == 0.75


def test_roc_auc_is_nan_when_one_class_is_absent() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.2]))


def test_roc_curve_has_the_points_of_sklearn_from_nothing_positive_to_everything() -> None:
    labels, scores = tied_scores(300, 3)
    fpr, tpr, thresholds = roc_curve(labels, scores)
    fpr_ref, tpr_ref, thresholds_ref = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr_ref)
    np.testing.assert_allclose(tpr, tpr_ref)
    np.testing.assert_allclose(thresholds[1:], thresholds_ref[1:])
    assert thresholds[0] == np.inf and (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)


def test_roc_auc_is_the_trapezoidal_area_under_roc_curve() -> None:
    labels, scores = tied_scores(500, 4)
    fpr, tpr, _ = roc_curve(labels, scores)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert roc_auc(labels, scores) == pytest.approx(area, abs=1e-12)


# Ten normals scored 0.1 ... 1.0 and four cancers; two cancers tie with normals.
NORMALS = np.round(np.arange(1, 11) / 10, 1)
CANCERS = np.array([0.95, 0.85, 0.5, 0.3])
HAND_LABELS = np.r_[np.zeros(10, int), np.ones(4, int)]
HAND_SCORES = np.r_[NORMALS, CANCERS]


@pytest.mark.parametrize(
    ("specificity", "sensitivity"),
    [(1.0, 0.0), (0.9, 0.25), (0.85, 0.25), (0.8, 0.5), (0.5, 0.5), (0.4, 0.75), (0.0, 1.0)],
)
def test_sensitivity_at_specificity_is_the_highest_sensitivity_meeting_the_target(
    specificity: float, sensitivity: float
) -> None:
    got = sensitivity_at_specificity(HAND_LABELS, HAND_SCORES, specificity)
    assert got == pytest.approx(sensitivity)


@pytest.mark.parametrize(
    ("sensitivity", "specificity"), [(0.25, 0.9), (0.5, 0.8), (0.75, 0.4), (1.0, 0.2)]
)
def test_specificity_at_sensitivity_is_the_highest_specificity_meeting_the_target(
    sensitivity: float, specificity: float
) -> None:
    got = specificity_at_sensitivity(HAND_LABELS, HAND_SCORES, sensitivity)
    assert got == pytest.approx(specificity)


def test_operating_point_threshold_realises_its_rates() -> None:
    labels, scores = tied_scores(400, 5)
    for point in (
        operating_point(labels, scores, specificity=0.9),
        operating_point(labels, scores, sensitivity=0.85),
    ):
        called = scores >= point.threshold
        assert called[labels == 1].mean() == pytest.approx(point.sensitivity)
        assert (~called[labels == 0]).mean() == pytest.approx(point.specificity)


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_sensitivity_at_specificity_agrees_with_a_scan_of_sklearn_roc(target: float) -> None:
    labels, scores = tied_scores(700, 6)
    fpr, tpr, _ = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    expected = tpr[1 - fpr >= target].max()
    assert sensitivity_at_specificity(labels, scores, target) == pytest.approx(expected)


def test_operating_point_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        operating_point([0, 1], [0.1, 0.9])
    with pytest.raises(ValueError, match="exactly one"):
        operating_point([0, 1], [0.1, 0.9], specificity=0.9, sensitivity=0.9)


def test_labels_other_than_zero_and_one_are_refused() -> None:
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        roc_auc([0, 2], [0.1, 0.9])


# --- probabilistic F1 and calibration ---------------------------------------------------------


def test_probabilistic_f1_on_a_hand_computed_example() -> None:
    # pTP = 0.9 + 0.5 = 1.4, pFP = 0.2 + 0.1 = 0.3; precision 14/17, recall 1.4/2 = 0.7.
    labels, probabilities = [1, 1, 0, 0, 0], [0.9, 0.5, 0.2, 0.1, 0.0]
    assert probabilistic_f1(labels, probabilities) == pytest.approx(28 / 37)
    precision, recall = 14 / 17, 0.7
    f2 = 5 * precision * recall / (4 * precision + recall)
    assert probabilistic_f1(labels, probabilities, beta=2.0) == pytest.approx(f2)


def rsna_reference_pfbeta(labels: np.ndarray, predictions: np.ndarray, beta: float) -> float:
    """The RSNA 2023 challenge's published scoring loop, transcribed."""
    y_true_count = ctp = cfp = 0.0
    for label, prediction in zip(labels, predictions, strict=True):
        prediction = min(max(prediction, 0), 1)
        if label:
            y_true_count += 1
            ctp += prediction
        else:
            cfp += prediction
    precision, recall = ctp / (ctp + cfp), ctp / y_true_count
    if precision > 0 and recall > 0:
        return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
    return 0.0


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_probabilistic_f1_equals_the_rsna_reference_loop(beta: float) -> None:
    rng = np.random.default_rng(7)
    labels, probabilities = rng.integers(0, 2, 200), rng.random(200)
    expected = rsna_reference_pfbeta(labels, probabilities, beta)
    assert probabilistic_f1(labels, probabilities, beta) == pytest.approx(expected)


def test_probabilistic_f1_is_zero_without_predicted_mass_and_nan_without_cancers() -> None:
    assert probabilistic_f1([1, 0], [0.0, 0.0]) == 0.0
    assert math.isnan(probabilistic_f1([0, 0], [0.3, 0.4]))


def test_probabilities_outside_zero_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score([0, 1], [0.1, 1.2])


def test_brier_score_equals_sklearn() -> None:
    rng = np.random.default_rng(8)
    labels, probabilities = rng.integers(0, 2, 300), rng.random(300)
    assert brier_score(labels, probabilities) == pytest.approx(
        brier_score_loss(labels, probabilities)
    )


def test_reliability_curve_drops_empty_bins_and_keeps_probability_one() -> None:
    labels = [0, 0, 0, 1, 0, 1, 1, 1, 1]
    probabilities = [0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75, 1.0]
    mean_predicted, fraction_positive, counts = reliability_curve(labels, probabilities, bins=4)
    np.testing.assert_allclose(mean_predicted, [0.25, 0.8])
    np.testing.assert_allclose(fraction_positive, [0.25, 0.8])
    np.testing.assert_array_equal(counts, [4, 5])


def test_expected_calibration_error_is_zero_when_rates_match_and_weighted_by_counts() -> None:
    assert expected_calibration_error([0, 0, 0, 1, 0, 1, 1, 1], [0.25] * 4 + [0.75] * 4) == 0.0
    # p = 0.1: rate 0.5 (gap 0.4, 2 items); p = 0.9: rate 1 (gap 0.1, 6 items).
    labels, probabilities = [0, 1] + [1] * 6, [0.1, 0.1] + [0.9] * 6
    assert expected_calibration_error(labels, probabilities) == pytest.approx(
        (2 * 0.4 + 6 * 0.1) / 8
    )


# --- bootstrap --------------------------------------------------------------------------------


def separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    return labels, np.clip(rng.normal(0.4 + 0.2 * labels, 0.15), 0, 1)


@pytest.mark.parametrize("metric_fn", [roc_auc, probabilistic_f1, brier_score])
def test_bootstrap_interval_contains_the_point_estimate(metric_fn: metrics.Metric) -> None:
    labels, scores = separable(400, 1)
    lo, hi = bootstrap_ci(metric_fn, labels, scores, n_boot=500)
    assert lo < metric_fn(labels, scores) < hi


def test_bootstrap_interval_narrows_with_more_data() -> None:
    small_lo, small_hi = bootstrap_ci(roc_auc, *separable(200, 2), n_boot=500)
    large_lo, large_hi = bootstrap_ci(roc_auc, *separable(2000, 2), n_boot=500)
    assert large_hi - large_lo < 0.6 * (small_hi - small_lo)


def test_cluster_bootstrap_is_wider_than_naive_when_clusters_are_copies() -> None:
    # Four identical images per woman carry the information of one: resampling images as if
    # independent halves the interval's width (sqrt 4), resampling women does not.
    labels, scores = separable(150, 3)
    images_labels, images_scores = np.repeat(labels, 4), np.repeat(scores, 4)
    women = np.repeat(np.arange(150), 4)
    naive = bootstrap_ci(roc_auc, images_labels, images_scores, n_boot=1000)
    clustered = bootstrap_ci(roc_auc, images_labels, images_scores, clusters=women, n_boot=1000)
    one_per_woman = bootstrap_ci(roc_auc, labels, scores, n_boot=1000)
    assert clustered[1] - clustered[0] > 1.6 * (naive[1] - naive[0])
    assert clustered[1] - clustered[0] == pytest.approx(
        one_per_woman[1] - one_per_woman[0], rel=0.15
    )


@pytest.mark.parametrize("metric_fn", [roc_auc, probabilistic_f1, brier_score])
def test_vectorised_bootstrap_equals_one_metric_call_per_resample(
    metric_fn: metrics.Metric,
) -> None:
    labels, scores = tied_scores(300, 9)
    scores = np.clip(scores / 4 + 0.5, 0, 1)
    clusters = np.arange(300) // 3
    fast = bootstrap_ci(metric_fn, labels, scores, clusters=clusters, n_boot=200, seed=4)
    slow = bootstrap_ci(
        lambda y, s: metric_fn(y, s), labels, scores, clusters=clusters, n_boot=200, seed=4
    )
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_bootstrap_accepts_any_metric_such_as_an_operating_point() -> None:
    labels, scores = separable(300, 5)
    metric = functools.partial(sensitivity_at_specificity, specificity=0.9)
    lo, hi = bootstrap_ci(metric, labels, scores, n_boot=200)
    assert lo <= metric(labels, scores) <= hi


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    labels, scores = separable(300, 6)
    assert bootstrap_ci(roc_auc, labels, scores, seed=11) == bootstrap_ci(
        roc_auc, labels, scores, seed=11
    )
    assert bootstrap_ci(roc_auc, labels, scores, seed=11) != bootstrap_ci(
        roc_auc, labels, scores, seed=12
    )


def test_bootstrap_skips_resamples_that_draw_one_class_only() -> None:
    labels, scores = np.r_[1, np.zeros(9, int)], np.linspace(0, 1, 10)[::-1]
    lo, hi = bootstrap_ci(roc_auc, labels, scores, n_boot=300)
    assert (lo, hi) == (1.0, 1.0)
    undefined = bootstrap_ci(roc_auc, [0, 0, 0], [0.1, 0.2, 0.3], n_boot=50)
    assert all(math.isnan(bound) for bound in undefined)


def test_thousand_auc_resamples_of_two_thousand_images_take_well_under_a_second() -> None:
    labels, scores = separable(2000, 7)
    bootstrap_ci(roc_auc, labels, scores, n_boot=50)  # warm-up
    start = time.perf_counter()
    bootstrap_ci(roc_auc, labels, scores, n_boot=1000)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(("option", "value"), [("n_boot", 0), ("alpha", 1.0), ("alpha", 0.0)])
def test_bootstrap_refuses_meaningless_options(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        bootstrap_ci(roc_auc, [0, 1], [0.1, 0.9], **{option: value})  # type: ignore[arg-type]


# --- aggregation and reading levels -----------------------------------------------------------


def test_aggregate_scores_takes_the_max_per_key_and_sorts_keys() -> None:
    keys, aggregated = aggregate_scores(["b", "a", "b", "a", "c"], [0.2, 0.1, 0.7, 0.4, 0.3])
    assert keys.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(aggregated, [0.4, 0.7, 0.3])


def test_aggregate_scores_can_average() -> None:
    _, aggregated = aggregate_scores(["b", "a", "b", "a"], [0.2, 0.1, 0.6, 0.4], how="mean")
    np.testing.assert_allclose(aggregated, [0.25, 0.4])
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        aggregate_scores(["a"], [0.1], how="median")  # type: ignore[arg-type]


def two_exams(**overrides: object) -> ScoredImages:
    """Exam E1: left breast cancer seen on MLO only; exam E2 normal."""
    fields: dict[str, object] = {
        "exam_id": ["E1"] * 4 + ["E2"] * 4,
        "laterality": ["L", "L", "R", "R"] * 2,
        "view": ["CC", "MLO"] * 4,
        "label": [0, 1, 0, 0, 0, 0, 0, 0],
        "probability": [0.2, 0.9, 0.3, 0.1, 0.4, 0.2, 0.1, 0.1],
        "attrs": {"subtlety": ["", "3", "", "", "", "", "", ""]},
    }
    fields.update(overrides)
    return ScoredImages(**fields)  # type: ignore[arg-type]


def test_breast_and_exam_labels_and_scores_aggregate_by_max() -> None:
    levels = reading_levels(two_exams())
    breast, exam = levels["breast"], levels["exam"]
    assert breast.key.tolist() == ["E1/L", "E1/R", "E2/L", "E2/R"]
    assert breast.label.tolist() == [1, 0, 0, 0]
    np.testing.assert_allclose(breast.probability, [0.9, 0.3, 0.4, 0.1])
    assert exam.key.tolist() == ["E1", "E2"] and exam.label.tolist() == [1, 0]
    np.testing.assert_allclose(exam.probability, [0.9, 0.4])


def test_a_cancer_breast_takes_its_subtlety_from_the_view_that_shows_the_cancer() -> None:
    breast = reading_levels(two_exams())["breast"]
    assert breast.attrs["subtlety"].tolist() == ["3", "", "", ""]


def test_with_mean_aggregation_an_exam_is_still_its_more_suspicious_breast() -> None:
    levels = reading_levels(two_exams(), how="mean")
    np.testing.assert_allclose(levels["breast"].probability, [0.55, 0.2, 0.3, 0.1])
    np.testing.assert_allclose(levels["exam"].probability, [0.55, 0.3])


def test_bootstrap_clusters_are_patients_when_known_else_exams() -> None:
    assert reading_levels(two_exams())["breast"].cluster.tolist() == ["E1", "E1", "E2", "E2"]
    with_patients = two_exams(patient_id=["P1"] * 8)
    assert set(reading_levels(with_patients)["exam"].cluster) == {"P1"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"laterality": ["L", "B"] * 4}, "laterality"),
        ({"view": ["CC"] * 7}, "view"),
        ({"probability": [1.5] * 8}, "probabilities"),
        ({"attrs": {"view": ["CC"] * 8}}, "view"),
    ],
)
def test_scored_images_refuses_inconsistent_columns(
    override: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        two_exams(**override)


# --- evaluate ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> dict:
    return evaluate(screening_table(), n_boot=200)


def test_evaluate_reports_every_metric_at_image_breast_and_exam_level(report: dict) -> None:
    for level in ("image", "breast", "exam"):
        assert set(report[level]) >= LEVEL_KEYS
        lo, hi = report[level]["auc_ci"]
        assert lo <= report[level]["auc"] <= hi
    assert report["counts"]["images"] == report["image"]["n"] == 1200
    assert report["counts"]["breasts"] == report["breast"]["n"] == 600
    assert report["counts"]["exams"] == report["exam"]["n"] == 300
    assert report["counts"]["patients"] == 150
    assert report["bootstrap"]["clusters"] == "patient"


def test_evaluate_reports_subgroups_at_breast_level_and_view_at_image_level(report: dict) -> None:
    subgroups = report["subgroups"]
    assert set(subgroups) == {"density", "subtlety", "manufacturer", "view", "lesion_type"}
    assert set(subgroups["density"]) == set("ABCD")
    assert sum(v["n"] for v in subgroups["density"].values()) == report["breast"]["n"]
    assert sum(v["n"] for v in subgroups["view"].values()) == report["image"]["n"]
    for values in subgroups.values():
        for entry in values.values():
            assert {"auc", "auc_ci", "n", "n_positive", "n_negative"} <= set(entry)


def test_evaluate_output_is_strict_json(report: dict) -> None:
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_undefined_metrics_become_null_in_the_report() -> None:
    table = screening_table(60, seed=1)
    # One manufacturer with normal exams only: its AUC and interval are undefined.
    exam_has_cancer = table.label.reshape(-1, 4).max(axis=1) == 1
    odd = np.arange(exam_has_cancer.size) % 2 == 1
    manufacturer = np.repeat(np.where(exam_has_cancer | odd, "GE", "Fuji"), 4)
    attrs = {**table.attrs, "manufacturer": manufacturer}
    fuji = evaluate(screening_table(60, seed=1, attrs=attrs), n_boot=50)["subgroups"]
    entry = fuji["manufacturer"]["Fuji"]
    assert entry["n_positive"] == 0
    assert entry["auc"] is None and entry["auc_ci"] == [None, None]
    json.dumps(fuji, allow_nan=False)


def test_subtlety_auc_compares_its_cancers_with_all_normals() -> None:
    # Subtle (1) cancers score like normals, obvious (5) ones far above; density groups split
    # the normals. Each subtlety's AUC must use every normal breast, whatever its density.
    n = 40
    normals = np.linspace(0.0, 0.5, n)
    subtle, obvious = np.array([0.1, 0.3, 0.45]), np.array([0.8, 0.9])
    probability = np.r_[normals, subtle, obvious]
    label = np.r_[np.zeros(n, int), np.ones(5, int)]
    breasts = probability.size
    table = ScoredImages(
        exam_id=np.array([f"E{i}" for i in range(breasts)]),
        laterality=np.full(breasts, "L"),
        view=np.full(breasts, "CC"),
        label=label,
        probability=probability,
        attrs={
            "subtlety": np.array([""] * n + ["1"] * 3 + ["5"] * 2),
            "density": np.array(["A", "B"] * (n // 2) + ["A"] * 5),
        },
    )
    subtlety = evaluate(table, n_boot=50)["subgroups"]["subtlety"]
    assert subtlety["1"]["n"] == n + 3 and subtlety["1"]["n_positive"] == 3
    assert subtlety["1"]["auc"] == pytest.approx(roc_auc(label[: n + 3], probability[: n + 3]))
    assert subtlety["5"]["auc"] == 1.0 and subtlety["5"]["n_negative"] == n
    density = evaluate(table, n_boot=50)["subgroups"]["density"]
    assert density["B"]["n_positive"] == 0 and density["B"]["n"] == n // 2


def test_metrics_run_without_torch_sklearn_or_matplotlib(tmp_path: Path) -> None:
    # A runtime install validates models; it has numpy only. Load the report module by its
    # file (the package's __init__ belongs to training) with the three imports made to fail;
    # it imports the metrics module.
    script = f"""
import importlib.abc, importlib.util, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"torch", "sklearn", "matplotlib"}}:
            raise ImportError("refused: " + name)
sys.meta_path.insert(0, Refuse())
spec = importlib.util.spec_from_file_location("standalone_evaluation", {evaluation.__file__!r})
module = importlib.util.module_from_spec(spec)
sys.modules["standalone_evaluation"] = module
spec.loader.exec_module(module)
table = module.ScoredImages(exam_id=["E1", "E1", "E2", "E2"], laterality=["L", "R"] * 2,
    view=["CC"] * 4, label=[1, 0, 0, 0], probability=[0.9, 0.2, 0.3, 0.1])
print(module.evaluate(table, n_boot=20)["exam"]["auc"])
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1.0"


@pytest.mark.slow
def test_evaluate_on_twelve_hundred_exams_takes_a_few_seconds_at_most() -> None:
    table = screening_table(1200, seed=2)
    start = time.perf_counter()
    evaluate(table, n_boot=1000)
    assert time.perf_counter() - start < 5.0
