"""The benchmark's baseline child: what users write today, run in its own process.

The parent, :mod:`mammotriage.bench.runner`, starts ``python -m mammotriage.bench.baseline
ROLE PAYLOAD`` for the roles :data:`~mammotriage.bench.runner.ROLE_MODULES` gives this module
and reads the last stdout line as JSON. Two roles:

- ``baseline-weights``: rebuild the sidecar's architecture in torch, load it from the ONNX
  initializers, check it against ONNX Runtime to
  :data:`~mammotriage.bench.common.PARITY_TOLERANCE`, and save its state dict;
- ``baseline``: ``pydicom`` full-resolution decode, a MONAI ``Compose``, PyTorch eager
  inference one image at a time; see :mod:`mammotriage.bench` for why each step.

This is the only module of the package that imports torch or MONAI, and it does so inside
its functions: importing it, or :mod:`mammotriage.bench`, leaves both out of the process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.bench.common import PARITY_TOLERANCE, BenchmarkError, Role, peak_rss_mb, run_role


def _torch_network(model: Path) -> Any:
    """The sidecar's architecture with the ONNX file's weights, in eval mode.

    Raises
    ------
    BenchmarkError
        If a weight of the graph finds no place in the network or a shape differs.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from mammotriage.model.network import NetworkConfig, build_network
    from mammotriage.sidecar import load_sidecar

    keys = NetworkConfig.__dataclass_fields__
    architecture = load_sidecar(model).architecture
    network = build_network({k: v for k, v in architecture.items() if k in keys}).eval()
    graph = onnx.load(str(model)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:  # the exporter stores equal weights once, aliased by Identity
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    state = network.state_dict()
    # The convolutions in execution order, each with the batch norm fed by its output.
    convs: list[tuple[str, Any, str | None, Any]] = []
    outputs: dict[int, int] = {}
    kept: list[Any] = []  # alive until the probe ends, so that no id() is reused
    hooks = []
    for name, module in network.named_modules():
        if isinstance(module, torch.nn.Conv2d):

            def conv_hook(mod: Any, args: Any, out: Any, name: str = name) -> None:
                outputs[id(out)] = len(convs)
                kept.append(out)
                convs.append((name, mod, None, None))

            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, torch.nn.BatchNorm2d):

            def norm_hook(mod: Any, args: Any, out: Any, name: str = name) -> None:
                i = outputs.get(id(args[0]))
                if i is not None:
                    convs[i] = (*convs[i][:2], name, mod)

            hooks.append(module.register_forward_hook(norm_hook))
    height, width = load_sidecar(model).input_shape
    with torch.no_grad():
        network(torch.zeros(1, 1, height, width))
    for hook in hooks:
        hook.remove()
    kept.clear()
    nodes = [node for node in graph.node if node.op_type == "Conv"]
    if len(nodes) != len(convs):
        raise BenchmarkError(
            f"the ONNX graph has {len(nodes)} convolutions, the network "
            f"{architecture.get('name')!r} {len(convs)}"
        )
    loaded: dict[str, Any] = {}

    def put(key: str, value: np.ndarray) -> None:
        if tuple(state[key].shape) != value.shape:
            raise BenchmarkError(
                f"{key}: the network has shape {tuple(state[key].shape)}, "
                f"the ONNX weight {value.shape}"
            )
        loaded[key] = torch.from_numpy(np.array(value, dtype=np.float32))

    for node, (name, conv, norm_name, norm) in zip(nodes, convs, strict=True):
        if node.input[1] in state and node.input[1] != f"{name}.weight":
            raise BenchmarkError(f"the graph's convolutions run in another order ({name})")
        put(f"{name}.weight", weights[node.input[1]])
        bias = weights[node.input[2]] if len(node.input) > 2 else None
        if norm is not None and node.input[1] != f"{name}.weight":  # batch norm folded in
            channels = conv.out_channels
            if conv.bias is not None:  # folded into the batch norm's bias below
                put(f"{name}.bias", np.zeros(channels, np.float32))
            put(f"{norm_name}.weight", np.ones(channels, np.float32))
            put(f"{norm_name}.bias", bias if bias is not None else np.zeros(channels, np.float32))
            put(f"{norm_name}.running_mean", np.zeros(channels, np.float32))
            put(f"{norm_name}.running_var", np.full(channels, 1.0 - norm.eps, np.float32))
        elif bias is not None:
            if conv.bias is None:
                raise BenchmarkError(f"{name} has no bias but its ONNX convolution has one")
            put(f"{name}.bias", bias)
    for key, value in weights.items():  # anything else the exporter kept by name
        if key in state and key not in loaded:
            put(key, value)
    unset = [k for k, v in state.items() if v.is_floating_point() and k not in loaded]
    if unset:
        raise BenchmarkError(f"no ONNX weight for {', '.join(unset[:3])}")
    network.load_state_dict({**state, **loaded})
    return network


