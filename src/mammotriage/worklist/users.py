"""Users of the reading service, their bearer tokens and their lifecycle (the store's half;
hashing is the API's: :mod:`mammotriage.api.security`).

A user can be deactivated and activated again; their password changed; their tokens named,
given an expiry and revoked. Deactivation and a password change end the user's page
sessions in the same transaction (:mod:`mammotriage.worklist.sessions` keeps them), so that
a cookie saved before cannot outlive them. An inactive user's tokens stop working while the
user is inactive; revoking a token is for good.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mammotriage.errors import ConfigError, ConflictError, NotFoundError
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import Role, SessionRow, TokenRow, UserRow

USERNAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
#: The same as a regular expression (for path parameters).
USERNAME_PATTERN = r"^[a-z0-9._-]{2,100}$"
#: ``last_used_at`` of a token (and ``last_seen_at`` of a session) is written at most this
#: often: a write per request would cost more than the request.
TOUCH_EVERY = timedelta(minutes=1)


class SessionEnd(str, enum.Enum):
    """Why a page session ended (``sessions.end_reason``)."""

    LOGOUT = "logout"
    #: No request for longer than the idle timeout.
    IDLE = "idle"
    #: Past its absolute lifetime (``expires_at``).
    EXPIRED = "expired"
    DEACTIVATED = "deactivated"
    PASSWORD_CHANGED = "password-changed"
    #: Ended by an admin (``end all sessions`` on the admin page).
    REVOKED = "revoked"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    #: The argon2 hash (never the password); None for a service user with tokens only.
    password_hash: str | None


@dataclass(frozen=True)
class Token:
    """A bearer token as lists show it: its name and dates, never the token or its hash."""

    username: str
    name: str
    created_at: datetime
    #: None: it does not expire.
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why the token does not authenticate at ``now`` ("revoked", "expired"), or None."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return None


@dataclass(frozen=True)
class Bearer:
    """A token presented to the service and the user it belongs to."""

    user: User
    token: Token


def check_username(username: str) -> str:
    """Usernames are short, lower-case and safe in URLs and logs: ``[a-z0-9._-]{2,100}``.

    Raises
    ------
    ConfigError
        If ``username`` is not of that form.
    """
    if not (2 <= len(username) <= 100) or not set(username) <= USERNAME_CHARACTERS:
        raise ConfigError(f"username must be 2-100 characters of a-z 0-9 . _ -, got {username!r}")
    return username


class UserDirectory:
    """The users in ``db``: who they are, their password hashes and token digests."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, username: str, role: Role, password_hash: str | None) -> User:
        """Create a user.

        Raises
        ------
        ConflictError
            If the username is taken.
        """
        check_username(username)
        try:
            with self.db.session() as session:
                row = UserRow(username=username, role=role, password_hash=password_hash)
                session.add(row)
                session.flush()
                return user_of(row)
        except Exception as exc:
            if isinstance(exc.__cause__, IntegrityError) or isinstance(exc, IntegrityError):
                raise ConflictError(f"user {username!r} exists already") from exc
            raise

    def set_password(self, username: str, password_hash: str, now: datetime) -> int:
        """Give ``username`` a new password and end their page sessions; how many ended.

        Raises
        ------
        NotFoundError
            If there is no such user.
        """
        with self.db.session() as session:
            row = user_row(session, username)
            row.password_hash = password_hash
            return end_sessions(session, row.id, now, SessionEnd.PASSWORD_CHANGED)

    def set_active(self, username: str, *, active: bool, now: datetime | None = None) -> int:
        """Activate or deactivate ``username``; how many page sessions that ended.

        Deactivating ends the user's sessions when ``now`` is given (the lifecycle commands
        give it); either way an inactive user's sessions and tokens are refused. Activating
        again brings back no session, but the user's unrevoked, unexpired tokens work again.

        Raises
        ------
        NotFoundError
            If there is no such user.
        """
        with self.db.session() as session:
            row = user_row(session, username)
            row.active = active
            if active or now is None:
                return 0
            return end_sessions(session, row.id, now, SessionEnd.DEACTIVATED)

    def get(self, username: str) -> User | None:
        with self.db.session() as session:
            row = session.execute(
                select(UserRow).where(UserRow.username == username)
            ).scalar_one_or_none()
            return None if row is None else user_of(row)

    def require(self, username: str) -> User:
        """The user named ``username``.

        Raises
        ------
        NotFoundError
            If there is no such user.
        """
        user = self.get(username)
        if user is None:
            raise NotFoundError(f"no user {username!r}")
        return user

    def all(self) -> list[User]:
        with self.db.session() as session:
            return [
                user_of(r)
                for r in session.execute(select(UserRow).order_by(UserRow.username)).scalars()
            ]

    def add_token(
        self,
        username: str,
        token_sha256: str,
        label: str,
        *,
        expires_at: datetime | None = None,
    ) -> None:
        """Store a bearer token's SHA-256 for ``username`` under the name ``label``.

        Raises
        ------
        NotFoundError
            If there is no such user.
        """
        with self.db.session() as session:
            row = user_row(session, username)
            session.add(
                TokenRow(
                    user_id=row.id, token_sha256=token_sha256, label=label, expires_at=expires_at
                )
            )

    def tokens(self, username: str | None = None) -> list[Token]:
        """The tokens of ``username`` (of everyone if None), by user then age."""
        query = (
            select(TokenRow, UserRow.username)
            .join(UserRow, TokenRow.user_id == UserRow.id)
            .order_by(UserRow.username, TokenRow.created_at, TokenRow.id)
        )
        if username is not None:
            query = query.where(UserRow.username == username)
        with self.db.session() as session:
            return [_token(row, name) for row, name in session.execute(query).all()]

    def revoke_tokens(self, username: str, now: datetime, name: str | None = None) -> int:
        """Revoke ``username``'s unrevoked tokens named ``name`` (all if None); how many.

        Raises
        ------
        NotFoundError
            If there is no such user, or a ``name`` was given and no unrevoked token has it.
        """
        with self.db.session() as session:
            user_id = user_row(session, username).id
            query = update(TokenRow).where(
                TokenRow.user_id == user_id, TokenRow.revoked_at.is_(None)
            )
            if name is not None:
                query = query.where(TokenRow.label == name)
            revoked = int(session.execute(query.values(revoked_at=now)).rowcount)  # type: ignore[attr-defined]
            if name is not None and revoked == 0:
                raise NotFoundError(f"user {username!r} has no unrevoked token named {name!r}")
            return revoked

    def for_token(self, token_sha256: str) -> User | None:
        """The user a token belongs to, whether or not the token is still good."""
        with self.db.session() as session:
            row = session.execute(
                select(UserRow)
                .join(TokenRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.token_sha256 == token_sha256)
            ).scalar_one_or_none()
            return None if row is None else user_of(row)

    def bearer(self, token_sha256: str, now: datetime) -> Bearer | None:
        """The token with this SHA-256 and its user (None if unknown), for authentication.

        A token that still authenticates gets ``last_used_at = now``, written at most every
        :data:`TOUCH_EVERY`. The caller decides from :meth:`Token.refusal` and
        :attr:`User.active`.
        """
        with self.db.session() as session:
            found = session.execute(
                select(TokenRow, UserRow)
                .join(UserRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.token_sha256 == token_sha256)
            ).one_or_none()
            if found is None:
                return None
            token_row, owner = found
            token = _token(token_row, owner.username)
            if token.refusal(now) is None and owner.active and touch_due(token.last_used_at, now):
                token_row.last_used_at = now
                token = _token(token_row, owner.username)
            return Bearer(user_of(owner), token)


