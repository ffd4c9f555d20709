"""The worker's HL7 output against a real MLLP listener process (tests/mllp_peer.py), which
validates every message against v2.5.1 and answers as each test plans.

Each scored exam's ORU^R01 is written to the outbox in the transaction that stores its
decision, and a sender thread delivers the outbox in order: a RIS that is down keeps the
messages waiting, a worker killed after the commit delivers them after its restart, nothing
is sent twice after an ACK, and a rescore sends a correction (``C``) after the first (``F``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import pydicom
import pytest

from mammotriage.worklist import JobStatus, Store
from mammotriage.worklist.models import OutboxState, OutputState
from mllp_peer import er7_field, start_peer
from worker_helpers import build, copy_exams, folder_settings, hold_back_last_view, run_once


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hl7(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "hl7": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": port,
            "connect_timeout_seconds": 2,
            "read_timeout_seconds": 60,  # the peer validates with hl7apy: slow on a loaded machine
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
            "timezone": "Europe/Copenhagen",
            **extra,
        }
    }


@pytest.fixture
def peer_port():
    return _free_port()


def test_results_wait_while_the_ris_is_down_and_go_once_in_order_when_it_is_back(
    tmp_path, tiny_synthetic, peer_port
):
    settings = folder_settings(tmp_path, outputs=_hl7(peer_port))
    copy_exams(tiny_synthetic, settings.source.path, 3)
    worker = build(settings)
    summary = run_once(worker)  # nothing listens on the port: the RIS is down
    queued = worker.store.outbox.messages()
    assert len(queued) == 3 and summary.hl7_waiting == 3
    assert {m.state for m in queued} == {OutboxState.QUEUED}
    assert all(m.attempts >= 1 and m.last_error for m in queued[:1])
    for exam in worker.store.exams.all():  # each exam's result went into the outbox with it
        (hl7,) = [o for o in worker.store.outputs.for_exam(exam.public_id) if o.output == "hl7"]
        assert hl7.state is OutputState.DONE
        assert hl7.location is not None and hl7.location.startswith("outbox ")
    assert 'mammotriage_hl7_outbox_messages{state="queued"} 3.0' in worker.metrics.text()

    peer = start_peer(tmp_path / "received.jsonl", port=peer_port)
    try:
        # The RIS is back; the head of the queue waits out its backoff (a fraction of a
        # second here) before it is due again: a peer that starts faster than that would
        # find the next round with nothing due.
        due = max(m.next_attempt_at for m in worker.store.outbox.messages() if m.next_attempt_at)
        time.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()) + 0.05)
        summary = run_once(worker)  # no new study: the sender delivers what waited
        assert summary.jobs == 0 and summary.hl7_waiting == 0
        received = peer.received()
        assert [r["control_id"] for r in received] == [m.control_id for m in queued]
        assert all(r["valid"] and r["answer"] == "AA" for r in received), received
        for r in received:
            er7 = str(r["message"])
            assert er7_field(er7, "MSH", 9) == "ORU^R01^ORU_R01"
            assert er7_field(er7, "MSH", 12) == "2.5.1"
            assert er7_field(er7, "OBR", 25) == "F"
            # The packaged model is a demonstration model: the RIS is told so.
            assert "not for clinical use" in er7_field(er7, "NTE", 3)
        delivered = worker.store.outbox.messages()
        assert {m.state for m in delivered} == {OutboxState.DELIVERED}
        assert all(m.er7 is None for m in delivered)  # the patient's data leaves the store
        run_once(worker)
        assert len(peer.received()) == 3  # never sent again after its ACK
        assert 'mammotriage_hl7_outbox_messages{state="delivered"} 3.0' in worker.metrics.text()
    finally:
        peer.stop()


def test_a_rescore_sends_a_corrected_result_after_the_first(tmp_path, tiny_synthetic, peer_port):
    settings = folder_settings(tmp_path, outputs=_hl7(peer_port))
    (exam_dir,) = copy_exams(tiny_synthetic, settings.source.path, 1)
    late_view_arrives = hold_back_last_view(exam_dir, tmp_path)
    peer = start_peer(tmp_path / "received.jsonl", port=peer_port)
    try:
        worker = build(settings)
        run_once(worker)
        late_view_arrives()  # the late view arrives: the study is scored again
        run_once(worker)
        first, second = peer.received()
    finally:
        peer.stop()
    assert first["valid"] and second["valid"]
    assert first["control_id"] != second["control_id"]
    assert er7_field(str(first["message"]), "OBR", 25) == "F"
    assert er7_field(str(second["message"]), "OBR", 25) == "C"
    assert {
        line.split("|")[11] for line in str(second["message"]).split("\r") if line.startswith("OBX")
    } == {"C"}
    # Tied to the same order both times.
    assert er7_field(str(first["message"]), "OBR", 18) == er7_field(
        str(second["message"]), "OBR", 18
    )


def test_the_order_update_follows_the_result_when_the_site_asks(
    tmp_path, tiny_synthetic, peer_port
):
    settings = folder_settings(tmp_path, outputs=_hl7(peer_port, order_update="omi_o23"))
    copy_exams(tiny_synthetic, settings.source.path, 1)
    peer = start_peer(tmp_path / "received.jsonl", port=peer_port)
    try:
        worker = build(settings)
        run_once(worker)
        result, update = peer.received()
    finally:
        peer.stop()
    assert result["valid"] and update["valid"]
    assert er7_field(str(result["message"]), "MSH", 9).startswith("ORU^R01")
    assert er7_field(str(update["message"]), "MSH", 9).startswith("OMI^O23")
    (exam,) = worker.store.exams.all()
    expected = "S" if exam.priority else "R"
    assert er7_field(str(update["message"]), "TQ1", 9).split("^")[0] == expected


def test_a_worker_killed_after_the_commit_delivers_the_result_after_its_restart(
    tmp_path, tiny_synthetic, peer_port
):
    settings = folder_settings(tmp_path, outputs=_hl7(peer_port), log_format="json")
    copy_exams(tiny_synthetic, settings.source.path, 1)
    config = tmp_path / "worker.yaml"
    config.write_text(json.dumps(json.loads(settings.model_dump_json())), encoding="utf-8")
    command = [sys.executable, "-m", "mammotriage", "worker", "--once", "--config", str(config)]
    crash = {
        **os.environ,
        "MAMMOTRIAGE_TEST_CRASH_POINTS": "1",
        "MAMMOTRIAGE_CRASH_AT": "after-exam-stored",
    }
    killed = subprocess.run(command, env=crash, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = Store(settings.database)
    try:
        # Killed after the decision's commit, before any send reached a RIS: the result
        # is in the outbox with it.
        (message,) = store.outbox.messages()
        assert message.state is OutboxState.QUEUED
        assert [e.mode is not None for e in store.exams.all()] == [True]
        peer = start_peer(tmp_path / "received.jsonl", port=peer_port)
        try:
            plain = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOTRIAGE_")}
            done = subprocess.run(command, env=plain, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            received = peer.received()
        finally:
            peer.stop()
        assert [r["control_id"] for r in received] == [message.control_id]
        assert received[0]["valid"]
        (after,) = store.outbox.messages()
        assert after.state is OutboxState.DELIVERED
        assert [j.status for j in store.jobs.all()] == [JobStatus.DONE]
    finally:
        store.close()


def test_a_study_the_ris_cannot_tie_to_an_order_keeps_its_decision_and_says_why(
    tmp_path, tiny_synthetic, peer_port
):
    settings = folder_settings(tmp_path, outputs=_hl7(peer_port))
    (exam_dir,) = copy_exams(tiny_synthetic, settings.source.path, 1)
    for path in exam_dir.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.AccessionNumber = ""
        ds.save_as(path)
    worker = build(settings)
    summary = run_once(worker)
    assert summary.failed == 0 and summary.retried == 0  # retrying could not help
    (exam,) = worker.store.exams.all()
    assert exam.mode is not None and exam.report_sop_instance_uid is not None
    assert worker.store.outbox.messages() == []
    (failing,) = worker.store.outputs.failing()
    assert (failing.output, failing.exam_public_id) == ("hl7", exam.public_id)
    assert "no accession number nor order number" in (failing.last_error or "")
