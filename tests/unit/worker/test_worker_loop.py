"""The worker loop on a folder source and SQLite, with the shipped model: every study ends
stored once, in its queue, with its SR; bad input and faults end recorded, never lost.

The SRs the folder source writes (an exam with findings and one without, a partial exam and
its rescore, a job retried after a fault) pass dciodvfy and PixelMed's SR validator."""

from __future__ import annotations

import errno
import importlib.util
import logging
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread

from mammotriage.errors import ConfigError, SourceError, SourceUnavailableError
from mammotriage.triage import ReadingMode
from mammotriage.worker.config import load_worker_settings
from mammotriage.worker.source import Arrival, Poll
from mammotriage.worklist import ExamStatus, JobStatus
from mammotriage.worklist.models import ScoreRow
from worker_helpers import (
    build,
    copy_exams,
    count,
    folder_settings,
    hold_back_last_view,
    run_once,
    table_counts,
)


def sr_findings(report: hd.sr.ComprehensiveSR) -> int:
    """How many findings (TID 1501 groups tracked as ``finding...``) the SR reports."""
    groups = hd.sr.MeasurementReport.from_sequence(report.content).get_image_measurement_groups()
    return sum(1 for group in groups if group.tracking_identifier.startswith("finding"))


def test_every_exam_is_scored_stored_queued_and_reported(tmp_path, tiny_synthetic, conformance):
    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 3)
    worker = build(settings)
    summary = run_once(worker)
    assert (summary.jobs, summary.scored, summary.failed) == (3, 3, 0)
    exams = worker.store.exams.all()
    assert [e.status for e in exams] == [ExamStatus.SCORED] * 3
    assert all(e.category is not None and e.mode is not None for e in exams)
    assert len(worker.store.readings.worklist(datetime.now(timezone.utc), worker.policy)) == 3
    findings = []
    for exam in exams:
        assert exam.report_location is not None
        (report_path,) = Path(exam.report_location).glob("*.dcm")
        report = hd.sr.srread(report_path)
        findings.append(sr_findings(report))
        # PixelMed on the first with findings and the first without
        first = (findings[-1] > 0) not in {n > 0 for n in findings[:-1]}
        label = f"folder source, {findings[-1]} findings ({report.SOPInstanceUID})"
        conformance.check(label, report_path, pixelmed=first)
        assert report.SOPInstanceUID == exam.report_sop_instance_uid
        assert report.StudyInstanceUID == exam.study_instance_uid
        evidence = {
            item.ReferencedSOPInstanceUID
            for study in report.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence
            for item in series.ReferencedSOPSequence
        }
        assert evidence == {im.sop_instance_uid for im in exam.images}
    assert {j.status for j in worker.store.jobs.all()} == {JobStatus.DONE}
    # the SRs checked cover an exam with findings and one without
    assert min(findings) == 0 < max(findings)


@pytest.mark.parametrize(
    ("bands", "mode", "priority_from"),
    [
        # Every category single read, only category 10 a priority.
        ("single_reading_max_category: 10\npriority_min_category: 10\n", ReadingMode.SINGLE, 10),
        # No category single read (0), every category a priority (1).
        ("single_reading_max_category: 0\npriority_min_category: 1\n", ReadingMode.DOUBLE, 1),
    ],
    ids=["all-single", "all-double-priority"],
)
def test_decisions_follow_the_policy_the_worker_is_given(
    tmp_path, tiny_synthetic, bands, mode, priority_from
):
    # The same four exams, two policies with opposite bands (safety net off): the worker's
    # decisions must follow the policy file, whatever the model's categories are.
    policy = tmp_path / "policy.yaml"
    policy.write_text(f'version: "test"\n{bands}safety_net: {{enabled: false}}\n')
    settings = folder_settings(tmp_path, policy=policy)
    copy_exams(tiny_synthetic, settings.source.path, 4)
    worker = build(settings)
    run_once(worker)
    exams = worker.store.exams.all()
    assert len(exams) == 4 and all(exam.category is not None for exam in exams)
    assert [exam.mode for exam in exams] == [mode] * 4
    assert [exam.priority for exam in exams] == [
        exam.category is not None and exam.category >= priority_from for exam in exams
    ]


def test_running_again_scores_nothing_twice(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 2)
    run_once(build(settings))
    again = build(settings)  # a restart: the folder index is rebuilt from scratch
    summary = run_once(again)
    assert summary.jobs == 0
    assert table_counts(again.store)["scores"] == 2
    assert len(list((tmp_path / "reports").rglob("*.dcm"))) == 2


