"""What a radiologist finds the exam by in the PACS: the accession number, the patient's id
and name and the study date on the exam page, in GET /exams/{id} and in the queue row, for
radiologists only, each view audited; the site's PACS viewer link; never in a URL of this
service, the audit log or the logs."""

from __future__ import annotations

import html
import json
import logging
import re
import uuid
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from api_site import NOW, POLICY, SERVICE_TOKEN, STUDY_ROOT, Site, exam_score, make_site
from mammotriage.api.settings import ApiSettings, load_api_settings
from mammotriage.errors import ConfigError
from mammotriage.triage import ExamForTriage, decide
from mammotriage.worklist.exams import StudyIdentifiers
from mammotriage.worklist.models import AuditRow

IDS = StudyIdentifiers(
    accession_number="ACC 7/42&x",
    patient_id="PID-0042",
    patient_name="Doe^Jane",
    study_date=date(2024, 3, 1),
)
#: Each identifier as it may appear in a text: as is, HTML-escaped, percent-encoded.
SECRETS = ("ACC 7/42", "ACC%207", "PID-0042", "Doe^Jane", "Doe, Jane", "Jane")
PACS = "https://pacs.example/viewer?study={study_instance_uid}&acc={accession_number}"


def add_exam(site: Site, n: int, category: int, identifiers: StudyIdentifiers | None = IDS):
    study = f"{STUDY_ROOT}.{n}"
    score = exam_score(study, category)
    received = NOW - timedelta(hours=n + 1)
    triage = ExamForTriage(study, float(score.score or 0), category, 30, False, received)
    return site.store.exams.save_score(
        score, decide(POLICY, triage), received, identifiers=identifiers
    )


def audit(site: Site, action: str) -> list[AuditRow]:
    with site.store.db.session() as session:
        rows = session.execute(
            select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)
        ).scalars()
        return list(rows)


