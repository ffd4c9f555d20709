"""The outcomes file as a table, for the go-live evaluation.

The format and its checks are :mod:`mammotriage.outcomes`'s (``outcomes import`` reads the
same file into the store): this module only turns the parsed rows into a pandas table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mammotriage.outcomes import CANCER_COLUMNS, KEYS, RECALL, parse_outcomes


@dataclass(frozen=True)
class Outcomes:
    """The parsed outcomes file.

    ``table`` has one row per exam: the key column (named ``key``), the two cancer columns
    as ``bool``, ``recall`` as pandas' nullable ``boolean`` (``<NA>``: unknown) and ``line``
    (the row's line number in the file, for messages).
    """

    path: Path
    #: ``exam_id`` or ``accession_number``: what ``key`` holds.
    key: str
    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)


def read_outcomes(path: Path) -> Outcomes:
    """Read and check an outcomes CSV (:func:`mammotriage.outcomes.parse_outcomes`).

    Raises
    ------
    ConfigError
        As :func:`~mammotriage.outcomes.parse_outcomes`.
    """
    parsed = parse_outcomes(path)
    records = parsed.records
    table = pd.DataFrame(
        {
            "key": pd.Series([r.key for r in records], dtype="string"),
            "screen_detected_cancer": pd.Series(
                [r.screen_detected_cancer for r in records], dtype=bool
            ),
            "interval_cancer": pd.Series([r.interval_cancer for r in records], dtype=bool),
            RECALL: pd.Series([r.recall for r in records], dtype="boolean"),
            "line": pd.Series([r.line for r in records], dtype="int64"),
        }
    )
    return Outcomes(path=parsed.path, key=parsed.key, table=table)


__all__ = ["CANCER_COLUMNS", "KEYS", "RECALL", "Outcomes", "read_outcomes"]
