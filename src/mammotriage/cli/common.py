"""What the command modules share: the console, the one-line error exit, the progress bar,
counts with their nouns, and the options and default model of the scoring commands
(``score``, ``calibrate``, ``bench``).

Imports nothing of the command line itself, so every command module can use it without
importing another command module or the app.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mammotriage import defaults
from mammotriage.errors import ConfigError, MammotriageError

if TYPE_CHECKING:
    from rich.progress import TaskID

    from mammotriage.worklist import Store

#: Messages for a person go to stderr; results (tables, JSON) go to stdout.
console = Console(stderr=True)

MODEL_ENV = "MAMMOTRIAGE_MODEL"


def progress() -> Progress:
    """A progress bar on the stderr console, drawn only on a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def progress_callback(bar: Progress) -> Callable[[str, int, int], None]:
    """A ``progress(label, done, total)`` callback that keeps one task of ``bar`` per label."""
    tasks: dict[str, TaskID] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return update


def fail(exc: MammotriageError) -> NoReturn:
    """Print ``exc`` as one line for a person and exit with status 2."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code=2)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 exam``, ``2 exams``, ``0 exams``: a count and its noun (``plural`` when not +s)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def default_model() -> Path:
    """``$MAMMOTRIAGE_MODEL``, else the demonstration model packaged with mammotriage."""
    named = os.environ.get(MODEL_ENV)
    if named:
        return Path(named)
    return defaults.model_path()


def model_path(model: Path | None) -> Path:
    """``model`` if given, else :func:`default_model`; refused if the file is not there.

    Raises
    ------
    ConfigError
        If the model file does not exist.
    """
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
        f"else the packaged demonstration model {defaults.DEMONSTRATION_MODEL}).",
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


def existing_store(url: str) -> Store:
    """The worker's store at ``url``, migrated; a SQLite file that is not there is refused
    (commands that look at a store do not start one).

    Raises
    ------
    ConfigError
        If ``url`` names a SQLite file that does not exist.
    """
    from mammotriage.worklist import Store
    from mammotriage.worklist.database import sqlite_file

    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise ConfigError(f"no worklist database at {path}: has the worker run?")
    store = Store(url)
    store.migrate()
    return store
