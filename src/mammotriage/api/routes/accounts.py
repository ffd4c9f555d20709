"""The admin page's user lifecycle: deactivate and activate a user, reset a password, revoke
all of a user's tokens, end all of a user's sessions.

Plain CSRF-protected forms posting to ``/ui/admin/users/{username}/...`` and redirecting back
to ``/admin`` with a flash line (post/redirect/get). Each change is audited with the admin's
name, takes effect in this process at once (the kept credentials are dropped) and in other
server processes within ``user_cache_seconds``. An admin cannot deactivate themselves: the
service must keep someone who can undo it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request, status
from fastapi.responses import RedirectResponse

from mammotriage.api.deps import AdminAction, NowDep, StoreDep, forget_credentials
from mammotriage.api.security import MIN_PASSWORD_LENGTH, hash_password
from mammotriage.errors import ConflictError
from mammotriage.worklist.users import USERNAME_PATTERN, SessionEnd

router = APIRouter(prefix="/ui/admin/users", tags=["page"], include_in_schema=False)

Username = Annotated[
    str, Path(min_length=2, max_length=100, pattern=USERNAME_PATTERN, description="the user")
]


def _back(request: Request, message: str) -> RedirectResponse:
    request.session["flash"] = message
    return RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/{username}/deactivate")
def deactivate(
    request: Request, username: Username, admin: AdminAction, store: StoreDep, now: NowDep
) -> RedirectResponse:
    if username == admin.username:
        raise ConflictError("an admin cannot deactivate themselves: ask another admin")
    ended = store.users.set_active(username, active=False, now=now)
    forget_credentials(request)
    store.audit.record(
        admin.username, "user-deactivated", None, {"user": username, "sessions_ended": ended}
    )
    return _back(request, f"Deactivated {username}: {ended} session(s) ended, tokens refused.")


@router.post("/{username}/activate")
def activate(
    request: Request, username: Username, admin: AdminAction, store: StoreDep
) -> RedirectResponse:
    store.users.set_active(username, active=True)
    forget_credentials(request)
    store.audit.record(admin.username, "user-activated", None, {"user": username})
    return _back(request, f"Activated {username}.")


@router.post("/{username}/password")
def reset_password(
    request: Request,
    username: Username,
    admin: AdminAction,
    store: StoreDep,
    now: NowDep,
    password: Annotated[str, Form(max_length=1000)],
) -> RedirectResponse:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"password must be at least {MIN_PASSWORD_LENGTH} characters",
        )
    store.users.require(username)
    ended = store.users.set_password(username, hash_password(password), now)
    forget_credentials(request)
    store.audit.record(
        admin.username, "password-changed", None, {"user": username, "sessions_ended": ended}
    )
    return _back(request, f"Password of {username} reset: {ended} session(s) ended.")


@router.post("/{username}/revoke-tokens")
def revoke_tokens(
    request: Request, username: Username, admin: AdminAction, store: StoreDep, now: NowDep
) -> RedirectResponse:
    revoked = store.users.revoke_tokens(username, now)
    forget_credentials(request)
    store.audit.record(
        admin.username, "tokens-revoked", None, {"user": username, "token": None, "count": revoked}
    )
    return _back(request, f"Revoked {revoked} token(s) of {username}.")


@router.post("/{username}/end-sessions")
def end_sessions(
    request: Request, username: Username, admin: AdminAction, store: StoreDep, now: NowDep
) -> RedirectResponse:
    ended = store.sessions.end_all(username, now, SessionEnd.REVOKED)
    forget_credentials(request)
    store.audit.record(admin.username, "sessions-ended", None, {"user": username, "count": ended})
    return _back(request, f"Ended {ended} session(s) of {username}.")
