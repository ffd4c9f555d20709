"""Which codec read each scored image's pixels (``pylibjpeg-libjpeg``, ``pillow-openjpeg``,
...): a site comparing decoders, or tracing a vendor's files that decode oddly, finds it on
the image row. Null for images not scored and for the rows written before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


# Plain ALTER TABLE on images (a nullable column), as 0009 does on exams.


def upgrade() -> None:
    op.add_column("images", sa.Column("decoder", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE images DROP COLUMN decoder")
