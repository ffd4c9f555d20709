"""The worklist store: jobs for the worker, scored exams, their readings, users, the audit log.

One :class:`Store` per process, built from a URL and handed to whoever needs it (never a
module-level engine). It is one :class:`~mammotriage.worklist.database.Database` and the
parts that work in it::

    store.jobs      scoring jobs and source cursors (the worker)
    store.exams     scored exams, reports, thumbnails (the worker writes them)
    store.readings  the worklist, readers' queues, claims, decisions, one exam, statistics
    store.users     users of the reading service, their tokens and lifecycle
    store.sessions  page sessions held on the server (logout, idle timeout, lifetime)
    store.audit     who did what to which exam
    store.throttle  failed logins per username and client address (the login throttle)
    store.outbox    HL7 result messages waiting for the RIS (delivered in order, once)
    store.outputs   what became of each output of each exam (SR, GSPS, SC, HL7, thumbnails)

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

from datetime import timedelta

from mammotriage.worklist.audit import AuditLog
from mammotriage.worklist.database import SQLITE_BUSY_TIMEOUT_MS, Database
from mammotriage.worklist.exams import ExamArchive
from mammotriage.worklist.jobs import DEFAULT_CLAIM_TIMEOUT, JobQueue
from mammotriage.worklist.monitoring import MonitorRecords
from mammotriage.worklist.outbox import HL7Outbox
from mammotriage.worklist.outputs import ExamOutputs
from mammotriage.worklist.readings import ReadingDesk
from mammotriage.worklist.sessions import SessionBook
from mammotriage.worklist.throttle import LoginThrottle
from mammotriage.worklist.users import UserDirectory


class Store:
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
        self.db = Database(url, sqlite_busy_timeout=sqlite_busy_timeout, pool_size=pool_size)
        self.jobs = JobQueue(self.db, claim_timeout=claim_timeout)
        self.exams = ExamArchive(self.db)
        self.readings = ReadingDesk(self.db)
        self.users = UserDirectory(self.db)
        self.sessions = SessionBook(self.db)
        self.audit = AuditLog(self.db)
        self.throttle = LoginThrottle(self.db)
        self.outbox = HL7Outbox(self.db)
        self.outputs = ExamOutputs(self.db)
        self.monitoring = MonitorRecords(self.db)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (:meth:`Database.migrate`)."""
        self.db.migrate()

    def close(self) -> None:
        self.db.close()


__all__ = ["Store"]
