"""The files a backfill writes, column by column: the contract with ``evaluate``.

A backfill output folder holds::

    backfill.json                 what was asked (inputs, model, shard size) and the index
    manifest/shard-NNNNN.parquet  the exams to score, a fixed number per shard (stage 1)
    exams/part-NNNNN.parquet      one row per exam of shard NNNNN        (EXAM_SCHEMA)
    images/part-NNNNN.parquet     one row per image of shard NNNNN       (IMAGE_SCHEMA)

A shard is done when its ``exams`` file exists: both files are written whole under a
temporary name and renamed, images first, so a shard is either absent or complete.

pyarrow only: ``evaluate`` reads these without Ray.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

#: Outcome of scoring one exam (``status`` column).
SCORED = "scored"  # every standard view scored
PARTIAL = "partial"  # scored, but a standard view is missing or unusable
UNSCORED = "unscored"  # no image could be scored: read by people, with the reasons
FAILED = "failed"  # scoring the exam failed (``reason`` says why); read by people
STATUSES = (SCORED, PARTIAL, UNSCORED, FAILED)

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("exam_id", pa.string(), nullable=False),
        #: How the exam was grouped: StudyInstanceUID, AccessionNumber, ..., or "manifest"
        #: when the input manifest named the exam.
        pa.field("exam_id_source", pa.string(), nullable=False),
        pa.field("paths", pa.list_(pa.string()), nullable=False),
    ]
)

EXAM_SCHEMA = pa.schema(
    [
        pa.field("exam_id", pa.string(), nullable=False),
        pa.field("exam_id_source", pa.string(), nullable=False),
        #: For joining outcomes kept by accession number (an identifier: keep the folder
        #: where the archive's own data may be).
        pa.field("accession_number", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        #: Why the exam is partial, unscored or failed; null when scored.
        pa.field("reason", pa.string()),
        #: Exam score 0-100, unrounded (``score --json`` rounds to 2 decimals).
        pa.field("score", pa.float64()),
        pa.field("category", pa.int8()),
        pa.field("breast_left", pa.float64()),
        pa.field("breast_right", pa.float64()),
        pa.field("max_finding_score", pa.int16()),
        pa.field("partial", pa.bool_(), nullable=False),
        #: Standard view slots not scored, space-separated ("L-CC R-MLO"); "" when none.
        pa.field("missing", pa.string(), nullable=False),
        #: The triage policy's decision: single / double / rule-out (double when unscored).
        pa.field("reading_mode", pa.string(), nullable=False),
        pa.field("priority", pa.bool_(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
        pa.field("demonstration_model", pa.bool_(), nullable=False),
        #: The acquisition device (Manufacturer, ManufacturerModelName, StationName) of the
        #: exam's images: the most common value among them.
        pa.field("manufacturer", pa.string()),
        pa.field("manufacturer_model_name", pa.string()),
        pa.field("station_name", pa.string()),
        pa.field("study_date", pa.string()),
        pa.field("images_usable", pa.int32(), nullable=False),
        pa.field("images_unusable", pa.int32(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
    ]
)

IMAGE_SCHEMA = pa.schema(
    [
        pa.field("exam_id", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        pa.field("sop_instance_uid", pa.string()),
        pa.field("laterality", pa.string(), nullable=False),
        pa.field("view", pa.string(), nullable=False),
        pa.field("usable", pa.bool_(), nullable=False),
        #: Image probability x 100 (0-100); null when not scored.
        pa.field("score", pa.float64()),
        pa.field("reason", pa.string()),
        pa.field("shard", pa.int32(), nullable=False),
    ]
)


def shard_name(shard: int) -> str:
    """``part-00042.parquet``: the file name of a shard's results (and, with the prefix
    ``shard-``, of its manifest)."""
    return f"part-{shard:05d}.parquet"


def exam_files(out: Path) -> list[Path]:
    """The finished shards' exam files of a backfill folder, in shard order."""
    return sorted((Path(out) / "exams").glob("part-*.parquet"))


def image_files(out: Path) -> list[Path]:
    """The finished shards' image files of a backfill folder, in shard order."""
    return sorted((Path(out) / "images").glob("part-*.parquet"))
