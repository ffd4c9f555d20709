"""Tables of the worklist store: exams, their images and scores, readings, jobs and the audit log.

SQLAlchemy 2 declarative models with typed ``Mapped[...]`` columns, portable between SQLite
(one site, one worker) and PostgreSQL (several workers). An exam is known by its
StudyInstanceUID and an internal public UUID; logs, URLs and the audit log use the UUID only.

Patient identifiers live in two places only: the ``exams`` row keeps what a radiologist needs
to find the exam in the PACS and the RIS (accession number, patient id and name, study date;
shown to radiologists only, each view audited), and an HL7 message for the RIS keeps its
text, PID included, until it is delivered (``hl7_outbox``). No other table holds any.

Idempotency lives here, in unique constraints, not in the code that writes:

- ``scores (exam_id, model_sha256)``: one score per exam and model; re-processing updates it;
- ``jobs (source, study_instance_uid)``: a study is enqueued once per source;
- ``assignments (exam_id)``: one reading assignment per exam;
- ``exams (study_instance_uid)``;
- ``hl7_outbox (control_id)``: an HL7 message is queued once, whoever queues it again;
- ``images (exam_id, position)``: one row per file of the exam, so that files sharing a
  SOPInstanceUID (a damaged copy, a UID reused by another study) or without one each keep
  their own row; ``sop_instance_uid`` is indexed, not unique.

Coded values are stored as their enum's value (VARCHAR), not as native database enums, so
that adding a value is a data change and not a type migration.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.timeutil import is_aware
from mammotriage.triage.policy import ReadingMode, TriageRule

#: Deterministic constraint names, so that migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UID_LENGTH = 64  # DICOM UI value representation: at most 64 characters (PS3.5 6.2)


class JobStatus(str, enum.Enum):
    """Where a scoring job stands."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


class ExamStatus(str, enum.Enum):
    """What scoring made of an exam."""

    RECEIVED = "received"
    SCORED = "scored"
    #: No image could be scored: the exam must be read by people, without an AI score.
    UNSCORED = "unscored"
    #: Nothing in it is a mammogram (another modality, files that are not DICOM): recorded
    #: with each file's reason, kept off the reading lists.
    REJECTED = "rejected"


class ReadingStatus(str, enum.Enum):
    """Where the human reading of an exam stands."""

    UNREAD = "unread"
    IN_PROGRESS = "in-progress"
    #: Double reading ended in disagreement: the exam waits for a consensus reading.
    CONSENSUS = "consensus"
    READ = "read"


