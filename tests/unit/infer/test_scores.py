"""Specification of :mod:`mammotriage.infer.scores`: aggregation, categories, the JSON record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.infer.scores import ExamScore, Finding, ImageScore, aggregate, category_of

L, R = Laterality.LEFT, Laterality.RIGHT
CC, MLO = ViewPosition.CC, ViewPosition.MLO
DECILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def image(laterality, view, probability, *, usable=True, reason=None) -> ImageScore:
    return ImageScore(
        path=Path(f"{laterality.value}{view.value}.dcm"),
        sop_instance_uid=f"1.2.3.{len(reason or '')}",
        laterality=laterality,
        view=view,
        usable=usable,
        reason=reason,
        probability=probability,
        logit=None,
    )


FOUR = [image(R, CC, 0.10), image(R, MLO, 0.30), image(L, CC, 0.80), image(L, MLO, 0.20)]


def test_breast_is_its_most_suspicious_view_and_exam_its_most_suspicious_breast():
    exam, breasts = aggregate(FOUR, "max", "max")
    assert breasts == pytest.approx({L: 80.0, R: 30.0})
    assert exam == pytest.approx(80.0)


def test_mean_aggregation_averages_the_views_of_a_breast_when_the_sidecar_says_so():
    exam, breasts = aggregate(FOUR, "mean", "max")
    assert breasts == pytest.approx({L: 50.0, R: 20.0})
    assert exam == pytest.approx(50.0)
    exam_mean, _ = aggregate(FOUR, "mean", "mean")
    assert exam_mean == pytest.approx(35.0)


def test_unscored_and_unusable_images_take_no_part_in_the_score():
    images = [*FOUR[:2], image(L, CC, None, usable=False, reason="not a mammogram")]
    exam, breasts = aggregate(images)
    assert breasts == {L: None, R: pytest.approx(30.0)}
    assert exam == pytest.approx(30.0)


def test_an_exam_with_nothing_scored_has_no_score():
    assert aggregate([image(L, CC, None, usable=False, reason="x")]) == (
        None,
        {L: None, R: None},
    )


def test_unknown_aggregation_is_refused_by_name():
    with pytest.raises(ValueError, match="how_exam"):
        aggregate(FOUR, "max", "median")


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0.0, 1),
        (10.0, 1),  # upper bounds are inclusive
        (10.0001, 2),
        (50.0, 5),
        (50.5, 6),
        (90.0, 9),
        (90.01, 10),
        (100.0, 10),
    ],
)
def test_category_boundaries(score, category):
    assert category_of(score, DECILES) == category


def test_tied_thresholds_send_a_tied_score_to_the_lowest_category():
    assert category_of(5.0, (5, 5, 5, 40, 50, 60, 70, 80, 90)) == 1
    assert category_of(5.1, (5, 5, 5, 40, 50, 60, 70, 80, 90)) == 4


@pytest.mark.parametrize("thresholds", [(1, 2, 3), (9, 8, 7, 6, 5, 4, 3, 2, 1)])
def test_thresholds_must_be_nine_ascending_cut_points(thresholds):
    with pytest.raises(ValueError, match="thresholds"):
        category_of(50, thresholds)


def test_json_record_lists_every_image_with_its_reason():
    ct = image(L, ViewPosition.UNKNOWN, None, usable=False, reason="not a mammogram (Modality CT)")
    finding = Finding("1.2.3.0", Path("LCC.dcm"), L, CC, (10.0, 20.0, 30.5, 40.04), 81)
    exam = ExamScore(
        exam_id="1.2.3",
        score=80.0,
        category=9,
        partial=False,
        breasts={L: 80.0, R: 30.0},
        findings=(finding,),
        images=(*FOUR, ct),
        model_name="tiny",
        model_sha256="ab" * 32,
    )
    record = json.loads(exam.to_json())
    keys = {"exam_id", "score", "category", "partial", "breasts", "findings", "model", "images"}
    assert keys <= set(record)
    assert record["model"] == {"name": "tiny", "sha256": "ab" * 32}
    assert record["breasts"] == {"L": 80.0, "R": 30.0}
    assert record["findings"][0]["box"] == [10.0, 20.0, 30.5, 40.0]
    assert record["findings"][0]["score"] == 81 and exam.max_finding_score == 81
    unusable = [im for im in record["images"] if not im["usable"]]
    assert unusable == [
        {
            "path": "LUNKNOWN.dcm",
            "sop_instance_uid": ct.sop_instance_uid,
            "laterality": "L",
            "view": "UNKNOWN",
            "usable": False,
            "reason": "not a mammogram (Modality CT)",
            "score": None,
            "decoder": None,  # nothing read its pixels
        }
    ]
    assert len(record["images"]) == 5
