"""Session fixtures shared by the model tests: one tiny synthetic data set, one tiny training
run on it and its exported model, so that train, export and validate are each checked on the
real thing without paying for it more than once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

#: The tiny recipe: train-default.yaml's shape at 128 x 64, two epochs, one thread (more
#: threads on a small shared machine are many times slower at this size).
TINY_RECIPE: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"kind": "synthetic", "val_fraction": 0.34, "workers": 1},
    "preprocess": {
        "input_height": 128,
        "input_width": 64,
        "margin": 0.02,
        "normalisation": "zscore",
        "mean": 0.3,
        "std": 0.25,
        "version": "1",
    },
    "network": {"name": "tiny-cnn", "pooling": "topk", "topk_fraction": 0.03},
    "optim": {"epochs": 2, "batch_size": 8, "lr": 0.003, "threads": 1},
}

Recipe = Callable[..., Path]


@dataclass(frozen=True)
class CliRun:
    """A command run through the CLI and the folder or file it made."""

    exit_code: int
    output: str
    path: Path


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 small synthetic exams (12 women), half with a cancer."""
    from mammotriage.synth.batch import generate

    root = tmp_path_factory.mktemp("tiny-synthetic")
    generate(root, exams=12, seed=0, small=True, prevalence=0.5, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic: Path) -> Recipe:
    """``tiny_recipe(name, optim={...}, data={...}, ...)`` writes :data:`TINY_RECIPE` with
    those blocks updated and returns its path. Every recipe shares one preprocessed cache."""
    folder = tmp_path_factory.mktemp("recipes")
    cache = tmp_path_factory.mktemp("tiny-cache")

    def write(name: str = "tiny", **blocks: dict[str, Any]) -> Path:
        recipe = {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in TINY_RECIPE.items()
        }
        recipe["data"].update(root=str(tiny_synthetic), cache_dir=str(cache))
        for key, update in blocks.items():
            recipe[key].update(update)
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Recipe) -> CliRun:
    """``mammotriage train`` of the tiny recipe (two epochs) into a fresh run folder."""
    from mammotriage.cli import app

    folder = tmp_path_factory.mktemp("runs") / "tiny"
    arguments = ["train", "--config", str(tiny_recipe()), "--out", str(folder)]
    result = CliRunner().invoke(app, arguments)
    return CliRun(result.exit_code, result.output, folder)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_run: CliRun) -> CliRun:
    """``mammotriage export --int8`` of the tiny run's best.pt to ``models/tiny.onnx``."""
    from mammotriage.cli import app

    assert tiny_run.exit_code == 0, tiny_run.output
    out = tmp_path_factory.mktemp("export") / "models" / "tiny.onnx"
    checkpoint = tiny_run.path / "best.pt"
    result = CliRunner().invoke(
        app, ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--int8"]
    )
    return CliRun(result.exit_code, result.output, out)
