"""`mammotriage score`, `calibrate` and `simulate` as a site runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicom_builders import mg_dataset, write
from infer_builders import tiny_model, write_exam
from mammotriage.cli import app
from mammotriage.sidecar import load_sidecar

runner = CliRunner()
STUDIES = [f"1.2.826.0.1.3680043.8.498.9{i:02d}" for i in range(12)]
EXAM_KEYS = {"exam_id", "score", "category", "partial", "breasts", "findings", "model", "images"}
IMAGE_KEYS = {"path", "view", "laterality", "usable", "reason", "score"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two four-view exams (one with a bright L-CC blob) and a CT file of the first."""
    root = tmp_path_factory.mktemp("data")
    write_exam(root / "a", study=STUDIES[0], blobs={("L", "CC"): ((4, 30, 34, 60), 1.0)})
    write_exam(root / "b", study=STUDIES[1])
    write(
        mg_dataset(Modality="CT", BodyPartExamined="CHEST", StudyInstanceUID=STUDIES[0]),
        root / "a" / "ct.dcm",
    )
    return root


def score_json(*args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = runner.invoke(app, ["score", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_score_json_prints_one_object_per_exam(model, data):
    records = score_json(str(data), "--model", str(model), "--batch-size", "3", "--threads", "1")
    assert [r["exam_id"] for r in records] == STUDIES[:2]
    for record in records:
        assert set(record) >= EXAM_KEYS
        assert set(record["breasts"]) == {"L", "R"}
        assert set(record["model"]) == {"name", "sha256"}
        assert all(set(im) >= IMAGE_KEYS for im in record["images"])
        assert 0 <= record["score"] <= 100 and 1 <= record["category"] <= 10
    first = records[0]
    assert first["findings"][0]["laterality"] == "L" and len(first["findings"][0]["box"]) == 4
    ct = next(im for im in first["images"] if im["path"].endswith("ct.dcm"))
    assert ct["usable"] is False and "not a mammogram" in ct["reason"]


def test_score_reads_the_model_from_the_environment(model, data):
    records = score_json(str(data / "b"), env={"MAMMOTRIAGE_MODEL": str(model)})
    assert records[0]["model"]["name"] == "tiny-brightness"


def test_score_table_shows_scores_and_unusable_counts(model, data):
    result = runner.invoke(app, ["score", str(data), "--model", str(model)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "2 exams scored by tiny-brightness" in result.stdout
    assert STUDIES[0][-20:] in result.stdout and "L-CC" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nowhere.onnx"], "model nowhere.onnx not found"),
        (["--provider", "NoSuchExecutionProvider"], "NoSuchExecutionProvider not available"),
    ],
)
def test_score_errors_are_one_line_and_exit_2(model, data, args, message):
    if args[0] == "--provider":
        args = [*args, "--model", str(model)]
    result = runner.invoke(app, ["score", str(data), *args], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_calibrate_writes_a_new_sidecar_at_out(tmp_path: Path, model: Path):
    reference = tmp_path / "reference"
    for i, study in enumerate(STUDIES):
        write_exam(
            reference / study,
            study=study,
            views=(("L", "CC"),),
            blobs={("L", "CC"): ((4, 30, 34, 60), 0.7 + 0.025 * i)},
        )
    out = tmp_path / "calibrated.json"
    result = runner.invoke(
        app, ["calibrate", "--model", str(model), "--data", str(reference), "--out", str(out)]
    )
    # 12 exams are fewer than calibration accepts: said in one line, nothing written
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "too few exams: 12, calibration needs at least 20" in message
    assert not out.exists()
    for i in range(12, 20):
        study = f"1.2.826.0.1.3680043.8.498.8{i:02d}"
        write_exam(reference / study, study=study, views=(("R", "CC"),))
    result = runner.invoke(
        app, ["calibrate", "--model", str(model), "--data", str(reference), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["calibration"]["exams"] == 20
    assert written["sha256"] == load_sidecar(model).sha256
    assert f"wrote {out}" in " ".join(result.output.split())


def test_calibrate_in_place_keeps_the_old_sidecar_as_a_backup_and_says_so(
    tmp_path: Path,
):
    model = tiny_model(tmp_path / "model")
    old = model.with_suffix(".json").read_text()
    reference = tmp_path / "reference"
    for i in range(20):
        study = f"1.2.826.0.1.3680043.8.498.6{i:02d}"
        write_exam(reference / study, study=study, views=(("L", "CC"),),
                   blobs={("L", "CC"): ((4, 30, 34, 60), 0.7 + 0.01 * i)})
    result = runner.invoke(app, ["calibrate", "--model", str(model), "--data", str(reference)],
                           env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    (backup,) = model.parent.glob("tiny-brightness.json.*.bak")
    assert backup.read_text() == old
    assert f"kept as {backup}" in result.output
    assert json.loads(model.with_suffix(".json").read_text())["calibration"]["exams"] == 20


def test_score_says_demonstration_model_on_the_table_and_in_json(tmp_path: Path, data: Path):
    from mammotriage import defaults

    shipped = runner.invoke(app, ["score", str(data / "b"), "--model", str(defaults.model_path())],
                            env={"COLUMNS": "250"})
    assert shipped.exit_code == 0, shipped.output
    assert "demonstration model, not for clinical use" in shipped.stdout
    record = score_json(str(data / "b"), "--model", str(defaults.model_path()))[0]
    assert record["demonstration_model"] is True
    assert record["notice"] == "demonstration model, not for clinical use"


def test_score_of_a_model_not_trained_on_synthetic_data_has_no_notice(model, data):
    table = runner.invoke(app, ["score", str(data / "b"), "--model", str(model)],
                          env={"COLUMNS": "250"})
    assert "demonstration model" not in table.stdout
    record = score_json(str(data / "b"), "--model", str(model))[0]
    assert record["demonstration_model"] is False and "notice" not in record


def test_simulate_writes_the_simulation_and_the_workload_curve(tmp_path: Path):
    scores = tmp_path / "scores.jsonl"
    truth = tmp_path / "truth.csv"
    records = [
        {
            "exam_id": f"e{i}",
            "score": 10.0 * (i % 10),
            "category": 1 + i % 10,
            "partial": False,
            "findings": [],
        }
        for i in range(40)
    ]
    records.append({"exam_id": "unscorable", "score": None, "category": None})
    scores.write_text("".join(json.dumps(r) + "\n" for r in records))
    with truth.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "exam_id", "cancer"])
        for i in range(40):
            writer.writerow([f"e{i}/LCC.dcm", f"e{i}", int(i % 10 >= 8)])
    out = tmp_path / "sim"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--scores",
            str(scores),
            "--truth",
            str(truth),
            "--out",
            str(out),
            "--n-boot",
            "50",
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    simulation = json.loads((out / "simulation.json").read_text())
    assert simulation["n_exams"] == 40 and simulation["unscored_exams_left_out"] == 1
    assert len(simulation["workload_curve"]) == 10
    assert (out / "workload_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "40 exams (8 with cancer)" in result.output and "workload" in result.output


def test_simulate_with_a_bad_scores_file_is_one_line(tmp_path: Path):
    truth = tmp_path / "truth.csv"
    truth.write_text("exam_id,cancer\na,0\n")
    result = runner.invoke(
        app,
        [
            "simulate",
            "--scores",
            str(tmp_path / "missing.jsonl"),
            "--truth",
            str(truth),
            "--out",
            str(tmp_path / "sim"),
        ],
    )
    assert result.exit_code == 2 and "not found" in result.output
