"""Specification of ``mammotriage export`` (:mod:`mammotriage.model.release`): a trained run
becomes ``models/NAME.onnx`` and a sidecar whose every figure was measured."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import CliRun
from mammotriage.sidecar import load_sidecar, sha256_of


@pytest.fixture(scope="module")
def sidecar(tiny_model: CliRun) -> dict:
    assert tiny_model.exit_code == 0, tiny_model.output
    return json.loads(tiny_model.path.with_suffix(".json").read_text())


def test_export_exits_zero_and_writes_the_model_and_its_sidecar(tiny_model: CliRun) -> None:
    assert tiny_model.exit_code == 0, tiny_model.output
    assert tiny_model.path.is_file()
    assert tiny_model.path.with_suffix(".json").is_file()
    load_sidecar(tiny_model.path, verify_hash=True)  # valid, and describes this very file


def test_sidecar_records_parity_within_1e_4(sidecar: dict) -> None:
    assert sidecar["parity"]["max_abs_logit_delta"] <= 1e-4
    assert sidecar["parity"]["real_inputs"] > 0


def test_sidecar_sha256_is_the_files(sidecar: dict, tiny_model: CliRun) -> None:
    assert sidecar["sha256"] == sha256_of(tiny_model.path)


def test_calibration_is_nine_ascending_thresholds_from_the_validation_split(
    sidecar: dict,
) -> None:
    thresholds = sidecar["calibration"]["thresholds"]
    assert len(thresholds) == 9
    assert thresholds == sorted(thresholds)
    assert all(0.0 <= t <= 100.0 for t in thresholds)
    assert sidecar["calibration"]["exams"] == sidecar["validation"]["exams"] > 0


def test_preprocess_block_is_the_training_configs(sidecar: dict, tiny_run: CliRun) -> None:
    config = yaml.safe_load((tiny_run.path / "config.yaml").read_text())
    assert sidecar["preprocess"] == config["preprocess"]


def test_int8_variant_is_listed_with_its_file_hash_and_a_finite_auc_change(
    sidecar: dict, tiny_model: CliRun
) -> None:
    (variant,) = sidecar["variants"]
    assert variant["precision"] == "int8"
    path: Path = tiny_model.path.parent / variant["file"]
    assert path.is_file() and variant["sha256"] == sha256_of(path)
    assert variant["auc_delta"] is not None and math.isfinite(variant["auc_delta"])
    assert math.isfinite(variant["max_abs_logit_delta"])


def test_validation_block_names_the_checkpoints_epoch(sidecar: dict, tiny_run: CliRun) -> None:
    import torch

    state = torch.load(tiny_run.path / "best.pt", weights_only=False)
    assert sidecar["validation"]["best_epoch"] == state["epoch"] + 1
    assert sidecar["training_data"]["seed"] == 0


def test_export_from_too_few_validation_exams_warns_in_the_sidecar_and_on_the_console(
    sidecar: dict, tiny_model: CliRun
) -> None:
    # The tiny run validates on a handful of exams: fewer than calibrate accepts (one rule,
    # mammotriage.infer.calibrate.too_few_exams), so export says so instead of keeping quiet.
    from mammotriage.infer.calibrate import too_few_exams

    assert sidecar["validation"]["exams"] < 20
    assert sidecar["calibration"]["warning"] == too_few_exams(sidecar["validation"]["exams"])
    output = " ".join(tiny_model.output.split())
    assert "warning: the calibration table is from the validation split, too few exams" in output


def test_export_records_that_the_model_was_trained_on_synthetic_data(sidecar: dict) -> None:
    assert sidecar["training_data"]["kind"] == "synthetic"
    assert sidecar["training_data"]["synthetic"] is True
