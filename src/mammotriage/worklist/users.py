"""Users of the reading service and their bearer tokens (the store's half; hashing is the
API's: :mod:`mammotriage.api.security`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mammotriage.errors import ConfigError, ConflictError, NotFoundError
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import Role, TokenRow, UserRow

USERNAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    #: The argon2 hash (never the password); None for a service user with tokens only.
    password_hash: str | None


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
                return _user(row)
        except Exception as exc:
            if isinstance(exc.__cause__, IntegrityError) or isinstance(exc, IntegrityError):
                raise ConflictError(f"user {username!r} exists already") from exc
            raise

    def set_password(self, username: str, password_hash: str) -> None:
        with self.db.session() as session:
            row = self._user_row(session, username)
            row.password_hash = password_hash

    def set_active(self, username: str, *, active: bool) -> None:
        with self.db.session() as session:
            self._user_row(session, username).active = active

    def get(self, username: str) -> User | None:
        with self.db.session() as session:
            row = session.execute(
                select(UserRow).where(UserRow.username == username)
            ).scalar_one_or_none()
            return None if row is None else _user(row)

    def all(self) -> list[User]:
        with self.db.session() as session:
            return [
                _user(r)
                for r in session.execute(select(UserRow).order_by(UserRow.username)).scalars()
            ]

    def add_token(self, username: str, token_sha256: str, label: str) -> None:
        """Store a bearer token's SHA-256 for ``username``."""
        with self.db.session() as session:
            row = self._user_row(session, username)
            session.add(TokenRow(user_id=row.id, token_sha256=token_sha256, label=label))

    def for_token(self, token_sha256: str) -> User | None:
        with self.db.session() as session:
            row = session.execute(
                select(UserRow)
                .join(TokenRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.token_sha256 == token_sha256)
            ).scalar_one_or_none()
            return None if row is None else _user(row)

    @staticmethod
    def _user_row(session: Session, username: str) -> UserRow:
        row = session.execute(
            select(UserRow).where(UserRow.username == username)
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no user {username!r}")
        return row


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.role, row.active, row.created_at, row.password_hash)


__all__ = ["User", "UserDirectory", "check_username"]
