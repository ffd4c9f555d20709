"""What monitoring keeps in the store: the programme's outcomes per exam and the alerts the
monitor raised.

Outcomes come from the same CSV file as ``evaluate`` (:mod:`mammotriage.outcomes`), keyed by
StudyInstanceUID (``exam_id``) or accession number. Importing a file again changes nothing;
a later file with other values for an exam replaces them (the registry corrected itself).
Rows whose key matches no exam are counted and named by line, never by key: an accession
number is an identifier.

An alert is stored once per rule, site, device and week (the unique constraint): whoever
evaluates the same weeks again, a second service process included, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import select

from mammotriage.outcomes import OutcomesFile
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import ExamRow, MonitorAlertRow, OutcomeRow, utcnow

#: How many unmatched or ambiguous lines a summary names.
_SHOWN = 10
#: Values per ``IN (...)`` list of a query.
_IN_LIST = 500
T = TypeVar("T")


@dataclass(frozen=True)
class OutcomeImport:
    """What importing an outcomes file did."""

    rows: int
    added: int
    changed: int
    unchanged: int
    #: Line numbers of rows whose key matches no exam in the store (first few).
    unmatched_lines: tuple[int, ...]
    unmatched: int
    #: Line numbers of accession numbers that match several exams (not imported).
    ambiguous_lines: tuple[int, ...]
    ambiguous: int


@dataclass(frozen=True)
class StoredAlert:
    rule: str
    site: str
    device: str
    week: date
    value: float
    threshold: float
    message: str
    raised_at: datetime


def _chunks(values: Sequence[T], size: int = _IN_LIST) -> Iterator[Sequence[T]]:
    """``values`` in slices of ``size``: one ``IN (...)`` list each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


class MonitorRecords:
    """Outcomes and alerts in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def import_outcomes(self, parsed: OutcomesFile, source_sha256: str) -> OutcomeImport:
        """Store each record of ``parsed`` on its exam (see the module docstring)."""
        key_column = (
            ExamRow.study_instance_uid if parsed.key == "exam_id" else ExamRow.accession_number
        )
        keys = [r.key for r in parsed.records]
        exam_ids: dict[str, list[int]] = {}
        with self.db.session() as session:
            for chunk in _chunks(keys):
                for key, exam_id in session.execute(
                    select(key_column, ExamRow.id).where(key_column.in_(chunk))
                ):
                    exam_ids.setdefault(str(key), []).append(int(exam_id))
            matched = [i for ids in exam_ids.values() for i in ids]
            existing = {
                row.exam_id: row
                for chunk in _chunks(matched)
                for row in session.execute(
                    select(OutcomeRow).where(OutcomeRow.exam_id.in_(chunk))
                ).scalars()
            }
            added = changed = unchanged = 0
            unmatched: list[int] = []
            ambiguous: list[int] = []
            now = utcnow()
            for record in parsed.records:
                ids = exam_ids.get(record.key, [])
                if not ids:
                    unmatched.append(record.line)
                    continue
                if len(ids) > 1:
                    ambiguous.append(record.line)
                    continue
                values = (record.screen_detected_cancer, record.interval_cancer, record.recall)
                row = existing.get(ids[0])
                if row is None:
                    session.add(
                        OutcomeRow(
                            exam_id=ids[0],
                            screen_detected_cancer=values[0],
                            interval_cancer=values[1],
                            recall=values[2],
                            imported_at=now,
                            source_sha256=source_sha256,
                            line=record.line,
                        )
                    )
                    added += 1
                elif (row.screen_detected_cancer, row.interval_cancer, row.recall) == values:
                    unchanged += 1
                else:
                    row.screen_detected_cancer, row.interval_cancer, row.recall = values
                    row.imported_at, row.source_sha256, row.line = now, source_sha256, record.line
                    changed += 1
        return OutcomeImport(
            rows=len(parsed.records),
            added=added,
            changed=changed,
            unchanged=unchanged,
            unmatched_lines=tuple(unmatched[:_SHOWN]),
            unmatched=len(unmatched),
            ambiguous_lines=tuple(ambiguous[:_SHOWN]),
            ambiguous=len(ambiguous),
        )

    def record_alerts(self, alerts: Sequence[StoredAlert]) -> list[StoredAlert]:
        """Store the alerts not stored yet; returns those (the new ones), in order."""
        new: list[StoredAlert] = []
        with self.db.session() as session:
            for alert in alerts:
                inserted = session.execute(
                    self.db.insert(MonitorAlertRow)
                    .values(
                        rule=alert.rule,
                        site=alert.site,
                        device=alert.device,
                        week=alert.week,
                        value=alert.value,
                        threshold=alert.threshold,
                        message=alert.message,
                        raised_at=alert.raised_at,
                    )
                    .on_conflict_do_nothing(index_elements=["rule", "site", "device", "week"])
                    .returning(MonitorAlertRow.id)
                ).first()
                if inserted is not None:
                    new.append(alert)
        return new

    def alerts(self, since: date | None = None, limit: int = 500) -> list[StoredAlert]:
        """Stored alerts, newest week first (at most ``limit``)."""
        query = select(MonitorAlertRow).order_by(
            MonitorAlertRow.week.desc(), MonitorAlertRow.rule, MonitorAlertRow.id
        )
        if since is not None:
            query = query.where(MonitorAlertRow.week >= since)
        with self.db.session() as session:
            return [
                StoredAlert(
                    r.rule, r.site, r.device, r.week, r.value, r.threshold, r.message, r.raised_at
                )
                for r in session.execute(query.limit(limit)).scalars()
            ]


__all__ = ["MonitorRecords", "OutcomeImport", "StoredAlert"]
