"""Monitoring after go-live: where and on what each exam was taken (site, manufacturer,
device model, station), the day it counts in (``exam_date``) and how many of its images
could not be scored; the programme's outcomes per exam (``outcomes import``) and the alerts
the monitor raised.

Rows written before get ``exam_date`` by the same rule as new ones (StudyDate, else the day
received) and their image counts from their image rows; their site and device stay NULL
("unknown" in the monitor) since the headers are not at hand.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

_EXAM_COLUMNS = (
    "site",
    "manufacturer",
    "device_model",
    "station_name",
    "exam_date",
    "image_count",
    "unusable_images",
)


def upgrade() -> None:
    op.add_column("exams", sa.Column("site", sa.String(length=200), nullable=True))
    op.add_column("exams", sa.Column("manufacturer", sa.String(length=64), nullable=True))
    op.add_column("exams", sa.Column("device_model", sa.String(length=64), nullable=True))
    op.add_column("exams", sa.Column("station_name", sa.String(length=64), nullable=True))
    op.add_column("exams", sa.Column("exam_date", sa.Date(), nullable=True))
    op.add_column("exams", sa.Column("image_count", sa.Integer(), nullable=True))
    op.add_column("exams", sa.Column("unusable_images", sa.Integer(), nullable=True))
    op.create_index("ix_exams_exam_date", "exams", ["exam_date"])
    op.execute(
        "UPDATE exams SET image_count = (SELECT count(*) FROM images"
        " WHERE images.exam_id = exams.id), unusable_images = (SELECT count(*) FROM images"
        " WHERE images.exam_id = exams.id AND NOT images.usable)"
    )
    if op.get_bind().dialect.name == "sqlite":  # received_at is 'YYYY-MM-DD HH:MM:SS...'
        op.execute("UPDATE exams SET exam_date = COALESCE(study_date, substr(received_at, 1, 10))")
    else:
        op.execute("UPDATE exams SET exam_date = COALESCE(study_date, CAST(received_at AS DATE))")
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("screen_detected_cancer", sa.Boolean(), nullable=False),
        sa.Column("interval_cancer", sa.Boolean(), nullable=False),
        sa.Column("recall", sa.Boolean(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name="fk_outcomes_exam_id_exams", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outcomes"),
        sa.UniqueConstraint("exam_id", name="uq_outcomes_exam_id"),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("site", sa.String(length=200), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_alerts"),
        sa.UniqueConstraint("rule", "site", "device", "week", name="uq_monitor_alerts_rule"),
    )
    op.create_index("ix_monitor_alerts_week", "monitor_alerts", ["week"])


def downgrade() -> None:
    op.drop_index("ix_monitor_alerts_week", table_name="monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_table("outcomes")
    op.drop_index("ix_exams_exam_date", table_name="exams")
    for column in reversed(_EXAM_COLUMNS):
        op.execute(f"ALTER TABLE exams DROP COLUMN {column}")
