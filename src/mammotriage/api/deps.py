"""Dependencies of the routes: the store, the settings, the clock and who is calling.

They are `async`: a sync dependency costs a hop to the thread pool per request; only the
user lookup touches the database, and it runs in the pool itself.

Permissions are chained dependencies: :data:`CurrentUser` authenticates (bearer token or
a server-side session named by the signed cookie, 401 otherwise), ``require_roles`` narrows
it (403), and :data:`ReaderAction` adds the CSRF check that every cookie-authenticated state
change needs.
Routes name what they need with the ``Annotated`` aliases at the bottom.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mammotriage.api.monitoring import ServiceMonitor
from mammotriage.api.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_matches,
    csrf_token,
    token_sha256,
)
from mammotriage.api.settings import ApiSettings
from mammotriage.triage import TriagePolicy
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role
from mammotriage.worklist.sessions import session_sha256
from mammotriage.worklist.users import SessionEnd, User

#: The signed cookie's key for the session id (the only thing of the user it holds).
SESSION_ID_KEY = "sid"

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    """Who is calling, and how they proved it (a session cookie needs CSRF; a token not)."""

    username: str
    role: Role
    via: Literal["session", "bearer"]

    @property
    def reader(self) -> str | None:
        """The reader whose queue this caller sees: admins and services look at everyone's."""
        return self.username if self.role is Role.RADIOLOGIST else None


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_policy(request: Request) -> TriagePolicy:
    policy: TriagePolicy = request.app.state.policy
    return policy


async def get_monitor(request: Request) -> ServiceMonitor:
    monitor: ServiceMonitor = request.app.state.monitor
    return monitor


async def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
PolicyDep = Annotated[TriagePolicy, Depends(get_policy)]
NowDep = Annotated[datetime, Depends(get_now)]
MonitorDep = Annotated[ServiceMonitor, Depends(get_monitor)]

_bearer = HTTPBearer(auto_error=False, description="A service token (`mammotriage users token`).")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class UserCache:
    """Who a credential (session id or token digest) belongs to, each answer kept
    ``seconds`` after it was read from the store (0: not kept).

    Under load most requests come from a handful of readers; without it every request is a
    database round trip before any work is done. Changes made in this process (logout, the
    admin page) drop the answers they touch at once (:meth:`forget`, :meth:`clear`); changes
    made elsewhere (the ``mammotriage users`` commands, another server process) take effect
    within ``seconds``.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._answers: dict[str, tuple[float, object]] = {}

    async def get(
        self,
        key: str,
        lookup: Callable[[], T],
        still_good: Callable[[T], bool] = lambda _: True,
    ) -> T:
        """The kept answer for ``key`` while it is fresh and ``still_good``, else ``lookup()``
        (run in the thread pool)."""
        if self.seconds > 0:
            hit = self._answers.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.seconds:
                kept = cast(T, hit[1])
                if still_good(kept):
                    return kept
        answer = await run_in_threadpool(lookup)
        if self.seconds > 0:
            if len(self._answers) > 10_000:  # tokens of long gone callers: start again
                self._answers.clear()
            self._answers[key] = (time.monotonic(), answer)
        return answer

    def forget(self, key: str) -> None:
        self._answers.pop(key, None)

    def clear(self) -> None:
        self._answers.clear()


def _unauthenticated(why: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=why, headers={"WWW-Authenticate": "Bearer"}
    )


def _session_key(session_id: str) -> str:
    return f"session:{session_sha256(session_id)}"


async def current_user(
    request: Request, store: StoreDep, bearer: BearerDep, now: NowDep, settings: SettingsDep
) -> Principal:
    """The caller from ``Authorization: Bearer`` or the session cookie; 401 if neither.

    A token is refused once revoked, past its expiry, or while its user is inactive. A
    session is looked up in the store (:class:`~mammotriage.worklist.sessions.SessionBook`):
    refused once ended (logout, deactivation, password change, an admin), idle for longer
    than ``session_idle_minutes`` or older than ``session_max_age_hours``. Answers are kept
    for ``user_cache_seconds`` (:class:`UserCache`): a logout or an admin's change in this
    process takes effect at once, one made by the ``mammotriage users`` commands or in
    another server process within that time.
    """
    cache = _users(request)
    if bearer is not None:
        digest = token_sha256(bearer.credentials)
        found = await cache.get(
            f"token:{digest}",
            lambda: store.users.bearer(digest, now),
            lambda kept: kept is not None and kept.token.refusal(now) is None,
        )
        if found is None:
            raise _unauthenticated("invalid bearer token")
        why = found.token.refusal(now)
        if why is not None:
            raise _unauthenticated(f"bearer token {why}: ask for a new one")
        if not found.user.active:
            raise _unauthenticated("the token's user is deactivated")
        return Principal(found.user.username, found.user.role, "bearer")
    session_id = request.session.get(SESSION_ID_KEY)
    if not isinstance(session_id, str):
        raise _unauthenticated("not authenticated: log in or send a bearer token")
    idle = timedelta(minutes=settings.session_idle_minutes)
    page = await cache.get(
        _session_key(session_id),
        lambda: store.sessions.find(session_id, now, idle),
        lambda kept: kept is not None and kept.refusal(now, idle) is None,
    )
    if page is not None and page.ended_now:
        reason = page.end_reason.value if page.end_reason else "ended"
        await run_in_threadpool(
            store.audit.record, page.user.username, "session-expired", None, {"reason": reason}
        )
    ended = None if page is None else page.refusal(now, idle)
    if page is None or ended is not None or not page.user.active:
        request.session.clear()
        why = "session ended" if ended is None else f"session ended ({ended.value})"
        raise _unauthenticated(f"{why}: log in again")
    return Principal(page.user.username, page.user.role, "session")


def start_session(request: Request, store: Store, user: User) -> None:
    """Start a server-side session for ``user`` (who just proved their password) and put its
    id, and nothing else of theirs, in the signed cookie, with a fresh CSRF token."""
    settings: ApiSettings = request.app.state.settings
    clock: Callable[[], datetime] = request.app.state.clock
    lifetime = timedelta(hours=settings.session_max_age_hours)
    session_id = store.sessions.start(user.username, clock(), lifetime)
    request.session.clear()
    request.session[SESSION_ID_KEY] = session_id
    csrf_token(request.session)


def end_session(request: Request, store: Store) -> None:
    """End the cookie's session in the store (logout) and clear the cookie; takes effect at
    once in this process, within ``user_cache_seconds`` in the others."""
    session_id = request.session.get(SESSION_ID_KEY)
    if isinstance(session_id, str):
        clock: Callable[[], datetime] = request.app.state.clock
        store.sessions.end(session_id, clock(), SessionEnd.LOGOUT)
        _users(request).forget(_session_key(session_id))
    request.session.clear()


def forget_credentials(request: Request) -> None:
    """Drop every kept answer of this process (after an admin ended sessions or tokens)."""
    _users(request).clear()


def _users(request: Request) -> UserCache:
    cache: UserCache = request.app.state.users
    return cache


CurrentUser = Annotated[Principal, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that lets only ``roles`` through (403 for the others)."""
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> Principal:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"needs the role {names}")
        return user

    return check


