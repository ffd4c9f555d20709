"""``mammotriage worker`` as operators run it: real processes, killed with SIGKILL at random
moments and restarted, stopped with SIGTERM, run two at a time on one PostgreSQL queue, and
started against a database that is not there.

Each test writes its own worker config (folder source, reports folder, a fresh database) and
reads the worker's JSON log lines from the stderr file the process writes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml
from pydicom.uid import generate_uid
from sqlalchemy import Engine, create_engine, func, make_url, select, text

from mammotriage.worker import crashpoints
from mammotriage.worklist import ExamStatus, JobStatus, Store
from mammotriage.worklist.models import AuditRow
from worker_helpers import MODEL, POLICY, assert_each_study_scored_once

pytestmark = pytest.mark.integration

#: Long enough for a worker to start (imports, model load), poll and score a few exams.
EVENT_TIMEOUT = 60.0


# -- the worker as a process ------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``mammotriage worker`` process and the files its output goes to."""

    popen: subprocess.Popen[bytes]
    stderr: Path
    stdout: Path
    started: float

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines written so far (those with ``event == name``, if given)."""
        entries = []
        for line in self.stderr.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written, or not a log line
            if isinstance(entry, dict) and (name is None or entry.get("event") == name):
                entries.append(entry)
        return entries

    def wait_for(self, name: str, n: int = 1, timeout: float = EVENT_TIMEOUT) -> None:
        """Wait until ``n`` log lines with event ``name`` have appeared."""
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < n:
            if self.popen.poll() is not None:
                pytest.fail(
                    f"worker exited with {self.popen.returncode} before {n} {name!r} lines:\n"
                    + self.output()
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {n} {name!r} lines within {timeout} s:\n{self.output()}")
            time.sleep(0.01)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


def write_config(root: Path, database: str, **overrides: Any) -> Path:
    """A worker config: folder source on ``root/incoming`` (created: the worker refuses a
    missing source folder), SRs to ``root/reports``."""
    (root / "incoming").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "database": database,
        "model": str(MODEL),
        "allow_demonstration_model": True,
        "policy": str(POLICY),
        "work_dir": str(root / "work"),
        "poll_seconds": 0.2,
        "threads": 1,
        "batch_size": 4,
        "source": {
            "kind": "folder",
            "path": str(root / "incoming"),
            "quiet_seconds": 0.5,
            "reports": str(root / "reports"),
        },
        "log_format": "json",
    }
    settings.update(overrides)
    path = root / "worker.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def worker_env(**extra: str) -> dict[str, str]:
    """The test's environment, one thread per library, no worker settings or crash points
    inherited; ``extra`` added."""
    inherited = ("MAMMOTRIAGE_WORKER_", crashpoints.SWITCH, crashpoints.VARIABLE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env["OMP_NUM_THREADS"] = "1"
    return env | extra


#: For runs that die at a named crash point: decode in threads instead of the default pool of
#: decode processes, whose start (a forkserver that imports the package) costs 2-4 s a run
#: on a busy machine. No crash point lies in a decode; what a kill leaves behind is in the
#: store and the folders, whoever decoded. Runs killed at a random moment keep the default.
THREAD_DECODING = {"MAMMOTRIAGE_WORKER_ISOLATE_DECODING": "false"}


def crash_env(point: str) -> dict[str, str]:
    """The variables that make a worker SIGKILL itself at crash point ``point``
    (``NAME`` or ``NAME@N``, see :mod:`mammotriage.worker.crashpoints`)."""
    return {crashpoints.SWITCH: "1", crashpoints.VARIABLE: point}


def start_worker(
    config: Path,
    name: str,
    *args: str,
    tag: str | None = None,
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start ``mammotriage worker --config CONFIG --name NAME ARGS`` in ``config``'s folder,
    with ``env`` added to :func:`worker_env`."""
    logs = config.parent / "logs"
    logs.mkdir(exist_ok=True)
    tag = tag or name
    stderr, stdout = logs / f"{tag}.err", logs / f"{tag}.out"
    command = [sys.executable, "-m", "mammotriage", "worker", "--config", str(config)]
    with stderr.open("wb") as err, stdout.open("wb") as out:
        popen = subprocess.Popen(
            [*command, "--name", name, *args],
            cwd=config.parent,
            env=worker_env(**(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return WorkerProcess(popen, stderr, stdout, time.monotonic())


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    """Workers started by the test; any still running at the end are killed."""
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(timeout=10)


def finish(process: WorkerProcess, timeout: float = 90.0) -> float:
    """Wait for a ``--once`` run; it must succeed. Returns its wall time."""
    try:
        process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.popen.kill()
        pytest.fail(f"worker did not finish within {timeout} s:\n{process.output()}")
    assert process.popen.returncode == 0, process.output()
    assert "Traceback" not in process.output()
    return time.monotonic() - process.started


# -- studies on disk --------------------------------------------------------------------


def copy_exams(synthetic: Path, incoming: Path, n: int) -> set[str]:
    """Copy the first ``n`` exam folders of a synthetic set; returns their study UIDs."""
    folders = sorted(p for p in synthetic.iterdir() if p.is_dir())[:n]
    assert len(folders) == n, f"only {len(folders)} exams in {synthetic}"
    incoming.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        shutil.copytree(folder, incoming / folder.name)
    return study_uids(incoming)


def clone_exams(synthetic: Path, incoming: Path, n: int, salt: str = "") -> set[str]:
    """``n`` distinct studies from a synthetic set's exams, reused in turn: each copy gets new
    Study, Series and SOP Instance UIDs (derived from the copy number and ``salt``, so reruns
    match and different salts do not)."""
    folders = sorted(p for p in synthetic.iterdir() if p.is_dir())
    for copy in range(n):
        folder = folders[copy % len(folders)]
        target = incoming / f"copy{copy:03d}"
        target.mkdir(parents=True)
        for path in sorted(folder.glob("*.dcm")):
            dataset = pydicom.dcmread(path)
            for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                old = str(getattr(dataset, keyword))
                entropy = [old, str(copy), *([salt] if salt else [])]
                setattr(dataset, keyword, generate_uid(entropy_srcs=entropy))
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            dataset.save_as(target / path.name)
    uids = study_uids(incoming)
    assert len(uids) == n
    return uids


def study_uids(folder: Path) -> set[str]:
    return {
        str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID)
        for p in folder.rglob("*.dcm")
    }


def reports_by_study(reports: Path) -> dict[str, list[Path]]:
    """The SR files under ``reports/<study>/``, per study folder."""
    if not reports.is_dir():
        return {}
    return {d.name: sorted(d.glob("*.dcm")) for d in reports.iterdir() if d.is_dir()}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scored_audit(store: Store) -> Counter[str]:
    """``exam-scored`` audit rows per actor."""
    with store.db.engine.connect() as connection:
        rows = connection.execute(
            select(AuditRow.actor, func.count())
            .where(AuditRow.action == "exam-scored")
            .group_by(AuditRow.actor)
        ).all()
    return Counter({actor: int(n) for actor, n in rows})


def assert_every_study_done_once(store: Store, reports: Path, studies: set[str]) -> None:
    """One exam row, one score row, a DONE job and exactly one SR per study, and the SR is
    the one the exam row names."""
    exams = assert_each_study_scored_once(store, studies)
    leftovers = [p for p in reports.rglob("*") if p.is_file() and p.suffix != ".dcm"]
    assert leftovers == [], f"temporary files left in the reports folder: {leftovers}"
    written = reports_by_study(reports)
    assert sorted(written) == sorted(studies)
    for exam in exams:
        files = written[exam.study_instance_uid]
        assert len(files) == 1, files
        sr = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert exam.report_sop_instance_uid == str(sr.SOPInstanceUID)
        assert files[0].name == f"{sr.SOPInstanceUID}.dcm"
        assert str(sr.StudyInstanceUID) == exam.study_instance_uid


# -- the tests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """One planned kill: SIGKILL sent from outside ``delay`` seconds after the run's start, or,
    with ``crash_at`` (``NAME@N``), by the worker itself at that named crash point (the N-th
    time it gets there), so that the test knows where the kill landed."""

    label: str
    delay: float = 0.0
    crash_at: str | None = None


def test_sigkill_at_random_moments_then_once_scores_every_study_exactly_once(
    tmp_path: Path, tiny_synthetic: Path, processes: list[WorkerProcess]
) -> None:
    # 14 studies: enough that the last planned kill still finds some left to score.
    studies = clone_exams(tiny_synthetic, tmp_path / "incoming", 14)
    config = write_config(tmp_path, str(tmp_path / "worklist.sqlite"))
    rng = random.Random(20240611)
    plan = [
        KillPoint("during start-up (imports, model load)", delay=rng.uniform(0.3, 1.2)),
        KillPoint("right after an exam is stored, before its SR", crash_at="after-exam-stored"),
        KillPoint("mid-job: scored, nothing stored", crash_at=f"after-score@{rng.randint(2, 3)}"),
        KillPoint("at a random moment", delay=rng.uniform(1.5, 3.5)),
        KillPoint(
            "mid-job: SR written, not yet recorded",
            crash_at=f"after-report-written@{rng.randint(2, 3)}",
        ),
    ]
    kills = []
    for i, point in enumerate(plan):
        env = crash_env(point.crash_at) | THREAD_DECODING if point.crash_at else None
        process = start_worker(config, "crashy", tag=f"run{i}", env=env)
        processes.append(process)
        if point.crash_at is None:
            time.sleep(point.delay)
            assert process.popen.poll() is None, f"worker ended by itself:\n{process.output()}"
            process.popen.send_signal(signal.SIGKILL)
        try:
            process.popen.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"{point.label}: the worker never reached its crash point\n{process.output()}"
            )
        at = time.monotonic() - process.started
        assert process.popen.returncode == -signal.SIGKILL, process.output()
        events = [e["event"] for e in process.events() if "event" in e]
        if point.crash_at is not None:
            # Where it landed: the named point, at the planned pass, and nothing after it.
            name, _, nth = point.crash_at.partition("@")
            (landed,) = process.events("crash-point")
            assert (landed["point"], landed["pass"]) == (name, int(nth or "1")), landed
            assert events[-1] == "crash-point", events
        elif i == 0:
            assert "exam-stored" not in events, f"the start-up kill landed after a job: {events}"
        kills.append((point.label, round(at, 2), events[-3:], Counter(events)["exam-stored"]))
    print("kills (what, seconds after start, last events, exams stored in that run):")
    for kill in kills:
        print("  ", *kill)

    final = start_worker(config, "crashy", "--once", tag="final")
    processes.append(final)
    print(f"final --once run: {finish(final):.1f} s")

    released = [e for run in processes for e in run.events("released")]
    assert released, "no restart released a job left RUNNING: the kills hit no job"
    store = Store(str(tmp_path / "worklist.sqlite"))
    try:
        assert_every_study_done_once(store, tmp_path / "reports", studies)
    finally:
        store.close()


def test_sigterm_finishes_the_exam_in_hand_and_exits_cleanly(
    tmp_path: Path, tiny_synthetic: Path, processes: list[WorkerProcess]
) -> None:
    studies = copy_exams(tiny_synthetic, tmp_path / "incoming", 8)
    database = str(tmp_path / "worklist.sqlite")
    config = write_config(tmp_path, database)
    process = start_worker(config, "polite")
    processes.append(process)
    process.wait_for("exam-stored")
    process.popen.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        process.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running 10 s after SIGTERM:\n{process.output()}")
    print(f"exited {time.monotonic() - signalled:.2f} s after SIGTERM")
    assert process.popen.returncode == 0, process.output()
    assert "Traceback" not in process.output()

    in_hand = process.events("exam-stored")[0]
    reported = [e for e in process.events("report-stored") if e["job_id"] == in_hand["job_id"]]
    store = Store(database)
    try:
        counts = store.jobs.counts()
        assert counts[JobStatus.RUNNING] == 0
        assert counts[JobStatus.QUEUED] >= 1, f"it did not stop early: {counts}"
        job = store.jobs.get(in_hand["job_id"])
        assert job is not None and job.status is JobStatus.DONE
        exam = next(e for e in store.exams.all() if str(e.public_id) == in_hand["exam_id"])
        if in_hand["status"] == ExamStatus.SCORED.value:
            assert reported, "the exam in hand was scored but its SR was not sent"
            assert exam.report_sop_instance_uid is not None
            sr = reports_by_study(tmp_path / "reports")[exam.study_instance_uid]
            assert [p.name for p in sr] == [f"{exam.report_sop_instance_uid}.dcm"]

        rest = start_worker(config, "polite", "--once", tag="polite-once")
        processes.append(rest)
        finish(rest)
        assert_every_study_done_once(store, tmp_path / "reports", studies)
        # Nothing the stopped run finished was scored again.
        assert sum(scored_audit(store).values()) == len(studies)
    finally:
        store.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_two_workers_share_one_postgresql_queue_without_scoring_a_study_twice(
    tmp_path: Path, tiny_synthetic: Path, store_url: str, processes: list[WorkerProcess]
) -> None:
    studies = clone_exams(tiny_synthetic, tmp_path / "incoming", 40)
    config = write_config(tmp_path, store_url)
    # The schema exists before the workers start, as after a first deployment: starting
    # both on an empty database is the next test's subject.
    migrated = Store(store_url)
    migrated.migrate()
    migrated.close()
    workers = [start_worker(config, name, "--once") for name in ("alpha", "beta")]
    processes.extend(workers)
    took = [finish(worker) for worker in workers]

    store = Store(store_url)
    try:
        assert_every_study_done_once(store, tmp_path / "reports", studies)
        split = scored_audit(store)
        print(f"split: {dict(split)}; wall times {[round(t, 1) for t in took]} s")
        assert sum(split.values()) == len(studies), f"a study was scored twice: {split}"
        assert set(split) == {"worker:alpha", "worker:beta"}, split
        assert min(split.values()) >= 1
        logged = sum(len(w.events("exam-stored")) for w in workers)
        assert logged == len(studies)
    finally:
        store.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_workers_started_together_on_an_empty_postgresql_database_all_start(
    tmp_path: Path, store_url: str, processes: list[WorkerProcess]
) -> None:
    config = write_config(tmp_path, store_url)
    database = make_url(store_url).database
    gate = create_engine(store_url)
    try:
        # A starting gate: an open transaction holds the first table of the schema, so every
        # worker's migration waits on it; rolling it back lets them all go at the same moment.
        with gate.connect() as held:
            opened = held.begin()
            held.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
            workers = [start_worker(config, f"w{i}", "--once") for i in range(3)]
            processes.extend(workers)
            deadline = time.monotonic() + EVENT_TIMEOUT
            while waiting_on_locks(gate, database) < len(workers):
                if time.monotonic() > deadline or any(w.popen.poll() is not None for w in workers):
                    pytest.fail(
                        "the workers did not all reach the migration:\n"
                        + "\n".join(w.output() for w in workers)
                    )
                time.sleep(0.05)
            opened.rollback()
        for worker in workers:
            finish(worker, timeout=60)
    finally:
        gate.dispose()


def waiting_on_locks(engine: Engine, database: str | None) -> int:
    """Sessions of ``database`` waiting for a lock (each query in a fresh transaction, as
    pg_stat_activity is a snapshot per transaction)."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :database AND wait_event_type = 'Lock'"
                ),
                {"database": database},
            ).scalar_one()
        )


