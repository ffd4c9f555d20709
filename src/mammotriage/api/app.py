"""The application factory: one FastAPI app from one :class:`ApiSettings` (and, for tests or
embedding, a store, a policy and a clock).

Errors the store raises on purpose become HTTP statuses here and nowhere else:
NotFoundError 404, ConflictError 409, ForbiddenError 403. The page's routes answer with an
HTML page (401: a redirect to ``/login``); the API's with ``{"detail": ...}``.

Behind a reverse proxy listed in ``forwarded_allow_ips``, a request's client address and
scheme are the ones the proxy forwards (``X-Forwarded-For``, ``X-Forwarded-Proto``;
uvicorn's proxy-headers middleware, outermost); from anyone else those headers are ignored.
The pages link to the service by root-relative URLs (:mod:`mammotriage.api.templating`),
so they work whatever scheme and host the browser used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import make_url
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mammotriage import __version__
from mammotriage.api import openapi
from mammotriage.api.deps import (
    MetricsUser,
    MonitorDep,
    NowDep,
    PolicyDep,
    StoreDep,
    UserCache,
)
from mammotriage.api.headers import SecurityHeadersMiddleware
from mammotriage.api.limits import RequestLimits, RequestLimitsMiddleware
from mammotriage.api.metrics import ApiMetrics, MetricsMiddleware
from mammotriage.api.monitoring import ServiceMonitor
from mammotriage.api.routes import accounts, admin, auth, exams, health, pages, worklist
from mammotriage.api.settings import ApiSettings, load_api_settings
from mammotriage.api.templating import STATIC_DIR, make_templates, render
from mammotriage.errors import ConflictError, ForbiddenError, NotFoundError, ReadingError
from mammotriage.triage import TriagePolicy, load_policy
from mammotriage.worklist import Store
from mammotriage.worklist.models import utcnow

log = logging.getLogger(__name__)

SESSION_COOKIE = "mammotriage_session"
_PAGE_PREFIXES = ("/ui/", "/login", "/logout")
_PAGE_PATHS = ("/", "/admin")

DESCRIPTION = """
The radiologists' worklist of mammotriage: each reader's queue in the triage policy's order,
claims that time out, blinded double reading with consensus, and the evidence behind each
exam's AI category. Exams are named by internal UUIDs only. Authenticate with a session
cookie (the page at `/login`; its POSTs need the `X-CSRF-Token` header) or
`Authorization: Bearer <token>` (`mammotriage users token NAME`).
"""


def open_store(settings: ApiSettings) -> Store:
    """The settings' store, its SQLite folder made if needed; the claim timeout set."""
    url = make_url(settings.database) if "://" in settings.database else None
    sqlite_file = settings.database if url is None else url.database
    if (url is None or url.get_backend_name() == "sqlite") and sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    return Store(settings.database, pool_size=settings.database_pool_size)


#: Where ``mammotriage serve`` tells its server processes which config file to read.
CONFIG_ENV = "MAMMOTRIAGE_API_CONFIG"


def app_from_environment() -> FastAPI:
    """The app of one server process started by ``mammotriage serve`` (uvicorn factory):
    settings from the config file named in ``MAMMOTRIAGE_API_CONFIG`` and the environment."""
    config = os.environ.get(CONFIG_ENV) or None
    return create_app(load_api_settings(Path(config) if config else None))


def is_page(path: str) -> bool:
    return path in _PAGE_PATHS or path.startswith(_PAGE_PREFIXES)


