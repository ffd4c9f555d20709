"""Any DICOMweb PACS as a source: QIDO-RS to find studies, WADO-RS to fetch, STOW-RS to answer.

QIDO-RS (PS3.18 §10.6) has no notion of a complete study, so completeness is inferred: a
study arrives once its instance count (NumberOfStudyRelatedInstances) is the same at two
polls at least ``quiet_seconds`` apart. What each study was last seen with lives in the
cursor (compact JSON), pruned to the studies the lookback window still returns.

Our own reports go back into the study and change its count. So that this does not score
the exam again (and write another report, forever), a study whose count settled is then
counted series by series without the series we wrote
(:func:`~mammotriage.worker.sources.http.is_own_report`), and that count is the
fingerprint: a late view changes it, our report does not.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydicom

from mammotriage.errors import SourceError
from mammotriage.worker.source import Arrival, Poll
from mammotriage.worker.sources.http import (
    AS_STORED,
    Clock,
    HttpSource,
    PacsHttp,
    disk_error,
    is_own_report,
    split_credentials,
    utc_now,
)
from mammotriage.worker.sources.multipart import encode_parts, multipart_boundary, write_parts

logger = logging.getLogger(__name__)

#: The multipart writer's former name here, still imported by tests.
_write_parts = write_parts

DICOM_JSON = "application/dicom+json"
#: WADO-RS: the instances as stored (``transfer-syntax=*``, PS3.18 §8.7.3.5.2); without it
#: the default is Explicit VR Little Endian, i.e. the server would decompress every image.
ACCEPT_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACCEPT_DEFAULT = 'multipart/related; type="application/dicom"'

# DICOM JSON tags (PS3.18 §F.2) used here.
STUDY_INSTANCE_UID = "0020000D"
NUMBER_OF_STUDY_RELATED_INSTANCES = "00201208"
NUMBER_OF_SERIES_RELATED_INSTANCES = "00201209"
MANUFACTURER = "00080070"
SERIES_DESCRIPTION = "0008103E"
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"
#: STOW-RS failure reasons that mean "already there": the re-sent report is not lost.
DUPLICATE_SOP_INSTANCE = 0x0111

_CURSOR_VERSION = 1


@dataclass(frozen=True)
class _Seen:
    """What one poll knows of a study: its instance count and since when (epoch seconds),
    the count it was last judged at and the fingerprint it was judged to have."""

    count: int
    since: int
    judged_count: int | None = None
    fingerprint: int | None = None

    def to_json(self) -> list[int | None]:
        return [self.count, self.since, self.judged_count, self.fingerprint]


class DicomWebSource(HttpSource):
    """Studies of one modality found by QIDO-RS, fetched by WADO-RS, answered by STOW-RS.

    Parameters
    ----------
    base_url
        The DICOMweb root (the part before ``/studies``), e.g.
        ``http://pacs:8042/dicom-web``. Credentials in the URL are used like
        ``username``/``password`` and kept out of :attr:`name`.
    username, password
        HTTP basic authentication.
    token
        A bearer token (instead of ``username``/``password``).
    lookback_days
        Only studies with a StudyDate this many days back or later are watched.
    quiet_seconds
        How long a study's instance count must stay the same before it counts as complete.
    timeout
        Seconds for connecting and for each read.
    page_size
        Studies asked for per QIDO-RS request (``limit``/``offset`` paging).
    modality
        ModalitiesInStudy the studies must have (PS3.18 §10.6.1.2).
    clock
        Gives "now" (timezone-aware): quiet periods, the lookback window, arrival times.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        lookback_days: int = 2,
        quiet_seconds: float = 60.0,
        timeout: float = 30.0,
        page_size: int = 100,
        modality: str = "MG",
        clock: Clock = utc_now,
    ) -> None:
        bare, url_user, url_password = split_credentials(base_url)
        username = username if username is not None else url_user
        password = password if password is not None else url_password
        if (username is None) != (password is None):
            raise ValueError("username and password must be given together (or neither)")
        if token is not None and username is not None:
            raise ValueError("give either a token or a username and password, not both")
        if lookback_days < 0:
            raise ValueError(f"lookback_days must be >= 0, got {lookback_days!r}")
        if quiet_seconds < 0:
            raise ValueError(f"quiet_seconds must be >= 0, got {quiet_seconds!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size!r}")
        self.base_url = bare
        self.name = f"dicomweb:{bare}"
        self.lookback_days = lookback_days
        self.quiet_seconds = quiet_seconds
        self.page_size = page_size
        self.modality = modality
        self._clock = clock
        auth = (username, password) if username is not None and password is not None else None
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        self._http = PacsHttp(f"DICOMweb {bare}", bare, auth=auth, headers=headers, timeout=timeout)

    # -- poll -----------------------------------------------------------------------------

    def poll(self, cursor: str | None) -> Poll:
        """Studies whose instance count settled since they were last enqueued.

        The returned cursor always carries the updated state, arrivals or not.
        """
        now = self._clock()
        at = int(now.timestamp())
        earlier = self._parse_cursor(cursor)
        first_date = (now - timedelta(days=self.lookback_days)).date()
        counts = self._study_counts(f"{first_date:%Y%m%d}-")
        state: dict[str, _Seen] = {}
        arrivals: list[Arrival] = []
        for study_uid, count in counts.items():
            seen = earlier.get(study_uid)
            if seen is None or seen.count != count:
                state[study_uid] = _Seen(
                    count,
                    at,
                    seen.judged_count if seen else None,
                    seen.fingerprint if seen else None,
                )
                continue
            if seen.judged_count != count and at - seen.since >= self.quiet_seconds:
                own_excluded = self._count_without_reports(study_uid)
                if own_excluded is None:  # gone between the two queries
                    continue
                if own_excluded > 0 and own_excluded != seen.fingerprint:
                    arrivals.append(Arrival(study_uid, str(own_excluded), now))
                seen = replace(seen, judged_count=count, fingerprint=own_excluded)
            state[study_uid] = seen
        new_cursor = json.dumps(
            {"v": _CURSOR_VERSION, "s": {uid: seen.to_json() for uid, seen in state.items()}},
            separators=(",", ":"),
        )
        # Studies whose instance count has not been judged yet are still settling.
        waiting = sum(1 for seen in state.values() if seen.judged_count != seen.count)
        return Poll(tuple(arrivals), cursor=new_cursor, waiting=waiting)

    def _parse_cursor(self, cursor: str | None) -> dict[str, _Seen]:
        if cursor is None:
            return {}
        try:
            data = json.loads(cursor)
            if data.get("v") != _CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('v')!r}")
            return {str(uid): _Seen(*values) for uid, values in data["s"].items()}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # The state only saves waiting: starting afresh re-finds every study in the
            # window, and the unchanged fingerprints keep them from being scored again.
            logger.warning("%s: unreadable cursor (%s); starting afresh", self.name, exc)
            return {}

    def _study_counts(self, study_date: str) -> dict[str, int]:
        """StudyInstanceUID -> NumberOfStudyRelatedInstances of every matching study."""
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = self._http.json(
                "GET",
                "/studies",
                params={
                    "ModalitiesInStudy": self.modality,
                    "StudyDate": study_date,
                    "includefield": "NumberOfStudyRelatedInstances",
                    "limit": self.page_size,
                    "offset": offset,
                },
                headers={"Accept": DICOM_JSON},
            )
            if not isinstance(page, list):
                raise SourceError(f"{self._http.what} sent a QIDO-RS reply that is not a list")
            fresh = 0
            for item in page:
                study_uid = _value(item, STUDY_INSTANCE_UID)
                count = _value(item, NUMBER_OF_STUDY_RELATED_INSTANCES)
                if study_uid is None:
                    continue
                if count is None:
                    raise SourceError(
                        f"{self._http.what} does not return NumberOfStudyRelatedInstances "
                        "(0020,1208) in QIDO-RS study results; it is needed to tell a "
                        "complete study"
                    )
                fresh += str(study_uid) not in counts
                counts[str(study_uid)] = _as_int(count, self._http.what)
            # A short page is the last; a page with nothing new means paging is ignored.
            if len(page) < self.page_size or fresh == 0:
                return counts
            offset += len(page)

    def _count_without_reports(self, study_uid: str) -> int | None:
        """The study's instances outside our report series (``None`` if the study is gone)."""
        series = self._http.json(
            "GET",
            f"/studies/{study_uid}/series",
            missing_ok=True,
            params={
                "includefield": [
                    MANUFACTURER,
                    SERIES_DESCRIPTION,
                    NUMBER_OF_SERIES_RELATED_INSTANCES,
                ]
            },
            headers={"Accept": DICOM_JSON},
        )
        if not series:
            return None
        if not isinstance(series, list):
            raise SourceError(f"{self._http.what} sent a QIDO-RS reply that is not a list")
        total = 0
        for item in series:
            tags = {
                "Manufacturer": _value(item, MANUFACTURER),
                "SeriesDescription": _value(item, SERIES_DESCRIPTION),
            }
            if not is_own_report(tags):
                total += _as_int(_value(item, NUMBER_OF_SERIES_RELATED_INSTANCES) or 0, "")
        return total

    # -- fetch ----------------------------------------------------------------------------

    def fetch(self, study_key: str, into: Path) -> list[Path]:
        """Retrieve the study (WADO-RS) into ``into/<n>.dcm``, leaving our reports out.

        Raises
        ------
        SourceError
            If the PACS no longer holds the study, or its reply is not multipart.
        SourceUnavailableError
            If the PACS cannot be reached, or the disk is full.
        """
        into = Path(into)
        try:
            into.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, into) from exc
        path = f"/studies/{study_key}"
        for accept in (ACCEPT_AS_STORED, ACCEPT_DEFAULT):
            with self._http.stream(
                "GET",
                path,
                missing_ok=True,
                allow=(400, 406),
                headers={"Accept": accept, **AS_STORED},
            ) as reply:
                if reply is not None and reply.status_code in (400, 406):
                    continue  # no "transfer-syntax=*" here: ask for the default syntax
                if reply is None or reply.status_code == 204:
                    raise SourceError(f"study {study_key} no longer in {self._http.what}")
                boundary = multipart_boundary(reply.headers.get("content-type", ""))
                if boundary is None:
                    raise SourceError(
                        f"{self._http.what} answered WADO-RS {path} with "
                        f"{reply.headers.get('content-type')!r}, not multipart/related"
                    )
                files = write_parts(reply.iter_bytes(1 << 20), boundary, into, self._http.what)
            return [file for file in files if not _is_own_report_file(file)]
        raise SourceError(f"{self._http.what} refused WADO-RS {path} in every transfer syntax")

    # -- reports --------------------------------------------------------------------------

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        """STOW-RS the reports into their study; a report the PACS already holds is fine.

        Raises
        ------
        SourceError
            If the PACS refuses a report (it belongs to another study, is not DICOM, ...).
        """
        if not reports:
            return f"DICOMweb {self.base_url} study {study_key} (no reports)"
        boundary = uuid.uuid4().hex
        body = encode_parts(_read_reports(reports), boundary)
        reply = self._http.request(
            "POST",
            f"/studies/{study_key}",
            allow=(409,),
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": DICOM_JSON,
            },
        )
        assert reply is not None  # a 404 is raised, not handed back
        failures = _stow_failures(reply)
        refused = [reason for reason in failures if reason != DUPLICATE_SOP_INSTANCE]
        if refused or (reply.status_code == 409 and not failures):
            reasons = ", ".join(f"0x{reason:04X}" for reason in refused) or "none given"
            raise SourceError(
                f"{self._http.what} refused {len(refused) or len(reports)} of {len(reports)} "
                f"report(s) for study {study_key} (STOW-RS failure reasons: {reasons})"
            )
        return f"DICOMweb {self.base_url} study {study_key}"


