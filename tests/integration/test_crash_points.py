"""``kill -9`` at every named crash point, from every kind of source (on SQLite; the folder
on PostgreSQL too); and real faults: the PACS and the database stopped and started again in
the middle of a batch.

A crash run is ``mammotriage worker --once`` with ``MAMMOTRIAGE_TEST_CRASH_POINTS=1`` and
``MAMMOTRIAGE_CRASH_AT=<point>`` (see :mod:`mammotriage.worker.crashpoints`): the worker
logs a ``crash-point`` event and SIGKILLs itself there, so each run proves that it got to
that place. One test per case of :data:`MATRIX` runs one crash per point, in the order a job
reaches them (each run picks up the job the previous one died holding), then one clean
``--once`` run, and checks that every study ends with one exam row, one score row and one
SR, and that no temporary file is left; dciodvfy finds no error in any of those SRs, nor
PixelMed's SR validator in the first SR of each source (on SQLite) and of each real fault.

Sources: a folder (SRs written to a folder), Orthanc over REST (SRs posted back) and our
C-STORE SCP (studies pushed by dcmtk's ``storescu``, SRs sent to Orthanc by C-STORE).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless
from test_worker_processes import (
    THREAD_DECODING,
    WorkerProcess,
    assert_every_study_done_once,
    clone_exams,
    crash_env,
    finish,
    free_port,
    processes,  # noqa: F401  (the fixture)
    reports_by_study,
    start_worker,
    worker_env,
    write_config,
)

from fixtures_orthanc import OrthancFactory, OrthancServer, worker_source
from mammotriage.worker.crashpoints import CRASH_POINTS
from mammotriage.worklist import Store
from sr_validators import Conformance, orthanc_sr_files
from worker_helpers import REPO, assert_each_study_scored_once

pytestmark = pytest.mark.integration

SRC = REPO / "src" / "mammotriage"
SCP_AET = "MAMMOTRIAGE"
#: The storescu option that proposes each compressed syntax (and the uncompressed ones).
STORESCU_SYNTAX = {
    JPEG2000Lossless: "-xv",
    JPEGLSLossless: "-xt",
    JPEGLosslessSV1: "-xs",
    RLELossless: "-xr",
}
#: A crash run: start-up, a poll and at most one job up to its crash point.
CRASH_TIMEOUT = 90.0
#: The runs that die decode in threads (THREAD_DECODING), some 35 runs in all, except in the
#: folder case on SQLite (every kill with the decode processes alive); every final run and
#: the real faults below keep the default decode processes too.

#: The points each source reaches: the folder and C-STORE sources read files in place, so
#: there is no fetch of several instances to die in the middle of. "after-model-load" comes
#: before the store and the source are built, so it is the same for every source: tried with
#: the folder only (on both databases), to keep the matrix's cost down. The pipeline's
#: "fetched-during-overlap" needs two studies pending at once: the folder and Orthanc runs
#: have both from the start, where the C-STORE run's first study is done while the second
#: is still being pushed.
POINTS = {
    "folder": [p for p in CRASH_POINTS if p != "mid-fetch"],
    "orthanc": [p for p in CRASH_POINTS if p != "after-model-load"],
    "cstore": [
        p
        for p in CRASH_POINTS
        if p not in ("mid-fetch", "after-model-load", "fetched-during-overlap")
    ],
}


# -- the crash-point switch itself ------------------------------------------------------


def test_every_crash_point_is_called_in_the_source_and_every_call_is_a_known_point() -> None:
    called = {
        name
        for path in SRC.rglob("*.py")
        for name in re.findall(r'crash_point\("([^"]+)"\)', path.read_text())
    }
    assert called == set(CRASH_POINTS)


def armed(**env: str) -> str:
    """``crashpoints.ARMED`` in a fresh interpreter with ``env`` (and no inherited switch)."""
    code = "from mammotriage.worker import crashpoints; print(crashpoints.ARMED)"
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", code],
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (result.stdout + result.stderr).strip()


def test_the_crash_variable_alone_arms_nothing_the_test_switch_is_needed_too() -> None:
    assert armed(MAMMOTRIAGE_CRASH_AT="after-claim") == "None"
    assert armed(**crash_env("after-claim")) == "('after-claim', 1)"
    assert armed(**crash_env("after-score@3")) == "('after-score', 3)"
    assert "ValueError" in armed(**crash_env("after-lunch"))


# -- one source, one database ---------------------------------------------------------------


@dataclass
class Site:
    """A worker config on one source, the studies it will be given, and how to read back the
    SRs the source holds (study UID -> SOP Instance UIDs of our SRs) and their files (into
    a folder, where the source is a PACS)."""

    config: Path
    studies: set[str]
    reports: Callable[[], dict[str, list[str]]]
    sr_files: Callable[[Path], list[Path]]
    #: Called once the first worker with a live source runs (C-STORE: push the studies).
    deliver: Callable[[], None] | None = None


def orthanc_reports(server: OrthancServer, studies: set[str]) -> dict[str, list[str]]:
    """Our SRs Orthanc holds, per study."""
    held: dict[str, list[str]] = {}
    for study_uid in studies:
        found = server.http.post("/tools/lookup", content=study_uid).json()
        for study in (item["ID"] for item in found if item["Type"] == "Study"):
            for series in server.http.get(f"/studies/{study}/series").json():
                if series["MainDicomTags"].get("Modality") != "SR":
                    continue
                for instance in series["Instances"]:
                    tags = server.http.get(f"/instances/{instance}").json()["MainDicomTags"]
                    held.setdefault(study_uid, []).append(tags["SOPInstanceUID"])
    return held


def folder_sr_files(reports: Path) -> Callable[[Path], list[Path]]:
    """The SR files a folder source wrote under ``reports``."""
    return lambda _: sorted(reports.rglob("*.dcm"))


def orthanc_srs(server: OrthancServer, studies: set[str]) -> Callable[[Path], list[Path]]:
    """The SRs Orthanc holds in the studies, downloaded into a folder."""
    return lambda folder: [
        path for study in sorted(studies) for path in orthanc_sr_files(server, study, folder)
    ]


def wait_stable(server: OrthancServer, studies: set[str], timeout: float = 30.0) -> None:
    """Until Orthanc calls every study stable (a ``--once`` run started earlier finds none)."""
    deadline = time.monotonic() + timeout
    for study_uid in studies:
        while True:
            found = server.http.post("/tools/lookup", content=study_uid).json()
            ids = [item["ID"] for item in found if item["Type"] == "Study"]
            if ids and server.http.get(f"/studies/{ids[0]}").json().get("IsStable"):
                break
            assert time.monotonic() < deadline, "Orthanc never called the study stable"
            time.sleep(0.2)


def start_from_now(database: str, server: OrthancServer) -> None:
    """Migrate the store and set the Orthanc cursor to its last change: the shared server
    holds other tests' studies, which this worker must not see."""
    store = Store(database)
    try:
        store.migrate()
        store.jobs.save_cursor(f"orthanc:{server.url}", server.last_change())
    finally:
        store.close()


def wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.1)


def make_site(
    kind: str, root: Path, database: str, synthetic: Path, orthanc: OrthancServer, salt: str
) -> Site:
    """Two small studies (UIDs of this test's own) on a source of ``kind``."""
    common: dict[str, Any] = {"thumbnails_dir": str(root / "thumbnails")}
    if kind == "folder":
        studies = clone_exams(synthetic, root / "incoming", 2, salt)
        config = write_config(root, database, **common)
        return Site(
            config,
            studies,
            lambda: {
                study: [p.stem for p in files]
                for study, files in reports_by_study(root / "reports").items()
            },
            folder_sr_files(root / "reports"),
        )
    outgoing = root / "outgoing"
    studies = clone_exams(synthetic, outgoing, 2, salt)
    files = sorted(outgoing.rglob("*.dcm"))
    if kind == "orthanc":
        start_from_now(database, orthanc)
        orthanc.upload_all(files)
        wait_stable(orthanc, studies)
        config = write_config(root, database, source=worker_source(orthanc), **common)
        reports = orthanc_srs(orthanc, studies)
        return Site(config, studies, lambda: orthanc_reports(orthanc, studies), reports)
    assert kind == "cstore"
    port = free_port()
    source = {
        "kind": "cstore",
        "incoming": str(root / "incoming"),
        "ae_title": SCP_AET,
        "port": port,
        "quiet_seconds": 1.0,
        "write_back": {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
    }
    config = write_config(root, database, source=source, **common)

    def push() -> None:
        """A modality (dcmtk) pushes each file in its own transfer syntax."""
        wait_listening(port)
        by_option: dict[str, list[str]] = {}
        for path in files:
            syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
            by_option.setdefault(STORESCU_SYNTAX.get(syntax, "-xe"), []).append(str(path))
        for option, paths in by_option.items():
            command = ["storescu", "-aet", "MODALITY", "-aec", SCP_AET, option, "127.0.0.1"]
            sent = subprocess.run(
                [*command, str(port), *paths], capture_output=True, text=True, timeout=60
            )
            assert sent.returncode == 0, sent.stderr

    return Site(
        config,
        studies,
        lambda: orthanc_reports(orthanc, studies),
        orthanc_srs(orthanc, studies),
        deliver=push,
    )


def crash(
    site: Site,
    point: str,
    tag: str,
    started: list[WorkerProcess],
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """One run that must die at ``point``: SIGKILL, with its ``crash-point`` event last
    (``env``: more variables for the run)."""
    # The source is built after the model: at "after-model-load" nothing listens yet.
    deliver = site.deliver if point != "after-model-load" else None
    if deliver is not None:
        site.deliver = None
    # The run that is pushed to waits for the studies (--once would find none and end) and
    # dies at its second pass only: the SCP must live until the push is over, and the first
    # study may be complete (and claimed) while the second is still on its way.
    once, armed = ((), f"{point}@2") if deliver is not None else (("--once",), point)
    env = crash_env(armed) | (env or {})
    process = start_worker(site.config, "crashy", *once, tag=tag, env=env)
    started.append(process)
    if deliver is not None:
        deliver()
    try:
        process.popen.wait(timeout=CRASH_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"never reached crash point {point}:\n{process.output()}")
    assert process.popen.returncode == -signal.SIGKILL, (point, process.output())
    events = [e for e in process.events() if "event" in e]
    assert events and events[-1]["event"] == "crash-point", (point, process.output())
    assert events[-1]["point"] == point
    assert "Traceback" not in process.output()
    return process


def assert_done_once(
    store: Store,
    site: Site,
    root: Path,
    conformance: Conformance,
    what: str,
    pixelmed: bool = True,
) -> None:
    """One DONE job, one scored exam, one score row and one SR per study (the SR the exam
    row names), and no temporary file or job folder left anywhere; every SR to dciodvfy,
    the first to PixelMed too where ``pixelmed`` (``what`` names them in a failure)."""
    exams = assert_each_study_scored_once(store, site.studies)
    reports = site.reports()
    for exam in exams:
        assert exam.report_sop_instance_uid is not None
        assert reports.get(exam.study_instance_uid) == [exam.report_sop_instance_uid]
    left = [
        p
        for p in root.rglob("*")
        if p.name.endswith((".tmp", ".part")) or p.parent == root / "work"
    ]
    assert left == [], f"left behind: {left}"
    files = site.sr_files(root / "srs-read-back")
    assert len(files) == len(site.studies)
    for i, path in enumerate(files):
        conformance.check(f"{what} ({path.stem})", path, pixelmed=pixelmed and i == 0)


#: Every source on SQLite; PostgreSQL with the folder only. The store calls a crash can cut
#: short (claim, release, the exam's commit, the report's record) are the same whatever the
#: source; what differs between the databases (row locks and SKIP LOCKED against SQLite's
#: write lock) is tried here with the folder, by the two workers sharing one PostgreSQL queue
#: (test_worker_processes.py) and by the PostgreSQL restart below. Orthanc and C-STORE on
#: PostgreSQL were two more cases of 60-80 s each, which the suite's 20 minutes cannot carry.
MATRIX = [
    ("folder", "sqlite"),
    ("orthanc", "sqlite"),
    ("cstore", "sqlite"),
    ("folder", "postgresql"),
]


@pytest.mark.parametrize(("kind", "store_url"), MATRIX, indirect=["store_url"])
def test_sigkill_at_every_crash_point_then_once_scores_every_study_exactly_once(
    kind: str,
    store_url: str,
    tmp_path: Path,
    tiny_synthetic: Path,
    orthanc: OrthancServer,
    processes: list[WorkerProcess],  # noqa: F811
    request: pytest.FixtureRequest,
    conformance: Conformance,
) -> None:
    site = make_site(kind, tmp_path, store_url, tiny_synthetic, orthanc, request.node.name)
    on_sqlite = request.node.callspec.params["store_url"] == "sqlite"
    decoding = None if (kind, on_sqlite) == ("folder", True) else THREAD_DECODING
    started = time.monotonic()
    for i, point in enumerate(POINTS[kind]):
        crash(site, point, f"{i:02d}-{point}", processes, env=decoding)
    crashed = time.monotonic() - started
    final = start_worker(site.config, "crashy", "--once", tag="final")
    processes.append(final)
    took = finish(final)
    print(f"{kind}: {len(POINTS[kind])} crash runs {crashed:.1f} s, final run {took:.1f} s")
    assert final.events("released"), "the final run released no job: the last kill held none"
    store = Store(store_url)
    try:
        what = f"after crashes, {request.node.name}"
        # PixelMed on one database's SRs: the other's are written by the same code
        assert_done_once(store, site, tmp_path, conformance, what, pixelmed=on_sqlite)
        if kind == "folder":
            assert_every_study_done_once(store, tmp_path / "reports", site.studies)
    finally:
        store.close()


# -- real faults ----------------------------------------------------------------------------


def test_orthanc_stopped_and_started_again_mid_batch_loses_nothing_and_scores_once(
    tmp_path: Path,
    tiny_synthetic: Path,
    orthanc_factory: OrthancFactory,
    processes: list[WorkerProcess],  # noqa: F811
    conformance: Conformance,
) -> None:
    pacs = orthanc_factory()
    outgoing = tmp_path / "outgoing"
    studies = clone_exams(tiny_synthetic, outgoing, 4, "orthanc-restart")
    pacs.upload_all(sorted(outgoing.rglob("*.dcm")))
    wait_stable(pacs, studies)
    retry = {"max_attempts": 20, "base_seconds": 0.5, "max_seconds": 2.0}
    database = str(tmp_path / "worklist.sqlite")
    config = write_config(tmp_path, database, source=worker_source(pacs), retry=retry)
    worker = start_worker(config, "survivor", "--once")
    processes.append(worker)
    worker.wait_for("exam-stored")
    pacs.halt()  # mid-batch: the exam just stored still has its SR to post
    time.sleep(2.0)
    pacs.resume()
    try:
        worker.popen.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker did not finish within 180 s:\n{worker.output()}")
    # 1: --once reports that the source could not be reached for a while.
    assert worker.popen.returncode in (0, 1), worker.output()
    assert "Traceback" not in worker.output()

    faults = worker.events("retry") + worker.events("poll-failed")
    print(f"while Orthanc was down: {len(faults)} retries / failed polls")
    assert faults, "the worker never noticed that Orthanc was down"
    site = Site(config, studies, lambda: orthanc_reports(pacs, studies), orthanc_srs(pacs, studies))
    store = Store(database)
    try:
        assert_done_once(store, site, tmp_path, conformance, "Orthanc stopped mid-batch")
    finally:
        store.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgresql_restarted_mid_batch_loses_nothing_and_scores_once(
    tmp_path: Path,
    tiny_synthetic: Path,
    store_url: str,
    postgres_cluster: Any,
    processes: list[WorkerProcess],  # noqa: F811
    conformance: Conformance,
) -> None:
    studies = clone_exams(tiny_synthetic, tmp_path / "incoming", 4)
    config = write_config(tmp_path, store_url)
    worker = start_worker(config, "survivor", "--once")
    processes.append(worker)
    worker.wait_for("exam-stored")
    postgres_cluster.stop()  # pg_ctl stop -m fast: every connection cut
    time.sleep(1.0)
    postgres_cluster.start()
    finish(worker, timeout=180)

    down = worker.events("store-down")
    print(f"while PostgreSQL was down: {len(down)} store-down events")
    assert down, "the worker never noticed that PostgreSQL was down"
    site = Site(
        config,
        studies,
        lambda: {
            study: [p.stem for p in files]
            for study, files in reports_by_study(tmp_path / "reports").items()
        },
        folder_sr_files(tmp_path / "reports"),
    )
    store = Store(store_url)
    try:
        assert_done_once(store, site, tmp_path, conformance, "PostgreSQL restarted mid-batch")
        assert_every_study_done_once(store, tmp_path / "reports", studies)
    finally:
        store.close()
