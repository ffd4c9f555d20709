"""``mammotriage outbox list | retry`` on a real SQLite store: the list names exams by
internal id only and never prints a message's text; retry requeues FAILED messages, each
audited as ``cli``; an id that is not FAILED or not there is a one-line error, exit 1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner, Result

from api_site import STUDY_ROOT, add_exam
from mammotriage.cli import app
from mammotriage.worklist import Store
from mammotriage.worklist.models import AuditRow, OutboxState

NOW = datetime(2026, 12, 2, 3, 30, tzinfo=timezone.utc)
PATIENT_NAME = "Hansen^Karen"


@dataclass
class Outbox:
    database: Path
    exam: uuid.UUID
    delivered: int
    failed: int
    queued: int


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """One exam's messages: one delivered, one refused by the RIS, one waiting."""
    database = tmp_path / "var" / "mt.sqlite"
    database.parent.mkdir()
    store = Store(str(database))
    store.migrate()
    exam = add_exam(store, f"{STUDY_ROOT}.1", 7, NOW - timedelta(hours=1))
    er7 = "MSH|^~\\&|MAMMOTRIAGE||RIS||x||ORU^R01^ORU_R01|{}|P|2.5.1\r"
    er7 += f"PID|1||0||{PATIENT_NAME}\r"
    ids = []
    for n, control in enumerate(("CTLDELIVERED", "CTLFAILED", "CTLQUEUED")):
        message = store.outbox.enqueue(control, exam, er7.format(control), now=NOW + timedelta(n))
        ids.append(message.id)
    store.outbox.delivered(ids[0], NOW)
    store.outbox.claim_next(NOW + timedelta(days=1))
    store.outbox.failed(ids[1], "AR: unknown order [red]x[/red]")
    store.close()
    yield Outbox(database, exam, *ids)


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["outbox", *args])


def _state(outbox: Outbox, message_id: int) -> OutboxState:
    store = Store(str(outbox.database))
    try:
        message = store.outbox.get(message_id)
        assert message is not None
        return message.state
    finally:
        store.close()


def test_list_shows_each_message_by_internal_id_and_never_its_text(
    outbox: Outbox, tmp_path: Path
) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text(
        yaml.safe_dump(
            {"database": "var/mt.sqlite", "source": {"kind": "folder", "path": str(tmp_path)}}
        )
    )
    listed = run("list", "--config", str(config))
    assert listed.exit_code == 0, listed.output
    assert "1 queued, 1 delivered, 1 failed" in listed.stdout
    for control in ("CTLDELIVERED", "CTLFAILED", "CTLQUEUED"):
        assert control in listed.stdout
    assert str(outbox.exam) in listed.stdout
    assert "AR: unknown order [red]x[/red]" in listed.stdout  # the reason, as the RIS said it
    assert PATIENT_NAME not in listed.output and "PID|" not in listed.output
    failed = run("list", "--state", "failed", "--database", str(outbox.database))
    assert failed.exit_code == 0, failed.output
    assert "CTLFAILED" in failed.stdout and "CTLQUEUED" not in failed.stdout
    row = next(line for line in failed.stdout.splitlines() if "CTLFAILED" in line)
    assert f" {outbox.failed} " in row and "failed" in row


def test_retry_requeues_a_failed_message_and_audits_it(outbox: Outbox) -> None:
    retried = run("retry", str(outbox.failed), "--database", str(outbox.database))
    assert retried.exit_code == 0, retried.output
    assert _state(outbox, outbox.failed) is OutboxState.QUEUED
    store = Store(str(outbox.database))
    try:
        with store.db.session() as session:
            rows = session.execute(
                select(AuditRow.actor, AuditRow.exam_public_id, AuditRow.detail).where(
                    AuditRow.action == "hl7-result-requeued"
                )
            ).all()
    finally:
        store.close()
    ((actor, exam, detail),) = rows
    assert actor == "cli" and exam == outbox.exam
    assert detail["control_id"] == "CTLFAILED" and "os_user" in detail


def test_retry_refuses_a_message_that_is_not_failed_or_not_there(outbox: Outbox) -> None:
    queued = run("retry", str(outbox.queued), "--database", str(outbox.database))
    assert queued.exit_code == 1
    assert f"outbox message {outbox.queued} is queued, not failed" in queued.output
    assert len(queued.output.strip().splitlines()) == 1
    missing = run("retry", "999", str(outbox.failed), "--database", str(outbox.database))
    assert missing.exit_code == 1 and "no outbox message 999" in missing.output
    assert _state(outbox, outbox.failed) is OutboxState.QUEUED  # the good one still went
    assert _state(outbox, outbox.delivered) is OutboxState.DELIVERED


def test_retry_all_failed(outbox: Outbox) -> None:
    retried = run("retry", "--all-failed", "--database", str(outbox.database))
    assert retried.exit_code == 0, retried.output
    assert _state(outbox, outbox.failed) is OutboxState.QUEUED
    again = run("retry", "--all-failed", "--database", str(outbox.database))
    assert again.exit_code == 0 and "no failed messages" in again.output


def test_usage_errors_exit_2(outbox: Outbox, tmp_path: Path) -> None:
    assert run("retry", "--database", str(outbox.database)).exit_code == 2  # nothing named
    nowhere = run("list", "--database", str(tmp_path / "nowhere.sqlite"))
    assert nowhere.exit_code == 2 and "no worklist database" in nowhere.output
    assert not (tmp_path / "nowhere.sqlite").exists()


def test_show_queues_prints_outputs_and_the_outbox_by_internal_id(outbox: Outbox) -> None:
    from rich.console import Console

    from mammotriage.cli.worker import _print_outputs

    store = Store(str(outbox.database))
    try:
        store.outputs.record(outbox.exam, "sr", now=NOW)
        store.outputs.record(outbox.exam, "gsps", now=NOW, error="PACS refused [bold]it[/bold]")
        out = Console(width=200, record=True)
        _print_outputs(store, out, NOW + timedelta(days=2, hours=1))
    finally:
        store.close()
    text = out.export_text()
    assert "outputs" in text and str(outbox.exam) in text
    row = next(line for line in text.splitlines() if "gsps" in line and str(outbox.exam) in line)
    assert "PACS refused [bold]it[/bold]" in row
    # the queued message was written on NOW + 2 days
    assert "HL7 outbox: 1 queued, 1 delivered, 1 failed, oldest queued 1 h 00 min ago" in text
    assert PATIENT_NAME not in text
