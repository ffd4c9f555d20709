"""Acceptance: over >= 200 synthetic exams in the full vendor mix, `inspect` recovers
laterality, view, orientation and the exam grouping for every image."""

import json
from collections import defaultdict

import pytest
from typer.testing import CliRunner

from mammotriage.cli import app
from mammotriage.synth import PROFILES, generate, read_truth

EXAMS = 204  # a multiple of the profile count, so every vendor profile is equally present


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    generate(out, exams=EXAMS, seed=11, small=True, workers=2)
    result = CliRunner().invoke(app, ["inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    truth = {str(out / row.path): row for row in read_truth(out / "truth.csv")}
    return records, truth


@pytest.mark.slow
def test_the_batch_covers_every_vendor_profile(batch):
    _, truth = batch
    assert {row.manufacturer for row in truth.values()} == {p.manufacturer for p in PROFILES}
    assert len({row.exam_id for row in truth.values()}) == EXAMS


@pytest.mark.slow
def test_laterality_and_view_are_recovered_for_every_image(batch):
    records, truth = batch
    images = [r for r in records if r["kind"] == "image"]
    assert len(images) == len(truth) == 4 * EXAMS
    wrong = [
        (
            r["path"],
            r["laterality"],
            r["view"],
            truth[r["path"]].laterality.value,
            truth[r["path"]].view.value,
        )
        for r in images
        if (r["laterality"], r["view"])
        != (truth[r["path"]].laterality.value, truth[r["path"]].view.value)
    ]
    assert wrong == []
    assert all(r["usable"] for r in images)


@pytest.mark.slow
def test_orientation_is_recovered_for_every_image(batch):
    records, truth = batch
    wrong = [r["path"] for r in records if r["kind"] == "image"
             and r["flip_horizontal"] != (truth[r["path"]].chest_wall.value == "right")]
    assert wrong == []


@pytest.mark.slow
def test_images_are_grouped_into_exactly_the_true_exams(batch):
    records, truth = batch
    found = defaultdict(set)
    for r in records:
        if r["kind"] == "image":
            found[r["exam_id"]].add(r["path"])
    expected = defaultdict(set)
    for path, row in truth.items():
        expected[row.exam_id].add(path)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, expected.values()))
    exams = [r for r in records if r["kind"] == "exam"]
    assert len(exams) == EXAMS and not any(e["partial"] for e in exams)
