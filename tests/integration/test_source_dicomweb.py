"""DicomWebSource against Orthanc's DICOMweb plugin (the ``orthanc`` fixture): QIDO-RS polling
with a quiet period, WADO-RS fetch, STOW-RS reports, and the errors a user can cause."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from fixtures_orthanc import VIEWS, OrthancFactory, OrthancServer, write_exam, write_report
from mammotriage.errors import SourceError, SourceUnavailableError
from mammotriage.worker.source import Arrival, Source
from mammotriage.worker.sources.dicomweb import DicomWebSource, _write_parts

pytestmark = pytest.mark.integration

QUIET = 60.0


class ManualClock:
    """Now, as far as the source knows; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def source(orthanc: OrthancServer, clock: ManualClock) -> Iterator[DicomWebSource]:
    with DicomWebSource(
        orthanc.dicomweb_url,
        username=orthanc.username,
        password=orthanc.password,
        quiet_seconds=QUIET,
        clock=clock,
    ) as opened:
        yield opened


class Poller:
    """Polls like the worker loop does: each time from the cursor the last poll returned."""

    def __init__(self, source: DicomWebSource) -> None:
        self.source = source
        self.cursor: str | None = None

    def arrivals_of(self, study_uid: str) -> list[Arrival]:
        poll = self.source.poll(self.cursor)
        if poll.cursor is not None:
            self.cursor = poll.cursor
        return [arrival for arrival in poll.arrivals if arrival.study_key == study_uid]


def test_is_a_source_named_by_its_url_without_credentials() -> None:
    source = DicomWebSource("https://bob:hunter2@pacs.example:8443/dicom-web/")
    assert isinstance(source, Source)
    assert source.name == "dicomweb:https://pacs.example:8443/dicom-web"
    source.close()


def test_a_study_arrives_once_its_count_stays_the_same_for_quiet_seconds(
    orthanc: OrthancServer, source: DicomWebSource, clock: ManualClock, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS))
    poller = Poller(source)
    assert poller.arrivals_of(study_uid) == []  # first seen
    clock.advance(QUIET / 2)
    assert poller.arrivals_of(study_uid) == []  # not quiet long enough
    clock.advance(QUIET / 2)
    [arrival] = poller.arrivals_of(study_uid)
    assert arrival.fingerprint == "4"
    assert arrival.arrived_at == clock.now
    clock.advance(QUIET * 3)
    assert poller.arrivals_of(study_uid) == []  # enqueued once


def test_a_late_view_restarts_the_quiet_period_and_gives_a_new_fingerprint(
    orthanc: OrthancServer, source: DicomWebSource, clock: ManualClock, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:3]))
    poller = Poller(source)
    poller.arrivals_of(study_uid)
    clock.advance(QUIET)
    assert [a.fingerprint for a in poller.arrivals_of(study_uid)] == ["3"]
    orthanc.upload_all(write_exam(tmp_path / "late", study_uid, VIEWS[3:]))
    clock.advance(QUIET)
    assert poller.arrivals_of(study_uid) == []  # the count just changed
    clock.advance(QUIET)
    assert [a.fingerprint for a in poller.arrivals_of(study_uid)] == ["4"]


def test_our_report_changes_the_count_but_the_study_does_not_arrive_again(
    orthanc: OrthancServer, source: DicomWebSource, clock: ManualClock, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS))
    poller = Poller(source)
    poller.arrivals_of(study_uid)
    clock.advance(QUIET)
    assert len(poller.arrivals_of(study_uid)) == 1

    where = source.store_reports(study_uid, [write_report(tmp_path, study_uid)])
    assert study_uid in where
    assert orthanc.count_instances(study_uid) == 5
    for _ in range(3):
        clock.advance(QUIET)
        assert poller.arrivals_of(study_uid) == []
    assert json.loads(poller.cursor or "")["s"][study_uid][0] == 5


def test_fetch_returns_every_instance_as_uploaded_without_our_reports(
    orthanc: OrthancServer, source: DicomWebSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    files = write_exam(tmp_path / "sent", study_uid, VIEWS)
    orthanc.upload_all(files)
    source.store_reports(study_uid, [write_report(tmp_path, study_uid)])
    fetched = source.fetch(study_uid, tmp_path / "fetched")
    sent = {pydicom.dcmread(path).SOPInstanceUID: path.read_bytes() for path in files}
    got = {pydicom.dcmread(path).SOPInstanceUID: path for path in fetched}
    assert sorted(got) == sorted(sent)
    assert all(pydicom.dcmread(path).PixelData for path in got.values())
    assert sorted(p.name for p in (tmp_path / "fetched").iterdir()) == sorted(
        p.name for p in fetched
    )


def test_sending_the_same_report_again_is_fine(
    orthanc: OrthancServer, source: DicomWebSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:1]))
    report = write_report(tmp_path, study_uid)
    source.store_reports(study_uid, [report])
    source.store_reports(study_uid, [report])
    assert orthanc.count_instances(study_uid) == 2


def test_a_report_for_another_study_is_refused(
    orthanc: OrthancServer, source: DicomWebSource, tmp_path: Path
) -> None:
    report = write_report(tmp_path, generate_uid())
    with pytest.raises(SourceError, match="refused 1 of 1") as raised:
        source.store_reports(generate_uid(), [report])
    assert not isinstance(raised.value, SourceUnavailableError)


