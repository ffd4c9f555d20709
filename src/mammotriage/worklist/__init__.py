"""Persistent worklist store (SQLAlchemy 2, Alembic): jobs, scored exams, readings, audit log.

:class:`Store` is the entry point; see :mod:`mammotriage.worklist.store` for its parts.
"""

from mammotriage.worklist.exams import StoredExam, StoredImage
from mammotriage.worklist.jobs import DEFAULT_CLAIM_TIMEOUT, Job
from mammotriage.worklist.models import ExamStatus, JobStatus, ReadingStatus, Role
from mammotriage.worklist.order import WorklistEntry
from mammotriage.worklist.queues import ReadingQueue
from mammotriage.worklist.stats import QueueStats
from mammotriage.worklist.store import Store

__all__ = [
    "DEFAULT_CLAIM_TIMEOUT",
    "ExamStatus",
    "Job",
    "JobStatus",
    "QueueStats",
    "ReadingQueue",
    "ReadingStatus",
    "Role",
    "Store",
    "StoredExam",
    "StoredImage",
    "WorklistEntry",
]