def create_app(
    settings: ApiSettings,
    *,
    store: Store | None = None,
    policy: TriagePolicy | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the reading service.

    Parameters
    ----------
    settings
        The service's settings (the session secret among them).
    store
        An open store; by default one is opened from ``settings.database`` and closed on
        shutdown. Its ``reading_claim_timeout`` and ``queue_snapshot_seconds`` are set from
        the settings either way.
    policy
        The triage policy; by default read from ``settings.policy``.
    clock
        The time the service works at (tests move it to expire claims).

    Raises
    ------
    ConfigError
        If the policy file is missing or invalid, or the database URL is, or the monitor's
        settings file (``settings.monitor``). A monitor whose model or policy cannot be read
        is no error: the monitoring view says why it is unavailable.
    """
    own_store = store is None
    the_store = open_store(settings) if store is None else store
    the_store.readings.claim_timeout = timedelta(minutes=settings.claim_timeout_minutes)
    the_store.readings.queue_snapshot_seconds = settings.queue_snapshot_seconds
    the_policy = load_policy(settings.policy) if policy is None else policy
    the_monitor = ServiceMonitor.open(the_store, settings)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if own_store:
            the_store.close()

    app = FastAPI(
        title="mammotriage reading service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No CDN-loaded Swagger UI or ReDoc; the schema only for the signed-in (api/openapi.py).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.policy = the_policy
    app.state.monitor = the_monitor
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.users = UserCache(settings.user_cache_seconds)
    app.state.templates = make_templates()

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_max_age_hours * 3600),
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecureCookieOverTlsMiddleware, cookie=SESSION_COOKIE)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Added last, so outermost: limits before the session, routing and authentication;
    # the security headers on every answer, the limits' refusals among them.
    app.add_middleware(RequestLimitsMiddleware, limits=RequestLimits.of(settings))
    app.add_middleware(SecurityHeadersMiddleware, tls=settings.secure_cookies)
    if settings.forwarded_allow_ips:
        # Outermost of all: everything inside sees the client and scheme a listed proxy
        # forwarded (the limits, the session cookie, the login throttle, the audit).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for module in (health, worklist, exams, admin, auth, pages, accounts):
        app.include_router(module.router)
    _add_metrics_route(app, metrics)
    openapi.install(app, settings.openapi, session_cookie=SESSION_COOKIE)
    _add_error_handlers(app)
    return app


class SecureCookieOverTlsMiddleware:
    """Marks the session cookie ``Secure`` on every answer to a request that came over HTTPS:
    to ``serve`` itself, or to a proxy in ``forwarded_allow_ips`` that says so
    (``X-Forwarded-Proto: https``), so that the cookie a browser got over TLS is never sent
    in clear text, whether or not ``secure_cookies`` is set (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, cookie: str) -> None:
        self.app = app
        self.prefix = f"{cookie}=".encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, self._secure(value) if name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)

    def _secure(self, value: bytes) -> bytes:
        if not value.startswith(self.prefix):
            return value
        flags = {flag.strip().lower() for flag in value.split(b";")[1:]}
        return value if b"secure" in flags else value + b"; secure"


def _add_metrics_route(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.get(
        "/metrics",
        tags=["admin"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics: requests per route, latency, worklist sizes, monitoring",
    )
    def metrics_endpoint(
        _: MetricsUser, store: StoreDep, policy: PolicyDep, monitor: MonitorDep, now: NowDep
    ) -> Response:
        return Response(metrics.render(store, now, policy, monitor), media_type=CONTENT_TYPE_LATEST)


_READING_STATUS: dict[type[ReadingError], int] = {
    NotFoundError: 404,
    ConflictError: 409,
    ForbiddenError: 403,
}


def _add_error_handlers(app: FastAPI) -> None:
    async def reading_error(request: Request, exc: Exception) -> Response:
        code = next((c for t, c in _READING_STATUS.items() if isinstance(exc, t)), 409)
        return _error(request, code, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not is_page(request.url.path):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return _error(request, exc.status_code, str(exc.detail))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not is_page(request.url.path):
            return JSONResponse({"detail": _jsonable(exc)}, status_code=422)
        return _error(request, 422, "the request was not understood (a field is missing or wrong)")

    app.add_exception_handler(ReadingError, reading_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _jsonable(exc: RequestValidationError) -> list[dict[str, object]]:
    # Echo where and why, not the input (it could be a note with patient details in it).
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
        for error in exc.errors()
    ]


def _error(request: Request, code: int, message: str) -> Response:
    if is_page(request.url.path):
        return render(request, "error.html", {"status": code, "message": message}, code)
    return JSONResponse({"detail": message}, status_code=code)


__all__ = [
    "CONFIG_ENV",
    "SecureCookieOverTlsMiddleware",
    "app_from_environment",
    "create_app",
    "is_page",
    "open_store",
]
