"""What a reader needs to find the exam in the PACS and the RIS: its accession number, the
patient's id and name, and the study date (from the images' header, shown to radiologists
only; never in a URL or a log).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("accession_number", "patient_id", "patient_name", "study_date")


# Plain ALTER TABLE on exams, not a batch (as in 0006 and 0008): on SQLite a batch copies
# the table and drops the old one, which with foreign keys on deletes everything of it.


def upgrade() -> None:
    op.add_column("exams", sa.Column("accession_number", sa.String(length=64), nullable=True))
    op.add_column("exams", sa.Column("patient_id", sa.String(length=64), nullable=True))
    op.add_column("exams", sa.Column("patient_name", sa.String(length=200), nullable=True))
    op.add_column("exams", sa.Column("study_date", sa.Date(), nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE exams DROP COLUMN {column}")
