"""The worker against real PACS peers: a whole worker built from its settings, fed by Orthanc's
REST API, by a DICOMweb PACS and by C-STORE pushes, answering each with a DICOM SR that lands
in the exam's own study; and a PACS that goes down loses no exam.

Every exam is a synthetic phantom from the session's ``tiny_synthetic`` set, scored by the
shipped model; every report is read back from the PACS and checked against the images sent,
and by dciodvfy and PixelMed's SR validator (:class:`sr_validators.Conformance`).
"""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import JPEG2000Lossless

from fixtures_orthanc import OrthancFactory, OrthancServer, worker_source
from mammotriage.dicom.report_content import DEMONSTRATION_ONLY, INTENDED_USE, TRIAGE_READING
from mammotriage.triage import ReadingMode, TriagePolicy, load_policy
from mammotriage.worker.config import WorkerSettings
from mammotriage.worker.loop import RunSummary, Worker
from mammotriage.worklist import ExamStatus, JobStatus, StoredExam
from sr_validators import Conformance, orthanc_sr_files
from worker_helpers import MODEL, POLICY, build, run_once, table_counts

pytestmark = pytest.mark.integration

#: How long a test waits for a PACS to call a study complete and the worker to score it.
DEADLINE = 30.0
SCP_AET = "MAMMOTRIAGE"
#: The reading an SR states for each mode (its "Triage reading" code meaning).
READING = {ReadingMode.SINGLE: "single reading", ReadingMode.DOUBLE: "double reading"}


# -- building the worker ------------------------------------------------------------------


def pacs_settings(tmp_path: Path, source: dict[str, Any], **overrides: Any) -> WorkerSettings:
    """A worker on ``source`` with a SQLite store in ``tmp_path`` and short waits."""
    values: dict[str, Any] = {
        "name": "pacs-worker",
        "database": str(tmp_path / "db.sqlite"),
        "model": MODEL,
        "allow_demonstration_model": True,  # MODEL is the packaged demonstration model
        "policy": POLICY,
        "work_dir": tmp_path / "work",
        "poll_seconds": 0.2,
        "source": source,
        "retry": {"max_attempts": 5, "base_seconds": 0.01, "max_seconds": 0.05},
        "log_format": "text",
    }
    values.update(overrides)
    return WorkerSettings(**values)


@contextmanager
def running(settings: WorkerSettings) -> Iterator[Worker]:
    """A worker built from ``settings``; its source (an SCP, HTTP connections) closed after."""
    worker = build(settings)
    try:
        yield worker
    finally:
        worker.source.close()
        worker.store.close()


def run_until(worker: Worker, done: Callable[[], bool], timeout: float = DEADLINE) -> RunSummary:
    """One-shot runs, again and again, until ``done()``: a PACS calls a study complete when it
    chooses, and a one-shot run does not wait for what it has not seen yet."""
    total = RunSummary()
    deadline = time.monotonic() + timeout
    while True:
        summary = run_once(worker)
        total.jobs += summary.jobs
        total.scored += summary.scored
        total.retried += summary.retried
        total.failed += summary.failed
        total.reports += summary.reports
        if done():
            return total
        assert time.monotonic() < deadline, f"not done after {timeout} s: {worker.store.jobs.all()}"
        time.sleep(0.2)


def exams_by_study(worker: Worker) -> dict[str, StoredExam]:
    return {exam.study_instance_uid: exam for exam in worker.store.exams.all()}


def reported(worker: Worker, *study_uids: str) -> Callable[[], bool]:
    """Whether every one of the studies is stored with its report."""

    def check() -> bool:
        exams = exams_by_study(worker)
        return all(
            uid in exams and exams[uid].report_sop_instance_uid is not None for uid in study_uids
        )

    return check


# -- the exams sent -----------------------------------------------------------------------


def synthetic_exam(tiny_synthetic: Path, name: str) -> list[Path]:
    """The four files of one synthetic exam (``00001`` ... ``00012``)."""
    paths = sorted((tiny_synthetic / name).glob("*.dcm"))
    assert len(paths) == 4, name
    return paths


