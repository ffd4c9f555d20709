"""When the exam's report was sent: the reading page says "sent to PACS at ..." instead of
the worker's own record of where (a server path, a PACS address).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


# Plain ALTER TABLE, not a batch: on SQLite a batch copies ``exams`` and drops the old
# table, and with foreign keys on that drop deletes every image, score and reading of it.
# SQLite drops a column in place since 3.35.


def upgrade() -> None:
    op.add_column("exams", sa.Column("report_sent_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE exams DROP COLUMN report_sent_at")