class Role(str, enum.Enum):
    """What a user of the reading service may do."""

    #: Reads exams: worklist, claim, decide.
    RADIOLOGIST = "radiologist"
    #: Runs the service: queue statistics, readers, policy; reads no exam.
    ADMIN = "admin"
    #: Another program (RIS, monitoring): reads the worklist and metrics with a bearer token.
    SERVICE = "service"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; naive values are refused.

    SQLite has no time zones and returns naive datetimes: this type gives back aware UTC
    datetimes on every database, so that waiting times compare across sites.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not is_aware(value):
            raise ValueError(f"datetime must be timezone-aware, got {value!r}")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class ExamRow(Base):
    __tablename__ = "exams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH), unique=True)
    received_at: Mapped[datetime]
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ExamStatus] = mapped_column(
        _enum(ExamStatus, "exam_status"), default=ExamStatus.RECEIVED
    )
    #: The DICOM SR sent back for the latest score, where it went (the worker's words:
    #: a folder path or a PACS address, never shown to readers), and when.
    report_sop_instance_uid: Mapped[str | None] = mapped_column(String(UID_LENGTH))
    report_location: Mapped[str | None] = mapped_column(Text)
    report_sent_at: Mapped[datetime | None]
    #: What the SR was made from (the job's fingerprint and the model): the same key again
    #: is a retry whose SR is already there; another is a rescore, whose SR supersedes it.
    report_key: Mapped[str | None] = mapped_column(String(200))
    #: The SR's version (its Instance Number): 1, and one more for each superseding SR.
    report_version: Mapped[int | None] = mapped_column(Integer)
    #: The SR this one superseded (NULL for the first).
    report_predecessor_uid: Mapped[str | None] = mapped_column(String(64))
    #: What a reader needs to find the exam in the PACS and the RIS, from the first readable
    #: image header (NULL when absent or not a valid value): shown to radiologists only,
    #: never logged, never in a URL. AccessionNumber (SH, 16 characters; some RIS send more)
    #: and PatientID (LO) fit 64 characters, PatientName (PN, up to three groups of 64) 200;
    #: a longer value is not kept. PatientName is the DICOM value (``Family^Given``).
    accession_number: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(200))
    study_date: Mapped[date | None] = mapped_column(Date)
    #: Where and on what the exam was taken, from the same header (NULL when absent): the
    #: site (InstitutionName) and the acquisition device (Manufacturer,
    #: ManufacturerModelName, StationName). Not patient data: monitoring groups by them.
    site: Mapped[str | None] = mapped_column(String(200))
    manufacturer: Mapped[str | None] = mapped_column(String(64))
    device_model: Mapped[str | None] = mapped_column(String(64))
    station_name: Mapped[str | None] = mapped_column(String(64))
    #: The day monitoring counts the exam in: StudyDate, or the day it was received when
    #: the header has none (migration 0012; rows written before got the same rule).
    exam_date: Mapped[date | None] = mapped_column(Date, index=True)
    #: How many files the exam's latest save held and how many of them could not be scored
    #: (the ``images`` rows, counted when they are written), so that monitoring counts
    #: unusable images per device without reading every image row.
    image_count: Mapped[int | None] = mapped_column(Integer)
    unusable_images: Mapped[int | None] = mapped_column(Integer)

    images: Mapped[list[ImageRow]] = relationship(back_populates="exam")
    scores: Mapped[list[ScoreRow]] = relationship(back_populates="exam")


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("exam_id", "position", name="uq_images_exam_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), index=True)
    #: The file's place in the exam's image list (files sorted by path, then UID).
    position: Mapped[int] = mapped_column(Integer)
    #: NULL for a file that could not be read far enough to know it. Not unique: two files
    #: may carry the same UID (a damaged copy; a UID reused by another study).
    sop_instance_uid: Mapped[str | None] = mapped_column(String(UID_LENGTH), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    laterality: Mapped[Laterality] = mapped_column(_enum(Laterality, "laterality"))
    view: Mapped[ViewPosition] = mapped_column(_enum(ViewPosition, "view_position"))
    usable: Mapped[bool] = mapped_column(Boolean)
    #: Why the image was not decoded or not scored; NULL when it was.
    reason: Mapped[str | None] = mapped_column(Text)
    #: The codec that read the pixels the model saw; NULL when not scored (migration 0011).
    decoder: Mapped[str | None] = mapped_column(String(64))
    #: The stored image's size, to draw findings (original pixels) on its thumbnail.
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    #: PNG rendered from the DICOM at viewing size by the worker (a path), NULL if none.
    thumbnail: Mapped[str | None] = mapped_column(Text)

    exam: Mapped[ExamRow] = relationship(back_populates="images")


class ScoreRow(Base):
    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("exam_id", "model_sha256", name="uq_scores_exam_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"))
    model_sha256: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    #: 0-100; NULL when no image of the exam could be scored.
    score: Mapped[float | None] = mapped_column(Float)
    category: Mapped[int | None] = mapped_column(Integer)
    breasts: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    exam: Mapped[ExamRow] = relationship(back_populates="scores")
    findings: Mapped[list[FindingRow]] = relationship(back_populates="score_row")


class FindingRow(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    score_id: Mapped[int] = mapped_column(ForeignKey("scores.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(UID_LENGTH))
    #: Box in the ORIGINAL pixels of the stored image (pixel-edge coordinates).
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    score: Mapped[int] = mapped_column(Integer)

    score_row: Mapped[ScoreRow] = relationship(back_populates="findings")


class AssignmentRow(Base):
    """The reading triage gave an exam: one per exam, updated when the exam is re-scored."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), unique=True)
    #: The score the decision was made on (the latest saved); NULL for an unscored exam.
    score_id: Mapped[int | None] = mapped_column(ForeignKey("scores.id", ondelete="SET NULL"))
    mode: Mapped[ReadingMode] = mapped_column(_enum(ReadingMode, "reading_mode"))
    priority: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[int | None] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(Text)
    rule_code: Mapped[TriageRule] = mapped_column(_enum(TriageRule, "triage_rule"))
    policy_version: Mapped[str] = mapped_column(String(100))
    status: Mapped[ReadingStatus] = mapped_column(
        _enum(ReadingStatus, "reading_status"), default=ReadingStatus.UNREAD
    )


class DecisionRow(Base):
    """One reader's reading of an exam (double reading has two, consensus one more)."""

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint(
            "assignment_id", "reader", "consensus", name="uq_decisions_assignment_reader"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), index=True
    )
    reader: Mapped[str] = mapped_column(String(200))
    recall: Mapped[bool] = mapped_column(Boolean)
    birads: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The decision of the consensus reading that followed a disagreement.
    consensus: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The screening outcome, the site's decision category code and the reason codes (a
    #: JSON list) the reader chose; null for a decision made without them.
    outcome: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(40))
    reasons: Mapped[str | None] = mapped_column(Text)


class ClaimRow(Base):
    """A reader has an exam open. Claims expire: an abandoned one frees the exam again."""

    __tablename__ = "reading_claims"
    __table_args__ = (
        UniqueConstraint("assignment_id", "reader", name="uq_reading_claims_assignment_reader"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), index=True
    )
    reader: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class UserRow(Base):
    """A local user of the reading service (password hashed with argon2)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TokenRow(Base):
    """A bearer token of a user; only its SHA-256 is stored (shown once when created)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's name (what it is for: "ris", "monitoring"); shown in lists, never the token.
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: After this the token no longer authenticates (None: it does not expire).
    expires_at: Mapped[datetime | None]
    #: Set when the token was revoked; a revoked token never authenticates again.
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class SessionRow(Base):
    """A signed-in page session, held on the server so that it can end before its cookie does.

    The cookie carries a random session id; only its SHA-256 is stored. A session ends at
    ``expires_at`` (absolute lifetime), after ``idle`` without a request, or when
    ``ended_at`` is set (logout, deactivation, password change, an admin's revocation).
    """

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    #: Why it ended: logout, idle, deactivated, password-changed, revoked.
    end_reason: Mapped[str | None] = mapped_column(String(32))


class LoginThrottleRow(Base):
    """Failed logins counted per key (``user:<name>`` or ``address:<ip>``), shared by every
    server process: after a few failures each further one blocks the key for longer."""

    __tablename__ = "login_throttle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime]
    last_failure_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("source", "study_instance_uid", name="uq_jobs_source_study"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus, "job_status"), default=JobStatus.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    #: The study was enqueued again while it was being scored: run it once more when done.
    rescan: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: What the source said the study's content was when it was last queued; the same study
    #: offered again with the same fingerprint is not scored again.
    fingerprint: Mapped[str | None] = mapped_column(String(200))
    #: A retried job waits until then (backoff); NULL: at once.
    available_at: Mapped[datetime | None] = mapped_column(index=True)


class SourceCursorRow(Base):
    """Where a source's change feed was last read to (Orthanc's ``/changes`` sequence, ...)."""

    __tablename__ = "source_cursors"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    #: Not a foreign key: the log outlives the rows it speaks of.
    exam_public_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    detail: Mapped[dict[str, Any]]


class OutboxState(str, enum.Enum):
    """Where an HL7 message in the outbox stands."""

    QUEUED = "queued"
    #: The RIS acknowledged it (AA): never sent again.
    DELIVERED = "delivered"
    #: The RIS refused it (AR): sent again only when an operator requeues it.
    FAILED = "failed"


class Hl7OutboxRow(Base):
    """An HL7 result message for the RIS, kept until it is acknowledged (the outbox).

    ``er7`` is the message itself and so holds what its PID carries (the patient id, and
    the name where the site sends it): the one place in the store that does, and only until
    the RIS has acknowledged it (it is emptied on delivery; a refused message keeps it, to
    be sent again).
    """

    __tablename__ = "hl7_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: MSH-10: unique, so that the same message is never queued twice.
    control_id: Mapped[str] = mapped_column(String(20), unique=True)
    #: Not a foreign key, like the audit log's: the record outlives the exam's rows.
    exam_public_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[OutboxState] = mapped_column(
        _enum(OutboxState, "outbox_state"), default=OutboxState.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Not before then (backoff, or a sender's hold on it); NULL: at once.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    #: The ER7 text; NULL once delivered.
    er7: Mapped[str | None] = mapped_column(Text)


class OutputState(str, enum.Enum):
    """Where one output of an exam (its SR, presentation state, ...) stands."""

    #: Written and sent (or handed to the HL7 outbox).
    DONE = "done"
    #: The last attempt failed; the job is retried while the fault may pass.
    FAILED = "failed"


class ExamOutputRow(Base):
    """The latest attempt at one output of an exam: ``sr``, ``gsps``, ``sc``, ``hl7``,
    ``thumbnails``; one row per exam and output, overwritten by each attempt."""

    __tablename__ = "exam_outputs"
    __table_args__ = (UniqueConstraint("exam_id", "output", name="uq_exam_outputs_exam_output"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), index=True)
    output: Mapped[str] = mapped_column(String(16))
    state: Mapped[OutputState] = mapped_column(_enum(OutputState, "output_state"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Where it went (a folder, a PACS, the outbox's control id); never a patient identifier.
    location: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)


class OutcomeRow(Base):
    """What became of an exam, as the screening programme's outcomes file says
    (``mammotriage outcomes import``): one row per exam, replaced by a later import."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), unique=True)
    screen_detected_cancer: Mapped[bool] = mapped_column(Boolean)
    interval_cancer: Mapped[bool] = mapped_column(Boolean)
    #: The programme's recall (NULL: the file did not say).
    recall: Mapped[bool | None] = mapped_column(Boolean)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The SHA-256 of the file the row last came from (never its path or name, which may
    #: carry identifiers) and the row's line in it.
    source_sha256: Mapped[str] = mapped_column(String(64))
    line: Mapped[int] = mapped_column(Integer)


class MonitorAlertRow(Base):
    """An alert rule that fired for one site, device and week (``configs/monitor.yaml``).

    Unique per rule, site, device and week: evaluating the same weeks again finds the alert
    already there and records nothing new. ``device`` is empty for a site-wide rule (reader
    behaviour)."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (
        UniqueConstraint("rule", "site", "device", "week", name="uq_monitor_alerts_rule"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(100))
    site: Mapped[str] = mapped_column(String(200))
    device: Mapped[str] = mapped_column(String(200))
    #: The Monday of the week the rule fired in.
    week: Mapped[date] = mapped_column(Date, index=True)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