def test_a_late_view_rescores_the_same_exam(tmp_path, tiny_synthetic, conformance):
    settings = folder_settings(tmp_path)
    (exam_dir,) = copy_exams(tiny_synthetic, settings.source.path, 1)
    late_view_arrives = hold_back_last_view(exam_dir, tmp_path)
    worker = build(settings)
    run_once(worker)
    (before,) = worker.store.exams.all()
    assert before.partial
    assert before.report_location is not None
    (partial_sr,) = Path(before.report_location).glob("*.dcm")
    conformance.check("folder source, a view missing", partial_sr)
    late_view_arrives()
    summary = run_once(worker)
    assert summary.jobs == 1
    (after,) = worker.store.exams.all()
    assert after.public_id == before.public_id
    assert not after.partial
    assert len(after.images) == 4
    assert count(worker.store, ScoreRow) == 1
    assert after.report_sop_instance_uid != before.report_sop_instance_uid
    assert after.report_location is not None
    rescored = Path(after.report_location) / f"{after.report_sop_instance_uid}.dcm"
    conformance.check("folder source, rescored after the late view", rescored)


def _damaged_corpus():
    path = Path(__file__).resolve().parents[1] / "dicom" / "test_damaged_files.py"
    spec = importlib.util.spec_from_file_location("damaged_corpus_for_worker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.CORPUS


def test_every_damaged_file_is_accounted_for_with_a_reason(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path)
    incoming = settings.source.path
    files = []
    for kind in _damaged_corpus():
        folder = incoming / kind.name
        folder.mkdir()
        built = kind.build(folder)
        if built.is_file():  # a symlink loop or a folder is no file to account for
            files.append(built.absolute())
    files += [p.absolute() for d in copy_exams(tiny_synthetic, incoming, 1) for p in d.iterdir()]
    worker = build(settings)
    summary = run_once(worker)
    assert summary.failed == 0
    images = {Path(im.path): im for e in worker.store.exams.all() for im in e.images if im.path}
    missing = [f for f in files if f not in images]
    assert missing == []
    for path in files[:-4]:
        assert images[path].reason, path.parent.name
    assert {j.status for j in worker.store.jobs.all()} == {JobStatus.DONE}
    statuses = {e.status for e in worker.store.exams.all()}
    assert ExamStatus.SCORED in statuses and ExamStatus.REJECTED in statuses


def test_a_study_that_holds_no_mammogram_is_rejected_not_queued(tmp_path):
    from dicom_builders import mg_dataset, write

    settings = folder_settings(tmp_path)
    ds = mg_dataset(Modality="CT")
    write(ds, settings.source.path / "ct.dcm")
    worker = build(settings)
    summary = run_once(worker)
    assert summary.rejected == 1
    (exam,) = worker.store.exams.all()
    assert exam.status is ExamStatus.REJECTED
    assert "not a mammogram" in (exam.images[0].reason or "")
    assert worker.store.readings.worklist(datetime.now(timezone.utc), worker.policy) == []
    assert worker.store.jobs.all()[0].status is JobStatus.DONE


def test_an_unscorable_mammogram_exam_gets_double_reading(tmp_path):
    from dicom_builders import mg_dataset, write

    settings = folder_settings(tmp_path)
    ds = mg_dataset(ViewPosition="")  # a mammogram, but no view can be told
    ds.ImageLaterality = ""
    ds.PatientOrientation = ""
    write(ds, settings.source.path / "unknown-view.dcm")
    worker = build(settings)
    run_once(worker)
    (exam,) = worker.store.exams.all()
    if exam.status is ExamStatus.SCORED:
        pytest.skip("the pixel fallback placed the view: nothing unscorable to test here")
    assert exam.status is ExamStatus.UNSCORED
    assert exam.mode is ReadingMode.DOUBLE
    assert exam.rule is not None and exam.rule.startswith("not scored")


class FlakySource:
    """A source whose PACS is down for the first ``failures`` fetches (a fault the test
    cannot make happen on a folder)."""

    def __init__(self, inner, failures: int, error: Exception) -> None:
        self.inner = inner
        self.name = inner.name
        self.failures = failures
        self.error = error
        self.fetches = 0

    def poll(self, cursor):
        return self.inner.poll(cursor)

    def fetch(self, study_key, into):
        self.fetches += 1
        if self.fetches <= self.failures:
            raise self.error
        return self.inner.fetch(study_key, into)

    def store_reports(self, study_key, reports):
        return self.inner.store_reports(study_key, reports)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize(
    "error",
    [
        SourceUnavailableError("PACS down: connection refused"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["pacs-down", "disk-full"],
)
def test_passing_faults_are_retried_with_backoff_then_scored(
    tmp_path, tiny_synthetic, error, conformance
):
    from mammotriage.worker.factory import build_source

    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    source = FlakySource(build_source(settings.source), failures=2, error=error)
    worker = build(settings, source=source)
    summary = run_once(worker)
    assert summary.retried == 2
    assert summary.scored == 1
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.DONE
    assert job.attempts == 3
    assert table_counts(worker.store)["scores"] == 1
    (exam,) = worker.store.exams.all()
    assert exam.report_location is not None
    (report_path,) = Path(exam.report_location).glob("*.dcm")
    # PixelMed on one of the two: the same SR after another fault
    pixelmed = isinstance(error, SourceUnavailableError)
    conformance.check(f"folder source, retried after {error}", report_path, pixelmed=pixelmed)


def test_a_fault_that_does_not_pass_fails_the_job_after_the_last_try(tmp_path, tiny_synthetic):
    from mammotriage.worker.factory import build_source

    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    source = FlakySource(
        build_source(settings.source), failures=99, error=SourceUnavailableError("PACS down")
    )
    worker = build(settings, source=source)
    summary = run_once(worker)
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.FAILED
    assert job.attempts == settings.retry.max_attempts
    assert "gave up after 3 attempts: PACS down" in (job.last_error or "")
    assert summary.failed == 1


def test_a_study_gone_from_the_source_fails_at_once_with_its_reason(tmp_path, tiny_synthetic):
    from mammotriage.worker.factory import build_source

    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    source = FlakySource(build_source(settings.source), 99, SourceError("study deleted"))
    worker = build(settings, source=source)
    run_once(worker)
    (job,) = worker.store.jobs.all()
    assert (job.status, job.attempts, job.last_error) == (JobStatus.FAILED, 1, "study deleted")


class OneStudySource:
    """Offers one study forever; fetch breaks with a bug (an exception no one planned)."""

    name = "broken"

    def poll(self, cursor: str | None) -> Poll:
        return Poll((Arrival("1.2.3", "x", datetime.now(timezone.utc)),))

    def fetch(self, study_key: str, into: Path) -> list[Path]:
        raise KeyError("a bug")

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        return ""

    def close(self) -> None:
        pass


def test_a_bug_fails_the_job_and_the_loop_goes_on(tmp_path):
    settings = folder_settings(tmp_path)
    worker = build(settings, source=OneStudySource())
    summary = run_once(worker)
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.FAILED
    assert "internal error: KeyError" in (job.last_error or "")
    assert summary.failed == 1


def test_a_database_that_is_gone_is_logged_and_waited_for(tmp_path, caplog):
    settings = folder_settings(tmp_path)
    worker = build(settings)
    (tmp_path / "db.sqlite").unlink()
    (tmp_path / "db.sqlite").mkdir()  # the database file is now a folder: every call fails
    worker.store.db.engine.dispose()
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    with caplog.at_level("ERROR", logger="mammotriage.worker"):
        worker.run(stop, once=True)
    timer.cancel()
    assert any("worklist database unavailable" in r.getMessage() for r in caplog.records)


def test_metrics_count_exams_per_category_and_queue_depth(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path, metrics={"textfile": tmp_path / "metrics.prom"})
    copy_exams(tiny_synthetic, settings.source.path, 2)
    worker = build(settings)
    run_once(worker)
    text = (tmp_path / "metrics.prom").read_text()
    assert 'mammotriage_exams_total{status="scored"} 2.0' in text
    categories = [
        line
        for line in text.splitlines()
        if line.startswith("mammotriage_exams_by_category_total{")
    ]
    assert sum(float(line.split()[-1]) for line in categories) == 2
    assert "mammotriage_job_seconds_count 2.0" in text
    for stage in ("fetch", "decode", "score", "outputs"):  # each study through each stage
        assert f'mammotriage_stage_seconds_count{{stage="{stage}"}} 2.0' in text
    assert 'mammotriage_jobs{status="DONE"} 2.0' in worker.metrics.text()


def test_logs_carry_internal_ids_and_no_patient_identifiers(tmp_path, tiny_synthetic, capsys):
    import io
    import json

    from mammotriage.worker.logs import configure_logging

    stream = io.StringIO()
    restore = configure_logging("json", stream)
    try:
        settings = folder_settings(tmp_path)
        (exam_dir,) = copy_exams(tiny_synthetic, settings.source.path, 1)
        worker = build(settings)
        run_once(worker)
    finally:
        restore()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    stored = [line for line in lines if line.get("event") == "exam-stored"]
    assert stored and stored[0]["exam_id"] == str(worker.store.exams.all()[0].public_id)
    ds = dcmread(next(exam_dir.glob("*.dcm")), stop_before_pixels=True)
    text = stream.getvalue()
    for identifier in (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID, ds.AccessionNumber):
        assert identifier and identifier not in text
    # ...but stored with the exam, from the header, for a radiologist to find it in the PACS
    stored = worker.store.exams.all()[0].identifiers
    assert (stored.accession_number, stored.patient_id, stored.patient_name) == (
        ds.AccessionNumber,
        ds.PatientID,
        str(ds.PatientName),
    )
    assert stored.study_date is not None and stored.study_date.strftime("%Y%m%d") == ds.StudyDate


def test_settings_come_from_yaml_and_the_environment_wins(tmp_path, monkeypatch):
    config = tmp_path / "worker.yaml"
    config.write_text(
        "database: from-file.sqlite\nsource: {kind: orthanc, url: 'http://127.0.0.1:8042'}\n"
    )
    monkeypatch.setenv("MAMMOTRIAGE_WORKER_DATABASE", "from-env.sqlite")
    monkeypatch.setenv("MAMMOTRIAGE_WORKER_SOURCE__PASSWORD", "s3cret")
    settings = load_worker_settings(config)
    assert settings.database == "from-env.sqlite"
    assert settings.source.kind == "orthanc"
    assert settings.source.password is not None
    assert settings.source.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_a_wrong_setting_is_one_clear_error(tmp_path):
    config = tmp_path / "worker.yaml"
    config.write_text("source: {kind: folder, path: x, quiet_seconds: -1}\npoll_secs: 3\n")
    with pytest.raises(ConfigError) as raised:
        load_worker_settings(config)
    message = str(raised.value)
    assert "source.folder.quiet_seconds" in message
    assert "poll_secs" in message


def test_the_shipped_worker_config_is_valid():
    settings = load_worker_settings(Path(__file__).resolve().parents[3] / "configs/worker.yaml")
    assert settings.source.kind == "folder"
    assert settings.metrics.host == "127.0.0.1"


class LockingSource:
    """Fetches from a folder, and on the first fetch has another process-like connection take
    SQLite's write lock until the worker has met it (``met`` is set; at most ``hold``
    seconds): a real "database is locked" mid-job, however long scoring takes."""

    def __init__(self, inner, database: Path, hold: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.database = database
        self.hold = hold
        self.locked = threading.Event()
        self.met = threading.Event()
        self.fetches = 0

    def _hold_lock(self) -> None:
        import sqlite3

        connection = sqlite3.connect(self.database, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        self.locked.set()
        self.met.wait(self.hold)
        connection.execute("ROLLBACK")
        connection.close()

    def poll(self, cursor):
        return self.inner.poll(cursor)

    def fetch(self, study_key, into):
        self.fetches += 1
        if self.fetches == 1:
            threading.Thread(target=self._hold_lock, daemon=True).start()
            self.locked.wait(5)
        return self.inner.fetch(study_key, into)

    def store_reports(self, study_key, reports):
        return self.inner.store_reports(study_key, reports)

    def close(self):
        self.inner.close()


def test_a_locked_database_mid_job_is_waited_out_and_the_exam_scored_once(
    tmp_path, tiny_synthetic, caplog
):
    from datetime import timedelta

    from mammotriage.worker.factory import build_source
    from mammotriage.worklist import Store

    settings = folder_settings(tmp_path, poll_seconds=0.2)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    source = LockingSource(build_source(settings.source), tmp_path / "db.sqlite", hold=60.0)
    worker = build(settings, source=source)
    worker.store = Store(settings.database, sqlite_busy_timeout=timedelta(milliseconds=100))
    # One study at a time: the job's own store call meets the lock (with the pipeline, the
    # fetch stage's claim of a next job may meet it first, and the job then passes whole).
    worker.studies_in_flight = 1

    class MeetsTheLock(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "database is locked" in record.getMessage():
                source.met.set()

    handler = MeetsTheLock(level=logging.ERROR)
    logging.getLogger("mammotriage.worker").addHandler(handler)
    try:
        with caplog.at_level("ERROR", logger="mammotriage.worker"):
            summary = run_once(worker)
    finally:
        logging.getLogger("mammotriage.worker").removeHandler(handler)
    assert any("database is locked" in r.getMessage() for r in caplog.records)
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.DONE
    assert job.attempts == 2  # the interrupted try, then the one that stored it
    assert table_counts(worker.store)["scores"] == 1
    assert summary.scored == 1


def test_thumbnails_are_rendered_for_each_usable_view(tmp_path, tiny_synthetic):
    from PIL import Image as PILImage

    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    worker = build(settings)
    run_once(worker)
    (exam,) = worker.store.exams.all()
    detail = worker.store.readings.exam_detail(exam.public_id, None)
    assert len(detail.images) == 4
    for image in detail.images:
        assert image.thumbnail is not None and image.rows and image.columns
        picture = PILImage.open(image.thumbnail)
        assert picture.height == 512
        assert abs(picture.width / picture.height - image.columns / image.rows) < 0.01
        assert str(exam.public_id) in image.thumbnail  # named by internal id, not the UID
        assert exam.study_instance_uid not in image.thumbnail


def test_metrics_are_served_for_prometheus_on_loopback(tmp_path, tiny_synthetic):
    import httpx

    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    worker = build(settings)
    run_once(worker)
    port = worker.metrics.serve(0)  # a free port, loopback by default
    reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert reply.status_code == 200
    assert 'mammotriage_exams_total{status="scored"} 1.0' in reply.text


def test_the_folder_source_groups_files_into_studies_without_decoding_pixels(
    tmp_path, tiny_synthetic, monkeypatch
):
    """The folder's poll reads headers only (the scorer decodes each file once, later),
    even for a vendor whose headers cannot settle laterality or orientation, and groups
    files by the key the scorer uses."""
    import mammotriage.dicom.reader as reader
    from dicom_builders import breast_pixels, mg_dataset, write
    from mammotriage.dicom import exam_key, read_image
    from mammotriage.worker.factory import build_source

    settings = folder_settings(tmp_path)  # quiet period 0
    exams = copy_exams(tiny_synthetic, settings.source.path, 12)  # the six-vendor mix
    files = sorted(p for exam in exams for p in exam.glob("*.dcm"))
    # a view whose header settles neither side nor orientation (the reader's pixel fallback)
    bare = mg_dataset(breast_pixels(512, 256))
    del bare.ImageLaterality, bare.PatientOrientation
    files.append(write(bare, settings.source.path / "bare" / "image.dcm"))
    expected = {str(exam_key(read_image(path, load_pixels=False))[0]) for path in files}

    decodes = []
    decode_stored = reader.decode_stored

    def counted(*args, **kwargs):  # (a raise would be taken for a bad file)
        decodes.append(args)
        return decode_stored(*args, **kwargs)

    monkeypatch.setattr(reader, "decode_stored", counted)
    source = build_source(settings.source)
    polled = source.poll(None)
    polled = polled if polled.arrivals else source.poll(polled.cursor)
    assert {arrival.study_key for arrival in polled.arrivals} == expected
    assert len(polled.arrivals) == len(exams) + 1
    assert decodes == []


@pytest.mark.parametrize("sr", [True, False])
def test_the_report_writer_is_warmed_up_before_the_first_study_only_when_sr_is_sent(
    tmp_path, monkeypatch, sr
):
    """highdicom loads its tables of the standard with the first report a process builds;
    a worker that sends SRs builds a throw-away one when it starts, before it polls."""
    import mammotriage.worker.loop as loop

    events: list[str] = []
    monkeypatch.setattr(loop, "warm_up_reports", lambda: events.append("warm-up"))
    worker = build(folder_settings(tmp_path, outputs={"sr": {"enabled": sr}}))
    real_poll = worker._poll
    monkeypatch.setattr(worker, "_poll", lambda stop: events.append("poll") or real_poll(stop))
    run_once(worker)
    assert events[: 1 + sr] == (["warm-up", "poll"] if sr else ["poll"])
    assert events.count("warm-up") == int(sr)


def test_warming_up_builds_a_report_from_a_made_up_header() -> None:
    from mammotriage.dicom.report import warm_up

    assert warm_up() is None
