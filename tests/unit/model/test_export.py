"""Specification of :mod:`mammotriage.model.export`: no ``.onnx`` without proven parity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_network import settle_batch_norm

from mammotriage.errors import ConfigError, ExportError
from mammotriage.model import export
from mammotriage.model.export import add_variants, export_onnx, quantize_int8, to_fp16
from mammotriage.model.network import NETWORKS, SuspicionNetwork, build_network
from mammotriage.preprocess import PreprocessParams
from mammotriage.sidecar import Outputs, Sidecar, load_sidecar, sha256_of, sidecar_path

H, W = 128, 64
PREPROCESS = PreprocessParams(input_height=H, input_width=W).to_dict()


def tiny(seed: int = 0) -> SuspicionNetwork:
    torch.manual_seed(seed)
    model = build_network({"name": "tiny-cnn"})
    settle_batch_norm(model, seed)
    return model


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, H, W), dtype=np.float32)


def run_onnx(path: Path, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = Outputs()
    logit, suspicion_map = session.run([names.logit, names.suspicion_map], {names.input: batch})
    return logit, suspicion_map


def do_export(model: torch.nn.Module, path: Path, **kwargs: object) -> Sidecar:
    options: dict[str, object] = {
        "input_shape": (H, W),
        "sidecar_fields": {"preprocess": PREPROCESS},
        "parity_inputs": images(2),
    }
    options.update(kwargs)
    return export_onnx(model, path, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SuspicionNetwork, Path]:
    model = tiny()
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    do_export(model, path)
    return model, path


def test_export_writes_the_onnx_and_a_sidecar_holding_its_sha256(
    exported: tuple[SuspicionNetwork, Path],
) -> None:
    _, path = exported
    sidecar = load_sidecar(path, verify_hash=True)
    assert sidecar.sha256 == sha256_of(path)
    assert sidecar.onnx_file == "tiny.onnx" and sidecar.name == "tiny"
    assert sidecar.input_shape == (H, W)
    assert sidecar.map_stride == 16
    assert sidecar.architecture["name"] == "tiny-cnn"
    assert sidecar.architecture["flops_per_image"] > 0
    assert sidecar_path(path).exists()
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_sidecar_records_parity_within_tolerance_over_random_and_real_inputs(
    exported: tuple[SuspicionNetwork, Path],
) -> None:
    parity = json.loads(sidecar_path(exported[1]).read_text())["parity"]
    assert parity["max_abs_logit_delta"] <= 1e-4
    assert parity["max_abs_map_delta"] <= 1e-4
    assert parity["inputs"] == 1 + 3 + 2 and parity["real_inputs"] == 2
    assert parity["opset"] >= 17


def test_graph_is_one_file_with_the_sidecar_names_and_a_dynamic_batch_axis(
    exported: tuple[SuspicionNetwork, Path],
) -> None:
    graph = onnx.load(str(exported[1]), load_external_data=False).graph
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in graph.initializer)
    names = Outputs()
    assert [i.name for i in graph.input] == [names.input]
    assert [o.name for o in graph.output] == [names.logit, names.suspicion_map]
    for value in (*graph.input, *graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param  # symbolic, not a number


def test_onnx_runtime_equals_torch_on_a_batch_of_three(
    exported: tuple[SuspicionNetwork, Path],
) -> None:
    model, path = exported
    batch = images(3, seed=7)
    ort_logit, ort_map = run_onnx(path, batch)
    with torch.no_grad():
        torch_logit, torch_map = (t.numpy() for t in model(torch.from_numpy(batch)))
    assert ort_logit.shape == (3,) and ort_map.shape == (3, 1, H // 16, W // 16)
    np.testing.assert_allclose(ort_logit, torch_logit, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ort_map, torch_map, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", sorted(set(NETWORKS) - {"tiny-cnn"}))
def test_every_network_exports_with_parity(name: str, tmp_path: Path) -> None:
    # EfficientNet also proves that its memory-efficient swish is swapped before tracing.
    model = settle_batch_norm(build_network({"name": name}))
    sidecar = do_export(model, tmp_path / f"{name}.onnx")
    assert sidecar.parity["max_abs_logit_delta"] <= 1e-4
    assert sidecar.map_stride == NETWORKS[name].map_stride


def test_export_restores_the_training_flag(tmp_path: Path) -> None:
    model = tiny().train()
    do_export(model, tmp_path / "m.onnx")
    assert model.training


def test_an_export_that_differs_from_the_model_is_refused_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate an exporter bug: the graph written is not the model checked against.
    write = export._write_onnx
    other = tiny(seed=1)
    monkeypatch.setattr(export, "_write_onnx", lambda _m, *args: write(other, *args))
    with pytest.raises(
        ExportError, match=r"max \|logit delta\| 0\.\d+.*\(tolerance 0\.0001"
    ) as caught:
        do_export(tiny(seed=0), tmp_path / "m.onnx")
    assert "not written" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_export_keeps_the_previous_model_and_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.onnx"
    do_export(tiny(), path)
    before = sha256_of(path), sidecar_path(path).read_text()
    write = export._write_onnx
    other = tiny(seed=1)
    monkeypatch.setattr(export, "_write_onnx", lambda _m, *args: write(other, *args))
    with pytest.raises(ExportError):
        do_export(tiny(seed=2), path)
    assert (sha256_of(path), sidecar_path(path).read_text()) == before
    load_sidecar(path, verify_hash=True)


class Unexportable(torch.nn.Module):
    """Singular values: no ONNX operator computes them."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        suspicion_map = torch.linalg.svdvals(image)[..., :4].reshape(-1, 1, 2, 2)
        return suspicion_map.flatten(1).amax(dim=1), suspicion_map


