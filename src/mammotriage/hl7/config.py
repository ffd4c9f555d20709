"""Where each value of the HL7 result goes: the site's field mapping, with documented defaults.

RIS differ in what they want in an ORU^R01 (application and facility names, which patient
fields, which coding system for the observations), so every choice lives here and none in
the message builder. The defaults are what the module :mod:`mammotriage.hl7.messages`
documents segment by segment; a site changes them in the ``hl7`` block of its config.
"""

from __future__ import annotations

import enum
from datetime import datetime, tzinfo
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mammotriage.errors import ConfigError

#: HL7 v2 text that holds no delimiter and no control character: a name, an identifier, a code.
_PLAIN = r"^[^|^~\\&\r\n\x00-\x1f]*$"
PlainText = Annotated[str, StringConstraints(pattern=_PLAIN, max_length=199)]
#: An HD namespace id or an IS value: at most 20 characters in v2.5.1.
ShortText = Annotated[str, StringConstraints(pattern=_PLAIN, min_length=1, max_length=20)]
#: A coding system name (CE.3 / CWE.3, HL7 table 0396 or a local ``99zzz``).
CodingSystem = Annotated[
    str, StringConstraints(pattern=r"^(99[A-Za-z0-9]{1,5}|[A-Z][A-Z0-9-]{0,19})$")
]


#: Whether and how the RIS's order is updated with the exam's priority after its result:
#: ``none``, ``omi_o23`` (v2.5.1 OMI^O23 with TQ1) or ``orm_o01`` (ORM^O01 for an older RIS).
OrderUpdateKind = Literal["none", "omi_o23", "orm_o01"]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientField(str, enum.Enum):
    """PID fields beyond the patient id (PID-3) a site may choose to send."""

    #: PID-5 from the study's PatientName. PID-5 is required in v2.5.1: left out, it is sent
    #: as the HL7 null ``""``.
    PATIENT_NAME = "patient_name"
    #: PID-7 from PatientBirthDate.
    BIRTH_DATE = "birth_date"
    #: PID-8 from PatientSex (F, M, O; anything else U).
    SEX = "sex"


class ProcessingId(str, enum.Enum):
    """MSH-11 (HL7 table 0103)."""

    PRODUCTION = "P"
    TRAINING = "T"
    DEBUGGING = "D"


class CharacterSet(str, enum.Enum):
    """MSH-18 (HL7 table 0211): the bytes on the wire. ASCII leaves MSH-18 empty."""

    ASCII = "ASCII"
    LATIN_1 = "8859/1"
    UTF_8 = "UNICODE UTF-8"

    @property
    def codec(self) -> str:
        """The Python codec of this character set."""
        return _CODECS[self]


_CODECS = {
    CharacterSet.ASCII: "ascii",
    CharacterSet.LATIN_1: "latin-1",
    CharacterSet.UTF_8: "utf-8",
}


class Code(_Block):
    """A coded value: CE/CWE components 1-3 (identifier, text, coding system)."""

    code: Annotated[str, StringConstraints(pattern=_PLAIN, min_length=1, max_length=20)]
    text: Annotated[str, StringConstraints(pattern=_PLAIN, min_length=1, max_length=199)]


class ObservationCodes(_Block):
    """OBX-3 of each observation, in :attr:`Hl7Mapping.coding_system` (default ``99MMT``)."""

    exam_score: Code = Code(code="MMT-SCORE", text="AI exam score (0-100)")
    category: Code = Code(code="MMT-CATEGORY", text="AI triage category (1-10)")
    reading_mode: Code = Code(code="MMT-READING", text="Reading mode")
    priority: Code = Code(code="MMT-PRIORITY", text="Read first")
    left_breast_score: Code = Code(code="MMT-SCORE-L", text="AI score, left breast (0-100)")
    right_breast_score: Code = Code(code="MMT-SCORE-R", text="AI score, right breast (0-100)")


class ReadingModeCodes(_Block):
    """OBX-5 of the reading-mode observation (CWE), in :attr:`Hl7Mapping.coding_system`."""

    single: Code = Code(code="SINGLE", text="Single reading")
    double: Code = Code(code="DOUBLE", text="Double reading")
    rule_out: Code = Code(code="RULE-OUT", text="No human reading (rule-out)")


