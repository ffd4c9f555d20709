"""OrthancSource against a real Orthanc 1.10 (the ``orthanc`` fixture): what arrives, what is
fetched, where reports go, and how a down or misconfigured Orthanc is reported."""

from __future__ import annotations

import errno
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from fixtures_orthanc import (
    VIEWS,
    OrthancFactory,
    OrthancServer,
    wait_stable,
    write_exam,
    write_report,
)
from mammotriage.errors import SourceError, SourceUnavailableError
from mammotriage.worker.source import Arrival, Source
from mammotriage.worker.sources.orthanc import OrthancSource, disk_error

pytestmark = pytest.mark.integration


def wait_for_arrival(
    source: OrthancSource, cursor: str | None, study_uid: str, timeout: float = 20.0
) -> tuple[Arrival, str | None]:
    """Poll until ``study_uid`` arrives; returns its arrival and the cursor after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = source.poll(cursor)
        cursor = poll.cursor if poll.cursor is not None else cursor
        for arrival in poll.arrivals:
            if arrival.study_key == study_uid:
                return arrival, cursor
        time.sleep(0.25)
    pytest.fail(f"study {study_uid} did not arrive within {timeout} s")


@pytest.fixture
def source(orthanc: OrthancServer) -> Iterator[OrthancSource]:
    with OrthancSource(orthanc.url, username=orthanc.username, password=orthanc.password) as opened:
        yield opened


def test_is_a_source_named_by_its_url_without_credentials() -> None:
    source = OrthancSource("http://alice:pa55w0rd@127.0.0.1:8042/")
    assert isinstance(source, Source)
    assert source.name == "orthanc:http://127.0.0.1:8042"
    assert "pa55w0rd" not in source.name and "alice" not in source.name
    source.close()


def test_poll_returns_a_study_once_orthanc_calls_it_stable_and_then_not_again(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory(stable_age=1)
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS))
    with OrthancSource(orthanc.url, username=orthanc.username, password=orthanc.password) as src:
        assert src.poll(None).arrivals == ()  # still within StableAge
        arrival, cursor = wait_for_arrival(src, None, study_uid)
        assert arrival.fingerprint.startswith("4:")
        assert arrival.arrived_at.tzinfo is not None
        assert cursor is not None and int(cursor) > 0
        assert src.poll(cursor).arrivals == ()
        assert src.poll(cursor).cursor == cursor


def test_fetch_returns_every_instance_as_uploaded(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    files = write_exam(tmp_path / "sent", study_uid, VIEWS)
    orthanc.upload_all(files)
    fetched = source.fetch(study_uid, tmp_path / "fetched")
    assert sorted(pydicom.dcmread(path).SOPInstanceUID for path in fetched) == sorted(
        pydicom.dcmread(path).SOPInstanceUID for path in files
    )
    assert all(path.parent == tmp_path / "fetched" and path.suffix == ".dcm" for path in fetched)
    assert not list((tmp_path / "fetched").glob("*.part"))


def test_a_late_view_makes_the_study_arrive_again_with_a_new_fingerprint(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    cursor: str | None = orthanc.last_change()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:3]))
    first, cursor = wait_for_arrival(source, cursor, study_uid)
    orthanc.upload_all(write_exam(tmp_path / "late", study_uid, VIEWS[3:]))
    second, _ = wait_for_arrival(source, cursor, study_uid)
    assert first.fingerprint.startswith("3:")
    assert second.fingerprint.startswith("4:")


def test_our_report_is_stored_but_changes_neither_fingerprint_nor_fetch(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    cursor: str | None = orthanc.last_change()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS))
    before, cursor = wait_for_arrival(source, cursor, study_uid)

    report = write_report(tmp_path, study_uid)
    where = source.store_reports(study_uid, [report])
    assert orthanc.url in where
    assert orthanc.count_instances(study_uid) == 5

    # Orthanc calls the study stable again after our report; the fingerprint stays.
    again, _ = wait_for_arrival(source, cursor, study_uid)
    assert again.fingerprint == before.fingerprint
    fetched = source.fetch(study_uid, tmp_path / "fetched")
    assert len(fetched) == 4
    assert all(pydicom.dcmread(path).Modality == "MG" for path in fetched)


def test_sending_the_same_report_again_is_fine(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:1]))
    report = write_report(tmp_path, study_uid)
    first = source.store_reports(study_uid, [report])
    assert source.store_reports(study_uid, [report]) == first
    assert orthanc.count_instances(study_uid) == 2


def test_a_study_holding_only_our_reports_never_arrives(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    cursor = orthanc.last_change()
    source.store_reports(study_uid, [write_report(tmp_path, study_uid)])
    wait_stable(orthanc, study_uid)
    assert [a for a in source.poll(cursor).arrivals if a.study_key == study_uid] == []


def test_a_study_deleted_after_it_became_stable_is_skipped(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    cursor = orthanc.last_change()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:2]))
    wait_stable(orthanc, study_uid)
    found = orthanc.http.post("/tools/lookup", content=study_uid).json()
    orthanc.http.delete(found[0]["Path"]).raise_for_status()
    assert [a for a in source.poll(cursor).arrivals if a.study_key == study_uid] == []


def test_fetch_of_a_study_orthanc_does_not_hold_is_a_source_error(
    source: OrthancSource, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="no longer in Orthanc") as raised:
        source.fetch(generate_uid(), tmp_path)
    assert not isinstance(raised.value, SourceUnavailableError)


def test_a_report_orthanc_cannot_parse_is_a_source_error(
    source: OrthancSource, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a DICOM file")
    with pytest.raises(SourceError, match="Bad file format|invalid DICOM"):
        source.store_reports(generate_uid(), [junk])


def test_a_wrong_password_is_a_source_error_that_says_so(orthanc: OrthancServer) -> None:
    source = OrthancSource(orthanc.url, username=orthanc.username, password="wrong-pw")
    with source, pytest.raises(SourceError, match="credentials") as raised:
        source.poll(None)
    assert not isinstance(raised.value, SourceUnavailableError)
    assert "wrong-pw" not in str(raised.value)


def test_credentials_in_the_url_are_used(orthanc: OrthancServer) -> None:
    url = orthanc.url.replace("http://", f"http://{orthanc.username}:{orthanc.password}@")
    with OrthancSource(url) as source:
        assert source.poll(orthanc.last_change()).arrivals == ()
        assert orthanc.password not in source.name


def test_a_stopped_orthanc_is_unavailable_not_a_crash(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    orthanc = orthanc_factory()
    source = OrthancSource(orthanc.url, username=orthanc.username, password=orthanc.password)
    orthanc.stop()
    with pytest.raises(SourceUnavailableError, match="cannot be reached"):
        source.poll(None)
    with pytest.raises(SourceUnavailableError, match="cannot be reached"):
        source.fetch(generate_uid(), tmp_path)
    with pytest.raises(SourceUnavailableError):
        source.store_reports(generate_uid(), [write_report(tmp_path, generate_uid())])
    source.close()


def test_a_cursor_past_orthancs_last_change_reads_the_log_again(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    """A cursor from before Orthanc's database was replaced must not hide new studies."""
    orthanc = orthanc_factory()
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path, study_uid, VIEWS[:1]))
    wait_stable(orthanc, study_uid)
    with OrthancSource(orthanc.url, username=orthanc.username, password=orthanc.password) as src:
        poll = src.poll("100000")
    assert [a.study_key for a in poll.arrivals] == [study_uid]
    assert poll.cursor is not None and int(poll.cursor) < 100000


