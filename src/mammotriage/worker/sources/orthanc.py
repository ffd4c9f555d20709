"""Orthanc as a source: studies Orthanc calls stable, fetched and answered over its REST API.

Orthanc announces a study complete with a ``StableStudy`` change once no instance has
arrived for ``StableAge`` seconds; the change log (``GET /changes``) is a sequence we can
resume from, so the cursor is simply the last change number seen.

Our own reports go back into the same study. Storing one makes Orthanc update the study
and, ``StableAge`` later, call it stable again. So that this does not score the exam again
(and write another report, forever), everything here looks only at the instances that are
not ours (:func:`is_own_report`): the fingerprint counts and hashes those alone, and
``fetch`` leaves ours out. A late view changes the fingerprint; our report does not.

The HTTP plumbing that turns httpx's errors into :class:`~mammotriage.errors.SourceError`
and :class:`~mammotriage.errors.SourceUnavailableError` (:class:`PacsHttp`) lives here too
and is shared with the DICOMweb source.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from mammotriage.dicom.report import MANUFACTURER, SERIES_DESCRIPTION
from mammotriage.errors import SourceError, SourceUnavailableError
from mammotriage.worker.source import Arrival, Poll

logger = logging.getLogger(__name__)

#: Manufacturer (0008,0070) of every object mammotriage writes back to a PACS.
REPORT_MANUFACTURER = MANUFACTURER
#: SeriesDescription (0008,103E) of the series holding our triage report.
REPORT_SERIES_DESCRIPTION = SERIES_DESCRIPTION

Clock = Callable[[], datetime]


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
            with self._client.stream(method, path, **kwargs) as reply:
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


class OrthancSource:
    """Studies Orthanc calls stable, fetched and answered over Orthanc's REST API.

    Parameters
    ----------
    url
        Orthanc's REST root, e.g. ``http://127.0.0.1:8042``. Credentials in the URL are
        taken out of it and used like ``username``/``password``.
    username, password
        HTTP basic authentication (Orthanc's ``RegisteredUsers``).
    reports_via
        How reports go back: ``"rest"`` (``POST /instances``), the only way for now.
    timeout
        Seconds for connecting and for each read.
    page_size
        Changes asked for per ``GET /changes``.
    clock
        Gives "now" (timezone-aware) for :attr:`Arrival.arrived_at`.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        reports_via: Literal["rest"] = "rest",
        timeout: float = 30.0,
        page_size: int = 100,
        clock: Clock = utc_now,
    ) -> None:
        bare, url_user, url_password = split_credentials(url)
        username = username if username is not None else url_user
        password = password if password is not None else url_password
        if (username is None) != (password is None):
            raise ValueError("username and password must be given together (or neither)")
        if reports_via != "rest":
            raise ValueError(f"reports_via must be 'rest', got {reports_via!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size!r}")
        self.url = bare
        self.name = f"orthanc:{bare}"
        self.page_size = page_size
        self._clock = clock
        auth = (username, password) if username is not None and password is not None else None
        self._http = PacsHttp(f"Orthanc {bare}", bare, auth=auth, timeout=timeout)

    # -- poll -----------------------------------------------------------------------------

    def poll(self, cursor: str | None) -> Poll:
        """Studies that became stable after change ``cursor`` (all of them for ``None``).

        A study deleted since it became stable, or holding only our reports, is left out.
        The new cursor is Orthanc's last change number; if Orthanc's last change is older
        than the cursor, its database was replaced, and the log is read from the start.
        """
        since = _parse_change(cursor)
        studies: dict[str, None] = {}  # Orthanc study ids, in the order they became stable
        last = since
        while True:
            page = self._http.json(
                "GET", "/changes", params={"since": last, "limit": self.page_size}
            )
            try:
                changes = list(page["Changes"])
                done = bool(page["Done"])
                newest = int(page["Last"])
            except (KeyError, TypeError, ValueError) as exc:
                raise SourceError(f"{self._http.what} sent a malformed change log page") from exc
            if newest < last and not changes:
                logger.warning(
                    "%s: change log ends at %d, before cursor %d; reading it from the start",
                    self.name,
                    newest,
                    last,
                )
                return self.poll(None)
            for change in changes:
                if change.get("ChangeType") == "StableStudy" and change.get("ID"):
                    studies.pop(change["ID"], None)
                    studies[change["ID"]] = None
            last = max(last, newest)
            if done or not changes:
                break
        arrivals = []
        for study_id in studies:
            arrival = self._arrival(study_id)
            if arrival is not None:
                arrivals.append(arrival)
        return Poll(tuple(arrivals), cursor=str(last))

    def _arrival(self, study_id: str) -> Arrival | None:
        study = self._http.json("GET", f"/studies/{study_id}", missing_ok=True)
        if study is None:
            return None
        study_uid = str((study.get("MainDicomTags") or {}).get("StudyInstanceUID") or "")
        instances = self._instance_ids(study_id)
        if not study_uid or not instances:
            return None
        return Arrival(study_uid, _fingerprint(instances), self._clock())

    def _instance_ids(self, study_id: str) -> list[str] | None:
        """The study's instances that are not our reports (``None`` if the study is gone)."""
        series = self._http.json("GET", f"/studies/{study_id}/series", missing_ok=True)
        if series is None:
            return None
        try:
            return [
                instance
                for one in series
                if not is_own_report(one.get("MainDicomTags") or {})
                for instance in one["Instances"]
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise SourceError(f"{self._http.what} sent a malformed series list") from exc

    # -- fetch ----------------------------------------------------------------------------

    def fetch(self, study_key: str, into: Path) -> list[Path]:
        """Download the study's instances (not our reports) to ``into/<Orthanc id>.dcm``.

        Raises
        ------
        SourceError
            If Orthanc no longer holds the study.
        SourceUnavailableError
            If Orthanc cannot be reached, or the disk is full.
        """
        study_id = self._study_id(study_key)
        instances = self._instance_ids(study_id) if study_id else None
        if study_id is None or instances is None:
            raise SourceError(f"study {study_key} no longer in {self._http.what}")
        into = Path(into)
        try:
            into.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, into) from exc
        return [self._download(instance, into / f"{instance}.dcm") for instance in instances]

    def _study_id(self, study_uid: str) -> str | None:
        found = self._http.json("POST", "/tools/lookup", content=study_uid.encode())
        if not isinstance(found, list):
            raise SourceError(f"{self._http.what} sent a malformed /tools/lookup reply")
        studies = [
            str(item["ID"])
            for item in found
            if isinstance(item, dict) and item.get("Type") == "Study" and item.get("ID")
        ]
        return studies[0] if studies else None

    def _download(self, instance: str, target: Path) -> Path:
        partial = target.with_name(target.name + ".part")
        path = f"/instances/{instance}/file"
        try:
            with self._http.stream("GET", path, missing_ok=True) as reply:
                if reply is None:
                    # Deleted while we fetch: the study is changing; a retry sees it anew.
                    raise SourceUnavailableError(
                        f"instance {instance} left {self._http.what} during the fetch"
                    )
                with partial.open("wb") as out:
                    for chunk in reply.iter_bytes(1 << 20):
                        out.write(chunk)
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise disk_error(exc, target) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    # -- reports --------------------------------------------------------------------------

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        """``POST /instances`` each report; storing one Orthanc already holds is fine."""
        studies: list[str] = []
        for report in reports:
            try:
                content = Path(report).read_bytes()
            except OSError as exc:
                raise SourceError(f"cannot read report {report}: {exc.strerror or exc}") from exc
            answer = self._http.json(
                "POST", "/instances", content=content, headers={"Content-Type": "application/dicom"}
            )
            status = answer.get("Status") if isinstance(answer, dict) else None
            if status not in ("Success", "AlreadyStored"):
                raise SourceError(
                    f"{self._http.what} did not store report {Path(report).name} "
                    f"(status {status!r})"
                )
            parent = str(answer.get("ParentStudy") or "")
            if parent and parent not in studies:
                studies.append(parent)
        where = ", ".join(studies) if studies else "(no reports)"
        return f"Orthanc {self.url} study {where}"

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrthancSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _parse_change(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        since = int(cursor)
    except ValueError:
        since = -1
    if since < 0:
        raise SourceError(f"cursor {cursor!r} is not an Orthanc change number")
    return since


def _fingerprint(instances: Sequence[str]) -> str:
    """The count and a digest of the (non-report) instance ids, order-free.

    Orthanc's ids hash the DICOM UIDs, so the same instances give the same fingerprint on
    every poll; ``LastUpdate`` would change with each report we store, and is left out.
    """
    digest = hashlib.sha256("\n".join(sorted(instances)).encode()).hexdigest()[:16]
    return f"{len(instances)}:{digest}"


__all__ = [
    "REPORT_MANUFACTURER",
    "REPORT_SERIES_DESCRIPTION",
    "OrthancSource",
    "PacsHttp",
    "is_own_report",
    "split_credentials",
]
