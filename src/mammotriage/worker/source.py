"""What every source of studies offers the worker loop, and nothing more.

A source answers three questions: which studies are complete since I last asked (``poll``),
what are a study's files (``fetch``), and where does a report go back (``store_reports``).
The loop does not know whether it talks to a folder, Orthanc, a DICOMweb PACS or its own
C-STORE SCP.

Errors a source raises are :class:`~mammotriage.errors.SourceUnavailableError` for what
may pass (connection refused, timeout, HTTP 5xx, a full disk: the job is retried with
backoff) and :class:`~mammotriage.errors.SourceError` for what will not (a study that is
gone: the job fails with the reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Arrival:
    """A study the source considers complete (stable), as of one poll.

    Parameters
    ----------
    study_key
        The StudyInstanceUID; for a folder file with none, the exam key that
        :func:`mammotriage.dicom.exams.exam_key` gives it.
    fingerprint
        Changes whenever the study's content changes (instance count, last update, the
        files' names and sizes): a study seen again with the same fingerprint is not
        scored again, one with a new fingerprint (a late view) is.
    arrived_at
        When the source saw the study complete (timezone-aware); the exam's waiting time
        counts from here.
    """

    study_key: str
    fingerprint: str
    arrived_at: datetime


@dataclass(frozen=True)
class Poll:
    """The result of one poll: new arrivals and the cursor to resume from next time."""

    arrivals: tuple[Arrival, ...]
    #: Opaque to the loop, persisted in the store once the arrivals are queued, handed back
    #: to the next ``poll``; ``None`` leaves the saved cursor as it is.
    cursor: str | None = None
    #: Studies seen but not complete yet (inside their quiet period): a one-shot run
    #: (``worker --once``) waits for them rather than leave them for the next run.
    waiting: int = 0


@runtime_checkable
class Source(Protocol):
    """One place studies come from and reports go back to."""

    #: Stable key of this source in the store (``jobs.source``), e.g. ``orthanc:http://...``;
    #: it must not contain credentials.
    name: str

    def poll(self, cursor: str | None) -> Poll:
        """Studies complete since ``cursor`` (``None`` on the first poll ever)."""
        ...

    def fetch(self, study_key: str, into: Path) -> list[Path]:
        """The study's DICOM files, downloaded under ``into`` (or in place, for a folder).

        Raises
        ------
        SourceError
            If the study no longer exists.
        SourceUnavailableError
            If the source cannot be reached now.
        """
        ...

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        """Send the report files (DICOM SR, ...) back; returns where they went, for humans."""
        ...

    def close(self) -> None:
        """Release connections, servers and threads."""
        ...


__all__ = ["Arrival", "Poll", "Source"]