@dataclass(frozen=True)
class Finished:
    returncode: int
    output: str


@pytest.fixture(scope="module")
def unreachable_database_run(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """``mammotriage worker --once`` with a PostgreSQL URL on a port nothing listens on."""
    root = tmp_path_factory.mktemp("unreachable")
    config = write_config(root, f"postgresql+psycopg://mt@127.0.0.1:{free_port()}/mammotriage")
    result = subprocess.run(
        [sys.executable, "-m", "mammotriage", "worker", "--config", str(config), "--once"],
        cwd=root,
        env=worker_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(result.stdout + result.stderr)
    return Finished(result.returncode, (result.stdout + result.stderr).strip())


def test_an_unreachable_database_is_an_error_naming_it_and_a_non_zero_exit(
    unreachable_database_run: Finished,
) -> None:
    assert unreachable_database_run.returncode != 0
    output = unreachable_database_run.output
    assert "Traceback" not in output
    first = output.splitlines()[0]
    assert first.startswith("error:"), output
    assert "worklist" in first
    assert "refused" in first.lower()


def test_an_unreachable_database_is_one_line(unreachable_database_run: Finished) -> None:
    lines = unreachable_database_run.output.splitlines()
    assert len(lines) == 1, unreachable_database_run.output
    assert "database" in lines[0]
