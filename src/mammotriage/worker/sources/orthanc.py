"""Orthanc as a source: studies Orthanc calls stable, fetched and answered over its REST API.

Orthanc announces a study complete with a ``StableStudy`` change once no instance has
arrived for ``StableAge`` seconds; the change log (``GET /changes``) is a sequence we can
resume from, so the cursor is simply the last change number seen.

Our own reports go back into the same study. Storing one makes Orthanc update the study
and, ``StableAge`` later, call it stable again. So that this does not score the exam again
(and write another report, forever), everything here looks only at the instances that are
not ours (:func:`is_own_report`): the fingerprint counts and hashes those alone, and
``fetch`` leaves ours out. A late view changes the fingerprint; our report does not.

The HTTP plumbing (:class:`~mammotriage.worker.sources.http.PacsHttp`) is shared with the
DICOMweb source and lives in :mod:`mammotriage.worker.sources.http`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from mammotriage.errors import SourceError, SourceUnavailableError
from mammotriage.worker.crashpoints import crash_point
from mammotriage.worker.source import Arrival, Poll
from mammotriage.worker.sources.http import (
    AS_STORED,
    REPORT_MANUFACTURER,
    REPORT_SERIES_DESCRIPTION,
    Clock,
    HttpSource,
    PacsHttp,
    disk_error,
    is_own_report,
    split_credentials,
    utc_now,
)

logger = logging.getLogger(__name__)


class OrthancSource(HttpSource):
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
        paths = []
        for instance in instances:
            paths.append(self._download(instance, into / f"{instance}.dcm"))
            if len(paths) == 1:
                crash_point("mid-fetch")
        return paths

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
            with self._http.stream("GET", path, missing_ok=True, headers=AS_STORED) as reply:
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
    "Clock",
    "OrthancSource",
    "PacsHttp",
    "disk_error",
    "is_own_report",
    "split_credentials",
    "utc_now",
]