class ProcedureCode(_Block):
    """OBR-4 when the study carries no procedure code of its own."""

    code: Annotated[str, StringConstraints(pattern=_PLAIN, min_length=1, max_length=20)] = "24606-6"
    text: Annotated[str, StringConstraints(pattern=_PLAIN, min_length=1, max_length=199)] = (
        "MG Breast Screening"
    )
    coding_system: CodingSystem = "LN"


class Hl7Mapping(_Block):
    """What goes where in the ORU^R01; every default is what the site gets unless it says.

    The defaults send the least the standard allows: PID-3 (the study's PatientID) and
    PID-5 (PatientName; required by v2.5.1), no PV1, the accession number as the filler
    order number (OBR-3, ORC-3) when the study has no Filler Order Number of its own and in
    OBR-18, and the observations coded in the local system ``99MMT``.
    """

    #: MSH-3 and MSH-4: who sends (HD namespace ids).
    sending_application: ShortText = "MAMMOTRIAGE"
    sending_facility: ShortText | None = None
    #: MSH-5 and MSH-6: the RIS.
    receiving_application: ShortText = "RIS"
    receiving_facility: ShortText | None = None
    #: MSH-11.
    processing_id: ProcessingId = ProcessingId.PRODUCTION
    #: MSH-18, and the encoding of the bytes sent.
    character_set: CharacterSet = CharacterSet.UTF_8
    #: PID-3.4 (assigning authority) and PID-3.5 (identifier type, table 0203) of the
    #: patient id; None: not sent.
    patient_id_authority: ShortText | None = None
    patient_id_type: ShortText | None = None
    #: PID fields sent besides PID-3.
    patient_fields: tuple[PatientField, ...] = (PatientField.PATIENT_NAME,)
    #: PV1-2 (patient class, table 0004: ``O`` outpatient, ``N`` not applicable); None: no
    #: PV1 segment.
    visit_patient_class: ShortText | None = None
    #: The accession number is the filler order number (OBR-3 and ORC-3) when the study
    #: carries no Filler Order Number; it always goes in OBR-18.
    accession_as_filler_order_number: bool = True
    #: The coding system of the observation codes and the reading-mode values (CWE.3).
    coding_system: CodingSystem = "99MMT"
    observation_codes: ObservationCodes = ObservationCodes()
    reading_mode_codes: ReadingModeCodes = ReadingModeCodes()
    #: OBR-4 when the study carries no procedure code.
    default_procedure: ProcedureCode = ProcedureCode()


def charset_codec(er7: str) -> str:
    """The Python codec of the character set a message's MSH-18 names (ASCII when empty);
    the message is sent in it.

    Raises
    ------
    ConfigError
        If the text has no MSH or names a character set not sent here.
    """
    msh = er7.split("\r", 1)[0]
    if not msh.startswith("MSH") or len(msh) < 4:
        raise ConfigError("not an HL7 message: it does not start with MSH")
    fields = msh.split(msh[3])
    name = fields[17] if len(fields) > 17 else ""
    try:
        return CharacterSet(name or CharacterSet.ASCII.value).codec
    except ValueError as exc:
        raise ConfigError(f"MSH-18 character set {name!r} is not one sent here") from exc


class Hl7Settings(_Block):
    """The HL7 output of a site: where the results go and how (off unless ``enabled``).

    Raises
    ------
    pydantic.ValidationError
        If it is enabled without ``host`` and ``port``, or a value is out of range.
    """

    enabled: bool = False
    #: The RIS's (or interface engine's) MLLP listener.
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    #: From the end of the send to the end of the ACK.
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Backoff after a failed try: base * 2**(attempts-1), at most ``retry_max_seconds``;
    #: there is no last try (only an AR ends a message).
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    mapping: Hl7Mapping = Hl7Mapping()
    #: The site's time zone (IANA name, ``Europe/Copenhagen``) for a study date and time
    #: whose header has no TimezoneOffsetFromUTC; None: the machine's.
    timezone: str | None = None
    #: After each result, also update the exam's order: stat when read first, else routine
    #: (:func:`mammotriage.hl7.messages.build_order_update`); ``none``: results only.
    order_update: OrderUpdateKind = "none"

    def zone(self) -> tzinfo:
        """The site's time zone (:attr:`timezone`, else the machine's local one)."""
        if self.timezone is None:
            local = datetime.now().astimezone().tzinfo
            assert local is not None
            return local
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> Hl7Settings:
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        if self.enabled and (not self.host or self.port is None):
            raise ValueError("an enabled HL7 output needs host and port")
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must not be shorter than retry_base_seconds")
        return self
