"""Training: deterministic for a seed, resumable from its last checkpoint, early stopping on
validation AUC, per-epoch metrics in ``metrics.csv``.

A run folder holds ``config.yaml`` (the recipe as run), ``metrics.csv``, ``last.pt`` (to
resume) and ``best.pt`` (the weights with the best validation AUC, what export takes).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from mammotriage.model.cache import PreparedSet, prepare
from mammotriage.model.config import TrainConfig
from mammotriage.model.datasets import balanced_sample_weights, load_dataset, split_by_patient
from mammotriage.model.metrics import aggregate_scores, roc_auc
from mammotriage.model.network import SuspicionNetwork, build_network
from mammotriage.model.records import ImageRecord
from mammotriage.model.torch_data import CachedImageDataset

log = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_auc_image",
    "val_auc_breast",
    "val_auc_exam",
    "lr",
    "seconds",
)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended."""

    out: Path
    best_epoch: int
    best_auc: float
    epochs_run: int
    stopped_early: bool


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def map_targets(
    boxes: list[tuple[float, float, float, float]], shape: tuple[int, int], stride: int
) -> np.ndarray:
    """Suspicion-map target: 1 for every cell whose block overlaps a lesion box."""
    target = np.zeros(shape, dtype=np.float32)
    rows, cols = shape
    for x0, y0, x1, y1 in boxes:
        c0, c1 = max(0, int(x0 // stride)), min(cols, int(math.ceil(x1 / stride)))
        r0, r1 = max(0, int(y0 // stride)), min(rows, int(math.ceil(y1 / stride)))
        target[r0:r1, c0:c1] = 1.0
    return target


def prepare_splits(
    config: TrainConfig, root: Path, cache_dir: Path, progress: Progress | None = None
) -> tuple[list[ImageRecord], dict[str, list[ImageRecord]], PreparedSet]:
    """The records of ``root``, their patient-level splits and the preprocessed cache, as
    training made them: export measures on the same validation split, never on training
    images."""
    records = load_dataset(root, config.data.kind)
    test = config.data.test_fraction
    fractions = {
        "train": 1 - config.data.val_fraction - test,
        "val": config.data.val_fraction,
        "test": test,
    }
    splits = split_by_patient(records, fractions, seed=config.seed)
    prepared = prepare(
        records,
        config.preprocess_params,
        cache_dir,
        workers=config.data.workers,
        progress=(lambda n, total: progress("preprocessing", n, total)) if progress else None,
    )
    return records, splits, prepared


def split_indices(prepared: PreparedSet, records: list[ImageRecord]) -> list[int]:
    wanted = {id(r) for r in records}
    return [i for i, r in enumerate(prepared.records) if id(r) in wanted and prepared.usable[i]]


def predict(
    model: nn.Module, images: np.ndarray, indices: list[int], batch_size: int = 32
) -> np.ndarray:
    """Image logits for ``images[indices]`` in eval mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            batch = torch.from_numpy(
                np.asarray(images[indices[start : start + batch_size]], dtype=np.float32)
            )
            out.append(model(batch)[0].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def level_aucs(records: list[ImageRecord], logits: np.ndarray) -> dict[str, float]:
    """Image-, breast- and exam-level AUC (scores aggregate by max)."""
    labels = np.array([r.label for r in records])
    out = {"image": roc_auc(labels, logits)}
    for level, key in (
        ("breast", lambda r: f"{r.exam_id}|{r.laterality.value}"),
        ("exam", lambda r: r.exam_id),
    ):
        keys = np.array([key(r) for r in records])
        _, agg_scores = aggregate_scores(keys, logits, how="max")
        _, agg_labels = aggregate_scores(keys, labels.astype(np.float64), how="max")
        out[level] = roc_auc(agg_labels.astype(int), agg_scores)
    return out


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python numbers, so that
    a checkpoint holds only what ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


class _Checkpoint:
    """``last.pt`` / ``best.pt`` with everything needed to resume bit-for-bit.

    A checkpoint holds tensors, numbers, strings, lists and dicts only (the numpy RNG state
    is stored as a list), and is read with ``torch.load(weights_only=True)``: a file that
    would run code when unpickled is refused, never executed.
    """

    @staticmethod
    def save(path: Path, **state: Any) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(_plain(state), tmp)
        tmp.replace(path)  # atomic: a crash never leaves half a checkpoint

    @staticmethod
    def load(path: Path, *, required: tuple[str, ...] = ("model", "config")) -> dict[str, Any]:
        """The state saved at ``path``.

        Raises
        ------
        ConfigError
            If ``path`` is missing, not a torch file, truncated or corrupt, holds anything but
            plain data (a pickle that would run code), or is not a mammotriage checkpoint.
        """
        from mammotriage.errors import ConfigError

        if not path.is_file():
            raise ConfigError(f"checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"checkpoint {path} is refused: it is not a torch checkpoint, or it holds "
                f"something other than plain data, which is never unpickled ({first})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise ConfigError(
                f"checkpoint {path} cannot be read: truncated, corrupt or not a torch file "
                f"({type(exc).__name__})"
            ) from exc
        missing = [key for key in required if not isinstance(state, dict) or key not in state]
        if missing:
            raise ConfigError(
                f"{path} is not a mammotriage training checkpoint (no {', '.join(missing)})"
            )
        return state


def load_model(checkpoint: Path) -> tuple[SuspicionNetwork, TrainConfig, dict[str, Any]]:
    """The network of a checkpoint, in eval mode, with its training config and state.

    Raises
    ------
    ConfigError
        If the file is not a readable, safe mammotriage checkpoint, or its weights do not
        fit the network its config names.
    """
    from pydantic import ValidationError

    from mammotriage.errors import ConfigError

    state = _Checkpoint.load(checkpoint)
    try:
        config = TrainConfig.model_validate(state["config"])
        model = build_network(config.network)
        model.load_state_dict(state["model"])
    except (ValidationError, RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"checkpoint {checkpoint} does not fit its network: {first}") from exc
    model.eval()
    return model, config, state


def train(
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = True,
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``config`` into the run folder ``out``.

    Raises
    ------
    ConfigError
        If the data root is missing or holds no usable images in a split.
    """
    from mammotriage.errors import ConfigError

    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    if config.optim.threads:
        torch.set_num_threads(config.optim.threads)
    if config.data.root is None:
        raise ConfigError("no training data: give --data or data.root in the config")

    records, splits, prepared = prepare_splits(
        config, config.data.root, config.data.cache_dir or out / "cache", progress
    )
    train_idx = split_indices(prepared, splits["train"])
    val_idx = split_indices(prepared, splits["val"])
    if not train_idx or not val_idx:
        raise ConfigError("the train or validation split holds no usable image")
    # Without both classes the sampler cannot balance and the AUC that picks best.pt is
    # undefined: say so now, not with a traceback or a run that never writes best.pt.
    for name, indices in (("train", train_idx), ("validation", val_idx)):
        if len(set(prepared.labels[indices].tolist())) < 2:
            raise ConfigError(
                f"the {name} split holds images of one class only (cancer and normal are "
                "both needed): give more data with cancers, or change data.val_fraction"
            )
    (out / "config.yaml").write_text(
        yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False)
    )
    (out / "splits.json").write_text(
        json.dumps(
            {name: sorted({r.patient_id for r in recs}) for name, recs in splits.items()}, indent=1
        )
    )

    model = build_network(config.network)
    stride = model.map_stride
    opt = config.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / opt.batch_size)
    if opt.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, opt.max_steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=opt.lr, total_steps=opt.epochs * steps_per_epoch, pct_start=0.15
    )

    labels = prepared.labels[train_idx].astype(np.float32)
    pos_weight = torch.tensor(1.0)
    if opt.balance == "loss":
        pos_weight = torch.tensor(float((labels == 0).sum()) / max(1.0, float(labels.sum())))

    start_epoch, best_auc, best_epoch, stale = 0, -1.0, -1, 0
    last = out / "last.pt"
    if resume and last.exists():
        state = _Checkpoint.load(
            last, required=("model", "optimizer", "scheduler", "epoch", "numpy_rng")
        )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        # A run resumed with another number of epochs follows the new schedule from the
        # step it reached (the old one would end, and refuse to step, at its own last step).
        scheduler.load_state_dict(
            state["scheduler"]
            | {"total_steps": scheduler.total_steps, "_schedule_phases": scheduler._schedule_phases}
        )
        start_epoch, best_auc, best_epoch, stale = (
            state["epoch"] + 1,
            state["best_auc"],
            state["best_epoch"],
            state["stale"],
        )
        torch.set_rng_state(state["torch_rng"])
        name, keys, pos, has_gauss, cached = state["numpy_rng"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        python_rng = state["python_rng"]
        random.setstate((python_rng[0], tuple(python_rng[1]), python_rng[2]))
        # A crash between writing an epoch's row and its last.pt leaves a row to be redone.
        _keep_metrics(out / "metrics.csv", start_epoch)
    elif (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()

    dataset = CachedImageDataset(prepared, train_idx, augment=opt.augment, seed=config.seed)
    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, opt.epochs):
        if stale >= opt.patience:
            stopped_early = True
            epoch -= 1
            break
        t0 = time.perf_counter()
        dataset.set_epoch(epoch)
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        if opt.balance == "sampler":
            weights = torch.as_tensor(
                balanced_sample_weights([prepared.records[i] for i in train_idx])
            )
            sampler = WeightedRandomSampler(
                weights,  # type: ignore[arg-type]  # takes any tensor; annotated Sequence[float]
                num_samples=len(train_idx),
                replacement=True,
                generator=generator,
            )
            loader = DataLoader(dataset, batch_size=opt.batch_size, sampler=sampler)
        else:
            loader = DataLoader(
                dataset, batch_size=opt.batch_size, shuffle=True, generator=generator
            )
        model.train()
        losses = []
        for step, (images, targets, index) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            logits, maps = model(images)
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, targets, pos_weight=pos_weight
            )
            if opt.map_supervision > 0:
                loss = loss + opt.map_supervision * _map_loss(
                    maps, prepared, index.tolist(), stride
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if progress:
                progress(f"epoch {epoch + 1}/{opt.epochs}", step + 1, steps_per_epoch)

        val_logits = predict(model, prepared.images, val_idx)
        val_labels = prepared.labels[val_idx].astype(np.float32)
        val_loss = float(
            nn.functional.binary_cross_entropy_with_logits(
                torch.from_numpy(val_logits), torch.from_numpy(val_labels)
            )
        )
        aucs = level_aucs([prepared.records[i] for i in val_idx], val_logits)
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val_loss,
            "val_auc_image": aucs["image"],
            "val_auc_breast": aucs["breast"],
            "val_auc_exam": aucs["exam"],
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
        }
        _append_metrics(out / "metrics.csv", row)
        log.info(
            "epoch %d/%d: train loss %.4f, val loss %.4f, "
            "val AUC image %.3f breast %.3f exam %.3f (%.0f s)",
            row["epoch"], opt.epochs, row["train_loss"], val_loss, aucs["image"], aucs["breast"],
            aucs["exam"], row["seconds"],
        )
        score = aucs["exam"] if not math.isnan(aucs["exam"]) else aucs["image"]
        if score > best_auc:
            best_auc, best_epoch, stale = score, epoch + 1, 0
            _Checkpoint.save(
                out / "best.pt",
                model=model.state_dict(),
                config=config.model_dump(mode="json"),
                epoch=epoch,
                val=row,
                architecture=model.architecture,
                training_data=_data_summary(records, splits),
            )
        else:
            stale += 1
        _Checkpoint.save(
            last,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            epoch=epoch,
            best_auc=best_auc,
            best_epoch=best_epoch,
            stale=stale,
            config=config.model_dump(mode="json"),
            torch_rng=torch.get_rng_state(),
            numpy_rng=np.random.get_state(),
            python_rng=random.getstate(),
        )
    return TrainResult(
        out=out,
        best_epoch=best_epoch,
        best_auc=best_auc,
        epochs_run=epoch + 1,
        stopped_early=stopped_early,
    )


def _map_loss(
    maps: torch.Tensor, prepared: PreparedSet, index: list[int], stride: int
) -> torch.Tensor:
    """Dense BCE on the suspicion map: lesion-box cells positive, every other cell negative.
    Images of a cancer breast without a box (no localisation in the data) are left out."""
    shape = tuple(int(v) for v in maps.shape[-2:])
    targets, keep = [], []
    for row, i in enumerate(index):
        boxes = prepared.boxes_input[i]
        if prepared.labels[i] and not boxes:
            continue
        targets.append(map_targets(list(boxes), shape, stride))  # type: ignore[arg-type]
        keep.append(row)
    if not keep:
        return maps.sum() * 0.0
    target = torch.from_numpy(np.stack(targets))[:, None]
    chosen = maps[keep]
    positives = float(target.sum())
    weight = (target.numel() - positives) / max(1.0, positives) if positives else 1.0
    return nn.functional.binary_cross_entropy_with_logits(
        chosen, target, pos_weight=torch.tensor(min(weight, 50.0))
    )


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _keep_metrics(path: Path, epochs: int) -> None:
    """Keep the header and the rows of the first ``epochs`` epochs of ``metrics.csv``."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if int(row["epoch"]) <= epochs]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _data_summary(
    records: list[ImageRecord], splits: dict[str, list[ImageRecord]]
) -> dict[str, Any]:
    return {
        name: {
            "images": len(recs),
            "exams": len({r.exam_id for r in recs}),
            "patients": len({r.patient_id for r in recs}),
            "cancer_breasts": len({(r.exam_id, r.laterality) for r in recs if r.label}),
        }
        for name, recs in splits.items()
    } | {"total_images": len(records)}
