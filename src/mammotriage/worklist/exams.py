"""Scored exams as the worker stores them: the exam, its images, score, findings and reading
assignment, the SR sent back and the thumbnails.

Every write is an upsert on a unique constraint (``exams (study)``, ``images (exam,
position)``, ``scores (exam, model sha256)``, ``assignments (exam)``), so that re-processing
a study updates its rows and never duplicates them. Images are keyed by their place in the
exam, not by SOPInstanceUID: every file keeps its own row, also when files share a UID (a
damaged copy of a view) or have none, and a UID seen in two studies stays in both.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from mammotriage.dicom.model import Laterality
from mammotriage.errors import StoreError
from mammotriage.infer.scores import ExamScore
from mammotriage.timeutil import require_aware
from mammotriage.triage.policy import ReadingMode, TriageDecision
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import (
    AssignmentRow,
    ExamRow,
    ExamStatus,
    FindingRow,
    ImageRow,
    ReadingStatus,
    ScoreRow,
    utcnow,
)
from mammotriage.worklist.outbox import HL7Outbox
from mammotriage.worklist.outputs import ExamOutputs

#: The longest value of each identifier the store keeps (``exams`` columns): AccessionNumber
#: (SH, 16 characters; some RIS send more), PatientID (LO, 64), PatientName (PN, up to three
#: groups of 64 characters).
IDENTIFIER_LENGTHS = {"accession_number": 64, "patient_id": 64, "patient_name": 200}


@dataclass(frozen=True)
class StudyIdentifiers:
    """What a radiologist needs to find the exam in the PACS and the RIS, as the image header
    says (None: absent or not valid).

    Patient data: shown to radiologists only, never logged, never in a URL or the audit
    log; none of it is in the ``repr``. ``patient_name`` is the DICOM PN value
    (``Family^Given^Middle^Prefix^Suffix``, groups separated by ``=``).
    """

    accession_number: str | None = field(default=None, repr=False)
    patient_id: str | None = field(default=None, repr=False)
    patient_name: str | None = field(default=None, repr=False)
    study_date: date | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name, limit in IDENTIFIER_LENGTHS.items():
            value = getattr(self, name)
            if value is not None and not 0 < len(value) <= limit:
                raise ValueError(f"{name} must be 1-{limit} characters, got {len(value)}")

    @property
    def known(self) -> bool:
        """True when the header gave at least one of them."""
        return any(
            v is not None
            for v in (self.accession_number, self.patient_id, self.patient_name, self.study_date)
        )


#: The longest value of each field of :class:`AcquisitionSite` the store keeps (``exams``
#: columns): InstitutionName is LO (64 characters) but some sites send more; Manufacturer
#: and ManufacturerModelName are LO, StationName SH (16; some send more).
SITE_LENGTHS = {"site": 200, "manufacturer": 64, "device_model": 64, "station_name": 64}


@dataclass(frozen=True)
class AcquisitionSite:
    """Where and on what an exam was taken, from its image header (None: absent): the site
    (InstitutionName) and the acquisition device (Manufacturer, ManufacturerModelName,
    StationName). Not patient data; monitoring groups exams by them."""

    site: str | None = None
    manufacturer: str | None = None
    device_model: str | None = None
    station_name: str | None = None

    def __post_init__(self) -> None:
        for name, limit in SITE_LENGTHS.items():
            value = getattr(self, name)
            if value is not None and not 0 < len(value) <= limit:
                raise ValueError(f"{name} must be 1-{limit} characters, got {len(value)}")


@dataclass(frozen=True)
class StoredImage:
    sop_instance_uid: str | None
    path: str | None
    usable: bool
    reason: str | None


@dataclass(frozen=True)
class StoredExam:
    """An exam as stored: what the worker made of it (a record, not a live row)."""

    public_id: uuid.UUID
    study_instance_uid: str
    status: ExamStatus
    received_at: datetime
    partial: bool
    score: float | None
    category: int | None
    model_sha256: str | None
    mode: ReadingMode | None
    priority: bool | None
    rule: str | None
    report_sop_instance_uid: str | None
    report_location: str | None
    images: tuple[StoredImage, ...]
    identifiers: StudyIdentifiers = StudyIdentifiers()


@dataclass(frozen=True)
class SentReport:
    """The SR last sent for an exam: its SOP Instance UID, what it was made from, its
    version (Instance Number) and the SR it superseded."""

    sop_instance_uid: str
    key: str | None
    version: int
    predecessor_uid: str | None = None


def exam_status(exam_score: ExamScore, decision: TriageDecision | None) -> ExamStatus:
    """What scoring made of an exam: REJECTED without a decision (no mammogram in it),
    else SCORED or UNSCORED (no image could be scored)."""
    if decision is None:
        return ExamStatus.REJECTED
    return ExamStatus.SCORED if exam_score.scored else ExamStatus.UNSCORED


class ExamArchive:
    """The scored exams in ``db`` (the worker writes them; the reading desk reads them)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save_score(
        self,
        exam_score: ExamScore,
        decision: TriageDecision | None,
        received_at: datetime,
        *,
        messages: Sequence[tuple[str, str]] = (),
        identifiers: StudyIdentifiers | None = None,
        acquisition: AcquisitionSite | None = None,
    ) -> uuid.UUID:
        """Store an exam's score, images, findings and reading assignment; returns its public id.

        ``messages`` (control id, ER7 text) go into the HL7 outbox in the same transaction:
        the decision and the result that tells the RIS about it commit together or not at
        all (a worker killed after the commit leaves them for the sender to deliver).

        ``exam_score.exam_id`` is the StudyInstanceUID. Saving the same study and model again
        updates the score row (its findings replaced), another model adds a second score
        row. The assignment follows the latest save; its reading status is kept, so a reading
        in progress is not reset.

        ``decision`` None means the study holds no mammogram: it is stored REJECTED with its
        images and their reasons, without a score or a place on the reading lists.

        ``identifiers`` and ``acquisition`` (from the image header) replace those stored;
        None (no header could be read) keeps them. The exam's monitoring day
        (``exam_date``) is its StudyDate, else the day it was received.

        Raises
        ------
        ConfigError
            If ``received_at`` is naive.
        """
        require_aware("received_at", received_at)
        status = exam_status(exam_score, decision)
        with self.db.session() as session:
            exam_id, public_id = self._upsert_exam(
                session, exam_score, status, received_at, identifiers, acquisition
            )
            self._save_images(session, exam_id, exam_score)
            if decision is None:
                session.execute(delete(AssignmentRow).where(AssignmentRow.exam_id == exam_id))
            else:
                score_id = self._upsert_score(session, exam_id, exam_score)
                _replace_findings(session, score_id, exam_score)
                self._assign(session, exam_id, score_id, exam_score, decision)
            exam_public_id = uuid.UUID(str(public_id))
            now = utcnow()
            for control_id, er7 in messages:
                HL7Outbox(self.db).enqueue_in(session, control_id, exam_public_id, er7, now=now)
            if messages:
                ExamOutputs(self.db).record_in(
                    session,
                    exam_public_id,
                    "hl7",
                    now=now,
                    location="outbox " + " ".join(control_id for control_id, _ in messages),
                )
            return exam_public_id

    def _upsert_exam(
        self,
        session: Session,
        exam_score: ExamScore,
        status: ExamStatus,
        received_at: datetime,
        identifiers: StudyIdentifiers | None,
        acquisition: AcquisitionSite | None,
    ) -> tuple[int, Any]:
        """The exam row (its first ``received_at`` kept); returns its id and public id."""
        values: dict[str, Any] = {
            "partial": exam_score.partial,
            "status": status,
            "image_count": len(exam_score.images),
            "unusable_images": sum(not image.usable for image in exam_score.images),
        }
        if identifiers is not None:
            values |= _identifier_values(identifiers)
            if identifiers.study_date is not None:
                values["exam_date"] = identifiers.study_date
        if acquisition is not None:
            values |= dataclasses.asdict(acquisition)
        first = {"exam_date": received_at.astimezone(timezone.utc).date()} | values
        id_and_public_id = session.execute(
            self.db.insert(ExamRow)
            .values(
                public_id=uuid.uuid4(),
                study_instance_uid=exam_score.exam_id,
                received_at=received_at,
                **first,
            )
            .on_conflict_do_update(index_elements=["study_instance_uid"], set_=values)
            .returning(ExamRow.id, ExamRow.public_id)
        ).one()
        return int(id_and_public_id[0]), id_and_public_id[1]

    def _save_images(self, session: Session, exam_id: int, exam_score: ExamScore) -> None:
        """One row per image of the score, upserted on (exam, position); rows past the
        score's last image are dropped. A thumbnail recorded for a position is cleared when
        another file takes that position."""
        session.execute(
            delete(ImageRow).where(
                ImageRow.exam_id == exam_id, ImageRow.position >= len(exam_score.images)
            )
        )
        for position, image in enumerate(exam_score.images):
            values: dict[str, Any] = {
                "sop_instance_uid": image.sop_instance_uid,
                "path": str(image.path) if image.path is not None else None,
                "laterality": image.laterality,
                "view": image.view,
                "usable": image.usable,
                "reason": image.reason,
                "decoder": image.decoder,
            }
            existing = session.execute(
                select(ImageRow.sop_instance_uid, ImageRow.path).where(
                    ImageRow.exam_id == exam_id, ImageRow.position == position
                )
            ).one_or_none()
            if existing is not None and tuple(existing) != (
                values["sop_instance_uid"],
                values["path"],
            ):
                values |= {"thumbnail": None, "rows": None, "columns": None}
            session.execute(
                self.db.insert(ImageRow)
                .values(exam_id=exam_id, position=position, **values)
                .on_conflict_do_update(index_elements=["exam_id", "position"], set_=values)
            )

    def _upsert_score(self, session: Session, exam_id: int, exam_score: ExamScore) -> int:
        """The score row of this exam and model; returns its id."""
        now = utcnow()
        values = {
            "model_name": exam_score.model_name,
            "score": exam_score.score,
            "category": exam_score.category,
            # The JSON column holds the laterality's value ("L", "R") as key.
            "breasts": {Laterality(k).value: v for k, v in exam_score.breasts.items()},
            "updated_at": now,
        }
        return int(
            session.execute(
                self.db.insert(ScoreRow)
                .values(
                    exam_id=exam_id, model_sha256=exam_score.model_sha256, created_at=now, **values
                )
                .on_conflict_do_update(index_elements=["exam_id", "model_sha256"], set_=values)
                .returning(ScoreRow.id)
            ).scalar_one()
        )

    def _assign(
        self,
        session: Session,
        exam_id: int,
        score_id: int,
        exam_score: ExamScore,
        decision: TriageDecision,
    ) -> None:
        """The exam's reading assignment, from the latest decision (its reading status kept)."""
        assignment = {
            "score_id": score_id,
            "mode": decision.mode,
            "priority": decision.priority,
            "category": exam_score.category,
            "rule": decision.rule,
            "rule_code": decision.rule_code,
            "policy_version": decision.policy_version,
        }
        session.execute(
            self.db.insert(AssignmentRow)
            .values(exam_id=exam_id, status=ReadingStatus.UNREAD, **assignment)
            .on_conflict_do_update(index_elements=["exam_id"], set_=assignment)
        )

    def save_report(
        self,
        study_instance_uid: str,
        sop_instance_uid: str,
        location: str,
        sent_at: datetime | None = None,
        *,
        key: str | None = None,
        version: int | None = None,
        predecessor_uid: str | None = None,
    ) -> None:
        """Record the SR sent back for an exam's latest score, where it went and when
        (default: now), what it was made from (``key``), its version and the SR it
        supersedes."""
        with self.db.session() as session:
            result = session.execute(
                update(ExamRow)
                .where(ExamRow.study_instance_uid == study_instance_uid)
                .values(
                    report_sop_instance_uid=sop_instance_uid,
                    report_location=location,
                    report_sent_at=sent_at or utcnow(),
                    report_key=key,
                    report_version=version,
                    report_predecessor_uid=predecessor_uid,
                )
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                raise StoreError("cannot record a report for an exam that is not stored")

    def report_of(self, study_instance_uid: str) -> SentReport | None:
        """The SR last sent for the exam (None: none yet)."""
        with self.db.session() as session:
            row = session.execute(
                select(
                    ExamRow.report_sop_instance_uid,
                    ExamRow.report_key,
                    ExamRow.report_version,
                    ExamRow.report_predecessor_uid,
                ).where(ExamRow.study_instance_uid == study_instance_uid)
            ).one_or_none()
        if row is None or row[0] is None:
            return None
        return SentReport(str(row[0]), row[1], int(row[2] or 1), row[3])

    def save_thumbnails(
        self, public_id: uuid.UUID, thumbnails: dict[int, tuple[str, int, int]]
    ) -> None:
        """Record thumbnails of the exam ``public_id``: position of the image in the exam's
        image list (as saved by :meth:`save_score`) -> (PNG path, rows, columns)."""
        with self.db.session() as session:
            exam_id = session.execute(
                select(ExamRow.id).where(ExamRow.public_id == public_id)
            ).scalar_one_or_none()
            if exam_id is None:
                raise StoreError("cannot record thumbnails for an exam that is not stored")
            for position, (path, rows, columns) in thumbnails.items():
                session.execute(
                    update(ImageRow)
                    .where(ImageRow.exam_id == exam_id, ImageRow.position == position)
                    .values(thumbnail=path, rows=rows, columns=columns)
                    .execution_options(synchronize_session=False)
                )

    def identifiers_of(self, public_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, StudyIdentifiers]:
        """The stored identifiers of these exams (one query; unknown ids are left out)."""
        wanted = list(public_ids)
        if not wanted:
            return {}
        with self.db.session() as session:
            rows = session.execute(select(ExamRow).where(ExamRow.public_id.in_(wanted))).scalars()
            return {row.public_id: identifiers_of_row(row) for row in rows}

    def all(self) -> list[StoredExam]:
        """Every stored exam with its status, latest score and report (for status pages)."""
        query = (
            select(ExamRow, AssignmentRow, ScoreRow)
            .outerjoin(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
            .outerjoin(ScoreRow, ScoreRow.id == AssignmentRow.score_id)
            .order_by(ExamRow.id)
        )
        with self.db.session() as session:
            rows = session.execute(query).all()
            images = (
                session.execute(select(ImageRow).order_by(ImageRow.exam_id, ImageRow.position))
                .scalars()
                .all()
            )
        by_exam: dict[int, list[StoredImage]] = {}
        for image in images:
            by_exam.setdefault(image.exam_id, []).append(
                StoredImage(image.sop_instance_uid, image.path, image.usable, image.reason)
            )
        return [
            StoredExam(
                public_id=exam.public_id,
                study_instance_uid=exam.study_instance_uid,
                status=exam.status,
                received_at=exam.received_at,
                partial=exam.partial,
                score=None if score is None else score.score,
                category=None if score is None else score.category,
                model_sha256=None if score is None else score.model_sha256,
                mode=None if assignment is None else assignment.mode,
                priority=None if assignment is None else assignment.priority,
                rule=None if assignment is None else assignment.rule,
                report_sop_instance_uid=exam.report_sop_instance_uid,
                report_location=exam.report_location,
                images=tuple(by_exam.get(exam.id, ())),
                identifiers=identifiers_of_row(exam),
            )
            for exam, assignment, score in rows
        ]


def identifiers_of_row(exam: ExamRow) -> StudyIdentifiers:
    """The identifiers an exam row holds."""
    return StudyIdentifiers(
        accession_number=exam.accession_number,
        patient_id=exam.patient_id,
        patient_name=exam.patient_name,
        study_date=exam.study_date,
    )


def _identifier_values(identifiers: StudyIdentifiers) -> dict[str, Any]:
    return {
        "accession_number": identifiers.accession_number,
        "patient_id": identifiers.patient_id,
        "patient_name": identifiers.patient_name,
        "study_date": identifiers.study_date,
    }


def _replace_findings(session: Session, score_id: int, exam_score: ExamScore) -> None:
    """The score's findings, replaced by those of this save."""
    session.execute(delete(FindingRow).where(FindingRow.score_id == score_id))
    findings = [
        {
            "score_id": score_id,
            "sop_instance_uid": f.sop_instance_uid,
            "x0": f.box_original[0],
            "y0": f.box_original[1],
            "x1": f.box_original[2],
            "y1": f.box_original[3],
            "score": f.score,
        }
        for f in exam_score.findings
    ]
    if findings:
        session.execute(insert(FindingRow), findings)


__all__ = [
    "IDENTIFIER_LENGTHS",
    "SITE_LENGTHS",
    "AcquisitionSite",
    "ExamArchive",
    "SentReport",
    "StoredExam",
    "StoredImage",
    "StudyIdentifiers",
    "exam_status",
    "identifiers_of_row",
]
