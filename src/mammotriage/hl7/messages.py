"""The exam's reading decision as an HL7 v2.5.1 ``ORU^R01`` result message.

Built with hl7apy on the v2.5.1 structures and validated strictly (every required segment
and field, cardinality, data types) before the ER7 text leaves this module. What goes where
is decided by :class:`~mammotriage.hl7.config.Hl7Mapping`; with its defaults:

======  =================================================================================
MSH     3-6 sending/receiving application and facility (mapping), 7 now (UTC), 9
        ``ORU^R01^ORU_R01``, 10 a new control id (20 characters), 11 ``P``, 12 ``2.5.1``,
        18 ``UNICODE UTF-8``
PID     1 ``1``; 3 the study's PatientID (``^^^authority^type`` when configured); 5 the
        study's PatientName (``""`` when the site leaves it out; v2.5.1 requires PID-5);
        7 birth date and 8 sex only when configured
PV1     only when ``visit_patient_class`` is set: 1 ``1``, 2 that class
ORC     1 ``RE``, 2 placer order number, 3 filler order number, 5 ``CM``
OBR     1 ``1``; 2 the study's Placer Order Number; 3 its Filler Order Number, else the
        accession number; 4 the study's procedure code, else ``24606-6^MG Breast
        Screening^LN``; 7 the study's date and time; 18 the accession number; 22 the
        analysis time; 25 ``F``, or ``C`` when correcting an earlier result
NTE     only for a demonstration model: 1 ``1``, 3 "AI result from a demonstration model
        trained on synthetic data: not for clinical use"
OBX     one per observation, coded in ``99MMT``: exam score (NM, 0-100), category (NM,
        1-10), reading mode (CWE ``SINGLE``/``DOUBLE``/``RULE-OUT``), read first (CWE
        ``Y``/``N``, HL7 table 0136), left and right breast scores (NM); each with 11
        ``F``/``C``, 18 the model (``name`` and ``sha256^SHA256``), 19 the analysis time.
        A value the exam does not have (an unscored exam's score) is not sent.
======  =================================================================================

Every value taken from the study is escaped (``\\F\\``, ``\\S\\``, ...), so that a ``^`` in
a name stays part of the name.

A site whose RIS orders its worklist by the order's priority may also have the order updated
(:func:`build_order_update`, ``hl7.order_update``): the exam read first becomes a stat
order, any other a routine one. Both kinds are v2.5.1, built and validated like the result,
with MSH, PID and PV1 as above:

========  ===============================================================================
OMI^O23   MSH-9 ``OMI^O23^OMI_O23``. ORC 1 ``XO`` (change order), 2 placer and 3 filler
          order numbers (as in the ORU), 9 now. TQ1 1 ``1``, 9 the priority
          ``S^Stat^HL70485`` (read first) or ``R^Routine^HL70485``. OBR 1 ``1``, 2, 3, 4,
          7 and 18 as in the ORU; OBR-27 empty (TQ1 carries the timing in v2.5.1). IPC 1
          the accession number, 2 the Requested Procedure ID, 3 the Study Instance UID
          (required: no update without it), 4 the Scheduled Procedure Step ID, 5
          ``MG^Mammography^DCM``; an id the study does not carry is the HL7 null ``""``.
ORM^O01   For a RIS that predates OMI. MSH-9 ``ORM^O01^ORM_O01``. ORC 1 ``XO``, 2, 3, 7
          the quantity/timing ``^^^^^S`` or ``^^^^^R`` (TQ.6 priority), 9 now. OBR 1
          ``1``, 2, 3, 4, 7 and 18 as in the ORU, 27 the same quantity/timing. ORM^O01 is
          kept in v2.5.1's structures for such systems; hl7apy marks its "one of OBR,
          RQD, RQ1, RXO, ODS, ODT" choice as "all of them", so it is validated with that
          choice read as a choice (exactly one member, here OBR).
========  ===============================================================================
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from hl7apy import load_library
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message, Segment
from hl7apy.exceptions import HL7apyException, ValidationError
from hl7apy.validation import Validator

from mammotriage.category import is_category
from mammotriage.errors import MammotriageError
from mammotriage.hl7.config import CharacterSet, Code, Hl7Mapping, OrderUpdateKind, PatientField
from mammotriage.timeutil import require_aware
from mammotriage.triage.policy import ReadingMode

#: The HL7 version the messages are built and validated against.
VERSION = "2.5.1"
#: MSH-10 is at most 20 characters in v2.5.1.
CONTROL_ID_LENGTH = 20
#: HL7 table 0136 (yes/no indicator).
YES_NO_TABLE = "HL70136"
#: NTE-3 of a result from a demonstration model.
DEMONSTRATION_NOTE = (
    "AI result from a demonstration model trained on synthetic data: not for clinical use"
)
#: OBX-18 namespace of the model's SHA-256 (the model file's, hexadecimal).
SHA256_NAMESPACE = "SHA256"


class MessageError(MammotriageError):
    """An HL7 message cannot be built from these values (no order to tie it to, a value
    the structure refuses)."""


class ResultStatus(str, enum.Enum):
    """OBR-25 and OBX-11 (HL7 tables 0123 and 0085), as far as used here."""

    FINAL = "F"
    CORRECTED = "C"


@dataclass(frozen=True)
class Patient:
    """The study's patient, as the DICOM header names them.

    ``name`` is a DICOM PN (``Family^Given^Middle^Prefix^Suffix``); ``sex`` PatientSex.
    """

    patient_id: str
    name: str | None = None
    birth_date: date | None = None
    sex: str | None = None

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise MessageError("the study has no PatientID: PID-3 is required")


@dataclass(frozen=True)
class Procedure:
    """A procedure code from the study (Requested Procedure Code Sequence or Procedure Code
    Sequence): code value, code meaning and coding scheme designator."""

    code: str
    text: str
    coding_system: str


@dataclass(frozen=True)
class Order:
    """What ties the result to the RIS's order, as far as the study carries it."""

    accession_number: str | None = None
    placer_order_number: str | None = None
    filler_order_number: str | None = None
    procedure: Procedure | None = None
    study_datetime: datetime | None = None
    #: For an order update (OMI^O23 IPC-3, IPC-2, IPC-4); the result does not send them.
    study_instance_uid: str | None = None
    requested_procedure_id: str | None = None
    scheduled_procedure_step_id: str | None = None


