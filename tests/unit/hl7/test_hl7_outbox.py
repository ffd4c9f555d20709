"""The HL7 outbox on SQLite and PostgreSQL: idempotent by control id, claimed in creation
order one at a time, delivered / retried with backoff / failed, and delivered in order to a
real MLLP peer that was down and came back."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from mammotriage.hl7.config import Hl7Mapping
from mammotriage.hl7.messages import Hl7Message, Order, Patient, ReadingResult, build_oru
from mammotriage.hl7.mllp import Delivery, MllpClient, Outcome
from mammotriage.triage.policy import ReadingMode
from mammotriage.worklist import Store
from mammotriage.worklist.models import AuditRow, OutboxState
from mammotriage.worklist.outbox import OutboxBackoff, deliver_due
from mllp_peer import start_peer

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
EXAM = uuid.UUID("00000000-0000-4000-8000-000000000001")


def er7(control_id: str) -> str:
    return f"MSH|^~\\&|MT||RIS||20261202||ORU^R01^ORU_R01|{control_id}|P|2.5.1||||||UNICODE UTF-8\r"


@dataclass
class ScriptedSender:
    """Answers each send with the next outcome of ``plan`` (AA past its end); records what
    it was given."""

    plan: list[Outcome]
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, er7: str, control_id: str, encoding: str = "utf-8") -> Delivery:
        self.sent.append((control_id, encoding))
        outcome = self.plan.pop(0) if self.plan else Outcome.DELIVERED
        reason = {Outcome.RETRY: "RIS busy", Outcome.REJECTED: "unknown order"}.get(outcome)
        return Delivery(outcome, reason=reason)


def test_enqueue_is_idempotent_by_control_id(store: Store) -> None:
    first = store.outbox.enqueue("C1", EXAM, er7("C1"), now=NOW)
    again = store.outbox.enqueue("C1", EXAM, "something else", now=NOW + timedelta(seconds=1))
    assert again == first
    assert [m.control_id for m in store.outbox.messages()] == ["C1"]
    assert first.state is OutboxState.QUEUED and first.attempts == 0


def test_only_the_oldest_is_claimed_and_only_once(store: Store) -> None:
    for i, control_id in enumerate(("C1", "C2")):
        store.outbox.enqueue(control_id, EXAM, er7(control_id), now=NOW + timedelta(seconds=i))
    claimed = store.outbox.claim_next(NOW)
    assert claimed is not None and claimed.control_id == "C1" and claimed.attempts == 1
    # Held by that sender: neither it nor the one after it goes to another.
    assert store.outbox.claim_next(NOW) is None
    store.outbox.delivered(claimed.id, NOW)
    after = store.outbox.claim_next(NOW)
    assert after is not None and after.control_id == "C2"


def test_a_retried_message_keeps_its_place(store: Store) -> None:
    for i, control_id in enumerate(("C1", "C2")):
        store.outbox.enqueue(control_id, EXAM, er7(control_id), now=NOW + timedelta(seconds=i))
    head = store.outbox.claim_next(NOW)
    assert head is not None
    store.outbox.retry(head.id, "RIS down", NOW + timedelta(seconds=30))
    assert store.outbox.claim_next(NOW + timedelta(seconds=29)) is None
    again = store.outbox.claim_next(NOW + timedelta(seconds=30))
    assert again is not None and again.control_id == "C1" and again.attempts == 2
    assert again.last_error == "RIS down"


def test_delivered_and_failed(store: Store) -> None:
    a = store.outbox.enqueue("C1", EXAM, er7("C1"), now=NOW)
    b = store.outbox.enqueue("C2", EXAM, er7("C2"), now=NOW + timedelta(seconds=1))
    store.outbox.delivered(a.id, NOW)
    store.outbox.failed(b.id, "unknown order")
    delivered, failed = store.outbox.get(a.id), store.outbox.get(b.id)
    assert delivered is not None and delivered.state is OutboxState.DELIVERED
    assert delivered.delivered_at == NOW and delivered.er7 is None  # no patient id kept
    assert failed is not None and failed.state is OutboxState.FAILED
    assert failed.last_error == "unknown order" and failed.er7 == er7("C2")
    assert store.outbox.claim_next(NOW + timedelta(days=1)) is None
    with store.db.session() as session:
        audit = session.execute(select(AuditRow).order_by(AuditRow.id)).scalars().all()
        lines = [(r.action, r.exam_public_id, r.detail["control_id"]) for r in audit]
    assert lines == [("hl7-result-delivered", EXAM, "C1"), ("hl7-result-rejected", EXAM, "C2")]
    assert store.outbox.counts() == {
        OutboxState.QUEUED: 0,
        OutboxState.DELIVERED: 1,
        OutboxState.FAILED: 1,
    }
    assert store.outbox.requeue(b.id) is True
    assert store.outbox.requeue(a.id) is False
    requeued = store.outbox.claim_next(NOW)
    assert requeued is not None and requeued.control_id == "C2"


def test_deliver_due_sends_in_order_and_stops_at_a_retry(store: Store) -> None:
    for i in range(4):
        store.outbox.enqueue(f"C{i}", EXAM, er7(f"C{i}"), now=NOW + timedelta(seconds=i))
    sender = ScriptedSender([Outcome.DELIVERED, Outcome.REJECTED, Outcome.RETRY])
    backoff = OutboxBackoff(base=timedelta(seconds=10), cap=timedelta(seconds=60))
    first = deliver_due(store.outbox, sender, NOW, backoff=backoff)
    assert (first.delivered, first.failed, first.waiting) == (1, 1, True)
    assert [c for c, _ in sender.sent] == ["C0", "C1", "C2"]
    assert sender.sent[0][1] == "utf-8"
    # Before the backoff is over nothing goes, C3 included.
    assert (
        deliver_due(store.outbox, sender, NOW + timedelta(seconds=9), backoff=backoff).delivered
        == 0
    )
    later = deliver_due(store.outbox, sender, NOW + timedelta(seconds=10), backoff=backoff)
    assert (later.delivered, later.waiting) == (2, False)
    assert [c for c, _ in sender.sent] == ["C0", "C1", "C2", "C2", "C3"]
    states = {m.control_id: m.state for m in store.outbox.messages()}
    assert states == {
        "C0": OutboxState.DELIVERED,
        "C1": OutboxState.FAILED,
        "C2": OutboxState.DELIVERED,
        "C3": OutboxState.DELIVERED,
    }
    assert store.outbox.oldest_queued_at() is None


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = OutboxBackoff(base=timedelta(seconds=5), cap=timedelta(seconds=30))
    assert [backoff.delay(n).total_seconds() for n in (1, 2, 3, 4, 50)] == [5, 10, 20, 30, 30]


def test_a_peer_down_then_up_gets_every_message_once_in_order(store: Store, tmp_path: Path) -> None:
    """The RIS is down while three results (a rescore's C after its F among them) are
    queued; once it is back they arrive in order, each once, each validating."""
    built = [
        oru(accession="A1", correction=False),
        oru(accession="A2", correction=False),
        oru(accession="A1", correction=True),
    ]
    for i, message in enumerate(built):
        store.outbox.enqueue(message.control_id, EXAM, message.er7, now=NOW + timedelta(seconds=i))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = MllpClient("127.0.0.1", port, connect_timeout=5.0, read_timeout=10.0)
    down = deliver_due(store.outbox, client, NOW)
    assert (down.delivered, down.waiting) == (0, True)
    head = store.outbox.messages()[0]
    assert head.attempts == 1 and head.last_error and "refused" in head.last_error.lower()

    peer = start_peer(tmp_path / "peer.jsonl", "AE,AA", port=port)
    try:
        # The RIS is back but busy (AE) at first: the round stops, nothing overtakes.
        busy = deliver_due(store.outbox, client, NOW + timedelta(minutes=60))
        assert (busy.delivered, busy.waiting) == (0, True)
        back = deliver_due(store.outbox, client, NOW + timedelta(minutes=61))
        assert (back.delivered, back.waiting) == (3, False)
        received = peer.received()
    finally:
        peer.stop()
    assert all(r["valid"] for r in received), [r["error"] for r in received]
    control_ids = [m.control_id for m in built]
    assert [r["control_id"] for r in received] == [control_ids[0], *control_ids]
    assert [r["answer"] for r in received] == ["AE", "AA", "AA", "AA"]
    statuses = [
        str(r["message"]).split("\rOBR|")[1].split("\r")[0].split("|")[24] for r in received[1:]
    ]
    assert statuses == ["F", "F", "C"]
    assert {m.state for m in store.outbox.messages()} == {OutboxState.DELIVERED}
    # Delivered is delivered: another round sends nothing again.
    assert deliver_due(store.outbox, client, NOW + timedelta(days=1)).delivered == 0


def oru(accession: str, correction: bool) -> Hl7Message:
    result = ReadingResult(
        score=80.0,
        category=10,
        mode=ReadingMode.DOUBLE,
        priority=True,
        model_name="m",
        model_sha256="cd" * 32,
        analysed_at=NOW,
        correction=correction,
    )
    return build_oru(
        Patient("0101701234"), Order(accession_number=accession), result, Hl7Mapping(), now=NOW
    )


def test_a_message_commits_with_the_callers_transaction_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError), store.db.session() as session:
        store.outbox.enqueue_in(session, "C1", EXAM, er7("C1"), now=NOW)
        raise RuntimeError("the exam's decision failed")
    assert store.outbox.messages() == []
    with store.db.session() as session:
        store.outbox.enqueue_in(session, "C1", EXAM, er7("C1"), now=NOW)
    assert [m.control_id for m in store.outbox.messages()] == ["C1"]


def test_two_senders_at_once_never_both_hold_the_head(store: Store) -> None:
    store.outbox.enqueue("C1", EXAM, er7("C1"), now=NOW)
    store.outbox.enqueue("C2", EXAM, er7("C2"), now=NOW + timedelta(seconds=1))
    barrier = threading.Barrier(4)
    claimed: list[str | None] = []

    def sender() -> None:
        barrier.wait()
        message = store.outbox.claim_next(NOW)
        claimed.append(None if message is None else message.control_id)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed, key=str) == ["C1", None, None, None]
