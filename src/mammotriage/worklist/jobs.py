"""The job queue of the store: studies waiting to be scored, claims, retries, cursors.

Concurrency rests on the database (see :mod:`mammotriage.worklist.database`): enqueue is an
``INSERT ... ON CONFLICT DO NOTHING`` on ``UNIQUE(source, study)`` and a claim is one
``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``.
"""

from __future__ import annotations

import os
import secrets
import socket
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


def instance_id(name: str, *, host: str | None = None, pid: int | None = None) -> str:
    """The identity one worker process claims jobs under: ``NAME#HOST:PID:RANDOM``.

    ``name`` is the configured worker name (the host name by default), which two processes
    may share; the host, the process id and a random token make the instance unique, and
    the token also tells this process from an earlier one that had the same pid.

    Claims carry the instance id. :meth:`JobQueue.done`, ``fail`` and ``retry`` act only on
    a job still claimed by the instance the caller claimed it as. At start a worker calls
    :meth:`JobQueue.release_claims` with its name: it puts back the jobs of instances of that
    name on this host whose process is gone (a crash, a restart under systemd), never those
    of a live process sharing the name. Claims of an instance on another host, which cannot
    be checked from here, are left to the claim timeout, like any abandoned claim.
    """
    host = socket.gethostname() if host is None else host
    pid = os.getpid() if pid is None else pid
    made = f"{_instance_prefix(name)}{host[:60]}:{pid}:{secrets.token_hex(4)}"
    if pid == os.getpid():
        _MINE.add(made)
    return made


#: The instance ids made in this process (alive as long as it is).
_MINE: set[str] = set()


def _instance_prefix(name: str) -> str:
    """What every instance id of ``name`` starts with (see :func:`instance_id`); the name
    is cut so that the id fits ``jobs.claimed_by`` (200) with a 60-character host."""
    return name[:110] + "#"


def _instance_is_gone(claimed_by: str, *, host: str, me: str | None) -> bool:
    """Whether the process of instance ``claimed_by`` is known to have ended: it ran on
    ``host`` and its pid is not running, or is ours under another token (``me``)."""
    try:
        where, pid_text, _token = claimed_by.rsplit("#", 1)[1].rsplit(":", 2)
        pid = int(pid_text)
    except (IndexError, ValueError):
        return False
    if where != host[:60] or claimed_by == me:
        return False
    if pid == os.getpid():
        return claimed_by not in _MINE  # not made here: an earlier process with our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


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

    def done(self, job: Job) -> Job | None:
        """Record that a claimed job succeeded: DONE, or QUEUED again when it was enqueued
        again while it ran (``rescan``).

        Returns None, and changes nothing, when the job is no longer RUNNING under the claim
        ``job`` was returned with (another worker took it over after the claim timeout, or
        it was released); the same holds for :meth:`fail` and :meth:`retry`."""
        with self.db.session() as session:
            row = self._claimed_row(session, job)
            if row is None:
                return None
            row.status = JobStatus.QUEUED if row.rescan else JobStatus.DONE
            row.last_error = None
            return _released(session, row)

    def fail(self, job: Job, error: str) -> Job | None:
        """Record that a claimed job failed for good: FAILED with ``error`` (None: not ours)."""
        with self.db.session() as session:
            row = self._claimed_row(session, job)
            if row is None:
                return None
            row.status = JobStatus.FAILED
            row.last_error = error
            return _released(session, row)

    def retry(
        self, job: Job, error: str, *, delay: timedelta, now: datetime | None = None
    ) -> Job | None:
        """Put a claimed job back in the queue, not to be claimed again for ``delay``
        (None: not ours)."""
        now = utcnow() if now is None else now
        with self.db.session() as session:
            row = self._claimed_row(session, job)
            if row is None:
                return None
            row.status = JobStatus.QUEUED
            row.last_error = error
            return _released(session, row, available_at=now + delay)

    def release_claims(self, worker_id: str, *, me: str | None = None) -> int:
        """Put back the jobs worker ``worker_id`` held when a process of it died, or when the
        caller, instance ``me``, lost the database while holding one.

        Released: jobs claimed under ``worker_id`` itself (claims made without an instance
        id), the caller's own ``me``, and those of every instance of that name
        (:func:`instance_id`) on this host whose process is gone. Jobs of a live process
        that shares the name stay claimed. Returns how many were released. Their attempts
        stay counted.
        """
        host = socket.gethostname()
        with self.db.session() as session:
            holders = session.execute(
                select(JobRow.claimed_by)
                .where(
                    JobRow.status == JobStatus.RUNNING,
                    JobRow.claimed_by.startswith(_instance_prefix(worker_id), autoescape=True),
                )
                .distinct()
            ).scalars()
            gone = [h for h in holders if h and _instance_is_gone(h, host=host, me=me)]
            gone += [worker_id] + ([me] if me else [])
            result = session.execute(
                update(JobRow)
                .where(JobRow.status == JobStatus.RUNNING, JobRow.claimed_by.in_(gone))
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
    def _claimed_row(session: Session, job: Job) -> JobRow | None:
        """The job's row, locked, if it is still RUNNING under ``job``'s claim; else None.

        Raises
        ------
        StoreError
            If the job no longer exists.
        """
        row = session.get(JobRow, job.id, with_for_update=True)
        if row is None:
            raise StoreError(f"job {job.id} does not exist")
        if row.status != JobStatus.RUNNING or row.claimed_by != job.claimed_by:
            return None
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


__all__ = ["DEFAULT_CLAIM_TIMEOUT", "Job", "JobQueue", "instance_id"]