def test_a_full_disk_is_unavailable_other_write_errors_are_not(tmp_path: Path) -> None:
    full = disk_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "x.dcm")
    denied = disk_error(OSError(errno.EACCES, "Permission denied"), tmp_path / "x.dcm")
    assert isinstance(full, SourceUnavailableError) and "disk full" in str(full)
    assert type(denied) is SourceError


def test_instances_are_downloaded_as_stored_without_http_compression(
    orthanc: OrthancServer, source: OrthancSource, tmp_path: Path
) -> None:
    """Orthanc gzips a file on the fly for a client that accepts it (httpx does by default),
    which made a 20 MB mammogram take seconds to fetch: the source asks for no content
    coding, and Orthanc's real answers say none was applied."""
    study_uid = generate_uid()
    orthanc.upload_all(write_exam(tmp_path / "sent", study_uid, VIEWS))
    codings: list[tuple[str | None, str | None]] = []

    def seen(reply) -> None:  # an httpx response hook: observes the real answers
        if reply.request.url.path.endswith("/file"):
            asked = reply.request.headers.get("accept-encoding")
            codings.append((asked, reply.headers.get("content-encoding")))

    source._http._client.event_hooks["response"].append(seen)
    fetched = source.fetch(study_uid, tmp_path / "fetched")
    assert len(codings) == len(fetched) == len(VIEWS)
    assert codings == [("identity", None)] * len(fetched)
