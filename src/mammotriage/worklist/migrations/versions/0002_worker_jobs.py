"""Worker: job fingerprints and backoff, source cursors, the SR sent back per exam.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_available_at"), ["available_at"], unique=False)
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("report_sop_instance_uid", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("report_location", sa.Text(), nullable=True))
    op.create_table(
        "source_cursors",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_cursors")),
    )


def downgrade() -> None:
    op.drop_table("source_cursors")
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.drop_column("report_location")
        batch_op.drop_column("report_sop_instance_uid")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_available_at"))
        batch_op.drop_column("available_at")
        batch_op.drop_column("fingerprint")
