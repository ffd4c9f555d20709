"""Checkpoints are read safely: ``mammotriage export`` and ``validate`` refuse a truncated
checkpoint, a file that is not a checkpoint and a pickle that would run code, each with one
line and exit status 2, and never run the code."""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import CliRun
from mammotriage.cli import app


class _TouchOnUnpickle:
    """A pickle payload that creates ``marker`` when unpickled: stands for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.marker,))


def _one_error_line(output: str) -> str:
    message = " ".join(output.split())  # rich wraps long lines at the console width
    assert "Traceback" not in output
    assert message.startswith("error: ") and message.count("error:") == 1, output
    return message


def _bad_files(tmp_path: Path, best: Path) -> dict[str, Path]:
    truncated = tmp_path / "truncated.pt"
    data = best.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.pt"
    text.write_text("these are my notes, not a checkpoint\n")
    malicious_zip = tmp_path / "malicious.pt"
    torch.save({"model": {}, "config": _TouchOnUnpickle(tmp_path / "pwned-zip")}, malicious_zip)
    malicious_raw = tmp_path / "malicious-raw.pt"
    malicious_raw.write_bytes(pickle.dumps(_TouchOnUnpickle(tmp_path / "pwned-raw")))
    not_checkpoint = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), not_checkpoint)
    return {
        "truncated": truncated,
        "text": text,
        "malicious-zip": malicious_zip,
        "malicious-raw": malicious_raw,
        "plain-tensor": not_checkpoint,
    }


def test_the_malicious_payloads_are_real(tmp_path: Path) -> None:
    # The unsafe reader would run them: the refusal below is what keeps the marker away.
    payload = pickle.dumps(_TouchOnUnpickle(tmp_path / "ran"))
    pickle.loads(payload)  # noqa: S301 - on purpose, to show the payload runs
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "kind", ["truncated", "text", "malicious-zip", "malicious-raw", "plain-tensor"]
)
@pytest.mark.parametrize("command", ["export", "validate"])
def test_a_bad_checkpoint_ends_in_one_line_and_exit_2_and_runs_no_code(
    kind: str, command: str, tiny_run: CliRun, tmp_path: Path
) -> None:
    assert tiny_run.exit_code == 0, tiny_run.output
    bad = _bad_files(tmp_path, tiny_run.path / "best.pt")[kind]
    if command == "export":
        args = ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m" / "x.onnx")]
    else:
        args = ["validate", "--model", str(bad), "--data", str(tmp_path / "nodata"),
                "--out", str(tmp_path / "val")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    message = _one_error_line(result.output)
    assert bad.name in message
    assert not (tmp_path / "pwned-zip").exists()
    assert not (tmp_path / "pwned-raw").exists()
    assert not (tmp_path / "m" / "x.onnx").exists()


def test_both_checkpoints_of_a_run_load_with_weights_only(tiny_run: CliRun) -> None:
    # Resuming needs the RNG states from last.pt: they are plain data now, not numpy objects.
    last = torch.load(tiny_run.path / "last.pt", map_location="cpu", weights_only=True)
    best = torch.load(tiny_run.path / "best.pt", map_location="cpu", weights_only=True)
    assert len(last["numpy_rng"][1]) == 624 and last["python_rng"][0] == 3
    assert "model" in best and "config" in best
