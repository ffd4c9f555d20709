"""Options and the default model shared by the scoring commands (``score``, ``calibrate``,
``bench``). Kept apart from the command modules so that they can share them without
importing each other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mammotriage.errors import ConfigError

#: The model trained here on synthetic phantoms and shipped in ``models/``.
DEFAULT_MODEL_FILE = "mammotriage-synthetic-tiny.onnx"
MODEL_ENV = "MAMMOTRIAGE_MODEL"


def _repository_root() -> Path:
    """The checkout the package runs from (``src/mammotriage`` -> two levels up)."""
    import mammotriage

    return Path(mammotriage.__file__).resolve().parents[2]


def default_model() -> Path:
    """``$MAMMOTRIAGE_MODEL``, else ``models/mammotriage-synthetic-tiny.onnx`` of the checkout."""
    named = os.environ.get(MODEL_ENV)
    if named:
        return Path(named)
    return _repository_root() / "models" / DEFAULT_MODEL_FILE


def _model_path(model: Path | None) -> Path:
    path = model or default_model()
    if not path.is_file():
        how = "--model" if model else f"--model or ${MODEL_ENV}"
        raise ConfigError(
            f"model {path} not found; name an exported .onnx model with {how} "
            "(mammotriage export writes one)"
        )
    return path


ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help=f"ONNX model with its sidecar (default: ${MODEL_ENV}, "
        f"else models/{DEFAULT_MODEL_FILE}).",
    ),
]
BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per model run.")]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help="ONNX Runtime intra-op threads.")
]
WorkersOption = Annotated[
    int,
    typer.Option("--decode-workers", min=0, help="Threads decoding ahead of the model (0: none)."),
]
