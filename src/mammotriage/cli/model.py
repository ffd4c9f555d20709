"""The ML engineer's commands: ``train``, ``validate``, ``export``.

Plain functions; :mod:`mammotriage.cli.main` adds them to the app. torch is imported inside
``train`` and ``export`` only (and by ``validate`` only for a checkpoint), so the rest of
the command line runs on an ONNX Runtime install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mammotriage.cli.common import console, fail, progress, progress_callback
from mammotriage.errors import MammotriageError


def _auc_text(auc: float | None, ci: list[float | None]) -> str:
    """AUC with its CI; undefined (one class only) is said, not crashed on."""
    if auc is None:
        return "undefined (only one class present)"
    lo, hi = ci
    interval = f" (95% CI {lo:.3f}-{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{auc:.3f}{interval}"


def train(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Training recipe (configs/train-*.yaml).")
    ],
    data: Annotated[Path | None, typer.Option(help="Data root (overrides data.root).")] = None,
    kind: Annotated[
        str | None, typer.Option(help="synthetic, rsna, vindr or cbis-ddsm (default: detect).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/NAME).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore an existing last.pt.")] = False,
) -> None:
    """Train a model; resumes from OUT/last.pt when it exists."""
    from mammotriage.model.config import load_train_config
    from mammotriage.model.train import train as run_training

    try:
        recipe = load_train_config(config, root=data, kind=kind)
        folder = out or Path("runs") / recipe.name
        with progress() as bar:
            result = run_training(recipe, folder, resume=not fresh,
                                  progress=progress_callback(bar))
    except MammotriageError as exc:
        fail(exc)
        return
    console.print(
        f"best validation AUC {result.best_auc:.3f} at epoch {result.best_epoch} "
        f"({result.epochs_run} epochs{', stopped early' if result.stopped_early else ''}); "
        f"checkpoint {result.out / 'best.pt'}, per-epoch metrics {result.out / 'metrics.csv'}"
    )


def validate(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="A checkpoint (.pt) or an exported model (.onnx)."),
    ],
    data: Annotated[Path, typer.Option(help="Data root to validate on (a hold-out set).")],
    out: Annotated[Path, typer.Option(help="Folder for metrics.json and plots.")],
    kind: Annotated[str | None, typer.Option(help="Data layout (default: detect).")] = None,
    n_boot: Annotated[int, typer.Option(min=100, help="Bootstrap resamples for the CIs.")] = 1000,
) -> None:
    """Image-, breast- and exam-level metrics with bootstrap CIs, by subgroup, with plots."""
    from mammotriage.model.validate import validate as run_validation

    try:
        with progress() as bar:
            metrics = run_validation(model, data, out, kind=kind, n_boot=n_boot,
                                     progress=progress_callback(bar))
    except MammotriageError as exc:
        fail(exc)
        return
    for level in ("exam", "breast", "image"):
        m = metrics[level]
        console.print(f"{level:6s} AUC {_auc_text(m['auc'], m['auc_ci'])}, n={m['n']}, "
                      f"positives={m['n_positive']}")
    console.print(f"wrote {out / 'metrics.json'} and plots")


def export(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="Training checkpoint (best.pt).")
    ],
    out: Annotated[Path, typer.Option(help="Where the model goes, e.g. models/NAME.onnx.")],
    data: Annotated[Path | None, typer.Option(help="Training data root, if it moved.")] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also write an INT8 (quantised) variant.")
    ] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write an FP16 variant.")] = False,
) -> None:
    """Export to ONNX with verified parity (<= 1e-4) and write the sidecar."""
    from mammotriage.model.release import export_checkpoint, sidecar_summary

    try:
        with progress() as bar:
            sidecar = export_checkpoint(checkpoint, out, data_root=data, int8=int8, fp16=fp16,
                                        progress=progress_callback(bar))
    except MammotriageError as exc:
        fail(exc)
        return
    console.print(sidecar_summary(sidecar))
    console.print(json.dumps({"onnx": str(out), "sidecar": str(out.with_suffix('.json'))}))
