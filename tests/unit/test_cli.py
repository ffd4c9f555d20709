"""The `mammotriage` command as a user runs it."""

import json

import pytest
from typer.testing import CliRunner

from dicom_builders import mg_dataset, write
from mammotriage.cli import app

runner = CliRunner()

IMAGE_KEYS = {"path", "sop_instance_uid", "exam_id", "laterality", "laterality_source", "view",
              "view_source", "usable", "reason", "transfer_syntax", "rows", "columns"}


def _commands():
    return sorted(c.name or c.callback.__name__ for c in app.registered_commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_inspect_json_prints_one_object_per_image_then_per_exam(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.1"
    for lat, view in [("L", "CC"), ("L", "MLO"), ("R", "CC")]:
        write(
            mg_dataset(ImageLaterality=lat, ViewPosition=view, StudyInstanceUID=study),
            tmp_path / "a" / f"{lat}{view}",
        )
    write(mg_dataset(Modality="CT", BodyPartExamined="CHEST"), tmp_path / "b" / "ct.dcm")
    result = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    images = [r for r in records if r["kind"] == "image"]
    exams = [r for r in records if r["kind"] == "exam"]
    assert len(images) == 4 and all(set(r) >= IMAGE_KEYS for r in images)
    ct = next(r for r in images if r["path"].endswith("ct.dcm"))
    assert ct["usable"] is False and "not a mammogram" in ct["reason"]
    exam = next(e for e in exams if e["exam_id"] == study)
    assert sorted(exam["views"]) == ["L-CC", "L-MLO", "R-CC"]
    assert exam["missing"] == ["R-MLO"] and exam["partial"] is True


def test_inspect_table_names_the_unusable_reason(tmp_path):
    write(mg_dataset(Modality="CT"), tmp_path / "ct.dcm")
    result = runner.invoke(app, ["inspect", str(tmp_path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "not a mammogram" in result.stdout


def test_inspect_of_a_missing_path_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output
