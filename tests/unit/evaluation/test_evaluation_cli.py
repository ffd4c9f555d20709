"""`mammotriage evaluate` as a site runs it: the summary, the files, and exit code 2 with one
line for every input a person can get wrong."""

from __future__ import annotations

import json

import pytest
from evaluation_builders import exam_row, write_outcomes, write_scores
from typer.testing import CliRunner

from mammotriage import defaults
from mammotriage.cli import app
from mammotriage.sidecar import DEMONSTRATION_NOTICE, load_sidecar

runner = CliRunner()


@pytest.fixture
def inputs(tmp_path):
    rows = [exam_row(f"e{i}", 10.0 * i, 1 + i) for i in range(10)]
    rows.append(exam_row("u0", None, None))
    scores = write_scores(tmp_path / "scores", [rows])
    outcomes = write_outcomes(
        tmp_path / "outcomes.csv",
        [(f"e{i}", int(i in (3, 8, 9)), 0, int(i > 6)) for i in range(10)] + [("zz", 0, 0, 0)],
    )
    return scores, outcomes


def evaluate_args(scores, outcomes, out, *extra):
    return [
        "evaluate",
        "--scores",
        str(scores),
        "--outcomes",
        str(outcomes),
        "--out",
        str(out),
        "--n-boot",
        "50",
        *extra,
    ]


def test_evaluate_prints_a_summary_and_writes_the_report(tmp_path, inputs):
    scores, outcomes = inputs
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        evaluate_args(scores, outcomes, out, "--seed", "3", "--interval-months", "12"),
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert DEMONSTRATION_NOTICE in text
    assert (
        "11 exams (1 not scored), 10 with an outcome; 1 exam without an outcome, 1 outcome "
        "without an exam" in text
    )
    assert "AUC " in text and "workload " in text and f"report: {out / 'report.html'}" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["interval_months"] == 12
    assert metrics["bootstrap"] == {"n_boot": 50, "seed": 3, "level": 0.95, "resampled": "exams"}
    assert metrics["inputs"]["policy_version"] == "crd-2024.2"
    assert sorted(p.name for p in out.iterdir()) == [
        "exams-without-outcome.csv",
        "metrics.json",
        "outcomes-without-exam.csv",
        "report.html",
    ]


def test_evaluate_with_another_policy(tmp_path, inputs):
    scores, outcomes = inputs
    policy = tmp_path / "all-double.yaml"
    policy.write_text('version: "all-double"\nsingle_reading_max_category: 0\n')
    out = tmp_path / "report"
    result = runner.invoke(app, evaluate_args(scores, outcomes, out, "--policy", str(policy)))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["policy_version"] == "all-double"
    assert metrics["workload"]["value"] == 1.0


def test_sidecar_out_defaults_to_the_packaged_model(tmp_path):
    sha = load_sidecar(defaults.model_path()).sha256
    rows = [exam_row(f"e{i}", float(i), 1 + i % 10, model_sha256=sha) for i in range(25)]
    scores = write_scores(tmp_path / "scores", [rows])
    outcomes = write_outcomes(tmp_path / "o.csv", [(f"e{i}", 0, 0, 0) for i in range(25)])
    result = runner.invoke(
        app,
        evaluate_args(scores, outcomes, tmp_path / "r", "--sidecar-out", str(tmp_path / "s")),
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 's' / 'site.json'}" in " ".join(result.output.split())
    assert (tmp_path / "s" / "site.json").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scores": "nowhere"}, "scores folder"),
        ({"outcomes": "nowhere.csv"}, "outcomes file"),
        ({"policy": "nowhere.yaml"}, "triage policy"),
        (
            {"outcomes_text": "exam_id,screen_detected_cancer,interval_cancer\ne0,,0\n"},
            "outcomes.csv:2: screen_detected_cancer is empty",
        ),
        ({"extra": ["--sidecar-out", "SIDECARS"]}, "give --model the .onnx that made them"),
        ({"extra": ["--sidecar-out", "SIDECARS", "--model", "nowhere.onnx"]}, "is missing"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(tmp_path, inputs, change, message):
    scores, outcomes = inputs
    if "scores" in change:
        scores = tmp_path / change["scores"]
    if "outcomes" in change:
        outcomes = tmp_path / change["outcomes"]
    if "outcomes_text" in change:
        outcomes.write_text(change["outcomes_text"])
    extra = [e.replace("SIDECARS", str(tmp_path / "s")) for e in change.get("extra", [])]
    if "policy" in change:
        extra += ["--policy", str(tmp_path / change["policy"])]
    result = runner.invoke(
        app, evaluate_args(scores, outcomes, tmp_path / "r", *extra), env={"COLUMNS": "250"}
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing written


def test_n_boot_below_one_is_refused_by_the_option(tmp_path, inputs):
    scores, outcomes = inputs
    result = runner.invoke(app, [*evaluate_args(scores, outcomes, tmp_path / "r"), "--n-boot", "0"])
    assert result.exit_code == 2
