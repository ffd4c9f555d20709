"""Images: one row per file of an exam, keyed by (exam, position), not by SOPInstanceUID.

Files sharing a SOPInstanceUID (a damaged duplicate of a view, a UID reused by another
study) or without one collapsed into one row, or an image moved silently from one study to
another. ``sop_instance_uid`` stays, indexed, no longer unique.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
    # Existing rows: their order within the exam (ids grow in the order they were saved).
    op.execute(
        "UPDATE images SET position = ("
        " SELECT COUNT(*) FROM images AS earlier"
        " WHERE earlier.exam_id = images.exam_id AND earlier.id < images.id)"
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("uq_images_sop_instance_uid", type_="unique")
        batch_op.create_unique_constraint("uq_images_exam_position", ["exam_id", "position"])
        batch_op.create_index(
            batch_op.f("ix_images_sop_instance_uid"), ["sop_instance_uid"], unique=False
        )


def downgrade() -> None:
    # Rows sharing a UID cannot all survive the old unique constraint: keep the first.
    op.execute(
        "DELETE FROM images WHERE sop_instance_uid IS NOT NULL AND id NOT IN ("
        " SELECT MIN(id) FROM images WHERE sop_instance_uid IS NOT NULL"
        " GROUP BY sop_instance_uid)"
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_sop_instance_uid"))
        batch_op.drop_constraint("uq_images_exam_position", type_="unique")
        batch_op.create_unique_constraint("uq_images_sop_instance_uid", ["sop_instance_uid"])
        batch_op.drop_column("position")
