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

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select

from mammotriage.outcomes import OutcomesFile
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import ExamRow, MonitorAlertRow, OutcomeRow, utcnow

#: How many unmatched or ambiguous lines a summary names.
_SHOWN = 10


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                for key, exam_id in session.execute(
                    select(key_column, ExamRow.id).where(key_column.in_(chunk))
                ):
                    exam_ids.setdefault(str(key), []).append(int(exam_id))
            existing = {
                row.exam_id: row
                for start in range(0, len(keys), 500)
                for row in session.execute(
                    select(OutcomeRow).where(
                        OutcomeRow.exam_id.in_(
                            [i for k in keys[start : start + 500] for i in exam_ids.get(k, ())]
                        )
                    )
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


__all__ = ["MonitorRecords", "OutcomeImport", "StoredAlert", "file_sha256"]
