"""The notebooks run from top to bottom and say what they promise.

Each notebook is executed once per module with nbclient in a temporary working folder, so
whatever it writes (its ``nb-work/``) lands there and never in the checkout.

The kernel is pinned to this interpreter: a kernelspec written into a temporary folder names
``sys.executable``, and the kernel manager looks only there. The ``python3`` kernelspec found
on the Jupyter path could belong to another Python (a user-wide one in ``~/.local``) that lacks
mammotriage, and would make the test pass or fail for reasons outside the repository.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TRAIN_VALIDATE_EXPORT = NOTEBOOKS / "01-train-validate-export.ipynb"
KERNEL_NAME = "mammotriage-test"
PARITY_TOLERANCE = 1e-4


def _kernel_manager(kernels: Path) -> KernelManager:
    spec = kernels / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "mammotriage (test interpreter)",
                "language": "python",
            }
        )
    )
    return KernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )


def _stdout(notebook: Any) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.name == "stdout"
    )


def _images_per_cell(notebook: Any) -> list[int]:
    return [
        sum("image/png" in output.get("data", {}) for output in cell.outputs)
        for cell in notebook.cells
        if cell.cell_type == "code"
    ]


@pytest.fixture(scope="module")
def train_validate_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The executed notebook and the folder it ran in (a CellExecutionError fails every test)."""
    workdir = tmp_path_factory.mktemp("notebook-run")
    notebook = nbformat.read(TRAIN_VALIDATE_EXPORT, as_version=4)
    client = NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path_factory.mktemp("kernels")),
        timeout=300,
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.perf_counter()
    client.execute()
    print(f"{TRAIN_VALIDATE_EXPORT.name} ran in {time.perf_counter() - started:.0f} s")
    return notebook, workdir


def test_notebooks_are_stored_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.integration
@pytest.mark.slow
def test_exported_model_agrees_with_pytorch_within_tolerance(
    train_validate_export: tuple[Any, Path],
) -> None:
    notebook, _ = train_validate_export
    found = re.search(r"largest logit difference: (\S+?),", _stdout(notebook))
    assert found, "the export cell printed no parity figure"
    assert 0.0 <= float(found.group(1)) <= PARITY_TOLERANCE


@pytest.mark.integration
@pytest.mark.slow
def test_one_exam_is_scored_between_0_and_100(train_validate_export: tuple[Any, Path]) -> None:
    notebook, _ = train_validate_export
    found = re.search(r"exam score: ([0-9.]+) / 100 \(category (\d+) of 10\)", _stdout(notebook))
    assert found, "the scoring cell printed no exam score"
    assert 0.0 <= float(found.group(1)) <= 100.0
    assert 1 <= int(found.group(2)) <= 10


@pytest.mark.integration
@pytest.mark.slow
def test_the_top_map_cell_is_mapped_to_original_pixels(
    train_validate_export: tuple[Any, Path],
) -> None:
    notebook, _ = train_validate_export
    assert re.search(r"-> original pixels x -?\d+--?\d+, y -?\d+--?\d+", _stdout(notebook))


@pytest.mark.integration
@pytest.mark.slow
def test_validation_plots_and_suspicion_map_are_shown_inline(
    train_validate_export: tuple[Any, Path],
) -> None:
    notebook, _ = train_validate_export
    images = _images_per_cell(notebook)
    assert images[-1] == 1, "the suspicion-map figure is missing"
    assert 3 in images, "roc, reliability and score histogram are not all shown"


@pytest.mark.integration
@pytest.mark.slow
def test_everything_is_written_into_the_notebooks_working_folder(
    train_validate_export: tuple[Any, Path],
) -> None:
    _, workdir = train_validate_export
    work = workdir / "nb-work"
    assert sorted(p.name for p in workdir.iterdir()) == ["nb-work"]
    for produced in (
        "run/metrics.csv",
        "run/best.pt",
        "models/tiny.onnx",
        "models/tiny.json",
        "validation/metrics.json",
        "validation/roc.png",
    ):
        assert (work / produced).is_file(), produced
