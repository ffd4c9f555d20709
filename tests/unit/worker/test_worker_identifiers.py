"""The identifiers a reader finds the exam by in the PACS, as the worker reads them from the
image header and the store keeps them (the worker storing the file's values and logging none
of them: test_worker_loop.py, test_logs_carry_internal_ids_and_no_patient_identifiers)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from pydicom.dataset import Dataset

from api_site import exam_score
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worker.identifiers import identifiers_of
from mammotriage.worklist import Store
from mammotriage.worklist.exams import StudyIdentifiers


@pytest.mark.filterwarnings("ignore:.*VR (SH|DA):UserWarning")  # the bad values are the test
def test_a_value_that_is_absent_too_long_or_not_a_date_is_left_out() -> None:
    header = Dataset()
    header.PatientName = "Doe^Jane=ドウ^ジェーン"
    header.PatientID = "  P1  "
    header.AccessionNumber = "A" * 65  # no SH, nor any store column, holds it
    header.StudyDate = "20241301"
    assert identifiers_of(header) == StudyIdentifiers(
        patient_id="P1", patient_name="Doe^Jane=ドウ^ジェーン"
    )
    assert identifiers_of(Dataset()) == StudyIdentifiers()
    assert not StudyIdentifiers().known


def test_a_later_save_replaces_them_and_one_without_a_header_keeps_them(tmp_path) -> None:
    store = Store(str(tmp_path / "db.sqlite"))
    store.migrate()
    received = datetime(2024, 3, 11, tzinfo=timezone.utc) - timedelta(hours=1)
    score = exam_score("1.2.3", 2)
    decision = decide(
        TriagePolicy(version="t"), ExamForTriage("1.2.3", 15.0, 2, 30, False, received)
    )
    first = StudyIdentifiers(accession_number="A1", patient_id="P1", study_date=date(2024, 3, 1))
    public_id = store.exams.save_score(score, decision, received, identifiers=first)
    store.exams.save_score(score, decision, received, identifiers=None)
    assert store.exams.identifiers_of([public_id]) == {public_id: first}
    corrected = StudyIdentifiers(accession_number="A2", patient_id="P1")
    store.exams.save_score(score, decision, received, identifiers=corrected)
    assert store.exams.identifiers_of([public_id, public_id]) == {public_id: corrected}
    store.close()
