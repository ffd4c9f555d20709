"""The MLLP client against a real receiver in its own process (tests/mllp_peer.py, built on
hl7apy's MLLP server, validating each message): AA, AE then AA, AR, a hang, a closed
connection, nobody listening."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mammotriage.errors import ConfigError
from mammotriage.hl7.config import Hl7Mapping
from mammotriage.hl7.messages import Hl7Message, Order, Patient, ReadingResult, build_oru
from mammotriage.hl7.mllp import Delivery, MllpClient, Outcome, read_ack
from mammotriage.triage.policy import ReadingMode
from mllp_peer import PeerProcess
from mllp_peer import start_peer as start_peer_process

NOW = datetime(2026, 12, 2, 3, 30, tzinfo=timezone.utc)


@pytest.fixture
def start_peer(tmp_path: Path) -> Iterator[Callable[[str], PeerProcess]]:
    started: list[PeerProcess] = []

    def start(plan: str = "") -> PeerProcess:
        peer = start_peer_process(tmp_path / f"peer-{len(started)}.jsonl", plan)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


def client(peer: PeerProcess, read_timeout: float = 10.0) -> MllpClient:
    return MllpClient("127.0.0.1", peer.port, connect_timeout=5.0, read_timeout=read_timeout)


def message(accession: str = "ACC1") -> Hl7Message:
    result = ReadingResult(
        score=42.0,
        category=5,
        mode=ReadingMode.SINGLE,
        priority=False,
        model_name="m",
        model_sha256="ab" * 32,
        analysed_at=NOW,
    )
    return build_oru(
        Patient("0101701234", name="Jensen^Åse"),
        Order(accession_number=accession),
        result,
        Hl7Mapping(),
        now=NOW,
    )


def send(client: MllpClient, built: Hl7Message) -> Delivery:
    return client.send(built.er7, built.control_id, built.encoding)


def test_a_peer_that_accepts(start_peer: Callable[[str], PeerProcess]) -> None:
    peer = start_peer("AA")
    built = message()
    assert send(client(peer), built) == Delivery(Outcome.DELIVERED, ack_code="AA")
    (received,) = peer.received()
    assert received["valid"] is True, received["error"]
    assert received["control_id"] == built.control_id
    assert received["message"] == built.er7  # UTF-8 names arrive as sent


def test_ae_is_retried_then_delivered(start_peer: Callable[[str], PeerProcess]) -> None:
    peer = start_peer("AE,AA")
    built = message()
    first = send(client(peer), built)
    assert first.outcome is Outcome.RETRY
    assert first.ack_code == "AE"
    assert first.reason == "RIS busy, try later"
    assert send(client(peer), built) == Delivery(Outcome.DELIVERED, ack_code="AA")
    assert [r["control_id"] for r in peer.received()] == [built.control_id] * 2


def test_ar_is_rejected_with_its_reason(start_peer: Callable[[str], PeerProcess]) -> None:
    peer = start_peer("AR")
    delivery = send(client(peer), message())
    assert delivery == Delivery(Outcome.REJECTED, ack_code="AR", reason="unknown order")


def test_a_message_the_peer_cannot_validate_is_rejected(
    start_peer: Callable[[str], PeerProcess],
) -> None:
    peer = start_peer("AA")
    built = message()
    broken = built.er7.replace("|RE|", "||")  # ORC-1, required, left blank
    delivery = client(peer).send(broken, built.control_id)
    assert delivery.outcome is Outcome.REJECTED
    assert delivery.reason and "ORC" in delivery.reason
    (received,) = peer.received()
    assert received["valid"] is False


def test_a_peer_that_hangs_is_retried_later(start_peer: Callable[[str], PeerProcess]) -> None:
    peer = start_peer("HANG")
    delivery = send(client(peer, read_timeout=0.5), message())
    assert delivery == Delivery(Outcome.RETRY, reason="no ACK within 0.5 s")
    assert len(peer.received()) == 1  # it arrived; the same control id goes again later


def test_a_peer_that_closes_without_ack_is_retried(
    start_peer: Callable[[str], PeerProcess],
) -> None:
    peer = start_peer("CLOSE")
    delivery = send(client(peer), message())
    assert delivery.outcome is Outcome.RETRY
    assert delivery.reason == "the receiver closed the connection without ACK"


def test_nobody_listening_is_retried_later() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = send(MllpClient("127.0.0.1", port, connect_timeout=2.0), message())
    assert delivery.outcome is Outcome.RETRY
    assert delivery.reason is not None and "refused" in delivery.reason.lower()


def ack(code: str, control_id: str, *extra: str) -> str:
    return "\r".join(
        ["MSH|^~\\&|RIS||MT||20261202||ACK^R01^ACK|9|P|2.3", f"MSA|{code}|{control_id}", *extra]
    )


def test_the_ack_must_answer_this_message() -> None:
    assert read_ack(ack("AA", "OTHER"), "MINE").outcome is Outcome.RETRY
    assert read_ack(ack("AA", "MINE"), "MINE").outcome is Outcome.DELIVERED
    assert read_ack(ack("CA", "MINE"), "MINE").outcome is Outcome.DELIVERED
    assert read_ack("garbage", "MINE").outcome is Outcome.RETRY
    assert read_ack(ack("XX", "MINE"), "MINE").outcome is Outcome.RETRY


def test_the_reason_comes_from_msa_3_or_err() -> None:
    assert (
        read_ack(
            ack(
                "AR",
                "M",
            ),
            "M",
        ).reason
        == "AR without a reason"
    )
    assert read_ack(ack("AR", "M|Unknown patient"), "M").reason == "Unknown patient"
    assert read_ack(ack("AR", "M|Order A\\S\\1 \\T\\ B"), "M").reason == "Order A^1 & B"
    err_25 = "ERR|||204^Unknown key identifier^HL70357|E||||Order not found"
    assert read_ack(ack("AE", "M", err_25), "M").reason == "Order not found"
    err_23 = "ERR|OBR^1^3^103&Table value not found"
    assert read_ack(ack("AE", "M", err_23), "M").reason == "OBR 1 3 103&Table value not found"


def test_client_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="port"):
        MllpClient("ris", 0)
    with pytest.raises(ConfigError, match="read_timeout"):
        MllpClient("ris", 2575, read_timeout=0)
