"""The login throttle's store: failed logins counted per username and per client address,
shared by every server process through the database.

A key (``user:<name>`` or ``address:<ip>``) may fail a few times for free; each further
failure blocks it for twice as long as the one before (1 s, 2 s, 4 s, ... up to a cap).
A key's failures are forgotten once it has gone a whole window without failing and without
a block running, so a patient attacker gets one guess per capped block, not a fresh set of
free ones. A successful login clears the username's count (not the address's: one good
password must not buy an address new guesses at other accounts).

Each call is one transaction that locks the keys' rows (``FOR UPDATE`` on PostgreSQL, in key
order so that two logins never wait on each other crosswise; ``BEGIN IMMEDIATE`` on SQLite),
so two processes failing the same key at once count two failures.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mammotriage.errors import ConfigError
from mammotriage.timeutil import require_aware
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import LoginThrottleRow


class KeyKind(str, enum.Enum):
    """What a throttle key counts failures of."""

    USER = "user"
    ADDRESS = "address"


#: The longest value a key may carry: the column holds 200 characters with the prefix.
MAX_KEY_VALUE_LENGTH = 190


@dataclass(frozen=True)
class ThrottleKey:
    """One counter: a username or a client address."""

    kind: KeyKind
    value: str

    def __post_init__(self) -> None:
        if not self.value or len(self.value) > MAX_KEY_VALUE_LENGTH:
            raise ConfigError(
                f"throttle key value must be 1-{MAX_KEY_VALUE_LENGTH} characters, "
                f"got {len(self.value)}"
            )

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"

    @classmethod
    def user(cls, username: str) -> ThrottleKey:
        return cls(KeyKind.USER, username)

    @classmethod
    def address(cls, address: str) -> ThrottleKey:
        return cls(KeyKind.ADDRESS, address)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free per kind of key, and how long the blocks after them last.

    Parameters
    ----------
    user_free_failures, address_free_failures
        Failures a username (an address) may make before its first block. An address is
        allowed more: several readers behind one proxy or NAT share it.
    first_block
        The block after the first failure past the free ones; each further one doubles it.
    max_block
        The longest block.
    window
        A key's failures are forgotten after this long without a failure or a block.

    Raises
    ------
    ConfigError
        If a count is negative or a duration is not positive (the message names it).
    """

    user_free_failures: int = 5
    address_free_failures: int = 20
    first_block: timedelta = timedelta(seconds=1)
    max_block: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        for name in ("user_free_failures", "address_free_failures"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("first_block", "max_block", "window"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_block < self.first_block:
            raise ConfigError(
                f"max_block ({self.max_block}) must not be shorter than first_block "
                f"({self.first_block})"
            )

    def free_failures(self, kind: KeyKind) -> int:
        return self.user_free_failures if kind is KeyKind.USER else self.address_free_failures

    def block_after(self, kind: KeyKind, failures: int) -> timedelta | None:
        """How long a key of ``kind`` is blocked after its ``failures``-th failure (None:
        still free)."""
        beyond = failures - self.free_failures(kind)
        if beyond <= 0:
            return None
        block = self.first_block
        for _ in range(beyond - 1):
            if block >= self.max_block:
                break
            block *= 2
        return min(block, self.max_block)


@dataclass(frozen=True)
class Block:
    """A key that may not try again before ``until``."""

    key: ThrottleKey
    until: datetime

    def retry_after(self, now: datetime) -> timedelta:
        return self.until - now


class LoginThrottle:
    """Failed-login counters in ``db``'s ``login_throttle`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def blocked(self, keys: Iterable[ThrottleKey], now: datetime) -> Block | None:
        """The longest block in force on any of ``keys`` at ``now``; None if none is."""
        require_aware("now", now)
        by_name = {str(key): key for key in keys}
        if not by_name:
            return None
        with self.db.session() as session:
            row = session.execute(
                select(LoginThrottleRow.key, LoginThrottleRow.blocked_until)
                .where(
                    LoginThrottleRow.key.in_(sorted(by_name)),
                    LoginThrottleRow.blocked_until > now,
                )
                .order_by(LoginThrottleRow.blocked_until.desc(), LoginThrottleRow.key)
                .limit(1)
            ).one_or_none()
        if row is None:
            return None
        return Block(by_name[row.key], row.blocked_until)

    def failed(
        self,
        keys: Iterable[ThrottleKey],
        now: datetime,
        policy: ThrottlePolicy | None = None,
    ) -> Block | None:
        """Count one failure against each of ``keys``; the longest block it started, if any.

        Rows no key could still be counting against (idle past the window and the longest
        block) are deleted on the way, so that the table holds recent failures only.
        """
        require_aware("now", now)
        rules = policy or ThrottlePolicy()
        longest: Block | None = None
        with self.db.session() as session:
            session.execute(
                delete(LoginThrottleRow).where(
                    LoginThrottleRow.last_failure_at < now - rules.window - rules.max_block
                )
            )
            for key in sorted(set(keys), key=str):
                block = self._count(session, key, now, rules)
                if block is not None and (longest is None or block.until > longest.until):
                    longest = block
        return longest

    def succeeded(self, key: ThrottleKey) -> None:
        """Forget ``key``'s failures (a username after its correct password)."""
        with self.db.session() as session:
            session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == str(key)))

    def _count(
        self, session: Session, key: ThrottleKey, now: datetime, rules: ThrottlePolicy
    ) -> Block | None:
        session.execute(
            self.db.insert(LoginThrottleRow)
            .values(key=str(key), failures=0, first_failure_at=now, last_failure_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = session.execute(
            select(LoginThrottleRow).where(LoginThrottleRow.key == str(key)).with_for_update()
        ).scalar_one()
        quiet_since = max(row.last_failure_at, row.blocked_until or row.last_failure_at)
        if row.failures and now - quiet_since >= rules.window:
            row.failures = 0
        if row.failures == 0:
            row.first_failure_at = now
            row.blocked_until = None
        row.failures += 1
        row.last_failure_at = now
        block = rules.block_after(key.kind, row.failures)
        if block is None:
            return None
        row.blocked_until = now + block
        return Block(key, row.blocked_until)


__all__ = ["Block", "KeyKind", "LoginThrottle", "ThrottleKey", "ThrottlePolicy"]
