"""The ORU^R01 result message: validates against HL7 v2.5.1 (hl7apy, strict), every value
in its field, F or C, the site's mapping obeyed, study values escaped."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message
from hl7apy.v2_5_1.segments import SEGMENTS
from pydantic import ValidationError

from mammotriage.hl7.config import CharacterSet, Hl7Mapping, Hl7Settings, PatientField
from mammotriage.hl7.messages import (
    MessageError,
    Order,
    Patient,
    Procedure,
    ReadingResult,
    build_oru,
)
from mammotriage.triage.policy import ReadingMode

NOW = datetime(2026, 12, 2, 3, 30, 15, tzinfo=timezone.utc)
SHA = "0123456789abcdef" * 4
PATIENT = Patient("0101701234", name="Hansen^Karen^Marie", birth_date=date(1970, 1, 1), sex="F")
ORDER = Order(
    accession_number="ACC123", study_datetime=datetime(2026, 12, 1, 9, 5, tzinfo=timezone.utc)
)
RESULT = ReadingResult(
    score=61.25,
    category=7,
    mode=ReadingMode.DOUBLE,
    priority=False,
    model_name="mammotriage-synthetic-tiny",
    model_sha256=SHA,
    analysed_at=datetime(2026, 12, 2, 3, 30, tzinfo=timezone.utc),
    left_breast_score=61.25,
    right_breast_score=3.5,
)


def parsed(er7: str) -> Message:
    """The message as an independent reader takes it: parsed and validated strictly."""
    message = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT)
    assert message.validate() is True
    return message


def segments(er7: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in er7.split("\r") if s.startswith(name + "|")]


def observations(er7: str) -> dict[str, list[str]]:
    """OBX rows by their OBX-3 code."""
    return {obx[3].split("^")[0]: obx for obx in segments(er7, "OBX")}


def test_the_oru_validates_against_2_5_1() -> None:
    built = build_oru(PATIENT, ORDER, RESULT, Hl7Mapping(), now=NOW)
    message = parsed(built.er7)
    assert message.name == "ORU_R01"
    assert message.version == "2.5.1"
    assert built.er7.endswith("\r")
    assert built.encoding == "utf-8"


def test_every_value_is_in_its_field() -> None:
    mapping = Hl7Mapping(
        sending_application="MT",
        sending_facility="RH",
        receiving_application="RIS-X",
        receiving_facility="HGH",
        patient_id_authority="CPR",
        patient_id_type="NNDNK",
    )
    order = Order(
        accession_number="ACC123",
        placer_order_number="P-9",
        filler_order_number="F-7",
        procedure=Procedure("RPMG1", "Mammografi screening", "99RH"),
        study_datetime=datetime(2026, 12, 1, 9, 5, tzinfo=timezone.utc),
    )
    built = build_oru(PATIENT, order, RESULT, mapping, now=NOW, control_id="CTRL1")
    er7 = built.er7
    (msh,) = segments(er7, "MSH")
    assert msh[2:7] == ["MT", "RH", "RIS-X", "HGH", "20261202033015+0000"]
    assert msh[8:12] == ["ORU^R01^ORU_R01", "CTRL1", "P", "2.5.1"]
    assert msh[17] == "UNICODE UTF-8"
    (pid,) = segments(er7, "PID")
    assert pid[3] == "0101701234^^^CPR^NNDNK"
    assert pid[5] == "Hansen^Karen^Marie"
    (orc,) = segments(er7, "ORC")
    assert orc[1:4] == ["RE", "P-9", "F-7"]
    (obr,) = segments(er7, "OBR")
    assert obr[2:5] == ["P-9", "F-7", "RPMG1^Mammografi screening^99RH"]
    assert obr[7] == "20261201090500+0000"
    assert obr[18] == "ACC123"
    assert obr[22] == "20261202033000+0000"
    assert obr[25] == "F"
    rows = observations(er7)
    assert list(rows) == [
        "MMT-SCORE",
        "MMT-CATEGORY",
        "MMT-READING",
        "MMT-PRIORITY",
        "MMT-SCORE-L",
        "MMT-SCORE-R",
    ]
    assert [r[1] for r in rows.values()] == ["1", "2", "3", "4", "5", "6"]
    assert rows["MMT-SCORE"][2:6] == ["NM", "MMT-SCORE^AI exam score (0-100)^99MMT", "", "61.25"]
    assert rows["MMT-CATEGORY"][2] == "NM" and rows["MMT-CATEGORY"][5] == "7"
    assert rows["MMT-READING"][2] == "CWE"
    assert rows["MMT-READING"][5] == "DOUBLE^Double reading^99MMT"
    assert rows["MMT-PRIORITY"][5] == "N^No^HL70136"
    assert rows["MMT-SCORE-L"][5] == "61.25"
    assert rows["MMT-SCORE-R"][5] == "3.50"
    for row in rows.values():
        assert row[11] == "F"
        assert row[18] == f"mammotriage-synthetic-tiny~{SHA}^SHA256"
        assert row[19] == "20261202033000+0000"
    assert not segments(er7, "PV1")
    parsed(er7)


def test_a_rescore_is_a_correction() -> None:
    corrected = ReadingResult(**{**RESULT.__dict__, "correction": True, "priority": True})
    er7 = build_oru(PATIENT, ORDER, corrected, Hl7Mapping(), now=NOW).er7
    parsed(er7)
    assert segments(er7, "OBR")[0][25] == "C"
    rows = observations(er7)
    assert {row[11] for row in rows.values()} == {"C"}
    assert rows["MMT-PRIORITY"][5] == "Y^Yes^HL70136"


def test_a_demonstration_model_says_so_after_the_order() -> None:
    plain = build_oru(PATIENT, ORDER, RESULT, Hl7Mapping(), now=NOW).er7
    assert not segments(plain, "NTE")
    demo = ReadingResult(**{**RESULT.__dict__, "demonstration": True})
    er7 = build_oru(PATIENT, ORDER, demo, Hl7Mapping(), now=NOW).er7
    parsed(er7)
    (note,) = segments(er7, "NTE")
    assert "demonstration model" in note[3] and "not for clinical use" in note[3]
    names = [line.split("|")[0] for line in er7.split("\r") if line]
    assert names.index("NTE") == names.index("OBR") + 1  # the note belongs to the order


def test_no_required_field_is_left_blank() -> None:
    """Each field v2.5.1 requires in the segments sent holds a value (not just a place)."""
    mapping = Hl7Mapping(visit_patient_class="O")
    minimal = Patient("123")
    er7 = build_oru(minimal, Order(accession_number="A1"), RESULT, mapping, now=NOW).er7
    parsed(er7)
    for segment in er7.strip("\r").split("\r"):
        name, fields = segment[:3], segment.split("|")
        required = [int(child[0].split("_")[1]) for child in SEGMENTS[name][1] if child[2][0] >= 1]
        assert required, name
        for number in required:
            index = number - 1 if name == "MSH" else number  # MSH-1 is the separator itself
            assert index < len(fields) and fields[index], f"{name}-{number} is blank"


def test_patient_fields_go_only_when_the_site_says() -> None:
    default = build_oru(PATIENT, ORDER, RESULT, Hl7Mapping(), now=NOW).er7
    (pid,) = segments(default, "PID")
    assert pid[3] == "0101701234"
    assert pid[5] == "Hansen^Karen^Marie"
    assert len(pid) <= 7 or not any(pid[7:])
    everything = Hl7Mapping(patient_fields=tuple(PatientField))
    (pid,) = segments(build_oru(PATIENT, ORDER, RESULT, everything, now=NOW).er7, "PID")
    assert pid[7:9] == ["19700101", "F"]
    nothing = Hl7Mapping(patient_fields=())
    er7 = build_oru(PATIENT, ORDER, RESULT, nothing, now=NOW).er7
    parsed(er7)
    (pid,) = segments(er7, "PID")
    assert pid[5] == '""'
    assert "Hansen" not in er7


def test_a_visit_only_when_configured() -> None:
    er7 = build_oru(PATIENT, ORDER, RESULT, Hl7Mapping(visit_patient_class="O"), now=NOW).er7
    parsed(er7)
    (pv1,) = segments(er7, "PV1")
    assert pv1[1:3] == ["1", "O"]


def test_the_accession_number_ties_the_result_to_the_order() -> None:
    er7 = build_oru(PATIENT, Order(accession_number="ACC9"), RESULT, Hl7Mapping(), now=NOW).er7
    (obr,) = segments(er7, "OBR")
    assert obr[2] == "" and obr[3] == "ACC9" and obr[18] == "ACC9"
    assert obr[4] == "24606-6^MG Breast Screening^LN"
    not_filler = Hl7Mapping(accession_as_filler_order_number=False)
    with pytest.raises(MessageError, match="no accession number nor order number"):
        build_oru(PATIENT, Order(accession_number="ACC9"), RESULT, not_filler, now=NOW)
    with pytest.raises(MessageError, match="no accession number nor order number"):
        build_oru(PATIENT, Order(), RESULT, Hl7Mapping(), now=NOW)


def test_an_unscored_exam_sends_its_reading_but_no_score() -> None:
    unscored = ReadingResult(
        score=None,
        category=None,
        mode=ReadingMode.DOUBLE,
        priority=False,
        model_name="m",
        model_sha256=SHA,
        analysed_at=NOW,
    )
    er7 = build_oru(PATIENT, ORDER, unscored, Hl7Mapping(), now=NOW).er7
    parsed(er7)
    assert list(observations(er7)) == ["MMT-READING", "MMT-PRIORITY"]


def test_delimiters_in_study_values_stay_values() -> None:
    patient = Patient("12|34", name="O^Brien & Sons~X\\Y^Ann")
    order = Order(accession_number="A^1")
    er7 = build_oru(patient, order, RESULT, Hl7Mapping(), now=NOW).er7
    message = parsed(er7)
    pid = message.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_3.cx_1.value == "12\\F\\34"
    assert pid.pid_5.xpn_1.to_er7() == "O"
    assert pid.pid_5.xpn_2.to_er7() == "Brien \\T\\ Sons\\R\\X\\E\\Y"
    assert pid.pid_5.xpn_3.to_er7() == "Ann"
    (obr,) = segments(er7, "OBR")
    assert obr[3] == "A\\S\\1"


def test_control_ids_are_unique_and_fit_msh_10() -> None:
    ids = {build_oru(PATIENT, ORDER, RESULT, Hl7Mapping(), now=NOW).control_id for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 20 and i.isalnum() for i in ids)


def test_the_mapping_refuses_delimiters_and_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        Hl7Mapping(sending_application="A|B")
    with pytest.raises(ValidationError):
        Hl7Mapping(coding_system="my codes")
    with pytest.raises(ValidationError):
        Hl7Mapping.model_validate({"sending_app": "X"})


def test_bad_results_are_refused() -> None:
    with pytest.raises(MessageError, match="score"):
        ReadingResult(**{**RESULT.__dict__, "score": 101.0})
    with pytest.raises(MessageError, match="category"):
        ReadingResult(**{**RESULT.__dict__, "category": 11})
    with pytest.raises(MessageError, match="sha256"):
        ReadingResult(**{**RESULT.__dict__, "model_sha256": "abc"})
    with pytest.raises(MessageError, match="PatientID"):
        Patient(" ")


def test_a_name_the_character_set_cannot_hold_is_refused() -> None:
    latin = Hl7Mapping(character_set=CharacterSet.LATIN_1)
    built = build_oru(Patient("1", name="Sørensen^Åse"), ORDER, RESULT, latin, now=NOW)
    assert segments(built.er7, "MSH")[0][17] == "8859/1" and built.encoding == "latin-1"
    ascii_only = Hl7Mapping(character_set=CharacterSet.ASCII)
    with pytest.raises(MessageError, match="character set 'ASCII'"):
        build_oru(Patient("1", name="Sørensen^Åse"), ORDER, RESULT, ascii_only, now=NOW)


def test_the_hl7_output_is_off_unless_configured() -> None:
    assert Hl7Settings().enabled is False
    with pytest.raises(ValidationError, match="needs host and port"):
        Hl7Settings(enabled=True)
    settings = Hl7Settings.model_validate(
        {"enabled": True, "host": "ris", "port": 2575, "mapping": {"receiving_application": "X"}}
    )
    assert settings.mapping.receiving_application == "X"
    assert settings.mapping.sending_application == "MAMMOTRIAGE"
