"""Per-exam outputs: what became of each thing the worker sends for an exam.

The worker writes several outputs per scored exam (the DICOM SR, a presentation state, a
burnt-in Secondary Capture, the HL7 result handed to the outbox, the thumbnails); each may
fail on its own while the others go through. One row per exam and output records its latest
attempt, so that the admin page, ``mammotriage worker --show-queues`` and the metrics show
which exam lacks which output and why, long after the job's log lines have scrolled away.

An output's failure never touches the exam's decision (stored before any output is tried);
the job is retried under the worker's retry policy while the fault may pass.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from mammotriage.errors import StoreError
from mammotriage.timeutil import require_aware
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import ExamOutputRow, ExamRow, OutputState

#: The outputs a worker writes (``ExamOutputRow.output``).
OUTPUTS = ("sr", "gsps", "sc", "hl7", "thumbnails")
#: The most an output's recorded reason keeps.
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class ExamOutput:
    """The latest attempt at one output of one exam."""

    exam_public_id: uuid.UUID
    output: str
    state: OutputState
    attempts: int
    updated_at: datetime
    location: str | None
    last_error: str | None


class ExamOutputs:
    """The ``exam_outputs`` table of ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        exam_public_id: uuid.UUID,
        output: str,
        *,
        now: datetime,
        location: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record an attempt: DONE (with where it went) without ``error``, else FAILED with
        it. The attempt count goes up by one each time.

        Raises
        ------
        StoreError
            If the exam is not stored, or ``output`` is not one of :data:`OUTPUTS`.
        """
        with self.db.session() as session:
            self.record_in(session, exam_public_id, output, now=now, location=location, error=error)

    def record_in(
        self,
        session: Session,
        exam_public_id: uuid.UUID,
        output: str,
        *,
        now: datetime,
        location: str | None = None,
        error: str | None = None,
    ) -> None:
        """:meth:`record` inside the caller's transaction."""
        require_aware("now", now)
        if output not in OUTPUTS:
            raise StoreError(f"unknown output {output!r}: one of {', '.join(OUTPUTS)}")
        exam_id = session.execute(
            select(ExamRow.id).where(ExamRow.public_id == exam_public_id)
        ).scalar_one_or_none()
        if exam_id is None:
            raise StoreError("cannot record an output for an exam that is not stored")
        values = {
            "state": OutputState.DONE if error is None else OutputState.FAILED,
            "updated_at": now,
            "location": location,
            "last_error": None if error is None else error[:MAX_ERROR_LENGTH],
        }
        session.execute(
            self.db.insert(ExamOutputRow)
            .values(exam_id=exam_id, output=output, attempts=1, **values)
            .on_conflict_do_update(
                index_elements=["exam_id", "output"],
                set_={**values, "attempts": ExamOutputRow.attempts + 1},
            )
        )

    def for_exam(self, exam_public_id: uuid.UUID) -> list[ExamOutput]:
        """The exam's outputs, by name."""
        query = _query().where(ExamRow.public_id == exam_public_id).order_by(ExamOutputRow.output)
        with self.db.session() as session:
            return [_output(row) for row in session.execute(query)]

    def failing(self, limit: int = 50) -> list[ExamOutput]:
        """Outputs whose latest attempt failed, most recent first."""
        query = (
            _query()
            .where(ExamOutputRow.state == OutputState.FAILED)
            .order_by(ExamOutputRow.updated_at.desc(), ExamOutputRow.id.desc())
            .limit(limit)
        )
        with self.db.session() as session:
            return [_output(row) for row in session.execute(query)]

    def counts(self) -> Mapping[tuple[str, OutputState], int]:
        """Exams per output and state (only the pairs that occur)."""
        with self.db.session() as session:
            rows = session.execute(
                select(ExamOutputRow.output, ExamOutputRow.state, func.count()).group_by(
                    ExamOutputRow.output, ExamOutputRow.state
                )
            ).all()
        return {(str(output), OutputState(state)): int(n) for output, state, n in rows}


def _query() -> Select[uuid.UUID, str, OutputState, int, datetime, str | None, str | None]:
    return select(
        ExamRow.public_id,
        ExamOutputRow.output,
        ExamOutputRow.state,
        ExamOutputRow.attempts,
        ExamOutputRow.updated_at,
        ExamOutputRow.location,
        ExamOutputRow.last_error,
    ).join(ExamRow, ExamRow.id == ExamOutputRow.exam_id)


def _output(
    row: Row[uuid.UUID, str, OutputState, int, datetime, str | None, str | None],
) -> ExamOutput:
    public_id, output, state, attempts, updated_at, location, last_error = row
    return ExamOutput(
        exam_public_id=uuid.UUID(str(public_id)),
        output=str(output),
        state=OutputState(state),
        attempts=int(attempts),
        updated_at=updated_at,
        location=location,
        last_error=last_error,
    )


__all__ = ["MAX_ERROR_LENGTH", "OUTPUTS", "ExamOutput", "ExamOutputs"]
