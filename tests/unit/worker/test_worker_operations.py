"""The worker as operations sees it: JSON-only logs without identifiers, exit codes that cron
and systemd can act on, one clear line for every start-up error, database errors that end,
claims that belong to one process, and the folders it writes into created for it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pydicom import dcmread
from pydicom.dataelem import DataElement
from sqlalchemy import text

from mammotriage.worklist import JobStatus
from worker_helpers import REPO, build, folder_settings

TIMEOUT = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(path: Path, **values: object) -> Path:
    base: dict[str, object] = {
        "name": "ops-test",
        "database": "db.sqlite",
        "work_dir": "work",
        "thumbnails_dir": None,
        "poll_seconds": 0.1,
        "source": {"kind": "folder", "path": "incoming", "quiet_seconds": 0, "reports": "reports"},
        "retry": {"max_attempts": 2, "base_seconds": 0.01, "max_seconds": 0.05},
        "allow_demonstration_model": True,
    }
    base.update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(base))
    return path


def _worker(config: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "mammotriage", "worker", "--config", str(config), "--once", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
    )


def _one_clear_line(stderr: str) -> str:
    """The one ``error:`` line; the others are the log's JSON lines (what was set up)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for line in lines:
        if line not in errors:
            json.loads(line)
    return errors[0]


# -- 9: the JSON log is all JSON, without identifiers -------------------------------------


def test_every_log_line_is_json_and_quotes_no_identifier(tmp_path, tiny_synthetic):
    exam = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[0]
    incoming = tmp_path / "incoming" / "study"
    shutil.copytree(exam, incoming)
    first = sorted(incoming.glob("*.dcm"))[0]
    ds = dcmread(first)
    study_uid, sop_uid = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
    # Values pydicom warns about when the worker reads them, quoting the value.
    ds["SeriesInstanceUID"] = DataElement(0x0020000E, "UI", "JUNK!" + study_uid)
    ds["SeriesDescription"] = DataElement(0x0008103E, "LO", "PATIENTNAME" * 7)
    ds.save_as(first, enforce_file_format=True)
    config = _write_config(tmp_path / "worker.yaml")

    result = _worker(config)

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    warnings = []
    for line in lines:
        entry = json.loads(line)  # every line, not only the worker's own
        if entry["level"] == "warning":
            warnings.append(entry)
    assert any(e["logger"] in ("py.warnings", "pydicom") for e in warnings), result.stderr
    for secret in (study_uid, sop_uid, "JUNK!", "PATIENTNAME"):
        assert secret not in result.stderr
        assert secret not in result.stdout


def test_an_uncaught_exception_is_one_json_line_without_identifiers():
    import io
    import logging

    from mammotriage.worker.logs import configure_logging

    stream = io.StringIO()
    restore = configure_logging("json", stream)
    try:
        try:
            raise ValueError("no study 1.2.826.0.1.3680043.8.498.1234567890 for 'DOE^JANE'")
        except ValueError:
            sys.excepthook(*sys.exc_info())

        def crash() -> None:
            raise RuntimeError("thread saw 1.2.840.113619.2.55.3.2831164356")

        thread = threading.Thread(target=crash)
        thread.start()
        thread.join()
        logging.getLogger("highdicom").warning("value '%s' is odd", "SMITH^JOHN")
    finally:
        restore()
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(entries) == 3
    assert [e["level"] for e in entries] == ["critical", "critical", "warning"]
    text_ = stream.getvalue()
    for secret in ("1.2.826.0.1.3680043.8.498.1234567890", "DOE^JANE", "2831164356", "SMITH"):
        assert secret not in text_
    assert "ValueError" in entries[0]["traceback"]


# -- 10: a folder source that does not exist ----------------------------------------------


def test_a_missing_source_folder_is_a_clear_error_not_created(tmp_path):
    config = _write_config(
        tmp_path / "worker.yaml",
        source={"kind": "folder", "path": "no-such-share", "quiet_seconds": 0},
    )
    result = _worker(config)
    assert result.returncode == 2, result.stderr
    line = _one_clear_line(result.stderr)
    assert "source.path" in line and "no-such-share" in line
    assert not (tmp_path / "no-such-share").exists()


