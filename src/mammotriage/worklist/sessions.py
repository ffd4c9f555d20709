"""Page sessions held on the server, so that a session can end before its cookie does.

The signed cookie carries only a random session id; the ``sessions`` table keeps its
SHA-256, its user, and when it started, was last seen and must end. A session is good while
it has not been ended (logout, deactivation, password change, an admin), is before its
``expires_at`` (the absolute lifetime) and has seen a request within the idle timeout.
``last_seen_at`` is written at most every :data:`~mammotriage.worklist.users.TOUCH_EVERY`,
not on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from mammotriage.errors import ConfigError
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import SessionRow, UserRow
from mammotriage.worklist.users import (
    SessionEnd,
    User,
    end_sessions,
    touch_due,
    user_of,
    user_row,
)

#: A session's row is deleted this long after its lifetime ended (at the next login).
KEEP_ENDED = timedelta(days=7)


@dataclass(frozen=True)
class PageSession:
    """One session as the store holds it, with its user."""

    user: User
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: SessionEnd | None
    #: This look-up ended it (idle or past its lifetime): record that once.
    ended_now: bool = False

    def refusal(self, now: datetime, idle: timedelta) -> SessionEnd | None:
        """Why the session is no longer good at ``now``, or None while it is."""
        if self.end_reason is not None:
            return self.end_reason
        if self.ended_at is not None:
            return SessionEnd.REVOKED
        if now >= self.expires_at:
            return SessionEnd.EXPIRED
        if now - self.last_seen_at > idle:
            return SessionEnd.IDLE
        return None


def session_sha256(session_id: str) -> str:
    """What the store keeps of a session id (the id itself is in the cookie only)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionBook:
    """The page sessions in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, username: str, now: datetime, lifetime: timedelta) -> str:
        """Start a session for ``username`` ending at ``now + lifetime`` at the latest; its
        id, for the cookie (only its SHA-256 is stored).

        Raises
        ------
        ConfigError
            If ``lifetime`` is not positive.
        NotFoundError
            If there is no such user.
        """
        if lifetime <= timedelta(0):
            raise ConfigError(f"a session's lifetime must be positive, got {lifetime}")
        session_id = secrets.token_urlsafe(32)
        with self.db.session() as session:
            user_id = user_row(session, username).id
            # Sessions long past their lifetime serve nobody; logins and logouts stay in
            # the audit log.
            session.execute(delete(SessionRow).where(SessionRow.expires_at < now - KEEP_ENDED))
            session.add(
                SessionRow(
                    session_sha256=session_sha256(session_id),
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + lifetime,
                )
            )
        return session_id

    def find(self, session_id: str, now: datetime, idle: timedelta) -> PageSession | None:
        """The session with this id (None if unknown), for authentication at ``now``.

        A good session gets ``last_seen_at = now`` (at most every ``TOUCH_EVERY``); one
        found idle for longer than ``idle`` or past its lifetime is ended here, with
        :attr:`PageSession.ended_now` set so that the caller can record it once.
        """
        with self.db.session() as session:
            found = session.execute(
                select(SessionRow, UserRow)
                .join(UserRow, SessionRow.user_id == UserRow.id)
                .where(SessionRow.session_sha256 == session_sha256(session_id))
            ).one_or_none()
            if found is None:
                return None
            row, owner = found
            page = _page_session(row, user_of(owner))
            why = page.refusal(now, idle)
            if why is not None and row.ended_at is None:
                # Two requests may find it idle at once: only the one that ends it says so.
                ended = session.execute(
                    update(SessionRow)
                    .where(SessionRow.id == row.id, SessionRow.ended_at.is_(None))
                    .values(ended_at=now, end_reason=why.value)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                return replace(page, ended_at=now, end_reason=why, ended_now=bool(ended))
            if why is None and touch_due(row.last_seen_at, now):
                row.last_seen_at = now
                return replace(page, last_seen_at=now)
            return page

    def end(self, session_id: str, now: datetime, reason: SessionEnd) -> bool:
        """End one session (logout); whether it was open."""
        with self.db.session() as session:
            result = session.execute(
                update(SessionRow)
                .where(
                    SessionRow.session_sha256 == session_sha256(session_id),
                    SessionRow.ended_at.is_(None),
                )
                .values(ended_at=now, end_reason=reason.value)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def end_all(self, username: str, now: datetime, reason: SessionEnd) -> int:
        """End every open session of ``username``; how many.

        Raises
        ------
        NotFoundError
            If there is no such user.
        """
        with self.db.session() as session:
            user_id = user_row(session, username).id
            return end_sessions(session, user_id, now, reason)

    def open_counts(self, now: datetime, idle: timedelta) -> dict[str, int]:
        """Sessions good at ``now`` per username (users without one left out)."""
        with self.db.session() as session:
            rows = session.execute(
                select(UserRow.username, func.count(SessionRow.id))
                .join(UserRow, SessionRow.user_id == UserRow.id)
                .where(
                    SessionRow.ended_at.is_(None),
                    SessionRow.expires_at > now,
                    SessionRow.last_seen_at >= now - idle,
                )
                .group_by(UserRow.username)
            ).all()
            return {name: int(count) for name, count in rows}


def _page_session(row: SessionRow, user: User) -> PageSession:
    reason = SessionEnd(row.end_reason) if row.end_reason is not None else None
    return PageSession(user, row.created_at, row.last_seen_at, row.expires_at, row.ended_at, reason)


__all__ = ["KEEP_ENDED", "PageSession", "SessionBook", "session_sha256"]