def dated_today(paths: list[Path], out: Path) -> list[Path]:
    """Copies of ``paths`` with today's StudyDate (UTC, as a DICOMweb lookback window counts);
    pixel data stays as encoded."""
    out.mkdir(parents=True, exist_ok=True)
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    copies = []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.StudyDate = today
        copies.append(out / path.name)
        ds.save_as(copies[-1], enforce_file_format=True)
    return copies


def header(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def study_of(paths: list[Path]) -> tuple[str, set[str]]:
    """The StudyInstanceUID of the files and their SOPInstanceUIDs."""
    headers = [header(path) for path in paths]
    (study_uid,) = {str(ds.StudyInstanceUID) for ds in headers}
    return study_uid, {str(ds.SOPInstanceUID) for ds in headers}


# -- what the PACS holds ------------------------------------------------------------------


def orthanc_study_id(server: OrthancServer, study_uid: str) -> str | None:
    found = server.http.post("/tools/lookup", content=study_uid).json()
    ids = [item["ID"] for item in found if item["Type"] == "Study"]
    return ids[0] if ids else None


def reports_in(server: OrthancServer, study_uid: str) -> list[hd.sr.ComprehensiveSR]:
    """Every SR instance Orthanc holds in the study, downloaded and read."""
    study_id = orthanc_study_id(server, study_uid)
    if study_id is None:
        return []
    series = server.http.get(f"/studies/{study_id}/series").json()
    instances = [
        instance
        for one in series
        if one["MainDicomTags"].get("Modality") == "SR"
        for instance in one["Instances"]
    ]
    reports = []
    for instance in instances:
        reply = server.http.get(f"/instances/{instance}/file")
        reply.raise_for_status()
        report = hd.sr.srread(io.BytesIO(reply.content))
        assert isinstance(report, hd.sr.ComprehensiveSR)  # the class the report writer uses
        reports.append(report)
    return reports


def wait_stable(server: OrthancServer, study_uid: str) -> None:
    """Until Orthanc calls the study stable (again): ``StableAge`` after its last instance."""
    study_id = orthanc_study_id(server, study_uid)
    deadline = time.monotonic() + DEADLINE
    while not server.http.get(f"/studies/{study_id}").json()["IsStable"]:
        assert time.monotonic() < deadline, f"Orthanc never called {study_uid} stable"
        time.sleep(0.2)


def check_conformance(
    checks: Conformance, server: OrthancServer, study_uid: str, folder: Path, what: str
) -> None:
    """Every SR the PACS holds in the study, as it gives it out, to ``checks``."""
    files = orthanc_sr_files(server, study_uid, folder)
    assert files, f"no SR in the study ({what})"
    for path in files:
        checks.check(f"{what} ({path.stem})", path)


# -- what a report must say ---------------------------------------------------------------


def check_report(
    report: hd.sr.ComprehensiveSR,
    exam: StoredExam,
    images: set[str],
    policy: TriagePolicy,
) -> None:
    """The SR belongs to the exam's study, cites exactly ``images`` (SOPInstanceUIDs) as its
    evidence and in its findings, and states the category and reading the store holds, which
    are the policy's for that category and those findings."""
    assert report.StudyInstanceUID == exam.study_instance_uid
    assert report.SOPInstanceUID == exam.report_sop_instance_uid
    evidence = [
        item.ReferencedSOPInstanceUID
        for study in report.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    ]
    assert sorted(evidence) == sorted(images)
    assert {im.sop_instance_uid for im in exam.images} == images
    groups = hd.sr.MeasurementReport.from_sequence(report.content)
    (exam_group,) = groups.get_image_measurement_groups(finding_site=codes.SCT.Breast)
    values = {m.name.meaning: m.value for m in exam_group.get_measurements()}
    category = int(values["Triage category"])
    assert exam.status is ExamStatus.SCORED
    assert exam.category == category
    finding_scores = []
    # each finding: a TID 1501 group whose one SCOORD (its box) is selected from its image
    for group in groups.get_image_measurement_groups():
        if not group.tracking_identifier.startswith("finding"):
            continue
        (region,) = [item for item in group[0].ContentSequence if item.ValueType == "SCOORD"]
        source = region.ContentSequence[0].ReferencedSOPSequence[0]
        assert source.ReferencedSOPInstanceUID in images
        finding_scores += [m.value for m in group.get_measurements()]
    net = policy.safety_net
    double = category > policy.single_reading_max_category or (
        net.enabled and any(score > net.finding_score_threshold for score in finding_scores)
    )
    assert exam.mode is (ReadingMode.DOUBLE if double else ReadingMode.SINGLE)
    assert exam.priority is (category >= policy.priority_min_category)
    (reading,) = exam_group.get_qualitative_evaluations(name=TRIAGE_READING)
    assert isinstance(reading.value, hd.sr.CodedConcept)
    assert reading.value.meaning == READING[exam.mode]
    # scored by the demonstration model: the report says so
    (notice,) = exam_group.get_qualitative_evaluations(name=INTENDED_USE)
    assert notice.value.meaning == DEMONSTRATION_ONLY.meaning


def check_queued(worker: Worker, exam: StoredExam) -> None:
    """The exam waits in the worklist with the reading mode and priority stored for it."""
    entries = {
        e.study_instance_uid: e
        for e in worker.store.readings.worklist(datetime.now(timezone.utc), worker.policy)
    }
    entry = entries[exam.study_instance_uid]
    assert entry.exam_public_id == exam.public_id
    assert entry.decision.mode is exam.mode
    assert entry.decision.priority is exam.priority


# -- Orthanc (REST) -----------------------------------------------------------------------


def test_orthanc_studies_are_scored_reported_into_their_study_once_and_again_after_a_late_view(
    tmp_path: Path, orthanc: OrthancServer, tiny_synthetic: Path, conformance: Conformance
) -> None:
    policy = load_policy(POLICY)
    *three_views, late_view = synthetic_exam(tiny_synthetic, "00003")
    four_views = synthetic_exam(tiny_synthetic, "00007")
    partial_uid, partial_images = study_of(three_views)
    whole_uid, whole_images = study_of(four_views)
    with running(pacs_settings(tmp_path, worker_source(orthanc))) as worker:
        # Studies other tests left in the shared Orthanc are not this test's business.
        worker.store.jobs.save_cursor(worker.source.name, orthanc.last_change())
        orthanc.upload_all(three_views + four_views)

        summary = run_until(worker, reported(worker, partial_uid, whole_uid))

        assert (summary.scored, summary.failed) == (2, 0)
        exams = exams_by_study(worker)
        for uid, images in ((partial_uid, partial_images), (whole_uid, whole_images)):
            (report,) = reports_in(orthanc, uid)
            check_report(report, exams[uid], images, policy)
            check_queued(worker, exams[uid])
        assert exams[partial_uid].partial and not exams[whole_uid].partial
        srs = tmp_path / "srs"
        check_conformance(conformance, orthanc, partial_uid, srs, "Orthanc, a view missing")
        check_conformance(conformance, orthanc, whole_uid, srs, "Orthanc, four views")
        before = table_counts(worker.store)
        assert before["scores"] == 2

        # Our SRs changed both studies: Orthanc calls them stable once more.
        wait_stable(orthanc, partial_uid)
        wait_stable(orthanc, whole_uid)
        stable_again = int(orthanc.last_change())
        again = run_once(worker)

        assert again.jobs == 0
        assert int(worker.store.jobs.cursor(worker.source.name) or 0) >= stable_again
        assert table_counts(worker.store) == before
        assert [len(reports_in(orthanc, uid)) for uid in (partial_uid, whole_uid)] == [1, 1]

        orthanc.upload(late_view)
        all_images = partial_images | {str(header(late_view).SOPInstanceUID)}

        late = run_until(worker, lambda: len(exams_by_study(worker)[partial_uid].images) == 4)

        assert (late.jobs, late.scored) == (1, 1)
        updated = exams_by_study(worker)[partial_uid]
        assert updated.public_id == exams[partial_uid].public_id
        assert not updated.partial
        assert updated.report_sop_instance_uid != exams[partial_uid].report_sop_instance_uid
        assert table_counts(worker.store)["exams"] == before["exams"]
        assert table_counts(worker.store)["scores"] == before["scores"]
        assert updated.report_sop_instance_uid is not None
        reports = {r.SOPInstanceUID: r for r in reports_in(orthanc, partial_uid)}
        assert set(reports) == {
            exams[partial_uid].report_sop_instance_uid,
            updated.report_sop_instance_uid,
        }
        check_report(reports[updated.report_sop_instance_uid], updated, all_images, policy)
        check_queued(worker, updated)
        assert len(reports_in(orthanc, whole_uid)) == 1
        check_conformance(conformance, orthanc, partial_uid, srs, "Orthanc, after the late view")


# -- DICOMweb -----------------------------------------------------------------------------


def test_dicomweb_study_is_scored_and_its_report_stored_by_stow_rs(
    tmp_path: Path, orthanc: OrthancServer, tiny_synthetic: Path, conformance: Conformance
) -> None:
    policy = load_policy(POLICY)
    # lookback_days 0 with today's StudyDate: the worker watches this study alone, not the
    # (older) synthetic studies other tests keep in the shared Orthanc.
    files = dated_today(synthetic_exam(tiny_synthetic, "00002"), tmp_path / "exam")
    study_uid, images = study_of(files)
    source = {
        "kind": "dicomweb",
        "url": orthanc.dicomweb_url,
        "username": orthanc.username,
        "password": orthanc.password,
        "lookback_days": 0,
        "quiet_seconds": 0.5,
        "timeout_seconds": 10,
    }
    with running(pacs_settings(tmp_path, source)) as worker:
        orthanc.upload_all(files)

        summary = run_until(worker, reported(worker, study_uid))

        assert (summary.jobs, summary.scored) == (1, 1)
        exam = exams_by_study(worker)[study_uid]
        (report,) = reports_in(orthanc, study_uid)
        check_report(report, exam, images, policy)
        check_queued(worker, exam)
        assert exam.report_location is not None and study_uid in exam.report_location
        check_conformance(conformance, orthanc, study_uid, tmp_path / "srs", "DICOMweb STOW-RS")

        # Our SR changed the study's instance count; once it settles, nothing is rescored.
        before = table_counts(worker.store)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert run_once(worker).jobs == 0
            time.sleep(0.2)
        assert table_counts(worker.store) == before
        assert len(reports_in(orthanc, study_uid)) == 1


# -- C-STORE ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pushed_compressed_study_is_scored_and_its_report_sent_to_the_pacs_by_c_store(
    tmp_path: Path,
    orthanc_factory: OrthancFactory,
    tiny_synthetic: Path,
    conformance: Conformance,
) -> None:
    policy = load_policy(POLICY)
    scp_port = free_port()
    pacs = orthanc_factory(modalities={SCP_AET: (SCP_AET, "127.0.0.1", scp_port)})
    source = {
        "kind": "cstore",
        "incoming": tmp_path / "incoming",
        "ae_title": SCP_AET,
        "port": scp_port,
        "quiet_seconds": 0.3,
        "write_back": {"ae_title": pacs.aet, "host": "127.0.0.1", "port": pacs.dicom_port},
    }
    pushed = synthetic_exam(tiny_synthetic, "00001")
    assert {header(p).file_meta.TransferSyntaxUID for p in pushed} == {JPEG2000Lossless}
    pushed_uid, pushed_images = study_of(pushed)
    forwarded = synthetic_exam(tiny_synthetic, "00010")
    forwarded_uid, forwarded_images = study_of(forwarded)
    with running(pacs_settings(tmp_path, source)) as worker:
        # A modality (dcmtk, an independent peer) pushes the exam in JPEG 2000 lossless.
        command = ["storescu", "-aet", "MODALITY", "-aec", SCP_AET, "-xv", "127.0.0.1"]
        sent = subprocess.run(
            [*command, str(scp_port), *map(str, pushed)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stderr

        summary = run_until(worker, reported(worker, pushed_uid))

        assert (summary.jobs, summary.scored) == (1, 1)
        exam = exams_by_study(worker)[pushed_uid]
        for image in exam.images:  # scored from the files as they came, still compressed
            assert image.path is not None and image.usable
            assert header(Path(image.path)).file_meta.TransferSyntaxUID == JPEG2000Lossless
        (report,) = reports_in(pacs, pushed_uid)
        check_report(report, exam, pushed_images, policy)
        check_queued(worker, exam)
        assert exam.report_location is not None and pacs.aet in exam.report_location
        srs = tmp_path / "srs"
        check_conformance(conformance, pacs, pushed_uid, srs, "C-STORE write-back, pushed")

        # The PACS itself forwards a study it holds to our SCP (Orthanc's C-STORE SCU).
        pacs.upload_all(forwarded)
        study_id = orthanc_study_id(pacs, forwarded_uid)
        reply = pacs.http.post(f"/modalities/{SCP_AET}/store", content=study_id, timeout=60)
        assert reply.status_code == 200, reply.text

        run_until(worker, reported(worker, forwarded_uid))

        exam = exams_by_study(worker)[forwarded_uid]
        (report,) = reports_in(pacs, forwarded_uid)
        check_report(report, exam, forwarded_images, policy)
        check_queued(worker, exam)
        check_conformance(conformance, pacs, forwarded_uid, srs, "C-STORE write-back, forwarded")
        assert len(reports_in(pacs, pushed_uid)) == 1


# -- a PACS that goes down ----------------------------------------------------------------


def test_a_pacs_that_goes_down_leaves_the_job_queued_with_backoff_until_it_is_back(
    tmp_path: Path,
    orthanc_factory: OrthancFactory,
    orthanc: OrthancServer,
    tiny_synthetic: Path,
    caplog: pytest.LogCaptureFixture,
    conformance: Conformance,
) -> None:
    files = synthetic_exam(tiny_synthetic, "00009")
    study_uid, images = study_of(files)
    pacs = orthanc_factory()
    retry = {"max_attempts": 5, "base_seconds": 5.0, "max_seconds": 60.0}
    with running(pacs_settings(tmp_path, worker_source(pacs), retry=retry)) as worker:
        pacs.upload_all(files)
        # The worker learns of the study (a poll queues it) ...
        deadline = time.monotonic() + DEADLINE
        while not (polled := worker.source.poll(None)).arrivals:
            assert time.monotonic() < deadline, "Orthanc never called the study stable"
            time.sleep(0.2)
        for arrival in polled.arrivals:
            worker.store.jobs.enqueue(worker.source.name, arrival.study_key, arrival.fingerprint)
        # ... and the PACS goes down before the worker fetches it.
        pacs.stop()

        delays = []
        now = datetime.now(timezone.utc)
        for attempt in (1, 2):
            job = worker.store.jobs.claim(worker.name, now=now)
            assert job is not None and job.attempts == attempt
            started = datetime.now(timezone.utc)
            worker.process(job)
            (job,) = worker.store.jobs.all()
            assert job.status is JobStatus.QUEUED
            assert job.attempts == attempt
            assert "cannot be reached" in (job.last_error or "")
            assert pacs.url in (job.last_error or "")
            assert job.available_at is not None
            delays.append(job.available_at - started)
            # Not claimed again before its backoff is over.
            assert worker.store.jobs.claim(worker.name, now=started) is None
            now = job.available_at + timedelta(milliseconds=1)
        assert timedelta(seconds=5) <= delays[0] < timedelta(seconds=10) <= delays[1]

        # The loop itself goes on while the PACS is down: polls fail, the job waits.
        stop = threading.Event()
        loop = threading.Thread(target=worker.run, args=(stop,))
        with caplog.at_level("WARNING", logger="mammotriage.worker"):
            loop.start()
            time.sleep(0.6)
            stop.set()
            loop.join(timeout=10)
        assert not loop.is_alive()
        assert any("source poll failed" in r.getMessage() for r in caplog.records)
        (job,) = worker.store.jobs.all()
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 2)
        assert worker.store.exams.all() == []

    # The PACS is back (here at another address: the job holds the study, not the server).
    orthanc.upload_all(files)
    settings = pacs_settings(tmp_path, worker_source(orthanc), retry=retry)
    with running(settings) as worker:
        job = worker.store.jobs.claim(worker.name, now=now + timedelta(seconds=10))
        assert job is not None and job.attempts == 3
        worker.process(job)

        (job,) = worker.store.jobs.all()
        assert (job.status, job.attempts) == (JobStatus.DONE, 3)
        exam = exams_by_study(worker)[study_uid]
        (report,) = reports_in(orthanc, study_uid)
        check_report(report, exam, images, load_policy(POLICY))
        check_queued(worker, exam)
        srs = tmp_path / "srs"
        check_conformance(conformance, orthanc, study_uid, srs, "Orthanc, retried after an outage")
