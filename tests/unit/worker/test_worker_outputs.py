"""The worker's outputs are configured (``outputs: {sr, gsps, sc, hl7}``), each recorded per
exam, each sent on its own: one failing leaves the others sent and the decision stored, and
goes through the job's retry policy; a rescore's SR supersedes the one sent before."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from mammotriage.errors import SourceUnavailableError
from mammotriage.worker.config import WorkerSettings
from mammotriage.worker.factory import build_source
from mammotriage.worker.sources.folder import FolderSource
from mammotriage.worklist import ExamStatus, JobStatus, Store
from mammotriage.worklist.models import ExamRow, FindingRow, OutputState, ScoreRow
from worker_helpers import build, copy_exams, folder_settings, hold_back_last_view, run_once

GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ALL_DICOM = {"sr": {"enabled": True}, "gsps": {"enabled": True}, "sc": {"enabled": True}}


def _has_findings(store: Store, study: str) -> bool:
    with store.db.engine.connect() as connection:
        n = connection.execute(
            select(func.count())
            .select_from(FindingRow)
            .join(ScoreRow, ScoreRow.id == FindingRow.score_id)
            .join(ExamRow, ExamRow.id == ScoreRow.exam_id)
            .where(ExamRow.study_instance_uid == study)
        ).scalar_one()
    return bool(n)


def _by_class(reports: Path) -> Counter[str]:
    return Counter(
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID) for p in reports.rglob("*.dcm")
    )


class _Refusing(FolderSource):
    """A folder whose PACS refuses one kind of object for now (its SOP class), as a PACS
    whose storage for that class is full would: the one fault a folder cannot make."""

    def __init__(self, settings: WorkerSettings, refused: str) -> None:
        base = build_source(settings.source)
        assert isinstance(base, FolderSource)
        super().__init__(base.path, quiet_seconds=0.0, reports_dir=base.reports_dir)
        self.refused = refused
        self.sent: Counter[str] = Counter()

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        classes = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID) for p in reports}
        if self.refused in classes:
            raise SourceUnavailableError("the PACS refused the object: storage full")
        self.sent.update(classes)
        return super().store_reports(study_key, reports)


def test_every_configured_output_is_sent_and_recorded_per_exam(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path, outputs=ALL_DICOM)
    copy_exams(tiny_synthetic, settings.source.path, 6)
    worker = build(settings)
    run_once(worker)
    exams = worker.store.exams.all()
    scored = [e for e in exams if e.status is ExamStatus.SCORED]
    assert scored
    classes = _by_class(tmp_path / "reports")
    with_findings = 0
    for exam in scored:
        outputs = {o.output: o for o in worker.store.outputs.for_exam(exam.public_id)}
        assert outputs["sr"].state is OutputState.DONE and outputs["sr"].attempts == 1
        assert outputs["sr"].location == exam.report_location
        assert outputs["thumbnails"].state is OutputState.DONE
        findings = _has_findings(worker.store, exam.study_instance_uid)
        with_findings += findings
        # A presentation state and captures exactly for the exams with findings.
        assert ("gsps" in outputs) == findings
        assert ("sc" in outputs) == findings
    assert with_findings, "the tiny batch has exams with findings"
    assert classes[GSPS] == with_findings
    assert classes[SECONDARY_CAPTURE] >= with_findings
    captures = [
        ds
        for p in (tmp_path / "reports").rglob("*.dcm")
        if (ds := pydicom.dcmread(p)).SOPClassUID == SECONDARY_CAPTURE
    ]
    assert {c.BurnedInAnnotation for c in captures} == {"YES"}
    counts = worker.store.outputs.counts()
    assert counts[("sr", OutputState.DONE)] == len(scored)
    assert not any(state is OutputState.FAILED for _, state in counts)
    assert 'mammotriage_exam_outputs{output="sr",state="done"}' in worker.metrics.text()


def test_outputs_left_off_are_not_sent(tmp_path, tiny_synthetic):
    settings = folder_settings(
        tmp_path, outputs={"sr": {"enabled": False}, "gsps": {"enabled": True}}
    )
    copy_exams(tiny_synthetic, settings.source.path, 6)
    worker = build(settings)
    run_once(worker)
    classes = _by_class(tmp_path / "reports")
    assert classes and set(classes) == {GSPS}
    for exam in worker.store.exams.all():
        assert exam.report_sop_instance_uid is None
        assert "sr" not in {o.output for o in worker.store.outputs.for_exam(exam.public_id)}


def test_a_failing_output_leaves_the_others_sent_and_the_decision_stored(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path, outputs=ALL_DICOM)
    copy_exams(tiny_synthetic, settings.source.path, 6)
    source = _Refusing(settings, refused=GSPS)
    worker = build(settings, source=source)
    run_once(worker)
    failing = worker.store.outputs.failing()
    assert failing and {f.output for f in failing} == {"gsps"}
    for output in failing:
        # Retried with the job (max_attempts 3), then given up; the reason kept per exam.
        assert output.attempts == settings.retry.max_attempts
        assert "storage full" in (output.last_error or "")
        exam = next(e for e in worker.store.exams.all() if e.public_id == output.exam_public_id)
        # The decision stands: the exam is on the reading lists with its SR sent once.
        assert exam.status is ExamStatus.SCORED and exam.mode is not None
        recorded = {o.output: o for o in worker.store.outputs.for_exam(exam.public_id)}
        assert recorded["sr"].state is OutputState.DONE and recorded["sr"].attempts == 1
        assert recorded["sc"].state is OutputState.DONE
    assert source.sent[GSPS] == 0
    # Each exam's SR went once, although its job ran three times.
    assert source.sent["1.2.840.10008.5.1.4.1.1.88.33"] == len(
        [e for e in worker.store.exams.all() if e.status is ExamStatus.SCORED]
    )
    failed_jobs = [j for j in worker.store.jobs.all() if j.status is JobStatus.FAILED]
    assert len(failed_jobs) == len(failing)
    assert all("output failed: gsps" in (j.last_error or "") for j in failed_jobs)
    assert 'mammotriage_output_failures_total{output="gsps"}' in worker.metrics.text()


def test_a_rescore_sends_an_sr_that_supersedes_the_first(tmp_path, tiny_synthetic):
    settings = folder_settings(tmp_path)
    (exam_dir,) = copy_exams(tiny_synthetic, settings.source.path, 1)
    late_view_arrives = hold_back_last_view(exam_dir, tmp_path)
    worker = build(settings)
    run_once(worker)
    (before,) = worker.store.exams.all()
    late_view_arrives()
    run_once(worker)
    (after,) = worker.store.exams.all()
    assert after.report_location is not None
    first = pydicom.dcmread(Path(after.report_location) / f"{before.report_sop_instance_uid}.dcm")
    second = pydicom.dcmread(Path(after.report_location) / f"{after.report_sop_instance_uid}.dcm")
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert (int(first.InstanceNumber), int(second.InstanceNumber)) == (1, 2)
    assert "PredecessorDocumentsSequence" not in first
    (study,) = second.PredecessorDocumentsSequence
    (series,) = study.ReferencedSeriesSequence
    (reference,) = series.ReferencedSOPSequence
    assert reference.ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    sr_output = {o.output: o for o in worker.store.outputs.for_exam(after.public_id)}["sr"]
    assert sr_output.state is OutputState.DONE and sr_output.attempts == 2


def test_settings_moved_into_outputs_are_refused_with_where_they_went(tmp_path):
    with pytest.raises(ValueError, match="write_reports moved"):
        folder_settings(tmp_path, write_reports=False)
    with pytest.raises(ValueError, match=r"gsps moved: write outputs: \{gsps"):
        folder_settings(tmp_path, gsps={"enabled": True})
    with pytest.raises(ValueError, match="an enabled HL7 output needs host and port"):
        folder_settings(tmp_path, outputs={"hl7": {"enabled": True}})
