"""The worklist store: jobs for the worker, scored exams and their reading assignments.

One :class:`Store` per process, built from a URL and handed to whoever needs it (never a
module-level engine). SQLite is the one-site default; PostgreSQL serves several workers.

Concurrency rests on the database, not on the code:

- enqueue is an ``INSERT ... ON CONFLICT DO NOTHING`` on ``UNIQUE(source, study)``;
- a claim is one ``UPDATE jobs ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)
  RETURNING``: on PostgreSQL concurrent workers skip each other's rows; SQLite drops the
  ``FOR UPDATE`` and every transaction here starts with ``BEGIN IMMEDIATE``, so writers are
  serialised and the statement is atomic;
- scores, exams, images and assignments are upserts on their unique constraints, so that
  re-processing a study updates its rows and never duplicates them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mammotriage.errors import ConfigError, StoreError
from mammotriage.infer.scores import ExamScore
from mammotriage.triage.policy import ExamForTriage, ReadingMode, TriageDecision, TriagePolicy
from mammotriage.triage.queue import OrderKey, QueueTier, order_key
from mammotriage.worklist.jobs import Job, JobQueue
from mammotriage.worklist.models import (
    AssignmentRow,
    AuditRow,
    Base,
    ExamRow,
    ExamStatus,
    FindingRow,
    ImageRow,
    ReadingStatus,
    ScoreRow,
    utcnow,
)
from mammotriage.worklist.readings import ReadingDesk
from mammotriage.worklist.users import UserDirectory

#: How long a RUNNING job may go without finishing before another worker may take it over.
DEFAULT_CLAIM_TIMEOUT = timedelta(minutes=30)
#: How long a SQLite writer waits for the lock before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: PostgreSQL advisory lock held while migrating ("mammotri" in ASCII): workers that start
#: together on an empty database would otherwise each create the schema at once.
MIGRATION_LOCK_KEY = 0x6D616D6D6F747269


@dataclass(frozen=True)
class WorklistEntry:
    """One exam waiting for its reading, with the decision triage made and its sort key."""

    exam_public_id: uuid.UUID
    study_instance_uid: str
    received_at: datetime
    partial: bool
    score: float | None
    category: int | None
    decision: TriageDecision
    reading_status: ReadingStatus
    order: OrderKey


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


def database_url(url: str) -> URL:
    """A SQLAlchemy URL from a URL or a bare SQLite file path.

    Raises
    ------
    ConfigError
        If ``url`` is empty or not a database URL SQLAlchemy understands.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"worklist database URL must be a non-empty string, got {url!r}")
    if "://" not in url:
        return URL.create("sqlite", database=url)
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"worklist database URL {url!r} is not valid: {exc}") from exc


