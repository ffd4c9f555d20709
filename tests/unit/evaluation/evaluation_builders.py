"""Backfill output folders and outcomes files for the evaluate tests, written directly
(pyarrow with the backfill's EXAM_SCHEMA): no Ray, no model."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mammotriage.backfill.schema import EXAM_SCHEMA, SCORED, UNSCORED, shard_name

SHA = "ab" * 32


def exam_row(exam_id: str, score: float | None, category: int | None, **extra: Any) -> dict:
    """One EXAM_SCHEMA row: scored when ``score`` is given, else unscored."""
    scored = score is not None
    row = {
        "exam_id": exam_id,
        "exam_id_source": "StudyInstanceUID",
        "accession_number": f"ACC-{exam_id}",
        "status": SCORED if scored else UNSCORED,
        "reason": None if scored else "no usable mammography image",
        "score": score,
        "category": category,
        "breast_left": score,
        "breast_right": score,
        "max_finding_score": None,
        "partial": False,
        "missing": "",
        "reading_mode": "double",
        "priority": False,
        "rule": "as decided by the backfill",
        "policy_version": "backfill-policy",
        "model_name": "tiny",
        "model_sha256": SHA,
        "demonstration_model": True,
        "manufacturer": "ACME",
        "manufacturer_model_name": "Senograph",
        "station_name": "MAMMO-1",
        "study_date": "20240101",
        "images_usable": 4 if scored else 0,
        "images_unusable": 0 if scored else 4,
        "shard": 0,
    }
    row.update(extra)
    return row


def write_scores(folder: Path, shards: Sequence[Sequence[dict]]) -> Path:
    """A backfill folder whose ``exams/part-NNNNN.parquet`` hold ``shards``' rows."""
    (folder / "exams").mkdir(parents=True, exist_ok=True)
    for number, rows in enumerate(shards):
        rows = [{**row, "shard": number} for row in rows]
        pq.write_table(
            pa.Table.from_pylist(rows, schema=EXAM_SCHEMA), folder / "exams" / shard_name(number)
        )
    return folder


def write_outcomes(
    path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None
) -> Path:
    """An outcomes CSV; ``header`` defaults to exam_id and the three outcome columns."""
    header = header or ("exam_id", "screen_detected_cancer", "interval_cancer", "recall")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
