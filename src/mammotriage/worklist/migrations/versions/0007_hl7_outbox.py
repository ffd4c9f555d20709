"""The HL7 outbox: result messages for the RIS, kept until acknowledged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "hl7_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("control_id", sa.String(length=20), nullable=False),
        sa.Column("exam_public_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued", "delivered", "failed", name="outbox_state", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("er7", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hl7_outbox")),
        sa.UniqueConstraint("control_id", name=op.f("uq_hl7_outbox_control_id")),
    )
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hl7_outbox_exam_public_id"), ["exam_public_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_hl7_outbox_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hl7_outbox_state"))
        batch_op.drop_index(batch_op.f("ix_hl7_outbox_exam_public_id"))
    op.drop_table("hl7_outbox")
