"""The INT8 and FP16 copies that ``export --int8/--fp16`` writes are models in their own
right: every command loads them by their path, through the ``variants`` entry of the fp32
model's sidecar, and what they score says which copy scored it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammotriage import defaults
from mammotriage.cli import app
from mammotriage.dicom.report_content import AlgorithmIdentity
from mammotriage.errors import ConfigError
from mammotriage.infer.engine import ScoringEngine
from mammotriage.infer.session import OnnxModel
from mammotriage.sidecar import load_sidecar, sha256_of, variant_sidecar, write_sidecar

BASE = defaults.model_path()
BASE_NAME = BASE.stem
PRECISIONS = ("int8", "fp16")
runner = CliRunner()


def variant_file(precision: str) -> Path:
    return BASE.with_name(f"{BASE_NAME}.{precision}.onnx")


@pytest.fixture(scope="module")
def exams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small synthetic screening exams, half of them with a cancer."""
    from mammotriage.synth import generate

    root = tmp_path_factory.mktemp("variant-exams")
    generate(root, exams=4, seed=2026, small=True, prevalence=0.5, workers=1)
    return root


def scores(model: Path | str, folder: Path) -> dict[str, float | None]:
    with ScoringEngine(model, threads=1, decode_workers=0) as engine:
        return {exam.exam_id: exam.score for exam in engine.score_paths([folder])}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_shipped_variant_loads_as_its_own_model_with_the_base_calibration(precision):
    base = load_sidecar(BASE)
    sidecar = OnnxModel(variant_file(precision), intra_op_threads=1).sidecar
    (entry,) = (v for v in base.variants if v.precision == precision)
    assert sidecar.sha256 == entry.sha256 == sha256_of(variant_file(precision))
    assert sidecar.sha256 != base.sha256
    assert sidecar.name == f"{BASE_NAME} ({precision})" and sidecar.precision == precision
    assert sidecar.onnx_file == entry.file and sidecar.variants == ()
    assert sidecar.calibration == base.calibration and sidecar.preprocess == base.preprocess
    assert sidecar.outputs == base.outputs and sidecar.aggregation == base.aggregation
    assert sidecar.demonstration and sidecar.intended_use == base.intended_use
    origin = sidecar.variant_of
    assert origin is not None and (origin.name, origin.sha256) == (base.name, base.sha256)
    assert origin.max_abs_logit_delta == entry.max_abs_logit_delta
    assert origin.auc_delta == entry.auc_delta
    assert sidecar.validation["exam_auc_delta"] == entry.auc_delta
    # The name and sha256 are what the SR's algorithm identification records.
    AlgorithmIdentity(sidecar.name, "0", sidecar.sha256)


def test_the_fp32_model_says_it_is_fp32():
    sidecar = load_sidecar(BASE)
    assert sidecar.precision == "fp32" and sidecar.variant_of is None
    assert sidecar.name == BASE_NAME


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_variant_scores_exams_within_the_bound_its_recorded_logit_delta_gives(
    precision, exams
):
    """An exam score is ``100 * sigmoid(max image logit)``; the sigmoid's slope is at most
    1/4 and the max moves by no more than its largest input does, so an image-logit delta
    of at most ``d`` moves an exam score by at most ``25 * d`` points. ``d`` is the
    variant's recorded ``max_abs_logit_delta``: the largest delta export saw on its parity
    images, not a guarantee for every exam (``scripts/bench_variants.py`` measures the
    copies on a larger fresh set, where they exceed it). This checks that a copy loaded by
    its path scores as the model it was made from, on these four exams."""
    origin = load_sidecar(variant_file(precision)).variant_of
    assert origin is not None
    bound = 25.0 * origin.max_abs_logit_delta
    fp32 = scores(BASE, exams)
    copy = scores(variant_file(precision), exams)
    assert copy.keys() == fp32.keys() and len(fp32) == 4
    for exam_id, reference in fp32.items():
        assert reference is not None and copy[exam_id] is not None
        assert abs(copy[exam_id] - reference) <= bound, (exam_id, copy[exam_id], reference)


def test_score_with_a_variant_path_names_the_variant_in_every_exam(exams):
    result = runner.invoke(
        app,
        ["score", str(exams), "--model", str(variant_file("int8")), "--json", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    for record in records:
        assert record["model"] == {
            "name": f"{BASE_NAME} (int8)",
            "sha256": sha256_of(variant_file("int8")),
        }
        assert record["demonstration_model"] is True


def copy_family(folder: Path, *precisions: str) -> Path:
    """The shipped model's sidecar and the named variants, copied into ``folder``."""
    shutil.copy(BASE.with_suffix(".json"), folder)
    for precision in precisions:
        shutil.copy(variant_file(precision), folder)
    return folder


def test_a_variant_whose_bytes_changed_is_refused_naming_the_sidecar_that_lists_it(tmp_path):
    copy_family(tmp_path, "int8")
    changed = tmp_path / variant_file("int8").name
    changed.write_bytes(changed.read_bytes() + b"\0")
    with pytest.raises(ConfigError) as error:
        OnnxModel(changed)
    message = str(error.value)
    assert "does not match the sha256" in message and f"{BASE_NAME}.json" in message
    assert "\n" not in message


def test_an_unlisted_int8_file_is_refused_naming_both_places_looked_in(tmp_path):
    copy_family(tmp_path)  # the sidecar lists int8 and fp16, neither is renamed to this
    stray = tmp_path / f"{BASE_NAME}.int4.onnx"
    shutil.copy(variant_file("int8"), stray)
    with pytest.raises(ConfigError) as error:
        OnnxModel(stray)
    message = str(error.value)
    assert f"{BASE_NAME}.int4.json is missing" in message
    assert f"{BASE_NAME}.json lists no variant {stray.name}" in message
    assert f"{BASE_NAME}.int8.onnx" in message  # what it does list


def test_an_int8_file_with_no_sidecar_anywhere_is_one_line_on_the_command_line(tmp_path):
    stray = tmp_path / "model.int8.onnx"
    shutil.copy(variant_file("int8"), stray)
    result = runner.invoke(
        app, ["score", str(tmp_path), "--model", str(stray)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 2
    assert "model.int8.json is missing, and so is" in result.output
    assert "model.json" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_variant_with_a_sidecar_of_its_own_still_loads_from_it(tmp_path):
    """Older exports, or a site that calibrated the copy, keep ``NAME.int8.json``; it
    wins over the fp32 model's ``variants`` entry."""
    own = tmp_path / variant_file("int8").name
    shutil.copy(variant_file("int8"), own)
    base = load_sidecar(BASE)
    (entry,) = (v for v in base.variants if v.precision == "int8")
    sidecar = variant_sidecar(base, entry).model_copy(update={"name": "site-int8"})
    write_sidecar(sidecar, own.with_suffix(".json"))
    assert not (tmp_path / f"{BASE_NAME}.json").exists()
    loaded = OnnxModel(own, intra_op_threads=1).sidecar
    assert loaded.name == "site-int8" and loaded.sha256 == entry.sha256
    assert loaded.precision == "int8"