def shown_as(page: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', page)
    assert match, f"no {name} on the page"
    return html.unescape(match.group(1))


def claim_and_open(client, csrf: str, exam: uuid.UUID) -> tuple[str, str]:
    """Claim through the page's form; the redirect's URL and the exam page."""
    answer = client.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    return location, client.get(location).text


def test_the_claiming_radiologist_sees_them_and_each_view_is_audited(site: Site) -> None:
    exam = add_exam(site, 1, 2)
    anna, csrf = site.login("anna")
    _, page = claim_and_open(anna, csrf, exam)
    assert shown_as(page, "accession-number") == "ACC 7/42&x"
    assert shown_as(page, "patient-id") == "PID-0042"
    assert shown_as(page, "patient-name") == "Doe, Jane"
    assert shown_as(page, "study-date") == "2024-03-01"
    assert 'data-testid="pacs-viewer-link"' not in page  # no viewer configured
    body = anna.get(f"/exams/{exam}").json()
    assert body["identifiers"] == {
        "accession_number": "ACC 7/42&x",
        "patient_id": "PID-0042",
        "patient_name": "Doe^Jane",
        "study_date": "2024-03-01",
    }
    assert body["pacs_viewer_url"] is None
    views = [row for row in audit(site, "exam-viewed") if row.exam_public_id == exam]
    assert [(row.actor, row.detail["identifiers_shown"]) for row in views] == [
        ("anna", True),
        ("anna", True),
    ]
    everything = json.dumps([row.detail for row in audit(site, "exam-viewed")])
    assert not any(secret in everything for secret in SECRETS)


def test_the_queue_shows_them_to_radiologists_only_and_audits_the_view(site: Site) -> None:
    known = add_exam(site, 1, 2)
    unknown = add_exam(site, 2, 3, identifiers=None)  # no header could be read
    anna, _ = site.login("anna")
    page = anna.get("/").text
    assert "<th>Patient</th>" in page
    cells = re.findall(r'data-testid="queue-patient">(.*?)</td>', page, re.S)
    assert len(cells) == 2
    assert sum(
        "Doe, Jane · PID-0042" in c and "acc. ACC 7/42&amp;x · 2024-03-01" in c for c in cells
    )
    (viewed,) = audit(site, "worklist-viewed")
    assert viewed.actor == "anna" and viewed.exam_public_id is None
    assert viewed.detail == {"queue": "all", "offset": 0, "identifiers_shown": [str(known)]}
    assert str(unknown) not in json.dumps(viewed.detail)
    root, _ = site.login("root")
    service = site.client()
    bearer = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    seen = [
        root.get("/").text,
        root.get("/worklist").text,
        service.get("/worklist", headers=bearer).text,
    ]
    assert root.get(f"/exams/{known}").status_code == 403
    for text in seen:
        assert str(known) in text  # the internal id, and nothing else of the patient
        assert not any(secret in text for secret in SECRETS)
        assert "<th>Patient</th>" not in text
    assert len(audit(site, "worklist-viewed")) == 1


def test_they_stay_out_of_urls_and_logs(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    pacs_site = make_site(site.store, pacs_viewer_url=PACS)
    exam = add_exam(pacs_site, 1, 2)
    with caplog.at_level(logging.DEBUG):
        anna, csrf = pacs_site.login("anna")
        queue = anna.get("/").text
        location, page = claim_and_open(anna, csrf, exam)
        anna.get(f"/exams/{exam}")
        anna.get(f"/exams/{exam}/images/0.png")
        decided = anna.post(
            f"/ui/exams/{exam}/decision", data={"csrf_token": csrf, "recall": "false"}
        )
    assert "PID-0042" in page and "PID-0042" in queue  # shown...
    ours = [location, decided.headers["location"]]
    for text in (queue, page):
        for url in re.findall(r'(?:href|src|action)="([^"]*)"', text):
            if not url.startswith("https://pacs.example/"):  # the PACS's URL is the site's
                ours.append(html.unescape(url))
    assert len(ours) > 5
    for url in ours:  # ...but in none of this service's URLs
        assert not any(secret in unquote(url) for secret in SECRETS), url
    assert caplog.records
    assert not any(secret in caplog.text for secret in SECRETS)
    for client in pacs_site.clients:
        client.close()


def test_the_pacs_viewer_link_carries_the_exams_values_percent_encoded(site: Site) -> None:
    pacs_site = make_site(
        site.store,
        pacs_viewer_url=PACS + "&patient={patient_id}",
    )
    exam = add_exam(pacs_site, 1, 2)
    without = add_exam(pacs_site, 2, 3, identifiers=StudyIdentifiers(patient_id="PID-7"))
    anna, csrf = pacs_site.login("anna")
    _, page = claim_and_open(anna, csrf, exam)
    expected = (
        f"https://pacs.example/viewer?study={STUDY_ROOT}.1&acc=ACC%207%2F42%26x&patient=PID-0042"
    )
    link = re.search(r'<a ([^>]*)data-testid="pacs-viewer-link"[^>]*>Open in PACS viewer</a>', page)
    assert link, page
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', link.group(1)))
    assert html.unescape(attributes["href"]) == expected
    assert attributes["target"] == "_blank"
    assert "noopener" in attributes["rel"].split()
    assert anna.get(f"/exams/{exam}").json()["pacs_viewer_url"] == expected
    # An exam without an accession number has no link (the template needs one).
    _, page = claim_and_open(anna, csrf, without)
    assert "pacs-viewer-link" not in page
    assert anna.get(f"/exams/{without}").json()["pacs_viewer_url"] is None
    for client in pacs_site.clients:
        client.close()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("http://pacs/viewer?acc={accession}", "unknown placeholder {accession}"),
        ("http://pacs/viewer?acc={0}", "unknown placeholder {0}"),
        ("http://pacs/viewer?acc={accession_number!r}", "unknown placeholder"),
        ("http://pacs/viewer?acc={accession_number", "not a URL template"),
        ("http://pacs/viewer", "names no placeholder"),
        ("javascript:alert({patient_id})", "http:// or https://"),
    ],
)
def test_a_bad_pacs_viewer_url_is_refused_when_the_settings_load(
    tmp_path: Path, template: str, message: str
) -> None:
    config = tmp_path / "api.yaml"
    config.write_text(json.dumps({"environment": "development", "pacs_viewer_url": template}))
    with pytest.raises(ConfigError, match="pacs_viewer_url") as refused:
        load_api_settings(config)
    assert message in str(refused.value)
    with pytest.raises(ValidationError):
        ApiSettings(environment="development", pacs_viewer_url=template)
