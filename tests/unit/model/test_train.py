"""Specification of :mod:`mammotriage.model.train` and ``mammotriage train``: a run folder a
person can trust, deterministic for a seed, resumable, stopping when validation stalls."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import CliRun, Recipe
from mammotriage.cli import app
from mammotriage.model import train as train_module
from mammotriage.model.config import TrainConfig, load_train_config
from mammotriage.model.network import build_network
from mammotriage.model.records import ImageRecord
from mammotriage.model.train import METRIC_COLUMNS, map_targets, train
from mammotriage.synth.batch import generate, read_truth

REPO = Path(__file__).resolve().parents[3]


def metrics_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"tensors differ: {different[:5]}"


def run_recipe(recipe: Path, out: Path, **kwargs: Any) -> train_module.TrainResult:
    return train(load_train_config(recipe), out, **kwargs)


# --- the run folder ----------------------------------------------------------------------------


def test_train_command_exits_zero_and_leaves_both_checkpoints(tiny_run: CliRun) -> None:
    assert tiny_run.exit_code == 0, tiny_run.output
    assert (tiny_run.path / "best.pt").is_file()
    assert (tiny_run.path / "last.pt").is_file()
    assert "best validation AUC" in tiny_run.output


def test_metrics_csv_has_the_metric_columns_and_one_row_per_epoch(tiny_run: CliRun) -> None:
    with open(tiny_run.path / "metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == METRIC_COLUMNS
    rows = metrics_rows(tiny_run.path)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)


def test_config_yaml_is_the_recipe_as_run(tiny_run: CliRun, tiny_recipe: Recipe) -> None:
    saved = TrainConfig.model_validate(yaml.safe_load((tiny_run.path / "config.yaml").read_text()))
    assert saved == load_train_config(tiny_recipe())


def test_splits_hold_every_woman_in_exactly_one_subset(
    tiny_run: CliRun, tiny_synthetic: Path
) -> None:
    splits = {
        name: set(ids)
        for name, ids in json.loads((tiny_run.path / "splits.json").read_text()).items()
    }
    assert splits["train"] and splits["val"]
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not splits[first] & splits[second], (first, second)
    women = {row.patient_id for row in read_truth(tiny_synthetic / "truth.csv")}
    assert set().union(*splits.values()) == women


# --- determinism and resuming ------------------------------------------------------------------


def test_two_fresh_runs_with_one_seed_give_the_same_metrics_and_weights(
    tiny_run: CliRun, tiny_recipe: Recipe, tmp_path: Path
) -> None:
    run_recipe(tiny_recipe(), tmp_path / "again")
    assert without_seconds(metrics_rows(tmp_path / "again")) == without_seconds(
        metrics_rows(tiny_run.path)
    )
    assert_same_weights(tmp_path / "again" / "best.pt", tiny_run.path / "best.pt")
    assert_same_weights(tmp_path / "again" / "last.pt", tiny_run.path / "last.pt")


class PowerCut(Exception):
    """Stands for the process dying."""


def test_a_run_resumed_after_a_crash_ends_as_the_uninterrupted_run(
    tiny_run: CliRun, tiny_recipe: Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worst moment: epoch 2's metrics row and best.pt are written, its last.pt is not.
    save = train_module._Checkpoint.save

    def save_then_die(path: Path, **state: Any) -> None:
        if path.name == "last.pt" and state["epoch"] == 1:
            raise PowerCut
        save(path, **state)

    monkeypatch.setattr(train_module._Checkpoint, "save", staticmethod(save_then_die))
    with pytest.raises(PowerCut):
        run_recipe(tiny_recipe(), tmp_path / "run")
    monkeypatch.undo()

    result = run_recipe(tiny_recipe(), tmp_path / "run")
    assert result.epochs_run == 2
    assert without_seconds(metrics_rows(tmp_path / "run")) == without_seconds(
        metrics_rows(tiny_run.path)
    )
    assert_same_weights(tmp_path / "run" / "last.pt", tiny_run.path / "last.pt")
    assert_same_weights(tmp_path / "run" / "best.pt", tiny_run.path / "best.pt")


def test_a_finished_run_given_more_epochs_continues_on_the_longer_schedule(
    tiny_run: CliRun, tiny_recipe: Recipe, tmp_path: Path
) -> None:
    run_recipe(tiny_recipe("one-epoch", optim={"epochs": 1}), tmp_path / "run")
    first = metrics_rows(tmp_path / "run")
    result = run_recipe(tiny_recipe(), tmp_path / "run")
    rows = metrics_rows(tmp_path / "run")
    assert result.epochs_run == 2
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0] == first[0]
    # Epoch 2 ends where the two-epoch schedule ends, not past the one-epoch schedule.
    assert rows[1]["lr"] == metrics_rows(tiny_run.path)[1]["lr"]


def test_fresh_ignores_the_last_checkpoint(tiny_recipe: Recipe, tmp_path: Path) -> None:
    run_recipe(tiny_recipe("one-epoch", optim={"epochs": 1}), tmp_path / "run")
    result = run_recipe(
        tiny_recipe("one-epoch", optim={"epochs": 1}), tmp_path / "run", resume=False
    )
    assert result.epochs_run == 1
    assert [row["epoch"] for row in metrics_rows(tmp_path / "run")] == ["1"]


# --- early stopping ----------------------------------------------------------------------------


@pytest.mark.parametrize("patience", [1, 2])
def test_training_stops_after_patience_epochs_without_a_better_validation_auc(
    patience: int, tiny_recipe: Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A validation AUC that cannot improve: the same figure after every epoch.
    def flat_aucs(records: list[ImageRecord], logits: Any) -> dict[str, float]:
        return {"image": 0.7, "breast": 0.7, "exam": 0.7}

    monkeypatch.setattr(train_module, "level_aucs", flat_aucs)
    recipe = tiny_recipe(
        f"patience-{patience}", optim={"epochs": 5, "patience": patience, "max_steps_per_epoch": 1}
    )
    result = run_recipe(recipe, tmp_path / "run")
    assert result.stopped_early
    assert result.best_epoch == 1 and result.best_auc == pytest.approx(0.7)
    assert result.epochs_run == 1 + patience
    assert len(metrics_rows(tmp_path / "run")) == 1 + patience
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["epoch"] == 0


# --- mistakes a user can make ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "named"),
    [
        ({"optim": {"learning_rate": 0.1}}, "optim.learning_rate"),
        ({"network": {"name": "tiny-cnm"}}, "tiny-cnm"),
        ({"data": {"root": None}}, "--data"),
    ],
    ids=["unknown-key", "bad-network-name", "no-data-root"],
)
def test_a_bad_recipe_exits_2_with_one_message_naming_the_problem(
    blocks: dict[str, dict[str, Any]], named: str, tiny_recipe: Recipe, tmp_path: Path
) -> None:
    recipe = tiny_recipe("bad", **blocks)
    result = CliRunner().invoke(app, ["train", "--config", str(recipe), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    # Rich wraps long lines at the console width; the message itself is one line.
    message = " ".join(result.output.split())
    assert message.startswith("error: ") and message.count("error:") == 1
    assert named in message


def test_a_data_root_that_is_not_there_is_named(tiny_recipe: Recipe, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(tiny_recipe()),
            "--data",
            str(missing),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2
    assert str(missing / "truth.csv") in "".join(result.output.split())


def test_data_without_a_cancer_is_refused_before_training(
    tiny_recipe: Recipe, tmp_path: Path
) -> None:
    generate(tmp_path / "normals", exams=3, seed=1, small=True, prevalence=0.0, workers=1)
    recipe = tiny_recipe(
        "normals", data={"root": str(tmp_path / "normals"), "cache_dir": str(tmp_path / "cache")}
    )
    result = CliRunner().invoke(
        app, ["train", "--config", str(recipe), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2, result.output
    assert "one class only" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "last.pt").exists()


# --- the GPU recipe ----------------------------------------------------------------------------


def test_the_gpu_recipe_declares_a_full_resolution_input() -> None:
    params = load_train_config(REPO / "configs" / "train-gpu.yaml").preprocess_params
    assert params.input_height >= 1536 and params.input_width >= 768


def test_the_gpu_recipe_takes_one_optimisation_step_at_a_tiny_size() -> None:
    recipe = load_train_config(REPO / "configs" / "train-gpu.yaml")
    tiny = recipe.model_copy(
        update={"preprocess": {**recipe.preprocess, "input_height": 64, "input_width": 32}}
    )
    tiny = TrainConfig.model_validate(tiny.model_dump())  # still a valid recipe
    params = tiny.preprocess_params
    torch.manual_seed(tiny.seed)
    model = build_network(tiny.network)
    assert model.config.name == "efficientnet-b0"
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tiny.optim.lr, weight_decay=tiny.optim.weight_decay
    )
    images = torch.randn(2, 1, params.input_height, params.input_width)
    labels = torch.tensor([1.0, 0.0])
    model.train()
    logits, maps = model(images)
    stride = model.map_stride
    shape = (params.input_height // stride, params.input_width // stride)
    box = [(4.0, 8.0, 20.0, 30.0)]
    map_target = torch.from_numpy(
        np.stack([map_targets(box, shape, stride), map_targets([], shape, stride)])
    )[:, None]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = bce(logits, labels) + tiny.optim.map_supervision * bce(maps, map_target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert math.isfinite(float(loss.detach()))
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert changed and "head.weight" in changed
