"""The demonstration model cannot triage patients by accident: the worker refuses a model
trained on synthetic data unless its config says ``allow_demonstration_model: true``, and
every SR made with one says "demonstration model, not for clinical use"."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import yaml
from typer.testing import CliRunner

from infer_builders import tiny_model
from mammotriage import defaults
from mammotriage.cli import app
from mammotriage.sidecar import load_sidecar
from worker_helpers import build, folder_settings, run_once

NOTICE = "demonstration model, not for clinical use"


def _config(root: Path, **extra: object) -> Path:
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    settings = {
        "database": str(root / "db.sqlite"),
        "model": str(defaults.model_path()),
        "work_dir": str(root / "work"),
        "source": {"kind": "folder", "path": str(root / "incoming"), "quiet_seconds": 0},
        "log_format": "text",
        **extra,
    }
    path = root / "worker.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_the_packaged_model_is_marked_as_a_demonstration_model() -> None:
    sidecar = load_sidecar(defaults.model_path())
    assert sidecar.training_data["synthetic"] is True
    assert sidecar.demonstration is True


def test_the_worker_refuses_the_demonstration_model_without_the_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["worker", "--config", str(_config(tmp_path)), "--once"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert message.startswith("error: ") and message.count("error:") == 1
    assert "demonstration model" in message and "allow_demonstration_model: true" in message
    assert "Traceback" not in result.output
    assert not (tmp_path / "db.sqlite").exists()  # refused before touching the store


def test_the_worker_runs_it_with_the_setting_and_every_sr_says_so(
    tmp_path: Path, tiny_synthetic: Path
) -> None:
    settings = folder_settings(tmp_path)  # allow_demonstration_model: true
    exam = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[0]
    shutil.copytree(exam, settings.source.path / exam.name)
    worker = build(settings)
    summary = run_once(worker)
    assert summary.scored == 1 and summary.failed == 0
    (stored,) = worker.store.exams.all()
    assert stored.report_location is not None
    (report_path,) = Path(stored.report_location).glob("*.dcm")
    assert NOTICE in _all_code_meanings(hd.sr.srread(report_path))


def test_a_model_not_trained_on_synthetic_data_needs_no_setting_and_its_sr_has_no_notice(
    tmp_path: Path, tiny_synthetic: Path
) -> None:
    model = tiny_model(tmp_path / "model")
    assert load_sidecar(model).demonstration is False
    settings = folder_settings(tmp_path / "site", model=model, allow_demonstration_model=False)
    exam = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[0]
    shutil.copytree(exam, settings.source.path / exam.name)
    worker = build(settings)
    assert run_once(worker).scored == 1
    (stored,) = worker.store.exams.all()
    assert stored.report_location is not None
    (report_path,) = Path(stored.report_location).glob("*.dcm")
    assert NOTICE not in _all_code_meanings(hd.sr.srread(report_path))


def _all_code_meanings(dataset: object) -> set[str]:
    """Every CodeMeaning anywhere in an SR's content tree."""
    found: set[str] = set()
    for item in getattr(dataset, "ContentSequence", []):
        for code in getattr(item, "ConceptCodeSequence", []):
            found.add(str(code.CodeMeaning))
        found |= _all_code_meanings(item)
    return found
