"""Persistent worklist store (SQLAlchemy 2, Alembic): jobs, scored exams, readings, audit log."""

from mammotriage.worklist.jobs import Job
from mammotriage.worklist.models import ExamStatus, JobStatus, ReadingStatus, Role
from mammotriage.worklist.store import (
    DEFAULT_CLAIM_TIMEOUT,
    Store,
    StoredExam,
    StoredImage,
    WorklistEntry,
)

__all__ = [
    "DEFAULT_CLAIM_TIMEOUT",
    "ExamStatus",
    "Job",
    "JobStatus",
    "ReadingStatus",
    "Role",
    "Store",
    "StoredExam",
    "StoredImage",
    "WorklistEntry",
]
