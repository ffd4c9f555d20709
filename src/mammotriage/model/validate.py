"""``mammotriage validate``: what is validated is what is deployed.

The model may be a training checkpoint (``.pt``, needs torch) or an exported ``.onnx``
(ONNX Runtime only, as in a hospital); both read the same DICOM through the same
preprocessing, so the figures of an exported model are the figures it will have in use.
Torch is imported only for checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.errors import ConfigError
from mammotriage.model.cache import PreparedSet, prepare
from mammotriage.model.datasets import load_dataset
from mammotriage.model.evaluation import ScoredImages, evaluate
from mammotriage.model.records import ImageRecord
from mammotriage.preprocess import PreprocessParams

BATCH = 32


@dataclass(frozen=True)
class ScoredSet:
    """A prepared data set and the model's image logits for its usable images."""

    prepared: PreparedSet
    indices: list[int]
    logits: np.ndarray

    @property
    def records(self) -> list[ImageRecord]:
        return [self.prepared.records[i] for i in self.indices]


def _check_model_path(model_path: Path) -> None:
    if not model_path.exists():
        raise ConfigError(f"model {model_path} not found")
    if model_path.suffix not in (".onnx", ".pt", ".pth"):
        raise ConfigError(
            f"model {model_path} must be a checkpoint (.pt) or an exported model (.onnx)"
        )


def model_params(model_path: Path) -> PreprocessParams:
    """Preprocessing parameters of a checkpoint or an exported model.

    Raises
    ------
    ConfigError
        If the model is missing or neither a checkpoint nor an exported model.
    """
    _check_model_path(model_path)
    if model_path.suffix == ".onnx":
        from mammotriage.sidecar import load_sidecar

        return load_sidecar(model_path).preprocess_params
    from mammotriage.model.train import load_model

    return load_model(model_path)[1].preprocess_params


def _scorer(model_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    _check_model_path(model_path)
    if model_path.suffix == ".onnx":
        from mammotriage.infer.session import OnnxModel

        onnx_model = OnnxModel(model_path)
        return lambda batch: onnx_model.predict(batch)[0]
    import torch

    from mammotriage.model.train import load_model

    network = load_model(model_path)[0]

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(batch))[0].numpy()

    return run


def score_dataset(
    model_path: Path,
    data_root: Path,
    *,
    kind: str | None = None,
    cache_dir: Path | None = None,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScoredSet:
    """Read, preprocess (with the model's own parameters) and score every image of a data set."""
    params = model_params(model_path)
    records = load_dataset(data_root, kind)
    prepared = prepare(
        records,
        params,
        cache_dir or data_root / ".mammotriage-cache",
        workers=workers,
        progress=(lambda n, total: progress("preprocessing", n, total)) if progress else None,
    )
    indices = [i for i in range(len(prepared.records)) if prepared.usable[i]]
    if not indices:
        raise ConfigError(f"no usable image in {data_root}")
    score = _scorer(model_path)
    logits = []
    for start in range(0, len(indices), BATCH):
        batch = np.asarray(prepared.images[indices[start : start + BATCH]], dtype=np.float32)
        logits.append(score(batch))
        if progress:
            progress("scoring", min(start + BATCH, len(indices)), len(indices))
    return ScoredSet(prepared=prepared, indices=indices, logits=np.concatenate(logits))


def scored_images(scored: ScoredSet) -> ScoredImages:
    """The metrics' table: one row per scored image, probability = sigmoid(logit)."""
    records = scored.records
    attrs: dict[str, list[str]] = {}
    names = sorted({name for r in records for name, _ in r.attrs})
    for name in names:
        attrs[name] = [r.attr(name) or "" for r in records]
    return ScoredImages(
        exam_id=np.array([r.exam_id for r in records]),
        laterality=np.array([r.laterality.value for r in records]),
        view=np.array([r.view.value for r in records]),
        patient_id=np.array([r.patient_id for r in records]),
        label=np.array([r.label for r in records], dtype=int),
        probability=1.0 / (1.0 + np.exp(-scored.logits.astype(np.float64))),
        attrs={k: np.array(v) for k, v in attrs.items()},
    )


def validate(
    model_path: Path,
    data_root: Path,
    out_dir: Path,
    *,
    kind: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    plots: bool = True,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Score ``data_root`` with ``model_path``; write ``metrics.json`` and plots in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scored = score_dataset(
        model_path, data_root, kind=kind, cache_dir=out_dir / "cache", progress=progress
    )
    table = scored_images(scored)
    metrics = evaluate(table, n_boot=n_boot, seed=seed)
    unusable = [
        {"path": str(r.path), "reason": scored.prepared.reasons[i]}
        for i, r in enumerate(scored.prepared.records)
        if not scored.prepared.usable[i]
    ]
    metrics["model"] = {"path": str(model_path), "kind": model_path.suffix.lstrip(".")}
    metrics["data"] = {"root": str(data_root), "unusable_images": unusable}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez_compressed(
        out_dir / "scores.npz",
        logits=scored.logits,
        labels=table.label,
        exam_id=table.exam_id,
        laterality=table.laterality,
    )
    if plots:
        from mammotriage.model.plots import write_plots

        write_plots(table, out_dir)
    return metrics
