"""`mammotriage bench` as a smoke test: the report's schema on one small exam, no timings
judged (a benchmark measures; the figures of a shared test machine say nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGLSLossless
from typer.testing import CliRunner

from mammotriage.bench import prepare_data
from mammotriage.cli import app
from mammotriage.errors import ConfigError

runner = CliRunner()
REQUIRED = {
    "images_per_s": float,
    "baseline_images_per_s": float,
    "speedup": float,
    "peak_rss_mb": float,
    "baseline_peak_rss_mb": float,
    "ms_per_exam": float,
    "baseline_ms_per_exam": float,
    "exams": int,
    "images": int,
    "model": str,
    "flops_per_image": int,
    "matmul_peak_gflops": float,
    "model_gflops_achieved": float,
    "fraction_of_peak": float,
    "provider": str,
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("bench")
    args = ["bench", "--json", "--small", "--exams", "1", "--repeats", "1", "--threads", "1"]
    result = runner.invoke(app, [*args, "--data", str(data)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bench_json_holds_every_figure_with_its_type(report):
    for key, kind in REQUIRED.items():
        assert isinstance(report[key], kind), (key, report[key])
    positive = [k for k, kind in REQUIRED.items() if kind is float]
    assert all(report[key] > 0 for key in positive)


@pytest.mark.slow
def test_bench_scores_one_four_view_jpeg2000_exam_with_the_shipped_model(report):
    assert (report["exams"], report["images"]) == (1, 4)
    assert report["model"] == "mammotriage-synthetic-tiny"
    assert report["provider"] == "CPUExecutionProvider"
    assert set(report["transfer_syntaxes"]) <= {"JPEG 2000 lossless", "JPEG 2000 lossy"}


@pytest.mark.slow
def test_bench_baseline_uses_the_same_weights_as_the_onnx_model(report):
    assert report["parity_max_abs_delta"] <= 1e-4


def test_bench_leaves_torch_out_of_the_calling_process():
    # Other tests of the session import torch: look in a fresh interpreter.
    code = "import sys, mammotriage.bench, mammotriage.cli.bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_prepare_data_writes_jpeg2000_exams_once_and_then_reuses_them(tmp_path: Path):
    said: list[str] = []
    first = prepare_data(tmp_path, 2, small=True, say=said.append)
    again = prepare_data(tmp_path, 2, small=True, say=said.append)
    assert first == again and len(said) == 1
    syntaxes = {
        pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID
        for folder in first
        for p in folder.glob("*.dcm")
    }
    assert syntaxes == {JPEG2000Lossless, JPEG2000}


def test_prepare_data_refuses_a_cached_exam_that_is_not_jpeg2000(tmp_path: Path):
    prepare_data(tmp_path, 1, small=True)
    truth = tmp_path / "small-seed0" / "truth.csv"
    truth.write_text(truth.read_text().replace(JPEG2000Lossless, JPEGLSLossless))
    with pytest.raises(ConfigError, match="not JPEG 2000"):
        prepare_data(tmp_path, 1, small=True)


@pytest.mark.slow
def test_bench_runs_an_int8_copy_against_the_fp32_torch_baseline(tmp_path: Path) -> None:
    """A lower-precision copy keeps its weights quantised: the torch baseline is rebuilt
    from the fp32 model it was made from, and the engine runs the copy."""
    from mammotriage import defaults

    int8 = defaults.model_path().with_name("mammotriage-synthetic-tiny.int8.onnx")
    args = ["bench", "--json", "--small", "--exams", "1", "--repeats", "1", "--threads", "1"]
    result = runner.invoke(app, [*args, "--model", str(int8), "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"] == "mammotriage-synthetic-tiny (int8)"
    assert report["parity_max_abs_delta"] <= 1e-4  # torch against the fp32 ONNX model