def test_studies_before_the_lookback_window_are_not_watched(
    orthanc: OrthancServer, source: DicomWebSource, clock: ManualClock, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    old = write_exam(tmp_path, study_uid, VIEWS[:1])[0]
    ds = pydicom.dcmread(old)
    ds.StudyDate = (date.today() - timedelta(days=10)).strftime("%Y%m%d")
    ds.save_as(old)
    orthanc.upload(old)
    poller = Poller(source)
    poller.arrivals_of(study_uid)
    clock.advance(QUIET)
    assert poller.arrivals_of(study_uid) == []
    assert study_uid not in json.loads(poller.cursor or "")["s"]


def test_a_study_that_is_gone_leaves_the_cursor(
    orthanc: OrthancServer, source: DicomWebSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:1]))
    poller = Poller(source)
    poller.arrivals_of(study_uid)
    assert study_uid in json.loads(poller.cursor or "")["s"]
    found = orthanc.http.post("/tools/lookup", content=study_uid).json()
    orthanc.http.delete(found[0]["Path"]).raise_for_status()
    poller.arrivals_of(study_uid)
    assert study_uid not in json.loads(poller.cursor or "")["s"]


def test_an_unreadable_cursor_starts_afresh(source: DicomWebSource) -> None:
    assert source.poll("{not json").cursor is not None


def test_fetch_of_a_study_the_pacs_does_not_hold_is_a_source_error(
    source: DicomWebSource, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="no longer in DICOMweb") as raised:
        source.fetch(generate_uid(), tmp_path)
    assert not isinstance(raised.value, SourceUnavailableError)


def test_a_wrong_password_is_a_source_error_that_says_so(orthanc: OrthancServer) -> None:
    source = DicomWebSource(orthanc.dicomweb_url, username=orthanc.username, password="nope-pw")
    with source, pytest.raises(SourceError, match="credentials") as raised:
        source.poll(None)
    assert not isinstance(raised.value, SourceUnavailableError)
    assert "nope-pw" not in str(raised.value)


def test_a_token_the_pacs_does_not_accept_is_a_source_error(orthanc: OrthancServer) -> None:
    with (
        DicomWebSource(orthanc.dicomweb_url, token="not-a-valid-token") as source,
        pytest.raises(SourceError, match="credentials"),
    ):
        source.poll(None)


def test_a_stopped_pacs_is_unavailable_not_a_crash(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory()
    source = DicomWebSource(
        orthanc.dicomweb_url, username=orthanc.username, password=orthanc.password
    )
    orthanc.stop()
    with pytest.raises(SourceUnavailableError, match="cannot be reached"):
        source.poll(None)
    with pytest.raises(SourceUnavailableError, match="cannot be reached"):
        source.fetch(generate_uid(), tmp_path)
    with pytest.raises(SourceUnavailableError):
        source.store_reports(generate_uid(), [write_report(tmp_path, generate_uid())])
    source.close()


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 1 << 20])
def test_multipart_parts_are_split_whatever_the_chunking(tmp_path: Path, chunk_size: int) -> None:
    """RFC 2046: preamble and epilogue ignored, a part may hold '--' and CRLFs, and the
    delimiter may straddle chunks."""
    parts = [b"first\r\n--not-the-boundary\r\n", b"", b"\r\n\r\nthird--"]
    body = b"preamble\r\n--XYZ\r\nContent-Type: application/dicom\r\n\r\n" + parts[0]
    body += b"\r\n--XYZ\r\n\r\n" + parts[1]
    body += b"\r\n--XYZ  \r\nContent-Type: application/dicom\r\nX-A: b\r\n\r\n" + parts[2]
    body += b"\r\n--XYZ--\r\nepilogue"
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    written = _write_parts(chunks, "XYZ", tmp_path, "test")
    assert [path.read_bytes() for path in written] == parts
    assert [path.name for path in written] == ["1.dcm", "2.dcm", "3.dcm"]


def test_a_multipart_body_cut_short_is_a_source_error(tmp_path: Path) -> None:
    body = b"--XYZ\r\nContent-Type: application/dicom\r\n\r\npartial data"
    with pytest.raises(SourceError, match="ends before its last part"):
        _write_parts([body], "XYZ", tmp_path, "test")
    assert list(tmp_path.iterdir()) == []


def test_wado_rs_answers_come_without_http_compression(
    orthanc: OrthancServer, source: DicomWebSource, tmp_path: Path
) -> None:
    """As for Orthanc's REST API: no gzip of a study's files on the fly (the source asks
    for no content coding; the real answer says none was applied)."""
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path / "sent", study_uid, VIEWS))
    codings: list[tuple[str | None, str | None]] = []

    def seen(reply) -> None:  # an httpx response hook: observes the real answers
        if reply.request.method == "GET" and reply.request.url.path.endswith(study_uid):
            asked = reply.request.headers.get("accept-encoding")
            codings.append((asked, reply.headers.get("content-encoding")))

    source._http._client.event_hooks["response"].append(seen)
    assert len(source.fetch(study_uid, tmp_path / "fetched")) == len(VIEWS)
    assert codings and codings == [("identity", None)] * len(codings)