# -- 11: the PACS unreachable -------------------------------------------------------------


def test_once_with_the_pacs_unreachable_exits_1(tmp_path):
    port = _free_port()  # nobody listens on it
    config = _write_config(
        tmp_path / "worker.yaml",
        source={"kind": "orthanc", "url": f"http://127.0.0.1:{port}", "timeout_seconds": 2},
    )
    result = _worker(config)
    assert result.returncode == 1, result.stdout + result.stderr
    events = [json.loads(line).get("event") for line in result.stderr.splitlines() if line.strip()]
    assert "poll-failed" in events


def test_the_exit_codes_are_documented():
    result = subprocess.run(
        [sys.executable, "-m", "mammotriage", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0
    for code in ("0", "1", "2", "3", "4"):
        assert f"{code}: " in result.stdout or f"{code} " in result.stdout
    assert "exit" in result.stdout.lower()
    readme = (REPO / "README.md").read_text()
    section = readme.split("## The batch worker", 1)[1].split("\n## ", 1)[0]
    assert "| 3 |" in section and "| 1 |" in section


# -- 12: metrics port in use --------------------------------------------------------------


def test_a_metrics_port_in_use_is_one_line_naming_port_and_setting(tmp_path):
    (tmp_path / "incoming").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _write_config(tmp_path / "worker.yaml", metrics={"port": port})
        result = _worker(config)
    assert result.returncode == 2, result.stderr
    line = _one_clear_line(result.stderr)
    assert "metrics.port" in line and str(port) in line


# -- start-up errors: one line, the right code --------------------------------------------


def test_a_database_that_cannot_be_opened_is_one_line_and_exit_3(tmp_path):
    (tmp_path / "incoming").mkdir()
    (tmp_path / "db.sqlite").mkdir()  # a folder where the database file should be
    config = _write_config(tmp_path / "worker.yaml")
    result = _worker(config)
    assert result.returncode == 3, result.stderr
    assert "database" in _one_clear_line(result.stderr)


# -- 22: the shipped configuration from the repository root -------------------------------


def test_the_shipped_config_creates_the_folders_it_writes_to(tmp_path):
    shutil.copy(REPO / "configs" / "worker.yaml", tmp_path / "configs" / "worker.yaml")
    (tmp_path / "incoming").mkdir()
    result = _worker(
        Path("configs/worker.yaml"),
        cwd=tmp_path,
        env={
            "MAMMOTRIAGE_WORKER_SOURCE__PATH": str(tmp_path / "incoming"),
            "MAMMOTRIAGE_WORKER_ALLOW_DEMONSTRATION_MODEL": "true",
        },
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "mammotriage.sqlite").is_file()
    created = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.strip() and json.loads(line).get("event") == "folder-created"
    ]
    assert any(e.get("setting") == "database" for e in created), result.stderr


@pytest.fixture(autouse=True)
def _configs_folder(tmp_path):
    (tmp_path / "configs").mkdir(exist_ok=True)


# -- 15: a deterministic database error fails the job -------------------------------------


def test_a_database_error_that_will_not_pass_fails_the_job(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path, allow_demonstration_model=True)
    exam = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[0]
    shutil.copytree(exam, settings.source.path / exam.name)
    worker = build(settings)
    with worker.store.db.engine.begin() as connection:  # a real constraint of the database
        connection.execute(
            text(
                "CREATE TRIGGER refuse_exams BEFORE INSERT ON exams "
                "BEGIN SELECT RAISE(ABORT, 'exam refused by a site constraint'); END"
            )
        )
    stop = threading.Event()
    timer = threading.Timer(60, stop.set)  # without the fix the job goes round for ever
    timer.start()
    try:
        summary = worker.run(stop, once=True)
    finally:
        timer.cancel()
    assert not stop.is_set()
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.FAILED
    assert "refused" in (job.last_error or "")
    assert job.attempts == 1
    assert summary.failed == 1


def test_store_errors_are_told_apart_transient_from_deterministic(tmp_path):
    from mammotriage.errors import StoreError
    from mammotriage.worklist import Store
    from mammotriage.worklist.database import StoreDataError

    store = Store(str(tmp_path / "w.sqlite"))
    store.migrate()
    store.jobs.enqueue("pacs", "1.2.826.0.1.3680043.8.498.99")
    # the same study twice: UNIQUE(source, study)
    with pytest.raises(StoreDataError) as refused, store.db.session() as session:
        session.execute(
            text(
                "INSERT INTO jobs (source, study_instance_uid, status, attempts, rescan) "
                "VALUES ('pacs', '1.2.826.0.1.3680043.8.498.99', 'QUEUED', 0, 0)"
            )
        )
    assert "1.2.826.0.1.3680043.8.498.99" not in str(refused.value)  # no SQL parameters
    (tmp_path / "gone").mkdir()
    gone = Store(str(tmp_path / "gone" / "w.sqlite"))
    shutil.rmtree(tmp_path / "gone")
    with pytest.raises(StoreError) as down:
        gone.jobs.counts()
    assert not isinstance(down.value, StoreDataError)
    store.close()
    gone.close()


# -- 17: two workers with one name on one host --------------------------------------------


def test_two_workers_with_one_name_do_not_release_each_others_jobs(tmp_path, tiny_synthetic):
    # both named "test-worker", on one SQLite store
    settings = folder_settings(tmp_path, allow_demonstration_model=True)
    first, second = build(settings), build(settings)
    assert first.instance != second.instance
    first.store.jobs.enqueue("elsewhere", "study-a")
    job = first.store.jobs.claim(first.instance)
    assert job is not None

    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)  # the second worker starts while the first works
    timer.start()
    second.run(stop)
    timer.cancel()

    held = second.store.jobs.get(job.id)
    assert held is not None and held.status is JobStatus.RUNNING
    assert held.claimed_by == first.instance
    # The second worker cannot finish what the first holds; the first can.
    assert second.store.jobs.done(replace(held, claimed_by=second.instance)) is None
    assert second.store.jobs.get(job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    finished = first.store.jobs.done(job)
    assert finished is not None and finished.status is JobStatus.DONE


def test_a_restart_releases_the_claims_of_its_crashed_predecessor(tmp_path):
    from mammotriage.worklist.jobs import instance_id

    settings = folder_settings(tmp_path, allow_demonstration_model=True)
    worker = build(settings)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    crashed = instance_id("test-worker", pid=int(dead.stdout))
    other_name = instance_id("another-worker", pid=int(dead.stdout))
    worker.store.jobs.enqueue("elsewhere", "study-a")
    worker.store.jobs.enqueue("elsewhere", "study-b")
    a = worker.store.jobs.claim(crashed)
    b = worker.store.jobs.claim(other_name)
    assert a is not None and b is not None

    assert worker.store.jobs.release_claims("test-worker") == 1
    assert worker.store.jobs.get(a.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert worker.store.jobs.get(b.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    # the crashed process's own late call changes nothing any more
    assert worker.store.jobs.fail(a, "late") is None


def test_a_study_the_database_refuses_does_not_hold_up_the_others(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path, allow_demonstration_model=True)
    exams = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[:2]
    uids = []
    for exam in exams:
        shutil.copytree(exam, settings.source.path / exam.name)
        ds = dcmread(next(exam.glob("*.dcm")), stop_before_pixels=True)
        uids.append(str(ds.StudyInstanceUID))
    refused, accepted = sorted(uids)  # the refused one comes first in the poll
    worker = build(settings)
    with worker.store.db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse_job BEFORE INSERT ON jobs "
                f"WHEN NEW.study_instance_uid = '{refused}' "
                "BEGIN SELECT RAISE(ABORT, 'study refused by a site constraint'); END"
            )
        )
    summary = worker.run(threading.Event(), once=True)
    assert [j.study_instance_uid for j in worker.store.jobs.all()] == [accepted]
    assert summary.scored == 1
