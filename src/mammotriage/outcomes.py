"""The outcomes file: what became of each exam, as the screening programme knows it.

Read by ``evaluate`` (the go-live report) and ``outcomes import`` (the monitoring after
go-live); both take the same file, checked the same way.

A CSV with a header row and one row per exam::

    exam_id,screen_detected_cancer,interval_cancer,recall
    1.2.826.0.1.3680043.8.498.1,0,0,0
    1.2.826.0.1.3680043.8.498.2,1,0,1

- the key: ``exam_id`` (as ``score --json`` and the backfill give it) *or*
  ``accession_number`` (as the RIS and the cancer registry know the exam); when both columns
  are present, ``exam_id`` is used and ``accession_number`` is ignored;
- ``screen_detected_cancer``: cancer found at this screening round (after recall);
- ``interval_cancer``: cancer diagnosed after a negative screening and before the next
  round (the window, ``--interval-months``, is the registry's, recorded in the report);
- ``recall``: the woman was recalled for further work-up (optional column; an empty cell is
  "unknown" and counts in no recall figure).

Values are ``0``/``1`` (also ``true``/``false``, ``yes``/``no``, any case). The cancer
columns must be known for every row: an empty cell there is an error, since an unknown
outcome silently counted as "no cancer" would inflate specificity. Every problem is
reported with ``file:line``, so that the person who exported the file can fix it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mammotriage.errors import ConfigError

#: Key columns, in the order they are preferred.
KEYS = ("exam_id", "accession_number")
CANCER_COLUMNS = ("screen_detected_cancer", "interval_cancer")
RECALL = "recall"
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})
#: How many duplicate keys an error message lists.
_SHOWN = 10


@dataclass(frozen=True)
class OutcomeRecord:
    """One exam's row: its key, the two cancer flags, recall (None: unknown) and the row's
    line number in the file (for messages)."""

    key: str
    screen_detected_cancer: bool
    interval_cancer: bool
    recall: bool | None
    line: int


@dataclass(frozen=True)
class OutcomesFile:
    """The parsed outcomes file: which key column it uses and its rows, in file order."""

    path: Path
    #: ``exam_id`` or ``accession_number``: what each record's ``key`` holds.
    key: str
    records: tuple[OutcomeRecord, ...]

    def __len__(self) -> int:
        return len(self.records)


def _flag(value: str | None, column: str, where: str, *, required: bool) -> bool | None:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text == "" and not required:
        return None
    if text == "":
        raise ConfigError(
            f"{where}: {column} is empty; the cancer columns must be known for every exam (0 or 1)"
        )
    raise ConfigError(f"{where}: {column} must be 0 or 1 (or true/false, yes/no), got {value!r}")


def _cells(row: dict[str | None, object], expected: int) -> int:
    """How many cells a ``csv.DictReader`` row had: extra cells go under the key ``None``,
    missing ones are filled with ``None``."""
    extra = row.get(None)
    if isinstance(extra, list):
        return expected + len(extra)
    return expected - sum(value is None for value in row.values())


def parse_outcomes(path: Path) -> OutcomesFile:
    """Read and check an outcomes CSV (the format is in this module's docstring).

    Raises
    ------
    ConfigError
        If the file is missing or empty, lacks a key or cancer column, a row has an empty
        key, a value that is not 0/1, an empty cancer cell or a wrong number of cells (each
        naming ``file:line``), or a key appears more than once (listing the keys).
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(f"outcomes file {path} not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"outcomes file {path} is a folder, not a CSV file") from exc
    records: list[OutcomeRecord] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            columns = [c.strip() for c in reader.fieldnames or []]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}:1: not a readable CSV header: {exc}") from exc
        if not columns:
            raise ConfigError(f"outcomes file {path} is empty (expected a header row)")
        reader.fieldnames = columns
        key = next((k for k in KEYS if k in columns), None)
        if key is None:
            raise ConfigError(
                f"{path}:1: no key column: expected exam_id or accession_number "
                f"(has {', '.join(columns)})"
            )
        missing = [c for c in CANCER_COLUMNS if c not in columns]
        if missing:
            raise ConfigError(
                f"{path}:1: missing column(s) {', '.join(missing)} (has {', '.join(columns)})"
            )
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                cells = _cells(row, len(columns))
                if cells != len(columns):
                    raise ConfigError(
                        f"{where}: expected {len(columns)} cells (as the header), got {cells}"
                    )
                value = (row[key] or "").strip()
                if not value:
                    raise ConfigError(f"{where}: {key} is empty")
                screen, interval = (
                    _flag(row[column], column, where, required=True) for column in CANCER_COLUMNS
                )
                recall = (
                    _flag(row.get(RECALL), RECALL, where, required=False)
                    if RECALL in columns
                    else None
                )
                records.append(
                    OutcomeRecord(value, bool(screen), bool(interval), recall, reader.line_num)
                )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}:{reader.line_num}: not readable as CSV: {exc}") from exc
    duplicates = sorted(k for k, n in Counter(r.key for r in records).items() if n > 1)
    if duplicates:
        shown = ", ".join(duplicates[:_SHOWN]) + (" ..." if len(duplicates) > _SHOWN else "")
        raise ConfigError(
            f"{path}: {len(duplicates)} {key} value(s) appear more than once: {shown}"
        )
    return OutcomesFile(path=path, key=key, records=tuple(records))


__all__ = ["CANCER_COLUMNS", "KEYS", "RECALL", "OutcomeRecord", "OutcomesFile", "parse_outcomes"]
