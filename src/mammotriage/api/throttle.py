"""The login's guard: the throttle in front of the password check, and a bound on the
password checks that run at once.

- Throttle: failures are counted per username and per client address in the database
  (:mod:`mammotriage.worklist.throttle`), shared by every server process. A few are free;
  each further one blocks the key for twice as long (1 s, 2 s, ... up to
  ``login_max_block_seconds``). A blocked attempt is answered 429 with ``Retry-After``
  before any password is checked, and audited (``login-throttled``). A valid username that
  does not exist counts like one that does, so that a block does not tell which exist.
- Bound: argon2id is meant to be costly (~64 MiB and 4 threads per verification). At most
  ``login_verifications`` run at once in a process, on threads of lower CPU priority
  (``login_check_nice``), and at most ``login_queue`` wait; a login beyond them is answered
  503 with ``Retry-After`` at once. The request threads (FastAPI's pool of 40 for sync
  routes) that a login flood can hold are those few, never all of them, and the CPU goes to
  the worklist first, so the worklist keeps being served.

The client address is ``request.client.host``: the peer's, or, when the peer is a proxy
listed in ``forwarded_allow_ips``, the client the proxy names in ``X-Forwarded-For`` (the
app's proxy-headers middleware; a client cannot name itself past it). Behind NAT, or a
proxy not listed, every client has one address, and the per-address limit is set higher
than the per-username one for that reason.

A username can be blocked by anyone who knows it (that is what a per-username limit is);
the block is capped, and every throttled attempt is in the audit log with its address.
The check and the count are two transactions, the password check between them: attempts
already past the check when a block starts still finish, at most the gate's few per process.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI, Request, status

from mammotriage.api.security import verify_password
from mammotriage.api.settings import ApiSettings
from mammotriage.errors import ConfigError
from mammotriage.worklist import Store
from mammotriage.worklist.throttle import MAX_KEY_VALUE_LENGTH, ThrottleKey, ThrottlePolicy
from mammotriage.worklist.users import User, check_username

log = logging.getLogger(__name__)

#: The audit actor of an attempt whose username is not a possible one.
INVALID_USERNAME = "(invalid username)"
#: The address of a client the server cannot name (a Unix socket).
UNKNOWN_ADDRESS = "unknown"
#: Retry-After of a login turned away because too many are being checked (seconds).
BUSY_RETRY_AFTER = 1

Verify = Callable[[str | None, str], bool]


@dataclass(frozen=True)
class LoginRefused:
    """A login attempt that did not succeed: the status, the page's one-line message, and
    the seconds to wait (``Retry-After``) when waiting helps."""

    status: int
    message: str
    retry_after: int | None = None


class PasswordGate:
    """At most ``concurrent`` password verifications at once, at most ``queue`` waiting, each
    run at a lower CPU priority than the requests.

    Verifications run on ``concurrent`` threads of their own whose niceness is raised by
    ``nice`` (Linux: per thread; argon2's lane threads inherit it), so that on a busy
    machine the worklist's requests get the CPU first and a login takes longer instead.
    The login route's thread waits for its verification (the route is sync), so the waiting
    ones are bounded too: a login that cannot even wait is refused at once (:meth:`admission`
    gives False), before it costs anything else.
    """

    def __init__(
        self, concurrent: int, queue: int, nice: int = 0, verify: Verify = verify_password
    ) -> None:
        if concurrent < 1 or queue < 0 or not 0 <= nice <= 19:
            raise ConfigError(
                f"password gate needs concurrent >= 1, queue >= 0 and nice 0-19, got "
                f"{concurrent}, {queue}, {nice}"
            )
        self._admitted = threading.BoundedSemaphore(concurrent + queue)
        self._checks = ThreadPoolExecutor(
            concurrent, "password-check", initializer=_lower_priority, initargs=(nice,)
        )
        self._verify = verify

    @contextmanager
    def admission(self) -> Iterator[bool]:
        """Whether a verification may run or wait now (held until the block ends)."""
        admitted = self._admitted.acquire(blocking=False)
        try:
            yield admitted
        finally:
            if admitted:
                self._admitted.release()

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches (see :func:`verify_password`), checked on the gate's
        threads; call it inside :meth:`admission` only."""
        return self._checks.submit(self._verify, password_hash, password).result()


def _lower_priority(nice: int) -> None:
    """Raise this thread's niceness by ``nice`` (Linux only: elsewhere it is the process's)."""
    if nice and sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError as exc:  # a container that forbids it: checks run at normal priority
            log.warning("password checks run at normal priority: %s", exc)


_GATE_LOCK = threading.Lock()


def password_gate(app: FastAPI) -> PasswordGate:
    """The app's gate, made from its settings on first use (one per app, so per process)."""
    with _GATE_LOCK:
        gate: PasswordGate | None = getattr(app.state, "password_gate", None)
        if gate is None:
            settings: ApiSettings = app.state.settings
            gate = PasswordGate(
                settings.login_verifications, settings.login_queue, settings.login_check_nice
            )
            app.state.password_gate = gate
        return gate


def throttle_policy(settings: ApiSettings) -> ThrottlePolicy:
    return ThrottlePolicy(
        user_free_failures=settings.login_free_attempts,
        address_free_failures=settings.login_address_free_attempts,
        max_block=timedelta(seconds=settings.login_max_block_seconds),
        window=timedelta(seconds=settings.login_failure_window_seconds),
    )


def client_address(request: Request) -> str:
    """The client's address: the peer's, or the one a listed proxy forwarded."""
    host = request.client.host if request.client else ""
    return host[:MAX_KEY_VALUE_LENGTH] or UNKNOWN_ADDRESS


def login_name(username: str) -> str:
    """The username as stored (lower case), or "" if it cannot be one."""
    name = username.strip().lower()
    try:
        return check_username(name)
    except ConfigError:
        return ""


def check_login(
    request: Request, store: Store, username: str, password: str, now: datetime
) -> User | LoginRefused:
    """The user whose correct password this is, or why the login is refused.

    Refused: 503 while the gate is full, 429 while the username or the address is blocked
    (neither checks a password), 401 for a wrong password or an unknown or inactive user (the
    failure counted against the username and the address). Every refusal is audited.
    """
    settings: ApiSettings = request.app.state.settings
    name = login_name(username)
    actor = name or INVALID_USERNAME
    address = client_address(request)
    keys = [ThrottleKey.address(address)] + ([ThrottleKey.user(name)] if name else [])
    gate = password_gate(request.app)
    with gate.admission() as admitted:
        if not admitted:  # first: a flood is turned away before it costs a database read
            detail = {"limit": "busy", "retry_after": BUSY_RETRY_AFTER, "address": address}
            store.audit.record(actor, "login-throttled", None, detail)
            message = "The service is busy checking other logins: try again in a moment."
            return LoginRefused(status.HTTP_503_SERVICE_UNAVAILABLE, message, BUSY_RETRY_AFTER)
        block = store.throttle.blocked(keys, now)
        if block is not None:
            seconds = max(1, math.ceil(block.retry_after(now).total_seconds()))
            detail = {"limit": block.key.kind.value, "retry_after": seconds, "address": address}
            store.audit.record(actor, "login-throttled", None, detail)
            message = f"Too many failed logins: try again in {_wait(seconds)}."
            return LoginRefused(status.HTTP_429_TOO_MANY_REQUESTS, message, seconds)
        user = store.users.get(name) if name else None
        known = user if user is not None and user.active else None
        verified = gate.verify(known.password_hash if known else None, password)
    if not verified or known is None:
        started = store.throttle.failed(keys, now, throttle_policy(settings))
        failed_detail = (
            {}
            if started is None
            else {
                "blocked": started.key.kind.value,
                "blocked_seconds": math.ceil(started.retry_after(now).total_seconds()),
            }
        )
        store.audit.record(actor, "login-failed", None, failed_detail)
        return LoginRefused(status.HTTP_401_UNAUTHORIZED, "Wrong username or password.")
    store.throttle.succeeded(ThrottleKey.user(known.username))
    return known


def _wait(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


__all__ = [
    "INVALID_USERNAME",
    "LoginRefused",
    "PasswordGate",
    "check_login",
    "client_address",
    "login_name",
    "password_gate",
    "throttle_policy",
]
