"""Job queue of the store on SQLite and PostgreSQL: fingerprints, backoff, crash recovery,
source cursors and the report recorded per exam."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from test_store import exam_score

from mammotriage.errors import StoreError
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worklist import ExamStatus, JobStatus, Store

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=timezone.utc)
POLICY = TriagePolicy(version="test-1", max_wait_days=5)


def run_to_done(store: Store, worker: str = "w1") -> None:
    job = store.jobs.claim(worker)
    assert job is not None
    store.jobs.done(job)


def test_same_fingerprint_again_does_not_requeue_a_done_job(store: Store) -> None:
    store.jobs.enqueue("pacs", "1.2.3", "4 images")
    run_to_done(store)
    again = store.jobs.enqueue("pacs", "1.2.3", "4 images")
    assert again.status is JobStatus.DONE
    assert store.jobs.claim("w1") is None


def test_new_fingerprint_requeues_a_done_job(store: Store) -> None:
    store.jobs.enqueue("pacs", "1.2.3", "4 images")
    run_to_done(store)
    again = store.jobs.enqueue("pacs", "1.2.3", "5 images")
    assert again.status is JobStatus.QUEUED
    assert again.fingerprint == "5 images"
    assert again.attempts == 0


def test_new_fingerprint_requeues_a_failed_job(store: Store) -> None:
    store.jobs.enqueue("pacs", "1.2.3", "a")
    job = store.jobs.claim("w1")
    assert job is not None
    store.jobs.fail(job, "no mammography image")
    assert store.jobs.enqueue("pacs", "1.2.3", "a").status is JobStatus.FAILED
    assert store.jobs.enqueue("pacs", "1.2.3", "b").status is JobStatus.QUEUED


def test_new_fingerprint_while_running_runs_once_more(store: Store) -> None:
    store.jobs.enqueue("pacs", "1.2.3", "a")
    job = store.jobs.claim("w1")
    assert job is not None
    store.jobs.enqueue("pacs", "1.2.3", "a")  # the same content: no rescan
    assert store.jobs.done(job).status is JobStatus.DONE
    store.jobs.enqueue("pacs", "1.2.3", "b")
    job = store.jobs.claim("w1")
    assert job is not None
    store.jobs.enqueue("pacs", "1.2.3", "c")
    assert store.jobs.done(job).status is JobStatus.QUEUED


def test_retried_job_waits_for_its_backoff(store: Store) -> None:
    store.jobs.enqueue("pacs", "1.2.3")
    job = store.jobs.claim("w1", now=NOW)
    assert job is not None
    retried = store.jobs.retry(job, "PACS down", delay=timedelta(seconds=30), now=NOW)
    assert retried.status is JobStatus.QUEUED
    assert retried.last_error == "PACS down"
    assert store.jobs.claim("w1", now=NOW + timedelta(seconds=29)) is None
    again = store.jobs.claim("w1", now=NOW + timedelta(seconds=31))
    assert again is not None
    assert again.attempts == 2


def test_release_claims_puts_back_only_that_workers_jobs(store: Store) -> None:
    store.jobs.enqueue("pacs", "1")
    store.jobs.enqueue("pacs", "2")
    assert store.jobs.claim("w1") is not None
    assert store.jobs.claim("w2") is not None
    assert store.jobs.release_claims("w1") == 1
    counts = store.jobs.counts()
    assert counts[JobStatus.QUEUED] == 1
    assert counts[JobStatus.RUNNING] == 1
    job = store.jobs.claim("w3")
    assert job is not None
    assert job.attempts == 2  # the crashed attempt still counts


def test_finish_of_a_vanished_job_is_a_store_error(store: Store) -> None:
    job = store.jobs.enqueue("pacs", "1")
    from sqlalchemy import delete

    from mammotriage.worklist.models import JobRow

    with store.db.engine.begin() as connection:
        connection.execute(delete(JobRow))
    with pytest.raises(StoreError, match="does not exist"):
        store.jobs.done(job)


def test_cursor_is_saved_and_replaced(store: Store) -> None:
    assert store.jobs.cursor("orthanc:http://x") is None
    store.jobs.save_cursor("orthanc:http://x", "17")
    store.jobs.save_cursor("orthanc:http://x", "42")
    store.jobs.save_cursor("other", "1")
    assert store.jobs.cursor("orthanc:http://x") == "42"
    assert store.jobs.cursor("other") == "1"


def test_report_is_recorded_on_the_exam(store: Store) -> None:
    score = exam_score("1.2.3", 7)
    triage = ExamForTriage("1.2.3", score.score or 0, 7, 30, False, NOW)
    store.exams.save_score(score, decide(POLICY, triage), NOW)
    store.exams.save_report("1.2.3", "1.2.826.0.1.9", "Orthanc study abc")
    (exam,) = store.exams.all()
    assert exam.status is ExamStatus.SCORED
    assert exam.report_sop_instance_uid == "1.2.826.0.1.9"
    assert exam.report_location == "Orthanc study abc"
    assert exam.category == 7
    assert len(exam.images) == 4


def test_report_for_an_unknown_exam_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.exams.save_report("9.9.9", "1.2", "nowhere")


def test_a_study_without_mammograms_is_rejected_and_kept_off_the_worklist(store: Store) -> None:
    score = exam_score("1.2.3", 7)
    triage = ExamForTriage("1.2.3", score.score or 0, 7, 30, False, NOW)
    store.exams.save_score(score, decide(POLICY, triage), NOW)
    assert len(store.readings.worklist(NOW, POLICY)) == 1
    store.exams.save_score(score, None, NOW)
    (exam,) = store.exams.all()
    assert exam.status is ExamStatus.REJECTED
    assert exam.mode is None
    assert len(exam.images) == 4
    assert store.readings.worklist(NOW, POLICY) == []
