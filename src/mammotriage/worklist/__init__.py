"""Persistent worklist store (SQLAlchemy 2, Alembic): jobs, scored exams, readings, audit log."""

from mammotriage.worklist.models import ExamStatus, JobStatus, ReadingStatus
from mammotriage.worklist.store import DEFAULT_CLAIM_TIMEOUT, Job, Store, WorklistEntry

__all__ = [
    "DEFAULT_CLAIM_TIMEOUT",
    "ExamStatus",
    "Job",
    "JobStatus",
    "ReadingStatus",
    "Store",
    "WorklistEntry",
]