def csrf_protected(
    dependency: Callable[..., Coroutine[Any, Any, Principal]],
) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Chain a CSRF check onto ``dependency`` for cookie-authenticated calls.

    A browser sends the session cookie with any request a page elsewhere makes it send;
    only our page knows the session's token. Bearer calls carry no ambient credential and
    are exempt.
    """

    async def check(request: Request, user: Principal) -> Principal:
        if user.via == "bearer":
            return user
        supplied = request.headers.get(CSRF_HEADER)
        content_type = request.headers.get("content-type", "")
        if supplied is None and content_type.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            value = (await request.form()).get(CSRF_FIELD)
            supplied = value if isinstance(value, str) else None
        if not csrf_matches(request.session, supplied):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
        return user

    # Annotations are strings here (PEP 563); the chained dependency is a local, so give
    # FastAPI the real object to find it by.
    check.__annotations__["user"] = Annotated[Principal, Depends(dependency)]
    return check


_radiologist = require_roles(Role.RADIOLOGIST)

RadiologistUser = Annotated[Principal, Depends(_radiologist)]
#: A radiologist changing a reading (claim, release, decide): CSRF-checked for cookies.
ReaderAction = Annotated[Principal, Depends(csrf_protected(_radiologist))]
#: Any signed-in user changing their own state (logout): CSRF-checked for cookies.
UserAction = Annotated[Principal, Depends(csrf_protected(current_user))]
_admin = require_roles(Role.ADMIN)
AdminUser = Annotated[Principal, Depends(_admin)]
#: An admin changing users (deactivate, reset a password, revoke): CSRF-checked for cookies.
AdminAction = Annotated[Principal, Depends(csrf_protected(_admin))]
#: Anyone who may look at the worklist (admins and services read-only, as reader None).
WorklistViewer = Annotated[
    Principal, Depends(require_roles(Role.RADIOLOGIST, Role.ADMIN, Role.SERVICE))
]
MetricsUser = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.SERVICE))]
ExamId = Annotated[uuid.UUID, "the exam's internal id (never a DICOM UID)"]

__all__ = [
    "SESSION_ID_KEY",
    "AdminAction",
    "AdminUser",
    "CurrentUser",
    "ExamId",
    "MetricsUser",
    "MonitorDep",
    "NowDep",
    "PolicyDep",
    "Principal",
    "RadiologistUser",
    "ReaderAction",
    "SettingsDep",
    "StoreDep",
    "UserAction",
    "WorklistViewer",
    "current_user",
    "end_session",
    "forget_credentials",
    "require_roles",
    "start_session",
]
