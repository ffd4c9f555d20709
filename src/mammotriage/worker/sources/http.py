"""The HTTP plumbing shared by the Orthanc and DICOMweb sources.

:class:`PacsHttp` turns httpx's errors into :class:`~mammotriage.errors.SourceError` and
:class:`~mammotriage.errors.SourceUnavailableError`; the helpers keep credentials out of
names and messages, classify disk errors, and tell our own reports (:func:`is_own_report`)
from the exam's images.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from mammotriage.dicom.report import MANUFACTURER, SERIES_DESCRIPTION
from mammotriage.errors import SourceError, SourceUnavailableError

#: Manufacturer (0008,0070) of every object mammotriage writes back to a PACS.
REPORT_MANUFACTURER = MANUFACTURER
#: SeriesDescription (0008,103E) of the series holding our triage report.
REPORT_SERIES_DESCRIPTION = SERIES_DESCRIPTION

Clock = Callable[[], datetime]

#: Requests that may be sent again when a connection closed before their answer.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the default clock of the sources)."""
    return datetime.now(timezone.utc)


def is_own_report(tags: Mapping[str, Any]) -> bool:
    """Whether a series (or instance) with these DICOM keyword -> value tags is one we wrote.

    Either mark suffices: the Manufacturer is ours, or the series is our report series.
    """
    manufacturer = str(tags.get("Manufacturer") or "").strip().lower()
    description = str(tags.get("SeriesDescription") or "").strip().lower()
    return (
        manufacturer == REPORT_MANUFACTURER.lower()
        or description == REPORT_SERIES_DESCRIPTION.lower()
    )


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without a trailing slash and without ``user:password@``, and those two.

    The bare URL is what may appear in names and messages; credentials never do.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url must be an http(s) URL with a host, got {_redact(url)!r}")
    host = parts.hostname
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), parts.query, ""))
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, username, password


def _redact(url: str) -> str:
    """``url`` with anything before an ``@`` in its authority replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>" if "@" in url else url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}://{authority}{slash}{path}"


def disk_error(exc: OSError, target: Path) -> SourceError:
    """The source error for failing to write ``target``: a full disk may pass, the rest not."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SourceUnavailableError(f"disk full writing {target}: {exc.strerror or exc}")
    return SourceError(f"cannot write {target}: {exc.strerror or exc}")


#: Headers of a request for DICOM files: no HTTP content coding. httpx asks for gzip by
#: default, and Orthanc then compresses every file on the fly: a 20 MB mammogram took 2.1 s
#: to download from a local Orthanc instead of 0.05 s, which made the download the slowest
#: step of a job. Mammograms are mostly compressed already (JPEG 2000, JPEG-LS, RLE); the
#: rest gains little on a hospital LAN for the server's CPU it costs.
AS_STORED = {"Accept-Encoding": "identity"}


class PacsHttp:
    """An :class:`httpx.Client` whose every failure is a source error with a clear message.

    Connection failures, timeouts, HTTP 429 and 5xx become
    :class:`~mammotriage.errors.SourceUnavailableError` (the worker retries); refused
    credentials and other 4xx become :class:`~mammotriage.errors.SourceError`. ``what``
    names the server in messages (``"Orthanc http://host:8042"``) and holds no credentials.
    """

    def __init__(
        self,
        what: str,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.what = what
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=base_url,
            auth=auth,
            headers=dict(headers or {}),
            timeout=timeout,
            follow_redirects=True,
        )

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        missing_ok: bool = False,
        allow: Collection[int] = (),
        **kwargs: Any,
    ) -> Iterator[httpx.Response | None]:
        """The response, its body not yet read; ``None`` for a 404 when ``missing_ok``.

        A status in ``allow`` is handed back for the caller to judge instead of raising.
        Errors raised while the caller reads the body are converted as well.
        """
        try:
            with ExitStack() as stack:
                reply = self._send(stack, method, path, **kwargs)
                if reply.status_code == 404 and missing_ok:
                    yield None
                    return
                if not reply.is_success and reply.status_code not in allow:
                    reply.read()
                    self._raise_for(reply, method, path)
                yield reply
        except httpx.TimeoutException as exc:
            raise SourceUnavailableError(
                f"{self.what} did not answer {method} {path} within {self.timeout:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise SourceUnavailableError(
                f"{self.what} cannot be reached ({type(exc).__name__}: {exc})"
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.what}: {method} {path} failed ({exc})") from exc

    def _send(self, stack: ExitStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send the request and read the response's head (its body stays in ``stack``).

        A server may close an idle keep-alive connection just as the next request goes out
        on it (Orthanc does); httpx retries only failed connects, so the request fails
        without an answer. An idempotent request is sent once more, on another connection.
        """
        try:
            return stack.enter_context(self._client.stream(method, path, **kwargs))
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if method.upper() not in _IDEMPOTENT:
                raise
            return stack.enter_context(self._client.stream(method, path, **kwargs))

    def request(
        self,
        method: str,
        path: str,
        *,
        missing_ok: bool = False,
        allow: Collection[int] = (),
        **kwargs: Any,
    ) -> httpx.Response | None:
        """The whole response; ``None`` for a 404 when ``missing_ok``."""
        with self.stream(method, path, missing_ok=missing_ok, allow=allow, **kwargs) as reply:
            if reply is not None:
                reply.read()
            return reply

    def json(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The response's JSON body; ``None`` for a 404 when ``missing_ok``."""
        reply = self.request(method, path, missing_ok=missing_ok, **kwargs)
        if reply is None:
            return None
        if reply.status_code == 204 or not reply.content:
            return []
        try:
            return reply.json()
        except ValueError as exc:
            raise SourceError(
                f"{self.what} sent a reply to {method} {path} that is not JSON"
            ) from exc

    def _raise_for(self, reply: httpx.Response, method: str, path: str) -> None:
        code = reply.status_code
        status = f"HTTP {code} {reply.reason_phrase}".rstrip()
        if code in (401, 403):
            raise SourceError(
                f"{self.what} refused our credentials ({status}): check the username and "
                "password (or token) configured for this source"
            )
        detail = _error_detail(reply)
        if code == 429 or code >= 500:
            raise SourceUnavailableError(
                f"{self.what} answered {method} {path} with {status}{detail}"
            )
        raise SourceError(f"{self.what} refused {method} {path}: {status}{detail}")

    def close(self) -> None:
        self._client.close()


def _error_detail(reply: httpx.Response) -> str:
    """Orthanc's ``Details``/``Message`` (or the start of any text body), for a message."""
    try:
        body = reply.json()
    except ValueError:
        text = reply.text.strip()
        return f": {text[:200]}" if text and "<" not in text[:1] else ""
    if isinstance(body, dict):
        text = str(body.get("Details") or body.get("Message") or "").strip()
        return f": {text[:200]}" if text else ""
    return ""


_S = TypeVar("_S", bound="HttpSource")


class HttpSource:
    """Lifetime of a source that talks to its PACS through one :class:`PacsHttp`."""

    _http: PacsHttp

    def close(self) -> None:
        self._http.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "HttpSource",
    "REPORT_MANUFACTURER",
    "REPORT_SERIES_DESCRIPTION",
    "Clock",
    "PacsHttp",
    "disk_error",
    "is_own_report",
    "split_credentials",
    "utc_now",
]
