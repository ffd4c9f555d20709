"""The audit log: who did what to which exam (internal ids only, never patient data)."""

from __future__ import annotations

import uuid
from typing import Any

from mammotriage.worklist.database import Database
from mammotriage.worklist.models import AuditRow


class AuditLog:
    """Append-only lines in ``db``'s ``audit_log`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        actor: str,
        action: str,
        exam_public_id: uuid.UUID | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one line to the audit log (internal ids only, never patient data)."""
        with self.db.session() as session:
            session.add(
                AuditRow(
                    actor=actor, action=action, exam_public_id=exam_public_id, detail=detail or {}
                )
            )


__all__ = ["AuditLog"]
