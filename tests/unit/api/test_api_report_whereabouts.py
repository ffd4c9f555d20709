"""Where the AI's report went, as a reader is told it: "sent to PACS (kind) at time" or a
download; never the worker's record (a server path named after the study, a PACS address)
nor a UID, in the exam's JSON or on its page."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from api_site import STUDY_ROOT, Site

SENT = datetime(2024, 3, 11, 11, 30, tzinfo=timezone.utc)
SOP = f"{STUDY_ROOT}.1.99"
#: Records in the shape each of the worker's sinks writes them (worker/sources/).
PACS_RECORDS = {
    f"Orthanc http://pacs.example:8042 study 5a1b2c3d-{STUDY_ROOT}": "PACS (Orthanc)",
    f"DICOMweb https://pacs.example/dicom-web study {STUDY_ROOT}.1": "PACS (DICOMweb)",
    "C-STORE to PACS@pacs.example:104": "PACS (DICOM C-STORE)",
}


def opened(site: Site, record: str) -> tuple[dict[str, object], str, str]:
    """The exam's report JSON, its whole JSON text and its page, as its reader sees them."""
    exam = site.exam(1, 4)
    site.store.exams.save_report(f"{STUDY_ROOT}.1", SOP, record, sent_at=SENT)
    anna, csrf = site.login("anna")
    assert anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf}).status_code == 200
    answer = anna.get(f"/exams/{exam}")
    page = anna.get(f"/ui/exams/{exam}")
    assert answer.status_code == 200 and page.status_code == 200
    return answer.json()["report"], answer.text, page.text


def assert_no_record_or_uid(text: str, record: str) -> None:
    assert STUDY_ROOT not in text
    assert record not in text
    assert "pacs.example" not in text


@pytest.mark.parametrize("record", PACS_RECORDS)
def test_a_report_sent_to_the_pacs_says_which_kind_and_when(site: Site, record: str) -> None:
    report, text, page = opened(site, record)
    summary = f"Sent to {PACS_RECORDS[record]} at 2024-03-11 11:30 UTC"
    assert report == {
        "destination": "pacs",
        "sent_to": PACS_RECORDS[record],
        "sent_at": "2024-03-11T11:30:00Z",
        "download_url": None,
        "summary": summary,
    }
    assert summary in page
    assert_no_record_or_uid(text, record)
    assert_no_record_or_uid(page, record)


def test_a_report_in_the_reports_folder_is_a_download_not_a_path(
    site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "reports" / f"{STUDY_ROOT}.1"  # as the folder sink names it
    folder.mkdir(parents=True)
    (folder / f"{SOP}.dcm").write_bytes(b"\0" * 128 + b"DICM")
    report, text, page = opened(site, str(folder))
    assert report["destination"] == "folder"
    assert report["summary"] == (
        "Written to the reports folder at 2024-03-11 11:30 UTC; available to download"
    )
    assert report["download_url"] is not None and report["download_url"].endswith("/report.dcm")
    assert 'data-testid="report-download"' in page and "available to download" in page
    assert_no_record_or_uid(text, str(folder))
    assert_no_record_or_uid(page, str(folder))
    assert str(tmp_path) not in text and str(tmp_path) not in page


def test_a_report_stored_nowhere_says_so(site: Site) -> None:
    report, text, page = opened(site, "not stored (no reports directory configured)")
    assert report["destination"] == "none" and report["download_url"] is None
    assert "Not stored" in report["summary"] and "Not stored" in page
    assert STUDY_ROOT not in text and STUDY_ROOT not in page
