"""``mammotriage export``: checkpoint -> ONNX model + sidecar, ready for a hospital.

Everything the sidecar says is measured here on the run's own validation split (never on
training images): parity on real preprocessed images, the calibration table (exam-score
deciles of that population) and the validation metrics; optional INT8 and FP16 variants
carry their measured parity and AUC change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mammotriage.errors import ConfigError
from mammotriage.infer.calibrate import calibration_from_scores
from mammotriage.model.datasets import detect_kind
from mammotriage.model.export import add_variants, export_onnx, quantize_int8, to_fp16
from mammotriage.model.metrics import aggregate_scores, roc_auc
from mammotriage.model.train import load_model, predict, prepare_splits, split_indices
from mammotriage.sidecar import Outputs, Sidecar, load_sidecar

PARITY_IMAGES = 16


def exam_scores(exam_ids: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exam score 0-100: the highest image probability of the exam (max over views and
    breasts, as the sidecar's aggregation says)."""
    keys, agg = aggregate_scores(exam_ids, logits, how="max")
    return keys, 100.0 / (1.0 + np.exp(-agg.astype(np.float64)))


def _onnx_logits(path: Path, images: np.ndarray) -> np.ndarray:
    """Image logits of ``path`` under ONNX Runtime. A variant has no sidecar of its own (the
    model's sidecar lists it), so the session is opened on the file alone."""
    import onnxruntime as ort

    names = Outputs()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [
            np.asarray(session.run([names.logit], {names.input: images[i : i + 32]})[0]).ravel()
            for i in range(0, len(images), 32)
        ]
    )


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    data_root: Path | None = None,
    int8: bool = False,
    fp16: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> Sidecar:
    """Export ``checkpoint`` to ``out`` (``models/NAME.onnx``) with its sidecar.

    Raises
    ------
    ConfigError
        If the checkpoint's data cannot be found (give ``data_root``).
    ExportError
        If ONNX Runtime and PyTorch disagree beyond 1e-4 (nothing is written then).
    """
    model, config, state = load_model(checkpoint)
    params = config.preprocess_params
    root = data_root or config.data.root
    if root is None or not Path(root).exists():
        raise ConfigError(f"the training data {root} is not there; pass --data to export")
    kind = config.data.kind or detect_kind(Path(root))
    _, splits, prepared = prepare_splits(
        config, Path(root), config.data.cache_dir or checkpoint.parent / "cache", progress
    )
    val_idx = split_indices(prepared, splits["val"])
    if not val_idx:
        raise ConfigError("the validation split holds no usable image")
    val_images = np.asarray(prepared.images[val_idx], dtype=np.float32)
    val_records = [prepared.records[i] for i in val_idx]
    exam_ids = np.array([r.exam_id for r in val_records])
    labels = np.array([r.label for r in val_records])

    torch.manual_seed(config.seed)
    logits = predict(model, prepared.images, val_idx)
    keys, scores = exam_scores(exam_ids, logits)
    _, exam_labels = aggregate_scores(exam_ids, labels.astype(np.float64), how="max")
    calibration = calibration_from_scores(
        scores, f"validation split of the training data ({config.data.kind or 'auto'}: {root.name})"
    )
    validation = {
        "split": "validation (patients held out of training)",
        "exams": int(len(keys)),
        "exam_auc": roc_auc(exam_labels.astype(int), scores),
        "image_auc": roc_auc(labels, logits),
        "best_epoch": int(state["epoch"]) + 1,
        "training_val_row": state.get("val", {}),
    }
    rng = np.random.default_rng(config.seed)
    parity = val_images[
        rng.choice(len(val_images), size=min(PARITY_IMAGES, len(val_images)), replace=False)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(
        model,
        out,
        input_shape=(params.input_height, params.input_width),
        parity_inputs=parity,
        sidecar_fields={
            "name": out.stem,
            "preprocess": params.to_dict(),
            "calibration": calibration.model_dump(),
            "training_data": {
                "config": config.name,
                "seed": config.seed,
                "data": str(root),
                "kind": kind,
                # The worker refuses a model trained on synthetic data unless told to allow it.
                "synthetic": kind == "synthetic",
                **state.get("training_data", {}),
            },
            "validation": validation,
        },
    )
    variants = []
    base_auc = validation["exam_auc"]
    for wanted_variant, make in (
        (int8, lambda: quantize_int8(out, parity)),
        (fp16, lambda: to_fp16(out, parity)),
    ):
        if not wanted_variant:
            continue
        variant = make()
        variant_logits = _onnx_logits(out.parent / variant.file, val_images)
        _, variant_scores = exam_scores(exam_ids, variant_logits)
        variants.append(
            variant.model_copy(
                update={
                    "auc_delta": float(roc_auc(exam_labels.astype(int), variant_scores) - base_auc)
                }
            )
        )
    if variants:
        add_variants(out, variants)
    return load_sidecar(out)


def sidecar_summary(sidecar: Sidecar) -> str:
    """One paragraph for the console."""
    parity = sidecar.parity
    lines = [
        f"{sidecar.onnx_file}: sha256 {sidecar.sha256[:16]}..., "
        f"input {sidecar.input_shape[0]}x{sidecar.input_shape[1]}",
        f"parity: max |delta logit| {parity.get('max_abs_logit_delta', float('nan')):.2e}, "
        f"map {parity.get('max_abs_map_delta', float('nan')):.2e} "
        f"over {parity.get('inputs')} inputs",
        f"validation exam AUC {sidecar.validation.get('exam_auc', float('nan')):.3f} "
        f"({sidecar.validation.get('exams')} exams)",
    ]
    if sidecar.calibration.warning:
        lines.append(
            f"warning: the calibration table is from the validation split, "
            f"{sidecar.calibration.warning}; recalibrate with `mammotriage calibrate` on a "
            "screening population before use"
        )
    for v in sidecar.variants:
        lines.append(
            f"variant {v.file} ({v.precision}): max |delta logit| {v.max_abs_logit_delta:.2e}, "
            f"exam AUC change {v.auc_delta:+.4f}"
            if v.auc_delta is not None
            else v.file
        )
    return "\n".join(lines)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
