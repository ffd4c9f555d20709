"""Specification of :mod:`mammotriage.infer.calibrate`: categories of about a tenth each of
the site's own reference population."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from infer_builders import tiny_model, write_exam
from mammotriage.errors import ConfigError
from mammotriage.infer.calibrate import (
    calibrate,
    calibration_from_scores,
    decile_thresholds,
    too_few_exams,
)
from mammotriage.infer.scores import category_of
from mammotriage.infer.session import OnnxModel
from mammotriage.sidecar import load_sidecar


def test_fifty_reference_scores_fill_the_ten_categories_about_equally():
    rng = np.random.default_rng(7)
    scores = 100 * rng.beta(2, 8, size=50)  # skewed, as screening scores are
    calibration = calibration_from_scores(list(scores), "50 test exams")
    counts = Counter(category_of(s, calibration.thresholds) for s in scores)
    assert sorted(counts) == list(range(1, 11))
    assert all(4 <= n <= 6 for n in counts.values()), counts  # 10 % +- 2 %
    assert calibration.exams == 50 and calibration.reference == "50 test exams"


def test_thresholds_never_descend_even_with_tied_scores():
    scores = [1.0] * 30 + [2.0, 3.0, 50.0, 99.0]
    cuts = decile_thresholds(scores)
    assert len(cuts) == 9 and all(b >= a for a, b in zip(cuts, cuts[1:], strict=False))


def test_an_empty_or_non_finite_population_is_refused():
    with pytest.raises(ValueError, match="scores"):
        decile_thresholds([])
    with pytest.raises(ValueError, match="scores"):
        decile_thresholds([1.0, float("nan")])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve two-view exams whose L-CC blob brightness rises exam by exam."""
    root = tmp_path_factory.mktemp("reference")
    for i in range(12):
        level = 0.72 + 0.025 * i
        write_exam(
            root / f"e{i:02d}",
            study=f"1.2.826.0.1.3680043.8.498.7{i:02d}",
            blobs={("L", "CC"): ((4, 30, 34, 60), level)},
            views=(("L", "CC"), ("R", "CC")),
        )
    return root


def test_calibrating_replaces_only_the_calibration_of_the_models_own_sidecar(
    tmp_path: Path, reference: Path
):
    model = tiny_model(tmp_path)
    before = load_sidecar(model)
    old_text = model.with_suffix(".json").read_text()
    written = calibrate(model, reference, population="test site 2026", min_exams=10)
    after = written.sidecar
    assert load_sidecar(model) == after
    # The sidecar it replaced is kept beside it, byte for byte, and named.
    assert written.backup is not None and written.backup.parent == model.parent
    assert written.backup.read_text() == old_text
    assert after.calibration.thresholds != before.calibration.thresholds
    assert after.calibration.exams == 12
    assert "test site 2026" in after.calibration.reference
    assert "12 exams" in after.calibration.reference
    assert after.model_dump(exclude={"calibration"}) == before.model_dump(exclude={"calibration"})
    OnnxModel(model)  # the sidecar still describes the .onnx beside it (sha256 checked)


def test_calibration_can_be_written_elsewhere(tmp_path: Path, reference: Path):
    model = tiny_model(tmp_path / "model")
    before = load_sidecar(model)
    out = tmp_path / "site" / "calibrated.json"
    written = calibrate(model, [reference], out, min_exams=10)
    sidecar = written.sidecar
    assert written.path == out and written.backup is None
    assert load_sidecar(model) == before
    assert out.read_text().count('"thresholds"') == 1
    assert sidecar.sha256 == before.sha256


def test_too_few_exams_are_refused_with_the_count(tmp_path: Path, reference: Path):
    model = tiny_model(tmp_path)
    # 12 exams, all scorable: the reason is the count, not scoring.
    with pytest.raises(ConfigError, match="too few exams: 12, calibration needs at least 20"):
        calibrate(model, reference)
    with pytest.raises(ConfigError, match="not found"):
        calibrate(model, tmp_path / "nowhere", min_exams=1)


def test_one_rule_names_the_real_reason_for_too_few_exams():
    assert too_few_exams(20) is None and too_few_exams(25, 20) is None
    assert "too few exams: 12, calibration needs at least 20" in str(too_few_exams(12))
    assert "only 12 of 25 could be scored" in str(too_few_exams(25, 12))


def test_a_table_from_fewer_exams_than_calibrate_accepts_carries_the_same_warning():
    # export builds its table with this function: 18 validation exams are flagged with the
    # very words calibrate refuses with, 20 are not.
    rng = np.random.default_rng(3)
    small = calibration_from_scores(list(100 * rng.random(18)), "18 validation exams")
    assert small.warning == too_few_exams(18)
    assert calibration_from_scores(list(100 * rng.random(20)), "20 exams").warning is None


def test_the_packaged_models_sidecar_is_never_modified(tmp_path: Path, reference: Path):
    from mammotriage import defaults

    shipped = defaults.model_path().with_suffix(".json")
    before = shipped.read_bytes()
    with pytest.raises(ConfigError, match="packaged demonstration model's sidecar.*--out"):
        calibrate(defaults.model_path(), reference, min_exams=10)
    with pytest.raises(ConfigError, match="packaged demonstration model's sidecar"):
        calibrate(tiny_model(tmp_path), reference, shipped, min_exams=10)
    assert shipped.read_bytes() == before
    assert not list(shipped.parent.glob("*.bak"))
    out = tmp_path / "site.json"
    written = calibrate(defaults.model_path(), reference, out, min_exams=10)
    assert written.path == out and written.sidecar.calibration.exams == 12
    assert shipped.read_bytes() == before
