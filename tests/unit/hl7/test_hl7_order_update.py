"""The order update (OMI^O23, ORM^O01): validates against HL7 v2.5.1 (hl7apy, strict; the
ORM's choice group read as a choice), the priority where each kind carries it, the order
numbers as in the result, accepted by a real MLLP receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_message
from pydantic import ValidationError as SettingsError
from pydicom.dataset import Dataset

from mammotriage.hl7.config import Hl7Mapping, Hl7Settings
from mammotriage.hl7.messages import (
    MessageError,
    Order,
    Patient,
    Procedure,
    build_order_update,
    validate_message,
)
from mammotriage.hl7.mllp import Delivery, MllpClient, Outcome
from mammotriage.hl7.study import order_of
from mllp_peer import PeerProcess, start_peer

NOW = datetime(2026, 12, 2, 3, 30, 15, tzinfo=timezone.utc)
PATIENT = Patient("0101701234", name="Hansen^Karen")
ORDER = Order(
    accession_number="ACC123",
    placer_order_number="PL-9",
    procedure=Procedure("MAMSCR", "Screening mammography", "99RIS"),
    study_datetime=datetime(2026, 12, 1, 9, 5, tzinfo=timezone.utc),
    study_instance_uid="1.2.826.0.1.3680043.9.7777.1",
    requested_procedure_id="RP-1",
    scheduled_procedure_step_id="SPS-1",
)


def parsed(er7: str) -> Message:
    """The message as an independent reader takes it: parsed strictly and validated."""
    message = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT)
    validate_message(message)
    return message


def fields(er7: str, name: str) -> list[str]:
    (segment,) = [s.split("|") for s in er7.split("\r") if s.startswith(name + "|")]
    return segment


def test_omi_o23_validates_and_carries_the_priority_in_tq1() -> None:
    stat = build_order_update(PATIENT, ORDER, True, Hl7Mapping(), kind="omi_o23", now=NOW)
    message = parsed(stat.er7)
    assert message.name == "OMI_O23" and message.version == "2.5.1"
    message.validate()  # no choice group: hl7apy's own validation passes as it is
    msh, orc, tq1 = (fields(stat.er7, n) for n in ("MSH", "ORC", "TQ1"))
    assert msh[8] == "OMI^O23^OMI_O23" and msh[9] == stat.control_id
    assert orc[1:4] == ["XO", "PL-9", "ACC123"] and orc[9] == "20261202033015+0000"
    assert tq1[1] == "1" and tq1[9] == "S^Stat^HL70485"
    obr = fields(stat.er7, "OBR")
    assert obr[1:5] == ["1", "PL-9", "ACC123", "MAMSCR^Screening mammography^99RIS"]
    assert obr[7] == "20261201090500+0000" and obr[18] == "ACC123"
    assert len(obr) < 28 or obr[27] == ""  # TQ1 carries the timing in v2.5.1
    ipc = fields(stat.er7, "IPC")
    assert ipc[1:6] == [
        "ACC123", "RP-1", "1.2.826.0.1.3680043.9.7777.1", "SPS-1", "MG^Mammography^DCM"
    ]  # fmt: skip
    routine = build_order_update(PATIENT, ORDER, False, Hl7Mapping(), kind="omi_o23", now=NOW)
    assert fields(routine.er7, "TQ1")[9] == "R^Routine^HL70485"


def test_omi_o23_needs_the_study_uid_and_sends_null_for_missing_ids() -> None:
    bare = Order(accession_number="ACC123", study_instance_uid="1.2.3")
    built = build_order_update(PATIENT, bare, False, Hl7Mapping(), kind="omi_o23", now=NOW)
    parsed(built.er7)
    assert fields(built.er7, "IPC")[1:5] == ["ACC123", '""', "1.2.3", '""']
    with pytest.raises(MessageError, match="Study Instance UID"):
        build_order_update(
            PATIENT, Order(accession_number="A"), True, Hl7Mapping(), kind="omi_o23", now=NOW
        )


def test_orm_o01_validates_and_carries_the_priority_in_obr_27() -> None:
    stat = build_order_update(PATIENT, ORDER, True, Hl7Mapping(), kind="orm_o01", now=NOW)
    message = parsed(stat.er7)
    assert message.name == "ORM_O01" and message.version == "2.5.1"
    msh, orc, obr = (fields(stat.er7, n) for n in ("MSH", "ORC", "OBR"))
    assert msh[8] == "ORM^O01^ORM_O01"
    assert orc[1:4] == ["XO", "PL-9", "ACC123"] and orc[7] == "^^^^^S"
    assert obr[1:4] == ["1", "PL-9", "ACC123"] and obr[18] == "ACC123"
    assert obr[27] == "^^^^^S"
    assert "TQ1|" not in stat.er7 and "IPC|" not in stat.er7
    routine = build_order_update(PATIENT, ORDER, False, Hl7Mapping(), kind="orm_o01", now=NOW)
    assert fields(routine.er7, "OBR")[27] == "^^^^^R"
    assert fields(routine.er7, "ORC")[7] == "^^^^^R"


def test_the_orm_choice_is_still_checked() -> None:
    """hl7apy requires every member of the ORM's choice; the validation used here requires
    exactly one, so an order detail with both an OBR and an RQD is still refused."""
    built = build_order_update(PATIENT, ORDER, True, Hl7Mapping(), kind="orm_o01", now=NOW)
    with pytest.raises(ValidationError, match="RQD"):
        parse_message(built.er7, validation_level=VALIDATION_LEVEL.STRICT).validate()
    both = built.er7 + "RQD|1\r"
    message = parse_message(both, validation_level=VALIDATION_LEVEL.STRICT)
    with pytest.raises(ValidationError, match="exactly one"):
        validate_message(message)


def test_an_order_update_needs_an_order_number_and_a_kind() -> None:
    with pytest.raises(MessageError, match="no accession number nor order number"):
        build_order_update(PATIENT, Order(), True, Hl7Mapping(), kind="orm_o01", now=NOW)
    with pytest.raises(MessageError, match="none"):
        build_order_update(PATIENT, ORDER, True, Hl7Mapping(), kind="none", now=NOW)


def test_the_order_update_is_off_unless_configured() -> None:
    assert Hl7Settings().order_update == "none"
    assert Hl7Settings(order_update="orm_o01").order_update == "orm_o01"
    with pytest.raises(SettingsError):
        Hl7Settings(order_update="orr_o02")  # type: ignore[arg-type]


def test_the_study_gives_the_ids_of_the_imaging_order() -> None:
    ds = Dataset()
    ds.AccessionNumber = "ACC123"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7777.1"
    request = Dataset()
    request.RequestedProcedureID = "RP-1"
    request.ScheduledProcedureStepID = "SPS-1"
    ds.RequestAttributesSequence = [request]
    order = order_of(ds, timezone.utc)
    assert order.study_instance_uid == "1.2.826.0.1.3680043.9.7777.1"
    assert (order.requested_procedure_id, order.scheduled_procedure_step_id) == ("RP-1", "SPS-1")


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[PeerProcess]:
    process = start_peer(tmp_path / "peer.jsonl", "AA,AA")
    yield process
    process.stop()


def test_a_real_receiver_accepts_both_kinds(peer: PeerProcess) -> None:
    client = MllpClient("127.0.0.1", peer.port, connect_timeout=5.0, read_timeout=10.0)
    sent = [
        build_order_update(PATIENT, ORDER, True, Hl7Mapping(), kind=kind, now=NOW)
        for kind in ("omi_o23", "orm_o01")
    ]
    for built in sent:
        delivery = client.send(built.er7, built.control_id, built.encoding)
        assert delivery == Delivery(Outcome.DELIVERED, ack_code="AA")
    received = peer.received()
    assert [r["control_id"] for r in received] == [b.control_id for b in sent]
    assert all(r["valid"] for r in received), received
