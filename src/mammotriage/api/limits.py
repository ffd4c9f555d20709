"""Request limits at the door: too many or too large header fields are refused with 431
(RFC 6585 §5), a body over its limit with 413 (RFC 9110 §15.5.14) — before the session, the
routing, the authentication or any parsing sees the request.

A body's limit follows from what the request is: methods that carry no body (GET, HEAD,
OPTIONS) may send none; a form (the login, the page's decision with its note) may
send ``max_form_bytes``; anything else (the API's JSON) ``max_body_bytes``. A route added
later is covered without being listed here. A declared ``Content-Length`` over the limit is
refused before a byte of the body is read; a chunked body is counted as it arrives and
refused the moment it passes the limit, so no more than the limit (plus one chunk) is ever
held. Refusals close the connection, so that the rest of a large body is not read either.

Starlette's own ``RequestBodyLimitMiddleware`` is not used: it refuses a declared length
only when the route first reads the body or answers, after the session, the routing and the
route's dependencies (the user's look-up) have run for a request that will be refused.

The uvicorn side of the same limits, for the bytes that arrive before the app is called,
is :mod:`mammotriage.api.http_protocol`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mammotriage.api.settings import ApiSettings

#: Methods whose requests have no body (RFC 9110 gives a body on them no meaning).
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Media types held to ``max_form_bytes``.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
#: What each header line costs besides its name and value: ": " and CRLF.
HEADER_LINE_OVERHEAD = 4


@dataclass(frozen=True)
class RequestLimits:
    """The limits one request is held to (see the module docstring)."""

    max_body_bytes: int
    max_form_bytes: int
    max_headers: int
    max_header_bytes: int

    @classmethod
    def of(cls, settings: ApiSettings) -> RequestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_form_bytes=settings.max_form_bytes,
            max_headers=settings.max_headers,
            max_header_bytes=settings.max_header_bytes,
        )

    def body_limit(self, method: str, content_type: str) -> int:
        """The most body bytes a request with this method and ``Content-Type`` may send."""
        if method.upper() in BODILESS_METHODS:
            return 0
        media_type = content_type.split(";", 1)[0].strip().lower()
        return self.max_form_bytes if media_type in FORM_TYPES else self.max_body_bytes


class BodyTooLarge(HTTPException):
    """A streamed body passed its limit while the app was reading it.

    An :class:`HTTPException`, so that FastAPI's body parsing passes it on as it is (it
    turns other errors into a 400) and the app's handler answers 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes for this request")


class RequestLimitsMiddleware:
    """Refuses requests over :class:`RequestLimits` (pure ASGI; add it outermost)."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        limits = self.limits
        if len(headers) > limits.max_headers:
            message = f"{len(headers)} header fields; at most {limits.max_headers} are accepted"
            await _refuse(send, 431, message)
            return
        header_bytes = sum(len(name) + len(value) + HEADER_LINE_OVERHEAD for name, value in headers)
        if header_bytes > limits.max_header_bytes:
            message = (
                f"header fields of {header_bytes} bytes; at most {limits.max_header_bytes} "
                "are accepted"
            )
            await _refuse(send, 431, message)
            return
        limit = limits.body_limit(scope["method"], _header(headers, b"content-type") or "")
        declared = _header(headers, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _refuse(send, 400, "Content-Length is not a number of bytes")
                return
            if int(declared) > limit:
                await _refuse(send, 413, _too_large(int(declared), limit))
                return
        await self._call_counting(scope, receive, send, limit)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:  # the rest of the body stays unread: end the connection
                    message = {**message, "headers": [*message["headers"], _CLOSE]}
            await send(message)

        try:
            await self.app(scope, counting_receive, closing_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(send, 413, str(exc.detail))


_CLOSE = (b"connection", b"close")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in headers if key == name), None)


def _too_large(declared: int, limit: int) -> str:
    if limit == 0:
        return f"a body of {declared} bytes on a request that takes none"
    return f"request body of {declared} bytes; at most {limit} are accepted for this request"


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                _CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = ["BodyTooLarge", "RequestLimits", "RequestLimitsMiddleware"]
