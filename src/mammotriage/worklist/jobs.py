"""The job queue of the store: studies waiting to be scored, claims, retries, cursors.

Concurrency rests on the database (see :mod:`mammotriage.worklist.database`): enqueue is an
``INSERT ... ON CONFLICT DO NOTHING`` on ``UNIQUE(source, study)`` and a claim is one
``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.orm import Session

from mammotriage.errors import ConfigError, StoreError
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import JobRow, JobStatus, SourceCursorRow, utcnow

#: How long a RUNNING job may go without finishing before another worker may take it over.
DEFAULT_CLAIM_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Job:
    """One scoring job as it stood when the store returned it (a record, not a live row)."""

    id: int
    source: str
    #: The StudyInstanceUID (or, for a file without one, its exam key).
    study_instance_uid: str
    status: JobStatus
    attempts: int
    last_error: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    created_at: datetime | None = None
    fingerprint: str | None = None
    available_at: datetime | None = None


class JobQueue:
    """Scoring jobs and the sources' change-feed cursors, in ``db``.

    Parameters
    ----------
    claim_timeout
        A RUNNING job claimed longer ago than this is assumed abandoned (a crashed worker)
        and may be claimed again.

    Raises
    ------
    ConfigError
        If ``claim_timeout`` is not a positive timedelta.
    """

    def __init__(self, db: Database, *, claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT) -> None:
        if not isinstance(claim_timeout, timedelta) or claim_timeout <= timedelta(0):
            raise ConfigError(f"claim_timeout must be a positive timedelta, got {claim_timeout!r}")
        self.db = db
        self.claim_timeout = claim_timeout

    def enqueue(self, source: str, study_instance_uid: str, fingerprint: str | None = None) -> Job:
        """Queue a study for scoring; idempotent on ``(source, study_instance_uid)``.

        A second enqueue returns the existing job. A DONE or FAILED job is queued again when
        its content changed: the ``fingerprint`` differs from the one it was queued with
        (a late view), or none is given (the caller says: score it again). A RUNNING job
        whose content changed is marked to run once more when it finishes, as the worker
        may have listed the study's images before the new ones came. A QUEUED job only
        takes the new fingerprint.
        """
        if not source or not study_instance_uid:
            raise ConfigError(
                f"source and study_instance_uid must be non-empty, "
                f"got {source!r}, {study_instance_uid!r}"
            )
        key = and_(JobRow.source == source, JobRow.study_instance_uid == study_instance_uid)
        changed = (
            JobRow.fingerprint.is_distinct_from(fingerprint) if fingerprint is not None else true()
        )
        with self.db.session() as session:
            session.execute(
                self.db.insert(JobRow)
                .values(
                    source=source, study_instance_uid=study_instance_uid, fingerprint=fingerprint
                )
                .on_conflict_do_nothing(index_elements=["source", "study_instance_uid"])
            )
            session.execute(
                update(JobRow)
                .where(key, JobRow.status.in_([JobStatus.DONE, JobStatus.FAILED]), changed)
                .values(
                    status=JobStatus.QUEUED,
                    attempts=0,
                    last_error=None,
                    claimed_by=None,
                    claimed_at=None,
                    available_at=None,
                    fingerprint=fingerprint,
                )
            )
            session.execute(
                update(JobRow)
                .where(key, JobRow.status == JobStatus.RUNNING, changed)
                .values(rescan=True, fingerprint=fingerprint)
            )
            session.execute(
                update(JobRow)
                .where(key, JobRow.status == JobStatus.QUEUED, changed)
                .values(fingerprint=fingerprint)
            )
            row = session.execute(select(JobRow).where(key)).scalar_one()
            return _job(row)

    def claim(self, worker_id: str, *, now: datetime | None = None) -> Job | None:
        """Take the oldest available QUEUED job (or an abandoned RUNNING one) for ``worker_id``.

        A job retried with backoff is not available before its ``available_at``. Returns
        None when there is nothing to do. The claim increments ``attempts``.
        """
        now = utcnow() if now is None else now
        stale = now - self.claim_timeout
        candidate = (
            select(JobRow.id)
            .where(
                or_(
                    and_(
                        JobRow.status == JobStatus.QUEUED,
                        or_(JobRow.available_at.is_(None), JobRow.available_at <= now),
                    ),
                    and_(JobRow.status == JobStatus.RUNNING, JobRow.claimed_at < stale),
                )
            )
            .order_by(JobRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(JobRow)
            .where(JobRow.id == candidate)
            .values(
                status=JobStatus.RUNNING,
                attempts=JobRow.attempts + 1,
                claimed_by=worker_id,
                claimed_at=now,
                rescan=False,
            )
            .returning(*JobRow.__table__.c)
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as session:
            row = session.execute(statement).mappings().one_or_none()
            return None if row is None else _job_from_mapping(row)

    def done(self, job: Job) -> Job:
        """Record that a claimed job succeeded: DONE, or QUEUED again when it was enqueued
        again while it ran (``rescan``)."""
        with self.db.session() as session:
            row = self._claimed_row(session, job)
            row.status = JobStatus.QUEUED if row.rescan else JobStatus.DONE
            row.last_error = None
            return _released(session, row)

    def fail(self, job: Job, error: str) -> Job:
        """Record that a claimed job failed for good: FAILED with ``error``."""
        with self.db.session() as session:
            row = self._claimed_row(session, job)
            row.status = JobStatus.FAILED
            row.last_error = error
            return _released(session, row)

    def retry(self, job: Job, error: str, *, delay: timedelta, now: datetime | None = None) -> Job:
        """Put a claimed job back in the queue, not to be claimed again for ``delay``."""
        now = utcnow() if now is None else now
        with self.db.session() as session:
            row = self._claimed_row(session, job)
            row.status = JobStatus.QUEUED
            row.last_error = error
            return _released(session, row, available_at=now + delay)

    def release_claims(self, worker_id: str) -> int:
        """Put back every job ``worker_id`` holds (a worker restarting after a crash).

        Returns how many were released. Their attempts stay counted.
        """
        with self.db.session() as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.status == JobStatus.RUNNING, JobRow.claimed_by == worker_id)
                .values(status=JobStatus.QUEUED, claimed_by=None, claimed_at=None)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def get(self, job_id: int) -> Job | None:
        with self.db.session() as session:
            row = session.get(JobRow, job_id)
            return None if row is None else _job(row)

    def all(self, *, status: JobStatus | None = None) -> list[Job]:
        """Every job (or those in ``status``), oldest first."""
        query = select(JobRow).order_by(JobRow.id)
        if status is not None:
            query = query.where(JobRow.status == status)
        with self.db.session() as session:
            return [_job(row) for row in session.execute(query).scalars()]

    def counts(self) -> dict[JobStatus, int]:
        """Jobs per status (every status present, zero when none)."""
        with self.db.session() as session:
            rows = session.execute(
                select(JobRow.status, func.count()).group_by(JobRow.status)
            ).all()
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(status): int(n) for status, n in rows})
        return counts

    # -- source cursors -------------------------------------------------------------------

    def cursor(self, source: str) -> str | None:
        """Where ``source``'s change feed was last read to; None before the first poll."""
        with self.db.session() as session:
            row = session.get(SourceCursorRow, source)
            return None if row is None else row.cursor

    def save_cursor(self, source: str, cursor: str) -> None:
        values = {"cursor": cursor, "updated_at": utcnow()}
        with self.db.session() as session:
            session.execute(
                self.db.insert(SourceCursorRow)
                .values(source=source, **values)
                .on_conflict_do_update(index_elements=["source"], set_=values)
            )

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _claimed_row(session: Session, job: Job) -> JobRow:
        row = session.get(JobRow, job.id, with_for_update=True)
        if row is None:
            raise StoreError(f"job {job.id} does not exist")
        return row


def _released(session: Session, row: JobRow, *, available_at: datetime | None = None) -> Job:
    """The job as it stands once its worker let go of it (status and error set by the caller)."""
    row.rescan = False
    row.claimed_by = None
    row.claimed_at = None
    row.available_at = available_at
    session.flush()
    return _job(row)


def _job(row: JobRow) -> Job:
    return _job_from_mapping({c.key: getattr(row, c.key) for c in JobRow.__table__.c})


def _job_from_mapping(row: Any) -> Job:
    """A :class:`Job` from a ``jobs`` row as a mapping (``RETURNING`` gives one)."""
    return Job(
        id=row["id"],
        source=row["source"],
        study_instance_uid=row["study_instance_uid"],
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        created_at=row["created_at"],
        fingerprint=row["fingerprint"],
        available_at=row["available_at"],
    )


__all__ = ["DEFAULT_CLAIM_TIMEOUT", "Job", "JobQueue"]
