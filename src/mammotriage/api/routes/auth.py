"""Logging in and out of the page: username and password against the argon2 hash, then a
session held on the server, named by a signed cookie; logout ends it there. The login form
is CSRF-protected too (login CSRF)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mammotriage.api.deps import NowDep, StoreDep, UserAction, end_session, start_session
from mammotriage.api.security import CSRF_FIELD, csrf_matches
from mammotriage.api.templating import render
from mammotriage.api.throttle import LoginRefused, check_login
from mammotriage.worklist.models import Role

router = APIRouter(tags=["page"], include_in_schema=False)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a local path: ``next`` must not send a freshly logged-in user elsewhere."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    store: StoreDep,
    now: NowDep,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    if not csrf_matches(request.session, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    user = check_login(request, store, username, password, now)
    if isinstance(user, LoginRefused):
        page = render(
            request,
            "login.html",
            {"next": safe_next(next), "error": user.message},
            status_code=user.status,
        )
        if user.retry_after is not None:
            page.headers["Retry-After"] = str(user.retry_after)
        return page
    start_session(request, store, user)
    store.audit.record(user.username, "login", None, {"role": user.role.value})
    home = "/admin" if user.role is Role.ADMIN else "/"
    return RedirectResponse(safe_next(next, home) if next != "/" else home, status_code=303)


@router.post("/logout")
def logout(request: Request, user: UserAction, store: StoreDep) -> RedirectResponse:
    end_session(request, store)
    store.audit.record(user.username, "logout", None, {})
    return RedirectResponse("/login", status_code=303)