def user_row(session: Session, username: str) -> UserRow:
    """The row of ``username`` in ``session``.

    Raises
    ------
    NotFoundError
        If there is no such user.
    """
    row = session.execute(select(UserRow).where(UserRow.username == username)).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no user {username!r}")
    return row


def end_sessions(session: Session, user_id: int, now: datetime, reason: SessionEnd) -> int:
    """End every open page session of the user ``user_id`` in ``session``; how many."""
    result = session.execute(
        update(SessionRow)
        .where(SessionRow.user_id == user_id, SessionRow.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason.value)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def touch_due(last: datetime | None, now: datetime) -> bool:
    """Whether a ``last_used_at``/``last_seen_at`` of ``last`` should be written again."""
    return last is None or now - last >= TOUCH_EVERY


def user_of(row: UserRow) -> User:
    return User(row.id, row.username, row.role, row.active, row.created_at, row.password_hash)


def _token(row: TokenRow, username: str) -> Token:
    return Token(
        username, row.label, row.created_at, row.expires_at, row.revoked_at, row.last_used_at
    )


__all__ = [
    "TOUCH_EVERY",
    "USERNAME_PATTERN",
    "Bearer",
    "SessionEnd",
    "Token",
    "User",
    "UserDirectory",
    "check_username",
    "end_sessions",
    "touch_due",
    "user_of",
    "user_row",
]