def _baseline_weights(payload: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the network, check it against ONNX Runtime, save its state dict."""
    import onnxruntime as ort
    import torch

    from mammotriage.dicom import read_image
    from mammotriage.preprocess import preprocess_image
    from mammotriage.sidecar import load_sidecar

    model = Path(payload["model"])
    sidecar = load_sidecar(model)
    network = _torch_network(model)
    height, width = sidecar.input_shape
    probe = read_image(payload["probe"], target_shape=(height, width))
    real, _ = preprocess_image(probe, sidecar.preprocess_params)
    noise = np.random.default_rng(0).normal(size=(2, 1, height, width)).astype(np.float32)
    batch = np.concatenate([real[None], noise])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [sidecar.outputs.logit, sidecar.outputs.suspicion_map]
    expected = session.run(names, {sidecar.outputs.input: batch})
    with torch.no_grad():
        got = network(torch.from_numpy(batch))
    delta = max(
        float(np.max(np.abs(np.asarray(e).reshape(g.shape) - g.numpy())))
        for e, g in zip(expected, got, strict=True)
    )
    if not delta <= PARITY_TOLERANCE:
        raise BenchmarkError(
            f"the torch network rebuilt from {model.name} differs from ONNX "
            f"Runtime by {delta:.3g} (limit {PARITY_TOLERANCE}): the baseline "
            "would not use the same weights"
        )
    torch.save(network.state_dict(), payload["out"])
    return {
        "max_abs_delta": delta,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }


def _baseline(payload: dict[str, Any]) -> dict[str, Any]:
    """What users write today; see the module docstring."""
    import monai
    import pydicom
    import torch
    from monai.transforms import (
        Compose,
        EnsureChannelFirst,
        EnsureType,
        NormalizeIntensity,
        Resize,
        ScaleIntensity,
    )

    from mammotriage.model.network import NetworkConfig, build_network
    from mammotriage.sidecar import load_sidecar

    sidecar = load_sidecar(Path(payload["model"]))
    params = sidecar.preprocess_params
    keys = NetworkConfig.__dataclass_fields__
    network = build_network({k: v for k, v in sidecar.architecture.items() if k in keys})
    network.load_state_dict(torch.load(payload["weights"], weights_only=True))
    if payload["threads"]:
        torch.set_num_threads(payload["threads"])
    cuda = payload["provider"] == "CUDAExecutionProvider" and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    network.eval().to(device)
    transforms = Compose(
        [
            EnsureChannelFirst(channel_dim="no_channel"),
            ScaleIntensity(),
            Resize((params.input_height, params.input_width)),
            NormalizeIntensity(subtrahend=params.mean, divisor=params.std),  # type: ignore[arg-type]
            EnsureType(data_type="tensor", track_meta=False),
        ]
    )
    with torch.no_grad():  # warm up once, as a long-running service would be
        network(torch.zeros(1, 1, params.input_height, params.input_width, device=device))
    stages = {"read_decode": 0.0, "transforms": 0.0, "inference": 0.0}
    scores = []
    start = time.perf_counter()
    for exam in payload["exams"]:
        probabilities = []
        for path in exam:
            t0 = time.perf_counter()
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array.astype(np.float32)
            if ds.PhotometricInterpretation == "MONOCHROME1":
                pixels = pixels.max() - pixels
            t1 = time.perf_counter()
            x = transforms(pixels)
            t2 = time.perf_counter()
            with torch.no_grad():
                logit, _ = network(x.unsqueeze(0).to(device))
            probabilities.append(float(torch.sigmoid(logit)[0]))
            t3 = time.perf_counter()
            stages["read_decode"] += t1 - t0
            stages["transforms"] += t2 - t1
            stages["inference"] += t3 - t2
        scores.append(100 * max(probabilities))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "scores": scores,
        "stages": stages,
        "device": f"torch {device.type}, {torch.get_num_threads()} threads",
        "versions": {"monai": monai.__version__, "pydicom": pydicom.__version__},
    }


ROLES: dict[str, Role] = {
    "baseline-weights": _baseline_weights,
    "baseline": _baseline,
}


if __name__ == "__main__":
    run_role(ROLES, sys.argv[1:])