@dataclass(frozen=True)
class ReadingResult:
    """The AI's result and the triage decision for one exam.

    Parameters
    ----------
    score, left_breast_score, right_breast_score
        0-100, None when not scored.
    category
        1-10, None when not scored.
    mode
        The reading mode triage gave the exam.
    priority
        Read first.
    model_name, model_sha256
        The model that scored it (the ONNX file's SHA-256, 64 hexadecimal digits).
    analysed_at
        When it was scored (timezone-aware).
    correction
        This result corrects one sent before for the same exam (a rescore): status ``C``.
    demonstration
        The model is a demonstration model: the message says it is not for clinical use.
    """

    score: float | None
    category: int | None
    mode: ReadingMode
    priority: bool
    model_name: str
    model_sha256: str
    analysed_at: datetime
    left_breast_score: float | None = None
    right_breast_score: float | None = None
    correction: bool = False
    #: The model is a demonstration model (trained on synthetic data): an NTE after the
    #: OBR says so, as the SR and the presentation state do.
    demonstration: bool = False

    def __post_init__(self) -> None:
        for name in ("score", "left_breast_score", "right_breast_score"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 100:
                raise MessageError(f"{name} must be 0-100 or None, got {value!r}")
        if self.category is not None and not is_category(self.category):
            raise MessageError(f"category must be 1-10 or None, got {self.category!r}")
        if len(self.model_sha256) != 64 or any(
            c not in "0123456789abcdef" for c in self.model_sha256
        ):
            raise MessageError("model_sha256 must be 64 lower-case hexadecimal digits")
        if not self.model_name.strip():
            raise MessageError("model_name must not be empty")
        require_aware("analysed_at", self.analysed_at)

    @property
    def status(self) -> str:
        """``C`` for a correction, else ``F``."""
        return (ResultStatus.CORRECTED if self.correction else ResultStatus.FINAL).value


@dataclass(frozen=True)
class Hl7Message:
    """A built, validated message: its control id (MSH-10), ER7 text (segments ended by CR)
    and the Python codec its MSH-18 character set names."""

    control_id: str
    er7: str
    encoding: str


def new_control_id() -> str:
    """A fresh MSH-10: 20 upper-case hexadecimal digits (80 random bits)."""
    return secrets.token_hex(CONTROL_ID_LENGTH // 2).upper()


def build_oru(
    patient: Patient,
    order: Order,
    result: ReadingResult,
    mapping: Hl7Mapping,
    *,
    now: datetime,
    control_id: str | None = None,
) -> Hl7Message:
    """The ``ORU^R01`` carrying ``result`` for ``order`` of ``patient`` (module docstring).

    Raises
    ------
    MessageError
        If the order has neither an accession number nor an order number (the RIS could not
        tie the result to anything), the message does not validate against v2.5.1, or a
        value cannot be written in the mapping's character set.
    """
    require_aware("now", now)
    control_id = _control_id(control_id)
    placer, filler, accession = _order_numbers(order, mapping)
    try:
        message = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
        _header(message.msh, mapping, control_id, now)
        group = message.add_group("ORU_R01_PATIENT_RESULT")
        patient_group = group.add_group("ORU_R01_PATIENT")
        _patient(patient_group.add_segment("PID"), patient, mapping)
        if mapping.visit_patient_class is not None:
            visit = patient_group.add_group("ORU_R01_VISIT").add_segment("PV1")
            visit.pv1_1 = "1"
            visit.pv1_2 = _escape(mapping.visit_patient_class)
        observation = group.add_group("ORU_R01_ORDER_OBSERVATION")
        _order(observation, order, result, mapping, placer, filler, accession)
        if result.demonstration:
            note = observation.add_segment("NTE")
            note.nte_1 = "1"
            note.nte_3 = DEMONSTRATION_NOTE
        for set_id, (value_type, code, value) in enumerate(_observations(result, mapping), 1):
            obx = observation.add_group("ORU_R01_OBSERVATION").add_segment("OBX")
            _observation(obx, set_id, value_type, code, value, result, mapping)
        message.validate()
        er7: str = message.to_er7()
    except (HL7apyException, ValueError) as exc:  # hl7apy refuses a bad value with ValueError
        raise MessageError(f"ORU^R01 does not validate against HL7 {VERSION}: {exc}") from exc
    codec = mapping.character_set.codec
    try:
        er7.encode(codec)
    except UnicodeEncodeError as exc:
        raise MessageError(
            f"a value of the study cannot be written in the character set "
            f"{mapping.character_set.value!r} (MSH-18); UNICODE UTF-8 can"
        ) from exc
    return Hl7Message(control_id, er7 + "\r", codec)


#: OMI^O23 IPC-5: the modality of the order (DICOM's own coding scheme).
MAMMOGRAPHY_MODALITY = ("MG", "Mammography", "DCM")
#: HL7 table 0485 (TQ1-9) as sent: read first, else routine.
STAT_PRIORITY = ("S", "Stat", "HL70485")
ROUTINE_PRIORITY = ("R", "Routine", "HL70485")
#: The HL7 null: a required value the study does not carry.
HL7_NULL = '""'


def build_order_update(
    patient: Patient,
    order: Order,
    priority: bool,
    mapping: Hl7Mapping,
    *,
    kind: OrderUpdateKind,
    now: datetime,
    control_id: str | None = None,
) -> Hl7Message:
    """The order update (``OMI^O23`` or ``ORM^O01``, module docstring) that makes the
    exam's order stat when ``priority`` (read first), else routine.

    Raises
    ------
    MessageError
        If ``kind`` is ``none``, the order has neither an accession number nor an order
        number, an OMI^O23 has no Study Instance UID, the message does not validate against
        v2.5.1, or a value cannot be written in the mapping's character set.
    """
    require_aware("now", now)
    if kind == "none":
        raise MessageError("order_update is none: there is no order update to build")
    control_id = _control_id(control_id)
    placer, filler, accession = _order_numbers(order, mapping)
    name = {"omi_o23": "OMI_O23", "orm_o01": "ORM_O01"}[kind]
    try:
        message = Message(name, version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
        _header(message.msh, mapping, control_id, now)
        message.msh.msh_9 = f"{name[:3]}^{name[4:]}^{name}"
        patient_group = message.add_group(f"{name}_PATIENT")
        _patient(patient_group.add_segment("PID"), patient, mapping)
        if mapping.visit_patient_class is not None:
            visit = patient_group.add_group(f"{name}_PATIENT_VISIT").add_segment("PV1")
            visit.pv1_1 = "1"
            visit.pv1_2 = _escape(mapping.visit_patient_class)
        group = message.add_group(f"{name}_ORDER")
        orc = _common_order(group.add_segment("ORC"), "XO", placer, filler)
        if kind == "omi_o23":
            orc.orc_9 = _timestamp(now)
            timing = group.add_group("OMI_O23_TIMING").add_segment("TQ1")
            timing.tq1_1 = "1"
            timing.tq1_9 = _components(*(STAT_PRIORITY if priority else ROUTINE_PRIORITY))
            _requested(group.add_segment("OBR"), order, mapping, placer, filler, accession)
            _imaging(group.add_segment("IPC"), order, accession)
        else:
            quantity_timing = "^^^^^" + (STAT_PRIORITY if priority else ROUTINE_PRIORITY)[0]
            orc.orc_7 = quantity_timing
            orc.orc_9 = _timestamp(now)
            detail = group.add_group("ORM_O01_ORDER_DETAIL")
            choice = detail.add_group("ORM_O01_OBRRQDRQ1RXOODSODT_SUPPGRP")
            obr = choice.add_segment("OBR")
            _requested(obr, order, mapping, placer, filler, accession)
            obr.obr_27 = quantity_timing
        validate_message(message)
        er7: str = message.to_er7()
    except (HL7apyException, ValueError) as exc:
        raise MessageError(
            f"{name[:3]}^{name[4:]} does not validate against HL7 {VERSION}: {exc}"
        ) from exc
    return Hl7Message(control_id, _encodable(er7, mapping) + "\r", mapping.character_set.codec)


def validate_message(message: Message) -> None:
    """Validate ``message`` strictly against its version's structures, a choice group
    (``('choice', ...)`` in hl7apy, which checks it as if every member were required) read
    as a choice: exactly one member present.

    Raises
    ------
    hl7apy.exceptions.ValidationError
        The first thing wrong.
    """
    reference = _choices_optional(load_library(message.version).MESSAGES[message.name])
    Validator.validate(message, reference=reference)
    _one_member_per_choice(message, reference)


def _choices_optional(structure: Any) -> Any:
    """hl7apy's message structure with the members of each choice group optional."""
    kind, children = structure[0], structure[1]
    relaxed = []
    for child in children:
        name, reference, (low, high), classname = child[:4]
        if classname == "GRP":
            reference = _choices_optional(reference)
        if kind == "choice":
            low = 0
        relaxed.append((name, reference, (low, high), classname, *child[4:]))
    return (kind, tuple(relaxed), *structure[2:])


def _one_member_per_choice(element: Any, structure: Any) -> None:
    references = {child[0]: child[1] for child in structure[1] if child[3] == "GRP"}
    for child in element.children:
        if child.name not in references:
            continue
        reference = references[child.name]
        if reference[0] == "choice" and len({c.name for c in child.children}) != 1:
            raise ValidationError(f"{child.name} must hold exactly one of its members")
        _one_member_per_choice(child, reference)


def _control_id(control_id: str | None) -> str:
    """``control_id``, or a new one; refused unless it fits MSH-10."""
    control_id = control_id or new_control_id()
    if not 1 <= len(control_id) <= CONTROL_ID_LENGTH or not control_id.isalnum():
        raise MessageError(f"control id must be 1-{CONTROL_ID_LENGTH} letters and digits")
    return control_id


def _order_numbers(order: Order, mapping: Hl7Mapping) -> tuple[str | None, str | None, str | None]:
    """Placer, filler (the accession number when the mapping says) and accession number;
    refused when there is no order number at all."""
    placer = _text(order.placer_order_number)
    filler = _text(order.filler_order_number)
    accession = _text(order.accession_number)
    if filler is None and mapping.accession_as_filler_order_number:
        filler = accession
    if placer is None and filler is None:
        raise MessageError(
            "the study has no accession number nor order number: the RIS could not tie "
            "the message to an order"
        )
    return placer, filler, accession


def _common_order(orc: Segment, control: str, placer: str | None, filler: str | None) -> Segment:
    """ORC 1-3: the order control code and the order numbers."""
    orc.orc_1 = control
    if placer is not None:
        orc.orc_2 = _escape(placer)
    if filler is not None:
        orc.orc_3 = _escape(filler)
    return orc


def _requested(
    obr: Segment,
    order: Order,
    mapping: Hl7Mapping,
    placer: str | None,
    filler: str | None,
    accession: str | None,
) -> None:
    """OBR 1-4, 7 and 18: the requested procedure, the same in the result and the order
    update."""
    obr.obr_1 = "1"
    if placer is not None:
        obr.obr_2 = _escape(placer)
    if filler is not None:
        obr.obr_3 = _escape(filler)
    procedure = order.procedure
    if procedure is not None and _text(procedure.code):
        obr.obr_4 = _components(procedure.code, procedure.text, procedure.coding_system)
    else:
        default = mapping.default_procedure
        obr.obr_4 = _components(default.code, default.text, default.coding_system)
    if order.study_datetime is not None:
        obr.obr_7 = _timestamp(require_aware("study_datetime", order.study_datetime))
    if accession is not None:
        obr.obr_18 = _escape(accession)


def _imaging(ipc: Segment, order: Order, accession: str | None) -> None:
    """IPC 1-5: the DICOM side of the order."""
    study = _text(order.study_instance_uid)
    if study is None:
        raise MessageError("the study has no Study Instance UID: OMI^O23 requires IPC-3")
    ipc.ipc_1 = _escape(accession) if accession else HL7_NULL
    requested = _text(order.requested_procedure_id)
    ipc.ipc_2 = _escape(requested) if requested else HL7_NULL
    ipc.ipc_3 = _escape(study)
    step = _text(order.scheduled_procedure_step_id)
    ipc.ipc_4 = _escape(step) if step else HL7_NULL
    ipc.ipc_5 = _components(*MAMMOGRAPHY_MODALITY)


def _encodable(er7: str, mapping: Hl7Mapping) -> str:
    """``er7``, refused when the mapping's character set cannot hold it."""
    try:
        er7.encode(mapping.character_set.codec)
    except UnicodeEncodeError as exc:
        raise MessageError(
            f"a value of the study cannot be written in the character set "
            f"{mapping.character_set.value!r} (MSH-18); UNICODE UTF-8 can"
        ) from exc
    return er7


def _header(msh: Segment, mapping: Hl7Mapping, control_id: str, now: datetime) -> None:
    msh.msh_3 = _escape(mapping.sending_application)
    if mapping.sending_facility:
        msh.msh_4 = _escape(mapping.sending_facility)
    msh.msh_5 = _escape(mapping.receiving_application)
    if mapping.receiving_facility:
        msh.msh_6 = _escape(mapping.receiving_facility)
    msh.msh_7 = _timestamp(now)
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control_id
    msh.msh_11 = mapping.processing_id.value
    if mapping.character_set is not CharacterSet.ASCII:
        msh.msh_18 = mapping.character_set.value


def _patient(pid: Segment, patient: Patient, mapping: Hl7Mapping) -> None:
    pid.pid_1 = "1"
    pid.pid_3 = _components(
        patient.patient_id, None, None, mapping.patient_id_authority, mapping.patient_id_type
    )
    name = _text(patient.name) if PatientField.PATIENT_NAME in mapping.patient_fields else None
    pid.pid_5 = _person_name(name) if name else '""'
    if PatientField.BIRTH_DATE in mapping.patient_fields and patient.birth_date is not None:
        pid.pid_7 = patient.birth_date.strftime("%Y%m%d")
    if PatientField.SEX in mapping.patient_fields and patient.sex is not None:
        sex = patient.sex.strip().upper()
        pid.pid_8 = sex if sex in ("F", "M", "O") else "U"


def _order(
    observation: Group,
    order: Order,
    result: ReadingResult,
    mapping: Hl7Mapping,
    placer: str | None,
    filler: str | None,
    accession: str | None,
) -> None:
    orc = _common_order(observation.add_segment("ORC"), "RE", placer, filler)
    orc.orc_5 = "CM"
    obr = observation.add_segment("OBR")
    _requested(obr, order, mapping, placer, filler, accession)
    obr.obr_22 = _timestamp(result.analysed_at)
    obr.obr_25 = result.status


def _observations(result: ReadingResult, mapping: Hl7Mapping) -> list[tuple[str, Code, str]]:
    """(value type, OBX-3 code, OBX-5 ER7) of each observation the result has."""
    codes = mapping.observation_codes
    mode_code = {
        ReadingMode.SINGLE: mapping.reading_mode_codes.single,
        ReadingMode.DOUBLE: mapping.reading_mode_codes.double,
        ReadingMode.RULE_OUT: mapping.reading_mode_codes.rule_out,
    }[result.mode]
    rows: list[tuple[str, Code, str]] = []
    if result.score is not None:
        rows.append(("NM", codes.exam_score, _number(result.score)))
    if result.category is not None:
        rows.append(("NM", codes.category, str(result.category)))
    rows.append(
        (
            "CWE",
            codes.reading_mode,
            _components(mode_code.code, mode_code.text, mapping.coding_system),
        )
    )
    yes_no = ("Y", "Yes") if result.priority else ("N", "No")
    rows.append(("CWE", codes.priority, _components(*yes_no, YES_NO_TABLE)))
    if result.left_breast_score is not None:
        rows.append(("NM", codes.left_breast_score, _number(result.left_breast_score)))
    if result.right_breast_score is not None:
        rows.append(("NM", codes.right_breast_score, _number(result.right_breast_score)))
    return rows


def _observation(
    obx: Segment,
    set_id: int,
    value_type: str,
    code: Code,
    value: str,
    result: ReadingResult,
    mapping: Hl7Mapping,
) -> None:
    obx.obx_1 = str(set_id)
    obx.obx_2 = value_type
    obx.obx_3 = _components(code.code, code.text, mapping.coding_system)
    obx.obx_5 = value
    obx.obx_11 = result.status
    for equipment in (
        _escape(result.model_name),
        _components(result.model_sha256, SHA256_NAMESPACE),
    ):
        obx.add_field("OBX_18").value = equipment
    obx.obx_19 = _timestamp(result.analysed_at)


def _timestamp(value: datetime) -> str:
    """HL7 DTM in UTC with its offset: ``YYYYMMDDHHMMSS+0000``."""
    return value.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S+0000")


def _number(value: float) -> str:
    """An NM value with two decimals (no exponent, whatever the float)."""
    return f"{value:.2f}"


def _person_name(pn: str) -> str:
    """A DICOM PN (family^given^middle^prefix^suffix, first component group) as an HL7 XPN
    (family^given^middle^suffix^prefix)."""
    parts = (pn.split("=", 1)[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    return _components(family, given, middle, suffix, prefix)


def _components(*values: str | None) -> str:
    """Components joined by ``^``, each escaped, trailing empty ones dropped."""
    parts = [_escape(v) if v else "" for v in values]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def _escape(value: str) -> str:
    """``value`` with the HL7 delimiters escaped and line breaks as spaces (HL7 2.7.4)."""
    for char, escaped in _ESCAPES:
        value = value.replace(char, escaped)
    return " ".join(value.splitlines())


def _text(value: str | None) -> str | None:
    """``value`` stripped, None when empty."""
    value = (value or "").strip()
    return value or None


__all__: Sequence[str] = [
    "HL7_NULL",
    "Hl7Message",
    "MessageError",
    "Order",
    "Patient",
    "Procedure",
    "ReadingResult",
    "ResultStatus",
    "build_order_update",
    "build_oru",
    "new_control_id",
    "validate_message",
]
