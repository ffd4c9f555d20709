"""``mammotriage backfill`` on a real local Ray: the same results as ``score``, damaged
files as rows with their reasons, and a driver killed mid-run that a rerun completes with
every exam exactly once. Run alone with ``pytest -m ray``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mammotriage import defaults
from mammotriage.backfill.run import BackfillOptions, run_backfill
from mammotriage.backfill.schema import exam_files, image_files
from mammotriage.cli import app
from mammotriage.infer.engine import ScoringEngine
from worker_helpers import damaged_duplicate, hostile_corpus

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

MODEL = defaults.model_path()


def _table(files: list[Path]) -> list[dict]:
    return pq.read_table(files).to_pylist() if files else []


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tiny_synthetic: Path) -> Path:
    """Six synthetic exams, one with a damaged later copy of a view, plus the reader's
    damaged-file corpus (each file an exam of its own that nothing can score)."""
    root = tmp_path_factory.mktemp("backfill-archive")
    for exam in sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[:6]:
        shutil.copytree(exam, root / exam.name)
    first = sorted(next(p for p in sorted(root.iterdir()) if p.is_dir()).glob("*.dcm"))[0]
    damaged_duplicate(first, first.with_name("zz-damaged.dcm"))
    (root / "damaged").mkdir()
    assert hostile_corpus(root / "damaged")
    return root


def test_backfill_equals_score_and_bad_files_become_rows_with_reasons(
    local_ray: str, archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = run_backfill([archive], out, BackfillOptions(model=MODEL, shard_size=4))
    exams = {row["exam_id"]: row for row in _table(exam_files(out))}
    images = _table(image_files(out))

    with ScoringEngine(MODEL) as engine:
        expected = {e.exam_id: e for e in engine.score_paths([archive.absolute()])}
    assert exams.keys() == expected.keys()
    assert summary.exams == len(expected) and summary.exams_scored_now == len(expected)
    for exam_id, want in expected.items():
        row = exams[exam_id]
        if want.score is None:
            assert row["score"] is None and row["status"] == "unscored"
            assert row["reason"] and row["reading_mode"] == "double"
        else:
            assert row["score"] == pytest.approx(want.score, abs=1e-5)
            assert row["category"] == want.category
        assert row["images_usable"] + row["images_unusable"] == len(want.images)
    # every file of the archive is an image row, and every unusable one says why
    files = {str(p) for p in archive.rglob("*") if p.is_file()}
    assert {im["path"] for im in images} == files
    assert all(im["reason"] for im in images if not im["usable"])
    assert any("was tried in its place" in (im["reason"] or "") for im in images)
    assert summary.by_status["unscored"] == sum(e.score is None for e in expected.values())

    # the same exams and scores as `mammotriage score --json` prints (2 decimals)
    result = CliRunner().invoke(app, ["score", "--json", str(archive.absolute())])
    assert result.exit_code == 0, result.output
    printed = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            printed[record["exam_id"]] = record["score"]
    assert printed.keys() == exams.keys()
    for exam_id, score in printed.items():
        have = exams[exam_id]["score"]
        assert (score is None and have is None) or round(have, 2) == score


def _backfill_command(archive: Path, out: Path, address: str) -> list[str]:
    return [
        sys.executable, "-m", "mammotriage", "backfill", str(archive), "--out", str(out),
        "--address", address, "--shard-size", "1",
    ]


def test_a_killed_driver_is_resumed_and_every_exam_is_written_once(
    local_ray: str, archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        _backfill_command(archive, out, local_ray),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len(exam_files(out)) < 2:
            assert driver.poll() is None, "the backfill ended before it could be killed"
            assert time.monotonic() < deadline, "no shard was written in time"
            time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    shards = len(list((out / "manifest").glob("shard-*.parquet")))
    written_before = len(exam_files(out))
    assert 2 <= written_before < shards, "the kill came after the last shard"

    rerun = subprocess.run(
        _backfill_command(archive, out, local_ray),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed" in rerun.stderr
    exams = [row["exam_id"] for row in _table(exam_files(out))]
    manifest = pq.read_table(sorted((out / "manifest").glob("shard-*.parquet")))
    assert sorted(exams) == sorted(manifest.column("exam_id").to_pylist())
    assert len(exams) == len(set(exams)) == shards
    images = [(row["exam_id"], row["path"]) for row in _table(image_files(out))]
    assert len(images) == len(set(images))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_already_done"] >= written_before
    assert summary["exams_scored_now"] == shards - summary["shards_already_done"]


#: Loaded at the start of every Python process of the run below (sitecustomize): preparing
#: an image whose file name says crash-me kills the process, as a codec that segfaults on a
#: hostile file would. No real file is known to crash a decoder here, so this one is faked.
_CRASH_HOOK = '''
import os
from mammotriage.infer import engine, exam_batch, prepare

_prepare_image = prepare.prepare_image


def _crashing(image, params, keep=None):
    if image.path is not None and "crash-me" in str(image.path):
        os._exit(139)
    return _prepare_image(image, params, keep)


for module in (prepare, exam_batch, engine):  # every name the scorers call it by
    module.prepare_image = _crashing
'''


def test_a_file_that_kills_its_decoder_costs_its_view_and_not_the_run(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    exams = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[6:9]
    for exam in exams:
        shutil.copytree(exam, archive / exam.name)
    victim = sorted((archive / exams[1].name).glob("*.dcm"))[0]
    victim.rename(victim.with_name("crash-me.dcm"))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_CRASH_HOOK)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "mammotriage", "backfill", str(archive), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    exams_out = {row["exam_id"]: row for row in _table(exam_files(out))}
    assert len(exams_out) == 3
    images = {row["path"]: row for row in _table(image_files(out))}
    crashed = images[str(victim.with_name("crash-me.dcm"))]
    assert crashed["usable"] is False and "crashed" in crashed["reason"]
    hit = exams_out[crashed["exam_id"]]
    assert hit["status"] == "partial" and hit["score"] is not None
    others = [row for exam_id, row in exams_out.items() if exam_id != crashed["exam_id"]]
    assert [row["status"] for row in others] == ["scored", "scored"]
