"""A screening decision as the reader chose it: the outcome (no recall, recall, technical
recall), the site's decision category code and the reason codes (a JSON list). Null for the
decisions recorded before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("outcome", "category", "reasons")


# Plain ALTER TABLE on decisions (nullable columns), as 0009 does on exams.


def upgrade() -> None:
    op.add_column("decisions", sa.Column("outcome", sa.String(length=20), nullable=True))
    op.add_column("decisions", sa.Column("category", sa.String(length=40), nullable=True))
    op.add_column("decisions", sa.Column("reasons", sa.Text(), nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE decisions DROP COLUMN {column}")
