"""Dependencies of the routes: the store, the settings, the clock and who is calling.

They are `async`: a sync dependency costs a hop to the thread pool per request; only the
user lookup touches the database, and it runs in the pool itself.

Permissions are chained dependencies: :data:`CurrentUser` authenticates (bearer token or
session cookie, 401 otherwise), ``require_roles`` narrows it (403), and
:data:`ReaderAction` adds the CSRF check that every cookie-authenticated state change needs.
Routes name what they need with the ``Annotated`` aliases at the bottom.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mammotriage.api.security import CSRF_FIELD, CSRF_HEADER, csrf_matches, token_sha256
from mammotriage.api.settings import ApiSettings
from mammotriage.triage import TriagePolicy
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role
from mammotriage.worklist.users import User

SESSION_USER_KEY = "user"


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


async def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
PolicyDep = Annotated[TriagePolicy, Depends(get_policy)]
NowDep = Annotated[datetime, Depends(get_now)]

_bearer = HTTPBearer(auto_error=False, description="A service token (`mammotriage users token`).")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class UserCache:
    """Users by name or token digest, each kept ``seconds`` after it was read (0: not kept).

    Under load most requests come from a handful of readers; without it every request is a
    database round trip before any work is done.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._users: dict[str, tuple[float, User | None]] = {}

    async def get(self, key: str, lookup: Callable[[], User | None]) -> User | None:
        if self.seconds > 0:
            hit = self._users.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.seconds:
                return hit[1]
        user = await run_in_threadpool(lookup)
        if self.seconds > 0:
            if len(self._users) > 10_000:  # tokens of long gone callers: start again
                self._users.clear()
            self._users[key] = (time.monotonic(), user)
        return user


def _unauthenticated(why: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=why, headers={"WWW-Authenticate": "Bearer"}
    )


async def current_user(request: Request, store: StoreDep, bearer: BearerDep) -> Principal:
    """The caller from ``Authorization: Bearer`` or the session cookie; 401 if neither.

    The user is looked up again at least every ``user_cache_seconds``, so deactivating a
    user ends their session within that time (the cookie itself is signed, not stored).
    """
    if bearer is not None:
        digest = token_sha256(bearer.credentials)
        user = await _users(request).get(f"token:{digest}", lambda: store.users.for_token(digest))
        if user is None or not user.active:
            raise _unauthenticated("invalid bearer token")
        return Principal(user.username, user.role, "bearer")
    username = request.session.get(SESSION_USER_KEY)
    if not isinstance(username, str):
        raise _unauthenticated("not authenticated: log in or send a bearer token")
    user = await _users(request).get(f"user:{username}", lambda: store.users.get(username))
    if user is None or not user.active:
        request.session.clear()
        raise _unauthenticated("session no longer valid: log in again")
    return Principal(user.username, user.role, "session")


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
AdminUser = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
#: Anyone who may look at the worklist (admins and services read-only, as reader None).
WorklistViewer = Annotated[
    Principal, Depends(require_roles(Role.RADIOLOGIST, Role.ADMIN, Role.SERVICE))
]
MetricsUser = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.SERVICE))]
ExamId = Annotated[uuid.UUID, "the exam's internal id (never a DICOM UID)"]

__all__ = [
    "AdminUser",
    "CurrentUser",
    "ExamId",
    "MetricsUser",
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
    "require_roles",
]