def test_a_model_torch_cannot_export_is_an_export_error_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    with pytest.raises(ExportError, match="could not export m.onnx.*svdvals"):
        do_export(Unexportable(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_input_shape_must_match_the_preprocessing_size(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(128, 128\).*\(128, 64\)"):
        do_export(tiny(), tmp_path / "m.onnx", input_shape=(128, 128), parity_inputs=None)
    assert list(tmp_path.iterdir()) == []


def test_preprocessing_parameters_are_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="preprocess"):
        do_export(tiny(), tmp_path / "m.onnx", sidecar_fields={"name": "m"})


def test_fields_that_export_measures_cannot_be_supplied(tmp_path: Path) -> None:
    fields = {"preprocess": PREPROCESS, "sha256": "0" * 64}
    with pytest.raises(ValueError, match="sha256"):
        do_export(tiny(), tmp_path / "m.onnx", sidecar_fields=fields)


def test_parity_inputs_of_the_wrong_size_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parity_inputs"):
        do_export(tiny(), tmp_path / "m.onnx", parity_inputs=np.zeros((2, 1, 64, 64), "f4"))


def test_opsets_below_17_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset"):
        do_export(tiny(), tmp_path / "m.onnx", opset=13)


def test_int8_variant_reports_a_finite_measured_logit_delta(
    exported: tuple[SuspicionNetwork, Path],
) -> None:
    _, path = exported
    variant = quantize_int8(path, images(16, seed=3), parity_inputs=images(8, seed=4))
    quantised = path.parent / variant.file
    assert variant.file == "tiny.int8.onnx" and variant.precision == "int8"
    assert variant.sha256 == sha256_of(quantised)
    assert np.isfinite(variant.max_abs_logit_delta)
    assert 0 < variant.max_abs_logit_delta < 1.0
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(quantised)).graph.node)
    assert run_onnx(quantised, images(3))[0].shape == (3,)


def test_fp16_variant_keeps_fp32_io_and_reports_its_delta(
    exported: tuple[SuspicionNetwork, Path],
) -> None:
    _, path = exported
    variant = to_fp16(path, images(4, seed=5))
    half = path.parent / variant.file
    assert variant.file == "tiny.fp16.onnx" and variant.precision == "fp16"
    assert np.isfinite(variant.max_abs_logit_delta) and variant.max_abs_logit_delta < 0.05
    logit, suspicion_map = run_onnx(half, images(3))
    assert logit.dtype == suspicion_map.dtype == np.float32


def test_variants_are_recorded_in_the_sidecar_once_per_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    do_export(tiny(), path)
    first = quantize_int8(path, images(8))
    add_variants(path, [first])
    again = quantize_int8(path, images(8, seed=9))
    sidecar = add_variants(path, [again, to_fp16(path, images(2))])
    assert [v.file for v in sidecar.variants] == ["m.int8.onnx", "m.fp16.onnx"]
    assert load_sidecar(path).variants == sidecar.variants


@pytest.mark.parametrize("module", ["mammotriage.sidecar", "mammotriage.preprocess"])
def test_the_inference_side_modules_do_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