# -- DICOM JSON ---------------------------------------------------------------------------


def _value(item: Any, tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON dataset (PS3.18 §F.2), or ``None``."""
    if not isinstance(item, dict):
        return None
    element = item.get(tag) or item.get(tag.lower())
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    return values[0] if isinstance(values, list) and values else None


def _as_int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{what} sent an instance count that is not a number: {value!r}") from exc


def _stow_failures(reply: Any) -> list[int]:
    """The FailureReason of each item of the STOW-RS reply's FailedSOPSequence."""
    try:
        body = reply.json() if reply.content else {}
    except ValueError:
        return []
    failed = body.get(FAILED_SOP_SEQUENCE) if isinstance(body, dict) else None
    items = failed.get("Value") if isinstance(failed, dict) else None
    reasons = []
    for item in items or []:
        reason = _value(item, FAILURE_REASON)
        reasons.append(
            int(reason) if isinstance(reason, (int, str)) and str(reason).isdigit() else 0
        )
    return reasons


def _read_reports(reports: Sequence[Path]) -> Iterator[bytes]:
    """Each report's bytes, in order, read as the STOW-RS body is built."""
    for report in reports:
        try:
            yield Path(report).read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read report {report}: {exc.strerror or exc}") from exc


def _is_own_report_file(path: Path) -> bool:
    """Whether ``path`` is a report we wrote; it is then deleted. Unreadable files stay:
    the DICOM reader downstream records why they are unusable."""
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["Manufacturer", "SeriesDescription"]
        )
    except Exception:  # any unreadable file is the reader's to report
        return False
    own = is_own_report(
        {"Manufacturer": ds.get("Manufacturer"), "SeriesDescription": ds.get("SeriesDescription")}
    )
    if own:
        path.unlink(missing_ok=True)
    return own


__all__ = ["DicomWebSource"]
