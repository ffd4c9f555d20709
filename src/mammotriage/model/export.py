"""Export a trained network to ONNX, prove the copy computes what the network computes.

Hospitals run the ``.onnx`` file with ONNX Runtime, never the PyTorch module, so the file is
what was validated only if its outputs equal the network's. Export and the parity check are
therefore one function (as in MONAI's ``convert_to_onnx``): :func:`export_onnx` refuses to
leave a file whose ONNX Runtime outputs differ from PyTorch's by more than the tolerance,
on random inputs of several batch sizes (the batch axis is dynamic) and on real
preprocessed images. The parity figures go into the sidecar, next to the file's sha256.

The exporter is torch's TorchScript-based one (``dynamo=False``): the torch.export-based
default of torch >= 2.9 needs ``onnxscript``, which the ``[train]`` extra does not install,
and the traced graphs of these plain convolutional networks are small and exact. The parity
check is what makes the choice safe; revisit it when torch drops the legacy exporter.

Lower-precision copies (:func:`quantize_int8`, :func:`to_fp16`) are not held to the fp32
tolerance: their deltas are measured and recorded, and validation decides (``auc_delta``).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidArgument,
    InvalidGraph,
    RuntimeException,
)
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from pydantic import ValidationError
from torch import nn

import mammotriage
from mammotriage.errors import ConfigError, ExportError
from mammotriage.model.network import SuspicionNetwork, count_flops
from mammotriage.sidecar import (
    Outputs,
    Sidecar,
    Variant,
    load_sidecar,
    sha256_of,
    sidecar_path,
    write_sidecar,
)

FloatArray = npt.NDArray[np.float32]

#: The oldest opset whose operators (TopK with a sorted flag, ReduceLogSumExp) and ONNX
#: Runtime kernels we test against.
MIN_OPSET = 17
#: Batch sizes of the random parity inputs: 1 is what a worker often runs, 3 proves that the
#: batch axis is really dynamic (a traced-in batch size fails at 3, not at 1).
RANDOM_BATCHES = (1, 3)
#: Images per forward pass while checking; bounds memory on full-size inputs.
_CHUNK = 8
#: What ONNX Runtime raises for a graph it cannot load or run (none derive from one base).
_ORT_ERRORS = (Fail, InvalidArgument, InvalidGraph, OrtNotImplemented, RuntimeException)
#: Fields :func:`export_onnx` writes itself; a caller's value would be a second truth.
_OWNED_FIELDS = frozenset(
    {"format", "onnx_file", "sha256", "created", "mammotriage_version", "parity", "variants"}
)


def export_onnx(
    model: nn.Module,
    out_path: Path,
    *,
    input_shape: tuple[int, int],
    sidecar_fields: Mapping[str, Any],
    parity_inputs: FloatArray | None,
    opset: int = MIN_OPSET,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> Sidecar:
    """Write ``out_path`` (``.onnx``) and its sidecar, after proving parity with ``model``.

    Parameters
    ----------
    model
        Returns ``(logit (N,), suspicion_map (N, 1, h, w))`` for ``(N, 1, H, W)`` input;
        normally a :class:`~mammotriage.model.network.SuspicionNetwork`, whose map stride
        and architecture are then written into the sidecar. Put in eval mode for the
        export; its training flag is restored afterwards.
    out_path
        Where the ``.onnx`` goes; the sidecar is written beside it (same stem, ``.json``).
    input_shape
        ``(H, W)`` of the model input; must equal the sidecar's preprocessing size.
    sidecar_fields
        Sidecar fields the caller knows (``preprocess`` is required; ``name`` defaults to
        the file's stem; calibration, training data, validation as available). The fields
        this function measures (``sha256``, ``parity``, ...) are refused.
    parity_inputs
        Real preprocessed images, ``(N, 1, H, W)`` float32, checked on top of random
        inputs: random inputs exercise every weight, real ones the value ranges that occur.
    opset
        ONNX opset, at least :data:`MIN_OPSET`.
    tolerance
        Largest allowed ``|ONNX Runtime - PyTorch|`` of the logit and of every map cell.
    seed
        Seed of the random parity inputs, so that a failure can be reproduced.

    Returns
    -------
    Sidecar
        As written, with ``parity = {"max_abs_logit_delta", "max_abs_map_delta", "inputs",
        "real_inputs", "opset", "tolerance", "runtime", "exporter", "export_seconds"}``.

    Raises
    ------
    ExportError
        If ONNX Runtime's outputs differ from PyTorch's by more than ``tolerance`` (or are
        not finite), or if torch cannot export the model or ONNX Runtime cannot run the
        result. The ``.onnx`` is deleted and any earlier export at ``out_path`` and its
        sidecar are left untouched.
    ConfigError
        If the sidecar fields are invalid or disagree with ``input_shape`` or the model.
    ValueError
        If ``opset``, ``input_shape`` or ``parity_inputs`` are malformed.
    """
    height, width = _check_arguments(input_shape, opset, tolerance, parity_inputs)
    fields = _sidecar_fields(model, out_path, (height, width), sidecar_fields)
    # Write beside the target and rename only once proven: a refused export never
    # replaces, or deletes, the model already there.
    tmp_path = out_path.with_name(f".{out_path.name}.tmp")
    tmp_json = out_path.with_name(f".{sidecar_path(out_path).name}.tmp")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, SuspicionNetwork):
            model.prepare_for_export()
        started = time.perf_counter()
        try:
            _write_onnx(model, tmp_path, (height, width), opset)
        except (RuntimeError, TypeError) as exc:
            raise ExportError(f"torch could not export {out_path.name} to ONNX: {exc}") from exc
        export_seconds = time.perf_counter() - started
        rng = np.random.default_rng(seed)
        shapes = [(n, 1, height, width) for n in RANDOM_BATCHES]
        inputs = [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]
        real = 0 if parity_inputs is None else len(parity_inputs)
        if parity_inputs is not None and real:
            inputs.append(np.ascontiguousarray(parity_inputs, dtype=np.float32))
        try:
            logit_delta, map_delta = _max_deltas(model, tmp_path, inputs)
        except _ORT_ERRORS as exc:
            raise ExportError(
                f"ONNX Runtime cannot run the export of {out_path.name}: {exc}"
            ) from exc
        figures = (
            f"max |logit delta| {logit_delta:.3g}, max |map delta| {map_delta:.3g} "
            f"over {sum(len(x) for x in inputs)} inputs (tolerance {tolerance:g}, opset {opset})"
        )
        if not (logit_delta <= tolerance and map_delta <= tolerance):  # NaN fails too
            raise ExportError(
                f"ONNX export of {out_path.name} does not reproduce the PyTorch model: {figures}; "
                "the file was not written."
            )
        parity = {
            "max_abs_logit_delta": logit_delta,
            "max_abs_map_delta": map_delta,
            "inputs": sum(len(x) for x in inputs),
            "real_inputs": real,
            "opset": opset,
            "tolerance": tolerance,
            "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
            "exporter": f"torch {torch.__version__} TorchScript (dynamo=False)",
            "export_seconds": round(export_seconds, 3),
        }
        sidecar = _validated_sidecar(
            {**fields, "sha256": sha256_of(tmp_path), "parity": parity}, out_path
        )
        write_sidecar(sidecar, tmp_json)
        os.replace(tmp_path, out_path)
        os.replace(tmp_json, sidecar_path(out_path))
    finally:
        tmp_path.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        model.train(was_training)
    return sidecar


def _check_arguments(
    input_shape: tuple[int, int],
    opset: int,
    tolerance: float,
    parity_inputs: FloatArray | None,
) -> tuple[int, int]:
    if len(input_shape) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape
    ):
        raise ValueError(f'Argument "input_shape" must be two positive ints, got {input_shape!r}.')
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f'Argument "opset" must be an int >= {MIN_OPSET}, got {opset!r}.')
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f'Argument "tolerance" must be a finite number >= 0, got {tolerance!r}.')
    height, width = input_shape
    if parity_inputs is not None:
        shape = tuple(np.shape(parity_inputs))
        if len(shape) != 4 or shape[1:] != (1, height, width):
            raise ValueError(
                f'Argument "parity_inputs" must have shape (N, 1, {height}, {width}), got {shape}.'
            )
    return height, width


def _sidecar_fields(
    model: nn.Module,
    out_path: Path,
    input_shape: tuple[int, int],
    given: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge the caller's sidecar fields with what export knows, refusing contradictions."""
    owned = sorted(_OWNED_FIELDS & set(given))
    if owned:
        raise ValueError(
            f"sidecar_fields must not set {', '.join(owned)}: export measures and writes them."
        )
    if "preprocess" not in given:
        raise ConfigError(
            "sidecar_fields needs 'preprocess' (PreprocessParams.to_dict() of the training "
            "run): inference must preprocess exactly as training did."
        )
    fields: dict[str, Any] = {
        "name": out_path.stem,
        "onnx_file": out_path.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mammotriage_version": mammotriage.__version__,
        **given,
    }
    if isinstance(model, SuspicionNetwork):
        if given.get("map_stride", model.map_stride) != model.map_stride:
            raise ConfigError(
                f"sidecar_fields map_stride {given['map_stride']} contradicts the network's "
                f"{model.map_stride}."
            )
        fields["map_stride"] = model.map_stride
        fields.setdefault(
            "architecture",
            {**model.architecture, "flops_per_image": count_flops(model, input_shape)},
        )
        if input_shape[0] % model.map_stride or input_shape[1] % model.map_stride:
            raise ConfigError(
                f"input_shape {input_shape} is not a multiple of the map stride "
                f"{model.map_stride}: map cells would not tile the input."
            )
    preview = _validated_sidecar({**fields, "sha256": "", "parity": {}}, out_path)
    if preview.input_shape != input_shape:
        raise ConfigError(
            f"input_shape {input_shape} differs from the preprocessing size "
            f"{preview.input_shape} in sidecar_fields['preprocess']."
        )
    return fields


def _validated_sidecar(fields: Mapping[str, Any], out_path: Path) -> Sidecar:
    try:
        sidecar = Sidecar.model_validate(dict(fields))
        sidecar.preprocess_params  # noqa: B018 - validates the preprocessing block
    except ValidationError as exc:
        raise ConfigError(
            f"sidecar fields for {out_path.name} are invalid: {exc.errors()[0]['msg']}"
        ) from exc
    return sidecar


def _write_onnx(model: nn.Module, path: Path, input_shape: tuple[int, int], opset: int) -> None:
    """Trace ``model`` into one self-contained ``.onnx`` file with a dynamic batch axis."""
    names = Outputs()
    dynamic = {name: {0: "batch"} for name in (names.input, names.logit, names.suspicion_map)}
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings (shape values read as Python ints, e.g. top-k's k) are exactly
        # what the parity check on other batch sizes verifies; the legacy exporter's
        # deprecation notice is answered in the module docstring; an unfolded constant
        # Slice (EfficientNet's static padding) costs nothing measurable.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, *input_shape),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[names.input],
            output_names=[names.logit, names.suspicion_map],
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )


def _session(path: Path) -> ort.InferenceSession:
    """An ONNX Runtime session as the inference side opens one (default optimisations)."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _chunks(inputs: Sequence[FloatArray]) -> Iterator[FloatArray]:
    for batch in inputs:
        for start in range(0, len(batch), _CHUNK):
            yield batch[start : start + _CHUNK]


def _run(session: ort.InferenceSession, chunk: FloatArray) -> tuple[FloatArray, FloatArray]:
    names = Outputs()
    logit, suspicion_map = session.run([names.logit, names.suspicion_map], {names.input: chunk})
    return np.asarray(logit, np.float32), np.asarray(suspicion_map, np.float32)


def _delta(a: FloatArray, b: FloatArray) -> float:
    """``max |a - b|``; infinite for a shape mismatch or a non-finite value on either side,
    because ``max`` would quietly drop a NaN and a broken output is no small delta."""
    if a.shape != b.shape:
        return math.inf
    value = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
    return value if math.isfinite(value) else math.inf


def _max_deltas(
    model: nn.Module, onnx_path: Path, inputs: Sequence[FloatArray]
) -> tuple[float, float]:
    """Largest ``|ONNX Runtime - PyTorch|`` of the logit and of the map over ``inputs``."""
    session = _session(onnx_path)
    logit_delta = map_delta = 0.0
    with torch.no_grad():
        for chunk in _chunks(inputs):
            torch_logit, torch_map = (t.numpy() for t in model(torch.from_numpy(chunk)))
            ort_logit, ort_map = _run(session, chunk)
            logit_delta = max(logit_delta, _delta(torch_logit, ort_logit))
            map_delta = max(map_delta, _delta(torch_map, ort_map))
    return logit_delta, map_delta


def _logit_delta_between(reference: Path, candidate: Path, inputs: FloatArray) -> float:
    """Largest ``|candidate - reference|`` image logit, both run by ONNX Runtime."""
    ref_session, cand_session = _session(reference), _session(candidate)
    worst = 0.0
    for chunk in _chunks([np.ascontiguousarray(inputs, dtype=np.float32)]):
        worst = max(worst, _delta(_run(ref_session, chunk)[0], _run(cand_session, chunk)[0]))
    return worst


def variant_path(onnx_path: Path, precision: str) -> Path:
    """``models/NAME.onnx`` -> ``models/NAME.<precision>.onnx``."""
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.onnx")


class _Calibration(CalibrationDataReader):
    """Feeds calibration images to ONNX Runtime's static quantiser, a few at a time."""

    def __init__(self, inputs: FloatArray) -> None:
        self._chunks = _chunks([np.ascontiguousarray(inputs, dtype=np.float32)])

    def get_next(self) -> dict[str, FloatArray] | None:
        chunk = next(self._chunks, None)
        return None if chunk is None else {Outputs().input: chunk}


def quantize_int8(
    onnx_path: Path,
    calibration_inputs: FloatArray,
    *,
    parity_inputs: FloatArray | None = None,
) -> Variant:
    """Write ``NAME.int8.onnx``: static QDQ quantisation, int8 weights per channel.

    Static rather than dynamic quantisation because convolutions dominate these networks
    and dynamic quantisation leaves them in float. Activation ranges come from
    ``calibration_inputs`` (real preprocessed images, ``(N, 1, H, W)``; a few dozen are
    enough), so they must look like what the model will see.

    Parameters
    ----------
    onnx_path
        The exported fp32 model.
    calibration_inputs
        Images whose activation ranges set the quantisation scales.
    parity_inputs
        Images the logit delta is measured on; default ``calibration_inputs`` (held-out
        images give an honest figure).

    Returns
    -------
    Variant
        With ``max_abs_logit_delta`` against the fp32 ``.onnx`` under ONNX Runtime.
    """
    out_path = variant_path(onnx_path, "int8")
    prepared = out_path.with_name(f".{out_path.name}.prep")
    try:
        # Shape inference and graph fusions first, as ONNX Runtime recommends: quantising
        # the fused graph puts the scales where the runtime will actually compute.
        quant_pre_process(str(onnx_path), str(prepared))
        quantize_static(
            str(prepared),
            str(out_path),
            _Calibration(calibration_inputs),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    inputs = calibration_inputs if parity_inputs is None else parity_inputs
    return Variant(
        file=out_path.name,
        precision="int8",
        sha256=sha256_of(out_path),
        max_abs_logit_delta=_logit_delta_between(onnx_path, out_path, inputs),
    )


def to_fp16(onnx_path: Path, parity_inputs: FloatArray) -> Variant:
    """Write ``NAME.fp16.onnx``: fp16 weights and arithmetic, fp32 input and outputs.

    For GPU execution providers, where half precision halves memory traffic; on CPU it
    mostly costs time. Inputs and outputs stay fp32 (Cast nodes at the edges) so that the
    inference side feeds every variant the same arrays.

    Returns
    -------
    Variant
        With ``max_abs_logit_delta`` against the fp32 ``.onnx`` on ``parity_inputs``.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out_path = variant_path(onnx_path, "fp16")
    half = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    onnx.save(half, str(out_path))
    return Variant(
        file=out_path.name,
        precision="fp16",
        sha256=sha256_of(out_path),
        max_abs_logit_delta=_logit_delta_between(onnx_path, out_path, parity_inputs),
    )


def add_variants(onnx_path: Path, variants: Sequence[Variant]) -> Sidecar:
    """Record ``variants`` in the sidecar of ``onnx_path`` (replacing same-file entries).

    Raises
    ------
    ConfigError
        If the sidecar is missing or invalid, or no longer matches the ``.onnx`` file.
    """
    sidecar = load_sidecar(onnx_path)
    new = {variant.file for variant in variants}
    kept = tuple(v for v in sidecar.variants if v.file not in new)
    updated = Sidecar.model_validate({**sidecar.model_dump(), "variants": [*kept, *variants]})
    write_sidecar(updated, sidecar_path(onnx_path))
    return updated
