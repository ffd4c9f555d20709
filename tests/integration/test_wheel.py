"""The runtime as a hospital installs it: a wheel in a fresh virtual environment without
torch, run from a folder that holds no checkout.

The default (demonstration) model, its sidecar and the default triage policy must come from
the installed package; relative paths in a config file must be read relative to that file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NO_CHECKOUT_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("MAMMOTRIAGE_", "PYTHON", "VIRTUAL_ENV"))
}


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=NO_CHECKOUT_ENV, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bin/`` of a fresh venv holding the wheel built from this checkout and its runtime
    dependencies only (no extras)."""
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(wheels), str(REPO)],
        cwd=root,
    )
    (wheel,) = wheels.glob("mammotriage-*.whl")
    target = root / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=root)
    return target / "bin"


@pytest.fixture(scope="module")
def site(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with no checkout in it, holding two small synthetic exams in ``incoming/``."""
    where = tmp_path_factory.mktemp("site")
    run([str(installed / "mammotriage"), "synth", "incoming", "--exams", "2", "--small",
         "--seed", "3"], cwd=where)
    (where / "incoming" / "truth.csv").unlink()
    return where


def test_the_runtime_venv_has_no_torch(installed):
    probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
    assert run([str(installed / "python"), "-c", probe], cwd=installed).stdout.strip() == "True"


def test_inspect_runs_from_a_folder_without_a_checkout(installed, site):
    out = run([str(installed / "mammotriage"), "inspect", "incoming", "--json"], cwd=site).stdout
    exams = [r for r in map(json.loads, out.splitlines()) if r["kind"] == "exam"]
    assert len(exams) == 2 and all(not e["partial"] for e in exams)


def test_score_uses_the_packaged_demonstration_model(installed, site):
    out = run([str(installed / "mammotriage"), "score", "incoming", "--json"], cwd=site).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2
    assert {r["model"]["name"] for r in records} == {"mammotriage-synthetic-tiny"}
    assert all(1 <= r["category"] <= 10 for r in records)


def test_worker_once_reads_paths_relative_to_its_config_file(installed, site, tmp_path):
    # the config lies in conf/, the worker starts in an unrelated folder: every relative
    # path below is conf/'s, and model and policy come from the package
    conf = site / "conf"
    conf.mkdir()
    (conf / "worker.yaml").write_text(
        "database: state/worklist.sqlite\n"
        "work_dir: state/work\n"
        "thumbnails_dir: state/thumbnails\n"
        "poll_seconds: 0.2\n"
        "source: {kind: folder, path: ../incoming, quiet_seconds: 0, reports: state/reports}\n"
        "log_format: text\n"
        "allow_demonstration_model: true\n"
    )
    (conf / "state").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mammotriage = str(installed / "mammotriage")
    config = str(conf / "worker.yaml")

    shown = run([mammotriage, "config", "show", "worker", "--config", config], cwd=elsewhere)
    assert "site-packages" in shown.stdout and "default" in shown.stdout

    run([mammotriage, "worker", "--config", config, "--once"], cwd=elsewhere)
    with sqlite3.connect(conf / "state" / "worklist.sqlite") as db:
        (scored,) = db.execute("SELECT count(*) FROM scores").fetchone()
    assert scored == 2
    assert len(list((conf / "state" / "reports").rglob("*.dcm"))) == 2
    assert not list(elsewhere.iterdir())
