"""Specification of ``mammotriage validate`` (:mod:`mammotriage.model.validate`): what is
validated is what is deployed, and an ONNX model is validated without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import CliRun
from mammotriage.cli import app
from mammotriage.model.validate import validate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("roc.png", "reliability.png", "score_histogram.png")


@pytest.fixture(scope="module")
def onnx_report(
    tiny_model: CliRun, tiny_synthetic: Path, tmp_path_factory: pytest.TempPathFactory
) -> CliRun:
    assert tiny_model.exit_code == 0, tiny_model.output
    out = tmp_path_factory.mktemp("validate-onnx")
    result = CliRunner().invoke(
        app,
        [
            "validate",
            "--model",
            str(tiny_model.path),
            "--data",
            str(tiny_synthetic),
            "--out",
            str(out),
            "--n-boot",
            "200",
        ],
    )
    return CliRun(result.exit_code, result.output, out)


def test_validate_command_exits_zero(onnx_report: CliRun) -> None:
    assert onnx_report.exit_code == 0, onnx_report.output
    assert "exam   AUC" in onnx_report.output


@pytest.mark.parametrize(("level", "count"), [("exam", 12), ("breast", 24), ("image", 48)])
def test_metrics_json_has_auc_interval_and_count_per_level(
    onnx_report: CliRun, level: str, count: int
) -> None:
    metrics = json.loads((onnx_report.path / "metrics.json").read_text())[level]
    assert 0.0 <= metrics["auc"] <= 1.0
    low, high = metrics["auc_ci"]
    assert low <= high
    assert metrics["n"] == count


@pytest.mark.parametrize("name", PLOTS)
def test_plots_are_png_files(onnx_report: CliRun, name: str) -> None:
    assert (onnx_report.path / name).read_bytes()[:8] == PNG_SIGNATURE


def test_the_checkpoint_and_its_onnx_export_score_the_same_exam_auc(
    onnx_report: CliRun, tiny_run: CliRun, tiny_synthetic: Path, tmp_path: Path
) -> None:
    checkpoint = validate(
        tiny_run.path / "best.pt", tiny_synthetic, tmp_path, n_boot=100, plots=False
    )
    deployed = json.loads((onnx_report.path / "metrics.json").read_text())
    assert checkpoint["exam"]["auc"] == pytest.approx(deployed["exam"]["auc"], abs=1e-6)
    assert checkpoint["image"]["auc"] == pytest.approx(deployed["image"]["auc"], abs=1e-6)


def test_validating_an_onnx_model_does_not_import_torch(
    tiny_model: CliRun, tiny_synthetic: Path, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mammotriage.model.validate import validate\n"
        f"validate(Path({str(tiny_model.path)!r}), Path({str(tiny_synthetic)!r}), "
        f"Path({str(tmp_path)!r}), n_boot=100)\n"
        "sys.exit('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("name", "exists", "message"),
    [
        ("model.h5", True, "must be a checkpoint (.pt) or an exported model (.onnx)"),
        ("best.pt", False, "not found"),
    ],
    ids=["unknown-kind", "missing-checkpoint"],
)
def test_a_model_that_cannot_be_validated_exits_2_with_a_clear_message(
    name: str, exists: bool, message: str, tiny_synthetic: Path, tmp_path: Path
) -> None:
    model = tmp_path / name
    if exists:
        model.write_bytes(b"")
    result = CliRunner().invoke(
        app,
        [
            "validate",
            "--model",
            str(model),
            "--data",
            str(tiny_synthetic),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
