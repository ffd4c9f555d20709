"""Security headers on every response of the reading service.

The page loads its script and style from ``/static`` only, so the Content-Security-Policy
allows nothing inline and nothing from elsewhere; thumbnails come from the service itself.
The page may not be framed (``frame-ancestors``, and X-Frame-Options for older browsers),
sends no Referer (exam ids are in its URLs), and asks for no device (camera, microphone,
location). Every answer carrying data is ``Cache-Control: no-store``, so that nothing a
reader saw stays in a browser's or a proxy's cache after logout; only ``/static`` may be
cached. Strict-Transport-Security is sent when the service runs behind TLS
(``secure_cookies``) or the request came over https through a proxy listed in
``forwarded_allow_ips``.

A route that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
#: One year; sent only over TLS (RFC 6797 §7.2: a browser ignores it over plain HTTP).
STRICT_TRANSPORT_SECURITY = "max-age=31536000"
#: The one prefix whose answers a browser may cache: the page's script, style and icons.
CACHEABLE_PREFIX = "/static/"


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` (and ``Cache-Control: no-store`` outside ``/static``)
    to every HTTP response (pure ASGI; add it outermost, so refusals get them too)."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.tls = tls
        self.headers = SECURITY_HEADERS
        self.tls_headers = SECURITY_HEADERS + (
            ("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(CACHEABLE_PREFIX)
        # Over TLS: ``serve``'s own, or a listed proxy's (its X-Forwarded-Proto, applied
        # by the proxy-headers middleware outside this one).
        over_tls = self.tls or scope.get("scheme") == "https"
        chosen = self.tls_headers if over_tls else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in chosen:
                    headers.setdefault(name, value)
                if not cacheable:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "SecurityHeadersMiddleware"]
