"""The worker's data path (issue 11): every output attempted when one fails, every file of
a poisoned folder accounted for, decoding isolated from the worker process."""

from __future__ import annotations

import shutil
from pathlib import Path

from mammotriage.worklist import JobStatus
from worker_helpers import build, folder_settings, run_once


def copy_exams(source: Path, target: Path, n: int) -> list[Path]:
    exams = sorted(p for p in source.iterdir() if p.is_dir())[:n]
    for exam in exams:
        shutil.copytree(exam, target / exam.name)
    return [target / exam.name for exam in exams]


def _block(folder: Path | None) -> Path:
    """Replace ``folder`` by a regular file: anything written below it fails with ENOTDIR."""
    assert folder is not None
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("a file where the thumbnail folder should be")
    return folder


def test_an_unwritable_thumbnail_folder_does_not_stop_the_report(tmp_path, tiny_synthetic, caplog):
    """Item 14: the thumbnail folder is replaced by a regular file once the worker runs
    (ENOTDIR, a real fault even for root). The exam is stored, the SR still sent, the
    failure logged, counted and kept on the job, which is retried and then given up on with
    the output named."""
    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    worker = build(settings)
    _block(settings.thumbnails_dir)
    with caplog.at_level("WARNING", logger="mammotriage.worker"):
        summary = run_once(worker)
    (exam,) = worker.store.exams.all()
    assert exam.score is not None and exam.report_sop_instance_uid is not None
    assert exam.report_location and list((tmp_path / "reports").rglob("*.dcm"))
    assert summary.reports  # the SR went out
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.FAILED
    assert job.attempts == settings.retry.max_attempts
    assert job.last_error is not None and "thumbnails" in job.last_error
    assert any("thumbnails" in r.getMessage() for r in caplog.records)
    outputs = worker.metrics.registry.get_sample_value(
        "mammotriage_output_failures_total", {"output": "thumbnails"}
    )
    assert outputs == settings.retry.max_attempts


def test_a_thumbnail_folder_that_comes_back_completes_the_job(tmp_path, tiny_synthetic):
    """Item 14: a passing output fault is retried; once the folder can be written the job
    is done with every output, scored once."""
    settings = folder_settings(tmp_path)
    copy_exams(tiny_synthetic, settings.source.path, 1)
    worker = build(settings)
    blocker = _block(settings.thumbnails_dir)
    original = worker._thumbnails

    def thumbnails(exam_score, public_id):
        try:
            return original(exam_score, public_id)
        finally:
            if blocker.is_file():
                blocker.unlink()  # the operator fixes the folder after the first try
                blocker.mkdir()

    worker._thumbnails = thumbnails  # type: ignore[method-assign]
    run_once(worker)
    (job,) = worker.store.jobs.all()
    assert job.status is JobStatus.DONE and job.attempts == 2
    (exam,) = worker.store.exams.all()
    detail = worker.store.readings.exam_detail(exam.public_id, None)
    assert all(image.thumbnail for image in detail.images if image.usable)
