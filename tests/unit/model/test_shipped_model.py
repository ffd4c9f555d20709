"""The shipped demonstration model: present, self-describing, honest, and as good on a
fresh synthetic hold-out as its model card says (>= 0.85 exam AUC on a small one here; the
card reports the full >= 300-exam figure)."""

import hashlib
import json

import pytest

from mammotriage import defaults
from mammotriage.synth import generate

SHIPPED = defaults.model_path()
MODELS = SHIPPED.parent


def test_shipped_model_and_sidecar_match():
    sidecar = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == sidecar["sha256"]
    assert sidecar["parity"]["max_abs_logit_delta"] <= 1e-4
    assert "not for clinical use" in sidecar["intended_use"].lower()


def test_models_folder_stays_under_30_mb():
    assert sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file()) <= 30 * 2**20


def test_model_card_says_plainly_what_the_model_is():
    card = (MODELS / "MODEL_CARD.md").read_text().lower()
    for phrase in ("synthetic", "not for clinical use", "retrain and validate on your own"):
        assert phrase in card


@pytest.mark.slow
def test_shipped_model_reaches_085_exam_auc_on_a_fresh_synthetic_holdout(tmp_path):
    from mammotriage.model.validate import validate

    data = tmp_path / "holdout"
    # Seed 424242 is used nowhere in training (train: 1000, model hold-out: 9001).
    generate(data, exams=60, seed=424242, small=True, prevalence=0.5, workers=2)
    metrics = validate(SHIPPED, data, tmp_path / "out", n_boot=200, plots=False)
    assert metrics["exam"]["auc"] >= 0.85, metrics["exam"]


#: Share of cancer images whose top finding overlaps the true box (IoU >= 0.3), measured for
#: the model card (MODEL_CARD.md, "Localisation") on six fresh 40-exam sets, seeds 101, 202,
#: 303, 404, 505 and 606 (prevalence 0.5): 45, 42.5, 50, 52.5, 70 and 42.5 %, mean 50.4 %,
#: standard deviation across seeds 10.4 points. The bar is the lowest seed's 42.5 % less two
#: of those standard deviations (21 points), rounded down: 0.20. It catches a model or a box
#: mapping that stops pointing at lesions; it does not promise more than the card says.
LOCALISATION_MIN_SHARE = 0.20
LOCALISATION_TEST_SEEDS = (8123, 4711)


@pytest.mark.slow
@pytest.mark.parametrize("seed", LOCALISATION_TEST_SEEDS)
def test_top_finding_overlaps_the_true_lesion_on_a_fresh_set_as_the_card_says(tmp_path, seed):
    """The threshold comes from the measurement published in MODEL_CARD.md (see
    :data:`LOCALISATION_MIN_SHARE`), not from this test's data: seeds 8123 and 4711 were used
    neither to measure nor to train (1000), and not 2718, which an older version of this
    test chose its bar on."""
    from mammotriage.infer.engine import ScoringEngine
    from mammotriage.infer.localisation import top_finding_overlaps
    from mammotriage.synth import read_truth

    data = tmp_path / "localisation"
    generate(data, exams=40, seed=seed, small=True, prevalence=0.5, workers=2)
    with ScoringEngine(SHIPPED) as engine:
        exams = engine.score_paths([data])
    hits = top_finding_overlaps(exams, read_truth(data / "truth.csv"), data, threshold=0.3)
    share = sum(hit for _, hit in hits) / len(hits)
    assert len(hits) == 40  # 20 cancer exams x 2 views
    assert share >= LOCALISATION_MIN_SHARE, (
        f"top finding IoU >= 0.3 on {share:.0%} of {len(hits)} cancer images (seed {seed})"
    )
