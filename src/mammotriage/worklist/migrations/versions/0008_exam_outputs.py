"""Per-exam outputs: the latest attempt at each output (SR, GSPS, SC, HL7, thumbnails), and
what the exam's SR was made from and its version (a rescore's SR supersedes it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "exam_outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("output", sa.String(length=16), nullable=False),
        sa.Column(
            "state",
            sa.Enum("done", "failed", name="output_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exam_id"],
            ["exams.id"],
            name=op.f("fk_exam_outputs_exam_id_exams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_outputs")),
        sa.UniqueConstraint("exam_id", "output", name="uq_exam_outputs_exam_output"),
    )
    with op.batch_alter_table("exam_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_outputs_exam_id"), ["exam_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_outputs_state"), ["state"], unique=False)
    # Plain ALTER TABLE on exams, not a batch (as in 0006): on SQLite a batch copies the
    # table and drops the old one, which with foreign keys on deletes everything of it.
    op.add_column("exams", sa.Column("report_key", sa.String(length=200), nullable=True))
    op.add_column("exams", sa.Column("report_version", sa.Integer(), nullable=True))
    op.add_column("exams", sa.Column("report_predecessor_uid", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for column in ("report_predecessor_uid", "report_version", "report_key"):
        op.execute(f"ALTER TABLE exams DROP COLUMN {column}")
    with op.batch_alter_table("exam_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_outputs_state"))
        batch_op.drop_index(batch_op.f("ix_exam_outputs_exam_id"))
    op.drop_table("exam_outputs")