class Store(JobQueue, ReadingDesk, UserDirectory):
    """Persistent worklist: jobs, exams, scores, reading assignments and the audit log.

    Parameters
    ----------
    url
        ``sqlite:///path``, a bare SQLite file path, or a PostgreSQL URL
        (``postgresql+psycopg://user@host/db``).
    claim_timeout
        A RUNNING job claimed longer ago than this is assumed abandoned (a crashed worker)
        and may be claimed again.
    pool_size
        PostgreSQL connections kept open (default SQLAlchemy's 5 + 10 overflow); a service
        with many threads sets it to their number.
    sqlite_busy_timeout
        How long a SQLite writer waits for another's lock before the call fails with a
        :class:`StoreError` ("database is locked").

    Raises
    ------
    ConfigError
        If the URL is not valid or ``claim_timeout`` is not positive.
    """

    def __init__(
        self,
        url: str,
        *,
        claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT,
        sqlite_busy_timeout: timedelta = timedelta(milliseconds=SQLITE_BUSY_TIMEOUT_MS),
        pool_size: int | None = None,
    ) -> None:
        if not isinstance(claim_timeout, timedelta) or claim_timeout <= timedelta(0):
            raise ConfigError(f"claim_timeout must be a positive timedelta, got {claim_timeout!r}")
        self.url = database_url(url)
        self.claim_timeout = claim_timeout
        try:
            options: dict[str, Any] = {}
            if pool_size is not None and self.url.get_backend_name() == "postgresql":
                # As many connections as the caller has threads: none is opened per request.
                options = {"pool_size": pool_size, "max_overflow": pool_size}
            self.engine: Engine = create_engine(self.url, **options)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"cannot open worklist database {self.url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine, int(sqlite_busy_timeout.total_seconds() * 1000))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction; database errors leave as :class:`StoreError`."""
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"worklist database error: {exc}") from exc

    def _insert(self, entity: type[Base]) -> Any:
        """The dialect's INSERT, which knows ``ON CONFLICT`` (both SQLite and PostgreSQL do)."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(entity)
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(entity)
        raise ConfigError(
            f"worklist database must be SQLite or PostgreSQL, got {self.engine.dialect.name!r}"
        )

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (``upgrade head``).

        Raises
        ------
        StoreError
            If the migration fails.
        """
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(files("mammotriage.worklist") / "migrations"))
        config.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Held until commit: the next worker waits, then finds the schema at head.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            where = self.url.render_as_string(hide_password=True)
            raise StoreError(
                f"cannot open or migrate the worklist database {where}: {_reason(exc)}"
            ) from exc

    # -- exams and scores -----------------------------------------------------------------

    def save_exam_score(
        self, exam_score: ExamScore, decision: TriageDecision | None, received_at: datetime
    ) -> uuid.UUID:
        """Store an exam's score, images, findings and reading assignment; returns its public id.

        ``exam_score.exam_id`` is the StudyInstanceUID. Every write is an upsert on a unique
        constraint: saving the same study and model again updates the score row (its findings
        replaced), another model adds a second score row. The assignment follows the latest
        save; its reading status is kept, so a reading in progress is not reset.

        ``decision`` None means the study holds no mammogram: it is stored REJECTED with its
        images and their reasons, without a score or a place on the reading lists.

        Raises
        ------
        ConfigError
            If ``received_at`` is naive.
        """
        if not isinstance(received_at, datetime) or received_at.utcoffset() is None:
            raise ConfigError(f"received_at must be a timezone-aware datetime, got {received_at!r}")
        now = utcnow()
        if decision is None:
            status = ExamStatus.REJECTED
        else:
            status = ExamStatus.SCORED if exam_score.scored else ExamStatus.UNSCORED
        with self._session() as session:
            exam_values = {
                "study_instance_uid": exam_score.exam_id,
                "received_at": received_at,
                "partial": exam_score.partial,
                "status": status,
            }
            exam_id, public_id = session.execute(
                self._insert(ExamRow)
                .values(public_id=uuid.uuid4(), **exam_values)
                .on_conflict_do_update(
                    index_elements=["study_instance_uid"],
                    set_={"partial": exam_score.partial, "status": status},
                )
                .returning(ExamRow.id, ExamRow.public_id)
            ).one()
            self._save_images(session, exam_id, exam_score)
            if decision is None:
                session.execute(delete(AssignmentRow).where(AssignmentRow.exam_id == exam_id))
                return uuid.UUID(str(public_id))
            score_values = {
                "model_name": exam_score.model_name,
                "score": exam_score.score,
                "category": exam_score.category,
                "breasts": dict(exam_score.breasts),
                "updated_at": now,
            }
            score_id = session.execute(
                self._insert(ScoreRow)
                .values(
                    exam_id=exam_id,
                    model_sha256=exam_score.model_sha256,
                    created_at=now,
                    **score_values,
                )
                .on_conflict_do_update(
                    index_elements=["exam_id", "model_sha256"], set_=score_values
                )
                .returning(ScoreRow.id)
            ).scalar_one()
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
                self._insert(AssignmentRow)
                .values(exam_id=exam_id, status=ReadingStatus.UNREAD, **assignment)
                .on_conflict_do_update(index_elements=["exam_id"], set_=assignment)
            )
            return uuid.UUID(str(public_id))

    def _save_images(self, session: Session, exam_id: int, exam_score: ExamScore) -> None:
        """Upsert images by SOPInstanceUID; drop this exam's images no longer in the score."""
        keep = [im.sop_instance_uid for im in exam_score.images if im.sop_instance_uid]
        stale = delete(ImageRow).where(ImageRow.exam_id == exam_id)
        if keep:
            stale = stale.where(
                or_(ImageRow.sop_instance_uid.is_(None), ImageRow.sop_instance_uid.not_in(keep))
            )
        session.execute(stale)
        for image in exam_score.images:
            values = {
                "exam_id": exam_id,
                "path": str(image.path) if image.path is not None else None,
                "laterality": image.laterality,
                "view": image.view,
                "usable": image.usable,
                "reason": image.reason,
            }
            statement = self._insert(ImageRow).values(
                sop_instance_uid=image.sop_instance_uid, **values
            )
            if image.sop_instance_uid:
                statement = statement.on_conflict_do_update(
                    index_elements=["sop_instance_uid"], set_=values
                )
            session.execute(statement)

    def save_report(self, study_instance_uid: str, sop_instance_uid: str, location: str) -> None:
        """Record the SR sent back for an exam's latest score, and where it went."""
        with self._session() as session:
            result = session.execute(
                update(ExamRow)
                .where(ExamRow.study_instance_uid == study_instance_uid)
                .values(report_sop_instance_uid=sop_instance_uid, report_location=location)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                raise StoreError("cannot record a report for an exam that is not stored")

    def save_thumbnails(self, thumbnails: dict[str, tuple[str, int, int]]) -> None:
        """Record each image's thumbnail: SOPInstanceUID -> (PNG path, rows, columns)."""
        with self._session() as session:
            for sop_instance_uid, (path, rows, columns) in thumbnails.items():
                session.execute(
                    update(ImageRow)
                    .where(ImageRow.sop_instance_uid == sop_instance_uid)
                    .values(thumbnail=path, rows=rows, columns=columns)
                    .execution_options(synchronize_session=False)
                )

    def exams(self) -> list[StoredExam]:
        """Every stored exam with its status, latest score and report (for status pages)."""
        query = (
            select(ExamRow, AssignmentRow, ScoreRow)
            .outerjoin(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
            .outerjoin(ScoreRow, ScoreRow.id == AssignmentRow.score_id)
            .order_by(ExamRow.id)
        )
        with self._session() as session:
            rows = session.execute(query).all()
            images = session.execute(select(ImageRow).order_by(ImageRow.id)).scalars().all()
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
            )
            for exam, assignment, score in rows
        ]

    # -- worklist -------------------------------------------------------------------------

    def worklist(self, now: datetime, policy: TriagePolicy) -> list[WorklistEntry]:
        """Exams not yet read, in reading order at ``now`` (:func:`mammotriage.triage.order_key`).

        An exam without a score (no image could be scored) has no category: it keeps the tier
        its decision gives it (overdue, priority or routine) and sorts after every scored exam
        of that tier.

        Raises
        ------
        ConfigError
            If ``now`` is naive.
        """
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise ConfigError(f"now must be a timezone-aware datetime, got {now!r}")
        max_finding = (
            select(func.max(FindingRow.score))
            .where(FindingRow.score_id == AssignmentRow.score_id)
            .correlate(AssignmentRow)
            .scalar_subquery()
        )
        # Plain columns, not ORM entities: this runs for every waiting exam, and loading
        # two mapped objects per row costs more than ordering them.
        query = (
            select(
                ExamRow.public_id,
                ExamRow.study_instance_uid,
                ExamRow.received_at,
                ExamRow.partial,
                AssignmentRow.mode,
                AssignmentRow.priority,
                AssignmentRow.rule,
                AssignmentRow.policy_version,
                AssignmentRow.rule_code,
                AssignmentRow.category,
                AssignmentRow.status,
                ScoreRow.score,
                max_finding.label("max_finding"),
            )
            .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
            .outerjoin(ScoreRow, ScoreRow.id == AssignmentRow.score_id)
            .where(AssignmentRow.status != ReadingStatus.READ)
        )
        with self._session() as session:
            rows = session.execute(query).all()
        entries = [_entry(row, now, policy) for row in rows]
        return sorted(entries, key=lambda entry: entry.order)

    # -- audit ----------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        exam_public_id: uuid.UUID | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one line to the audit log (internal ids only, never patient data)."""
        with self._session() as session:
            session.add(
                AuditRow(
                    actor=actor, action=action, exam_public_id=exam_public_id, detail=detail or {}
                )
            )


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's first line ("Connection refused ..."), without SQLAlchemy's SQL dump and
    background link: what an operator reads on one line."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every transaction.

    ``BEGIN IMMEDIATE`` takes the write lock at the start, so that two transactions never
    both read and then fail to upgrade to writing (SQLITE_BUSY without waiting); with the
    busy timeout, writers queue instead. This is SQLAlchemy's documented pysqlite recipe.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _entry(row: Any, now: datetime, policy: TriagePolicy) -> WorklistEntry:
    """One waiting exam from a row of :meth:`Store.worklist`'s query."""
    (
        public_id,
        study_instance_uid,
        received_at,
        partial,
        mode,
        priority,
        rule,
        policy_version,
        rule_code,
        category,
        status,
        score,
        max_finding,
    ) = row  # unpacked once: named access on a Row costs more, for every waiting exam
    exam_id = str(public_id)
    decision = TriageDecision(exam_id, mode, priority, rule, policy_version, rule_code)
    if score is not None and category is not None:
        triage_exam = ExamForTriage(exam_id, score, category, max_finding, partial, received_at)
        order = order_key(decision, triage_exam, now, policy)
    else:
        order = _unscored_order(decision, received_at, exam_id, now, policy)
    return WorklistEntry(
        exam_public_id=public_id,
        study_instance_uid=study_instance_uid,
        received_at=received_at,
        partial=partial,
        score=score,
        category=category,
        decision=decision,
        reading_status=status,
        order=order,
    )


def _unscored_order(
    decision: TriageDecision,
    received_at: datetime,
    exam_id: str,
    now: datetime,
    policy: TriagePolicy,
) -> OrderKey:
    """Sort key of an exam without a category, mirroring :func:`order_key`'s tiers."""
    if decision.mode is ReadingMode.RULE_OUT:
        return OrderKey(QueueTier.NO_READER, 0, received_at, exam_id)
    if now - received_at > timedelta(days=policy.max_wait_days):
        return OrderKey(QueueTier.OVERDUE, 0, received_at, exam_id)
    tier = QueueTier.PRIORITY if decision.priority else QueueTier.ROUTINE
    return OrderKey(tier, 0, received_at, exam_id)


__all__ = [
    "DEFAULT_CLAIM_TIMEOUT",
    "Job",
    "Store",
    "StoredExam",
    "StoredImage",
    "WorklistEntry",
    "database_url",
]
