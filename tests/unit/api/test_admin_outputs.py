"""The admin page's outputs and HL7 outbox: counts per output and state, the failing outputs
and the undelivered messages by internal exam id only (never a message's text), and the
retry form for a message the RIS refused: admin only, CSRF-checked, audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from api_site import NOW, Site
from mammotriage.worklist.models import AuditRow, OutboxState

PATIENT_NAME = "Hansen^Karen"


@dataclass
class Outbox:
    delivered: int
    failed: int
    queued: int


def _er7(control: str) -> str:
    return (
        f"MSH|^~\\&|MAMMOTRIAGE||RIS||x||ORU^R01^ORU_R01|{control}|P|2.5.1\r"
        f"PID|1||0101701234||{PATIENT_NAME}\r"
    )


@pytest.fixture
def outbox(site: Site) -> Outbox:
    """Exam 1's messages: one delivered, one refused by the RIS, one waiting an hour."""
    exam = site.exam(1, 4)
    store = site.store
    ids = [
        store.outbox.enqueue(control, exam, _er7(control), now=NOW - timedelta(hours=3 - n)).id
        for n, control in enumerate(("CTLDELIVERED", "CTLFAILED", "CTLQUEUED"))
    ]
    store.outbox.delivered(ids[0], NOW)
    store.outbox.claim_next(NOW)
    store.outbox.failed(ids[1], "unknown order <b>x</b>")
    return Outbox(*ids)


def _row(html: str, testid: str, **attributes: object) -> str:
    found = [
        row
        for row in re.findall(rf'<tr data-testid="{testid}"[^>]*>.*?</tr>', html, re.S)
        if all(f'data-{k}="{v}"' in row for k, v in attributes.items())
    ]
    assert len(found) == 1, found
    return found[0]


def test_the_admin_page_shows_outputs_and_the_outbox(site: Site, outbox: Outbox) -> None:
    good, bad = site.exam(2, 3), site.exam(3, 9)
    site.store.outputs.record(good, "sr", now=NOW, location="orthanc")
    site.store.outputs.record(bad, "sr", now=NOW)
    site.store.outputs.record(bad, "gsps", now=NOW - timedelta(minutes=5), error="disk full")
    site.store.outputs.record(bad, "gsps", now=NOW, error="PACS refused <C-STORE>")
    root, _ = site.login("root")
    html = root.get("/admin").text
    sr = _row(html, "output-count", output="sr")
    assert '"output-done">2<' in sr and '"output-failed">0<' in sr
    assert '"output-failed">1<' in _row(html, "output-count", output="gsps")
    failing = _row(html, "failing-output", exam=bad, output="gsps")
    assert "<td>2</td>" in failing and "PACS refused &lt;C-STORE&gt;" in failing
    counts = dict(re.findall(r'data-state="(\w+)"><strong>(\d+)</strong>', html))
    assert counts == {"queued": "1", "delivered": "1", "failed": "1"}
    assert 'data-testid="outbox-oldest">1 h 00 min<' in html
    failed = _row(html, "outbox-message", id=outbox.failed, state="failed")
    assert "CTLFAILED" in failed and "unknown order &lt;b&gt;x&lt;/b&gt;" in failed
    assert f'action="/ui/admin/outbox/{outbox.failed}/retry"' in failed
    queued = _row(html, "outbox-message", id=outbox.queued, state="queued")
    assert "/retry" not in queued
    assert "CTLDELIVERED" not in html  # delivered messages are only counted
    assert "Hansen" not in html and "PID|" not in html


def test_an_admin_retries_a_refused_message(site: Site, outbox: Outbox) -> None:
    root, csrf = site.login("root")
    answer = root.post(f"/ui/admin/outbox/{outbox.failed}/retry", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    message = site.store.outbox.get(outbox.failed)
    assert message is not None and message.state is OutboxState.QUEUED
    assert "HL7 message CTLFAILED queued again." in root.get("/admin").text
    with site.store.db.session() as session:
        ((actor, exam, detail),) = session.execute(
            select(AuditRow.actor, AuditRow.exam_public_id, AuditRow.detail).where(
                AuditRow.action == "hl7-result-requeued"
            )
        ).all()
    assert actor == "root" and exam == message.exam_public_id
    assert detail["control_id"] == "CTLFAILED"


def test_the_retry_needs_an_admin_the_csrf_token_and_a_failed_message(
    site: Site, outbox: Outbox
) -> None:
    root, csrf = site.login("root")
    url = f"/ui/admin/outbox/{outbox.failed}/retry"
    assert root.post(url, data={}).status_code == 403
    assert root.post(url, data={"csrf_token": "forged"}).status_code == 403
    anna, anna_csrf = site.login("anna")
    assert anna.post(url, data={"csrf_token": anna_csrf}).status_code == 403
    message = site.store.outbox.get(outbox.failed)
    assert message is not None and message.state is OutboxState.FAILED
    queued = root.post(f"/ui/admin/outbox/{outbox.queued}/retry", data={"csrf_token": csrf})
    assert queued.status_code == 409
    assert root.post("/ui/admin/outbox/999/retry", data={"csrf_token": csrf}).status_code == 404
