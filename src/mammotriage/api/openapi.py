"""The service's OpenAPI schema, made honest, and where it is served.

FastAPI writes a schema from the routes' signatures, but it cannot see what the
authentication dependencies refuse. This module reads each route's dependency tree and
adds what it can answer: 401 wherever a caller must be signed in, 403 wherever a role or
the CSRF token is checked, 400 where a body that cannot be parsed is refused, 413 and 431
on every operation (the request limits of :mod:`mammotriage.api.limits` hold for every
request, before routing), and the real
security schemes: a bearer token, or the session cookie, which needs the ``X-CSRF-Token``
header as well for a state change.

The schema is served at ``/openapi.json`` to a signed-in user only (``openapi:
authenticated``), or not at all (``openapi: off``). There is no Swagger UI or ReDoc page:
both load their scripts from a CDN, which the service's content security policy refuses.
``mammotriage serve --print-openapi`` prints the schema without starting a server.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from mammotriage.api import deps
from mammotriage.api.security import CSRF_HEADER
from mammotriage.worklist.models import Role

#: ``ApiSettings.openapi``.
OpenApiMode = Literal["authenticated", "off"]


def security_schemes(session_cookie: str) -> dict[str, dict[str, Any]]:
    """The security schemes, by the names the operations' requirements use."""
    return {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `mammotriage users token NAME`.",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": session_cookie,
            "description": "The session cookie the page at `/login` sets.",
        },
        "csrf": {
            "type": "apiKey",
            "in": "header",
            "name": CSRF_HEADER,
            "description": "The session's CSRF token (in the page's `csrf-token` meta tag); "
            "required with the session cookie for every state change.",
        },
    }


_ERROR = {"$ref": "#/components/schemas/ErrorOut"}
_ERROR_BODY = {"application/json": {"schema": _ERROR}}
_UNAUTHENTICATED = {
    "description": "Not signed in: no valid bearer token or session",
    "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    "content": _ERROR_BODY,
}
_FORBIDDEN = "Forbidden: the caller's role may not do this, or the CSRF token is missing or wrong"
_UNPARSABLE = {
    "description": "The body cannot be parsed (not UTF-8 JSON)",
    "content": _ERROR_BODY,
}
_TOO_LARGE = {
    "description": "The request body is over its limit (a GET may send none)",
    "content": _ERROR_BODY,
}
_HEADERS_TOO_LARGE = {
    "description": "Too many request headers, or too large",
    "content": _ERROR_BODY,
}


def install(app: FastAPI, mode: OpenApiMode, *, session_cookie: str) -> None:
    """Make ``app.openapi()`` the honest schema; serve it at ``/openapi.json`` unless
    ``mode`` is ``off`` (signed-in users only: the schema maps the whole API)."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = honest_schema(app, session_cookie)
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]
    if mode == "off":
        return

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json(_: deps.CurrentUser) -> JSONResponse:
        return JSONResponse(schema())


def honest_schema(app: FastAPI, session_cookie: str) -> dict[str, Any]:
    """FastAPI's schema of ``app`` with each operation's refusals and security filled in."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).setdefault(
        "ErrorOut",
        {
            "title": "ErrorOut",
            "type": "object",
            "properties": {"detail": {"type": "string", "title": "Detail"}},
            "required": ["detail"],
        },
    )
    components["securitySchemes"] = security_schemes(session_cookie)
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        guard = Guard.of(route.dependant)
        path = schema["paths"][route.path_format]
        for method in route.methods or ():
            operation = path.get(method.lower())
            if operation is not None:
                guard.document(operation, takes_body=route.body_field is not None)
    return schema


class Guard:
    """What a route's dependencies check before it runs."""

    def __init__(self, *, authenticated: bool, roles_checked: bool, csrf: bool) -> None:
        self.authenticated = authenticated
        self.roles_checked = roles_checked
        self.csrf = csrf

    @classmethod
    def of(cls, dependant: Dependant) -> Guard:
        calls = [d.call for d in _walk(dependant) if d.call is not None]
        return cls(
            authenticated=any(call is deps.current_user for call in calls),
            roles_checked=any(_refuses_a_role(call) for call in calls),
            csrf=any(_made_by(call, "csrf_protected") for call in calls),
        )

    def document(self, operation: dict[str, Any], *, takes_body: bool) -> None:
        responses: dict[str, Any] = operation.setdefault("responses", {})
        operation.pop("security", None)
        if self.authenticated:
            responses.setdefault("401", _UNAUTHENTICATED)
            cookie: dict[str, list[str]] = (
                {"session": [], "csrf": []} if self.csrf else {"session": []}
            )
            operation["security"] = [cookie, {"bearer": []}]
        else:
            operation["security"] = []
        if self.roles_checked or self.csrf:
            forbidden = responses.setdefault("403", {"description": _FORBIDDEN})
            forbidden.setdefault("content", _ERROR_BODY)
        if takes_body:
            responses.setdefault("400", _UNPARSABLE)
        responses.setdefault("413", _TOO_LARGE)
        responses.setdefault("431", _HEADERS_TOO_LARGE)
        operation["responses"] = dict(sorted(responses.items()))


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every route with its effective path, included routers' routes among them."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI kept included routes flat in app.routes
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


def _made_by(call: Callable[..., Any], factory: str) -> bool:
    """Whether ``call`` is the check a factory in :mod:`mammotriage.api.deps` made."""
    return getattr(call, "__module__", None) == deps.__name__ and (
        getattr(call, "__qualname__", "").startswith(f"{factory}.<locals>.")
    )


def _refuses_a_role(call: Callable[..., Any]) -> bool:
    """A role check that lets only some roles through (one that allows every role refuses
    no one who is signed in)."""
    if not _made_by(call, "require_roles"):
        return False
    allowed = inspect.getclosurevars(call).nonlocals.get("allowed")
    return not (isinstance(allowed, frozenset) and allowed >= set(Role))


__all__ = ["Guard", "OpenApiMode", "honest_schema", "install", "security_schemes"]
