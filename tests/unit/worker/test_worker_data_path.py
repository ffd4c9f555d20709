"""The worker's data path (issue 11): every output attempted when one fails, every file of
a poisoned folder accounted for, decoding isolated from the worker process. The SRs that
go out through these faults pass dciodvfy and PixelMed's SR validator."""

from __future__ import annotations

import shutil
from pathlib import Path

from mammotriage.worklist import JobStatus
from worker_helpers import (
    build,
    copy_exams,
    damaged_duplicate,
    folder_settings,
    hostile_corpus,
    run_once,
)


def _block(folder: Path | None) -> Path:
    """Replace ``folder`` by a regular file: anything written below it fails with ENOTDIR."""
    assert folder is not None
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("a file where the thumbnail folder should be")
    return folder


def test_an_unwritable_thumbnail_folder_does_not_stop_the_report(
    tmp_path, tiny_synthetic, caplog, conformance
):
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
    report_path = Path(exam.report_location) / f"{exam.report_sop_instance_uid}.dcm"
    conformance.check("folder source, thumbnail folder unwritable", report_path)
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

    def thumbnails(*args):
        try:
            return original(*args)
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


def test_a_poisoned_folder_scores_every_good_exam_whole_and_accounts_for_every_file(
    tmp_path, tiny_synthetic, conformance
):
    """Good synthetic exams mixed with the hostile corpus and with damaged duplicates (same
    UIDs, later acquisition) of two good views: every good exam is scored on all four
    views, and every file of the folder has its own image row, with a reason unless used."""
    from sqlalchemy import select

    from mammotriage.worklist.models import ImageRow

    settings = folder_settings(tmp_path)
    incoming = settings.source.path
    exams = copy_exams(tiny_synthetic, incoming, 3)
    good_studies = set()
    import pydicom

    for exam in exams[:2]:
        view = sorted(exam.glob("*.dcm"))[0]
        damaged_duplicate(view, exam / f"zz-damaged-{view.name}")
    for exam in exams:
        good_studies.add(pydicom.dcmread(sorted(exam.glob("*.dcm"))[0]).StudyInstanceUID)
    (incoming / "hostile").mkdir()
    hostile = hostile_corpus(incoming / "hostile")
    (incoming / "hostile" / "random.dcm").write_bytes(b"\x00garbage" * 100)
    files = {p for p in incoming.rglob("*") if p.is_file()}
    assert len(hostile) > 20 or not hostile  # the corpus, when importable, is large

    worker = build(settings)
    run_once(worker)

    with worker.store.db.engine.connect() as conn:
        rows = conn.execute(select(ImageRow.path, ImageRow.usable, ImageRow.reason)).all()
    stored_paths = [Path(path) for path, _, _ in rows if path]
    assert len(stored_paths) == len(rows)  # every row names its file
    assert sorted(stored_paths) == sorted(files)  # every file once: none lost, none twice
    for path, usable, reason in rows:
        assert usable or reason, path  # unusable only with a reason
    for study in good_studies:
        (exam,) = [e for e in worker.store.exams.all() if e.study_instance_uid == study]
        assert exam.score is not None and not exam.partial, study
        scored = [im for im in exam.images if im.usable and im.reason is None]
        assert len(scored) == 4, exam.images
        assert exam.report_location is not None
        report_path = Path(exam.report_location) / f"{exam.report_sop_instance_uid}.dcm"
        # dciodvfy on each, PixelMed on one: a good exam's SR, whatever lay beside it
        first = study == min(good_studies)
        conformance.check(f"poisoned folder ({study})", report_path, pixelmed=first)
    for job in worker.store.jobs.all():
        assert job.status in (JobStatus.DONE, JobStatus.FAILED)
    assert not [
        j
        for j in worker.store.jobs.all()
        if j.status is JobStatus.FAILED and any(j.study_instance_uid == s for s in good_studies)
    ]


def test_decoding_is_isolated_with_a_time_budget_by_default(tmp_path):
    isolated = build(folder_settings(tmp_path / "a"))
    assert isolated.engine.executor == "process"
    assert isolated.engine.decoder.timeout == 120.0
    threads = build(folder_settings(tmp_path / "b", isolate_decoding=False))
    assert threads.engine.executor == "thread" and threads.engine.decoder.timeout is None


def test_each_image_is_decoded_once_its_thumbnail_made_from_the_model_decode(
    tmp_path, tiny_synthetic, monkeypatch
):
    """One decode per image: the reader decodes the pixels of each scored view once (in
    the decode pool's threads here, so that every call is seen), at the model's reduced
    resolution, and the view's thumbnail comes from that decode, 512 high."""
    from PIL import Image as PILImage

    import mammotriage.dicom.reader as reader
    import mammotriage.infer.prepare as prepare

    settings = folder_settings(tmp_path, isolate_decoding=False)
    copy_exams(tiny_synthetic, settings.source.path, 2)
    worker = build(settings)
    decodes: list[tuple[Path, object]] = []
    read_image = reader.read_image

    def counted(path, **kwargs):
        if kwargs.get("load_pixels", True):
            decodes.append((Path(path), kwargs.get("target_shape")))
        return read_image(path, **kwargs)

    monkeypatch.setattr(prepare, "read_image", counted)
    monkeypatch.setattr(reader, "read_image", counted)  # a second decode by any other way
    run_once(worker)
    exams = worker.store.exams.all()
    assert len(exams) == 2 and all(exam.score is not None for exam in exams)
    scored = sorted(Path(im.path or "") for exam in exams for im in exam.images if im.usable)
    assert sorted(path for path, _ in decodes) == scored  # each scored file once, no more
    model = worker.engine.params
    assert {shape for _, shape in decodes} == {(model.input_height, model.input_width)}
    for exam in exams:
        detail = worker.store.readings.exam_detail(exam.public_id, None)
        for image in detail.images:
            assert image.thumbnail is not None
            assert PILImage.open(image.thumbnail).height == 512
