"""The C-STORE source against real dcmtk peers: ``storescu``/``echoscu`` push to our Storage
SCP, ``storescp`` plays the PACS that receives our reports."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    UID,
    ComprehensiveSRStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config, evt

from dicom_builders import mg_dataset, write
from mammotriage.errors import SourceError, SourceUnavailableError
from mammotriage.worker.source import Source
from mammotriage.worker.sources import cstore
from mammotriage.worker.sources.cstore import (
    STATUS_CANNOT_UNDERSTAND,
    CStoreSource,
    StorageSCP,
    WriteBack,
    send_cstore,
)

pytestmark = pytest.mark.integration

QUIET = 0.3
MODALITY = "MODALITY"

#: How each view of the test exam travels: the file's own transfer syntax.
VIEW_SYNTAXES: dict[tuple[str, str], UID] = {
    ("L", "CC"): RLELossless,
    ("L", "MLO"): JPEGLSLossless,
    ("R", "CC"): JPEG2000Lossless,
    ("R", "MLO"): JPEGLosslessSV1,
    ("R", "XCCL"): JPEG2000,
    ("L", "XCCL"): JPEGLSNearLossless,
    ("L", "FB"): ExplicitVRLittleEndian,
}

#: storescu's flag that proposes a file's compressed syntax (storescu never transcodes from a
#: compressed syntax: without the flag it proposes only uncompressed ones and the send fails).
STORESCU_FLAGS: dict[UID, str] = {
    RLELossless: "-xr",
    JPEGLSLossless: "-xt",
    JPEGLSNearLossless: "-xu",
    JPEG2000Lossless: "-xv",
    JPEG2000: "-xw",
    JPEGLosslessSV1: "-xs",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compressed_view(path: Path, study_uid: str, laterality: str, view: str, syntax: UID) -> Path:
    ds = mg_dataset(StudyInstanceUID=study_uid, ImageLaterality=laterality, ViewPosition=view)
    if syntax == JPEGLosslessSV1:  # pydicom 3.0 has no JPEG encoder: dcmtk compresses
        plain = write(ds, path.with_suffix(".plain"))
        subprocess.run(["dcmcjpeg", str(plain), str(path)], check=True)
        plain.unlink()
        return path
    if syntax == JPEG2000:
        ds.compress(syntax, j2k_cr=[10])
    elif syntax == JPEGLSNearLossless:
        ds.compress(syntax, jls_error=2)
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    return write(ds, path)


@pytest.fixture(scope="module")
def exam(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One exam of seven views, each in its own transfer syntax (six compressed)."""
    root = tmp_path_factory.mktemp("exam")
    study_uid = generate_uid()
    return [
        compressed_view(root / f"{lat}-{view}.dcm", study_uid, lat, view, syntax)
        for (lat, view), syntax in VIEW_SYNTAXES.items()
    ]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[CStoreSource]:
    src = CStoreSource(
        tmp_path / "incoming",
        port=0,
        quiet_seconds=QUIET,
        write_back=None,
        reports_dir=tmp_path / "reports",
    )
    yield src
    src.close()


def storescu_profile(directory: Path, files: Iterable[Path]) -> Path:
    """A storescu association profile with one presentation context per (SOP class, transfer
    syntax) of ``files``, so that a mixed exam goes in one association, each file as it is."""
    pairs = sorted(
        {
            (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))
            for meta in (pydicom.filereader.read_file_meta_info(path) for path in files)
        }
    )
    syntaxes = sorted({syntax for _, syntax in pairs})
    lines = ["[[TransferSyntaxes]]"]
    for number, syntax in enumerate(syntaxes):
        lines += [f"[TS{number}]", f"TransferSyntax1 = {syntax}"]
    lines += ["[[PresentationContexts]]", "[Exam]"]
    for number, (sop_class, syntax) in enumerate(pairs, start=1):
        lines.append(f"PresentationContext{number} = {sop_class}\\TS{syntaxes.index(syntax)}")
    lines += ["[[Profiles]]", "[Push]", "PresentationContexts = Exam"]
    path = directory / "storescu.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def storescu(
    port: int, *args: str, files: Iterable[Path], aet: str = MODALITY
) -> subprocess.CompletedProcess[str]:
    command = ["storescu", "-aet", aet, "-aec", "MAMMOTRIAGE", *args, "127.0.0.1", str(port)]
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True, timeout=30)


def push_exam(port: int, files: list[Path], tmp_path: Path) -> None:
    profile = storescu_profile(tmp_path, files)
    result = storescu(port, "-xf", str(profile), "Push", files=files)
    assert result.returncode == 0, result.stderr


def received(incoming: Path) -> list[Path]:
    return sorted(p for p in incoming.rglob("*") if p.is_file())


def pixel_bytes(path: Path) -> bytes:
    return bytes(pydicom.dcmread(path)["PixelData"].value)


# --- receiving ------------------------------------------------------------------------------


def test_pushed_exam_lands_as_received_in_its_own_transfer_syntaxes(
    source: CStoreSource, exam: list[Path], tmp_path: Path
) -> None:
    push_exam(source.scp.port, exam, tmp_path)

    incoming = source.scp.incoming
    for original in exam:
        sent = pydicom.dcmread(original)
        landed = incoming / sent.StudyInstanceUID / f"{sent.SOPInstanceUID}.dcm"
        got = pydicom.dcmread(landed)
        assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
        assert got.SOPInstanceUID == sent.SOPInstanceUID
        assert got.file_meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
        assert got.SOPClassUID == sent.SOPClassUID
        assert pixel_bytes(landed) == pixel_bytes(original)
        assert got.file_meta.SourceApplicationEntityTitle == MODALITY
    assert len(received(incoming)) == len(exam)
    assert not [p for p in received(incoming) if p.name.endswith(".tmp")]


@pytest.mark.parametrize("syntax", list(STORESCU_FLAGS), ids=[UID(s).name for s in STORESCU_FLAGS])
def test_storescu_flag_proposes_the_files_compressed_syntax(
    source: CStoreSource, exam: list[Path], syntax: UID
) -> None:
    (path,) = [p for p in exam if pydicom.dcmread(p).file_meta.TransferSyntaxUID == syntax]
    result = storescu(source.scp.port, STORESCU_FLAGS[syntax], files=[path])
    assert result.returncode == 0, result.stderr

    (landed,) = received(source.scp.incoming)
    assert pydicom.dcmread(landed).file_meta.TransferSyntaxUID == syntax
    assert pixel_bytes(landed) == pixel_bytes(path)


def test_study_arrives_after_the_quiet_period_and_fetch_returns_its_files(
    source: CStoreSource, exam: list[Path], tmp_path: Path
) -> None:
    assert isinstance(source, Source)
    study_uid = pydicom.dcmread(exam[0]).StudyInstanceUID
    push_exam(source.scp.port, exam, tmp_path)

    assert source.poll(None).arrivals == ()  # just seen: not quiet yet
    deadline = time.monotonic() + 10
    arrivals: tuple = ()
    while not arrivals and time.monotonic() < deadline:
        time.sleep(QUIET / 2)
        arrivals = source.poll(None).arrivals
    assert [a.study_key for a in arrivals] == [study_uid]

    files = source.fetch(study_uid, tmp_path / "unused")
    assert sorted(f.name for f in files) == sorted(
        f"{pydicom.dcmread(p).SOPInstanceUID}.dcm" for p in exam
    )
    assert all(f.parent == source.scp.incoming / study_uid for f in files)


def test_duplicate_push_overwrites_without_duplicates(
    source: CStoreSource, exam: list[Path], tmp_path: Path
) -> None:
    push_exam(source.scp.port, exam, tmp_path)
    first = {p: p.read_bytes() for p in received(source.scp.incoming)}

    push_exam(source.scp.port, exam, tmp_path)

    again = received(source.scp.incoming)
    assert again == sorted(first)
    assert all(p.read_bytes() == first[p] for p in again)
    assert source.scp.received == 2 * len(exam)


def test_echoscu_verifies_the_scp(source: CStoreSource) -> None:
    result = subprocess.run(
        ["echoscu", "-aec", "MAMMOTRIAGE", "127.0.0.1", str(source.scp.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_calling_ae_title_not_allowed_is_rejected(tmp_path: Path, exam: list[Path]) -> None:
    with StorageSCP(tmp_path / "incoming", port=0, allowed_calling_aets={MODALITY}) as scp:
        refused = storescu(scp.port, "-xr", files=exam[:1], aet="STRANGER")
        accepted = storescu(scp.port, "-xr", files=exam[:1], aet=MODALITY)

    assert refused.returncode != 0
    assert "reject" in (refused.stdout + refused.stderr).lower()
    assert accepted.returncode == 0, accepted.stderr
    assert len(received(tmp_path / "incoming")) == 1


def test_full_disk_answers_out_of_resources_and_leaves_no_partial_file(
    source: CStoreSource, exam: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk cannot be made to happen portably: the write fails half way, as ENOSPC does.
    def write_half_then_fail(handle: BinaryIO, parts: Iterable[bytes]) -> None:
        data = b"".join(parts)
        handle.write(data[: len(data) // 2])
        handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cstore, "_write_parts", write_half_then_fail)
    result = storescu(source.scp.port, "-xr", "-v", files=exam[:1])

    assert result.returncode != 0
    assert "Received Store Response (Refused: OutOfResources)" in result.stderr  # 0xA700
    assert received(source.scp.incoming) == []


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unreadable_data_set_is_refused_with_cannot_understand(
    source: CStoreSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pynetdicom sends a file's data set bytes unparsed when chunked sending is on: the only
    # way to put a broken data set on the wire.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    broken = tmp_path / "broken.dcm"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = cstore.DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with broken.open("wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        pydicom.filewriter.write_file_meta_info(handle, meta)  # type: ignore[arg-type]
        handle.write(b"this is not a data set at all")
    ae = AE(ae_title=MODALITY)
    ae.add_requested_context(meta.MediaStorageSOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", source.scp.port, ae_title="MAMMOTRIAGE")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(broken)
    finally:
        assoc.release()

    assert status.Status == STATUS_CANNOT_UNDERSTAND
    assert received(source.scp.incoming) == []


# --- write-back -----------------------------------------------------------------------------


def sr_report(path: Path, study_uid: str) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.PatientID = "TEST0001"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "111036", "DCM"
    concept.CodeMeaning = "Mammography CAD Report"
    ds.ConceptNameCodeSequence = [concept]
    return write(ds, path)


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """dcmtk storescp as the PACS, AE title PACS, accepting every syntax it knows."""
    port, out = free_port(), tmp_path / "pacs"
    out.mkdir()
    process = subprocess.Popen(
        ["storescp", "-aet", "PACS", "-od", str(out), "+xa", "-dhl", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(process, port)
        yield port, out
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_store_reports_sends_the_sr_to_the_pacs(tmp_path: Path, pacs: tuple[int, Path]) -> None:
    port, out = pacs
    study_uid = generate_uid()
    report = sr_report(tmp_path / "report.dcm", study_uid)
    src = CStoreSource(
        tmp_path / "incoming",
        port=0,
        quiet_seconds=QUIET,
        write_back=WriteBack("PACS", "127.0.0.1", port),
    )
    try:
        where = src.store_reports(study_uid, [report])
    finally:
        src.close()

    assert where == f"C-STORE to PACS@127.0.0.1:{port}"
    (arrived,) = [p for p in out.iterdir() if p.is_file()]
    got = pydicom.dcmread(arrived)
    assert got.SOPInstanceUID == pydicom.dcmread(report).SOPInstanceUID
    assert got.SOPClassUID == ComprehensiveSRStorage
    assert got.StudyInstanceUID == study_uid


def test_store_reports_without_write_back_copies_into_reports_dir(
    source: CStoreSource, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    report = sr_report(tmp_path / "report.dcm", study_uid)

    where = source.store_reports(study_uid, [report])

    assert (Path(where) / "report.dcm").read_bytes() == report.read_bytes()


def test_write_back_to_a_peer_that_is_down_is_unavailable(tmp_path: Path) -> None:
    report = sr_report(tmp_path / "report.dcm", generate_uid())
    with pytest.raises(SourceUnavailableError, match="PACS@127.0.0.1"):
        send_cstore(
            [report],
            ae_title="PACS",
            host="127.0.0.1",
            port=free_port(),
            calling_ae_title="MAMMOTRIAGE",
            timeout=5,
        )


def _listening(port: int) -> bool:
    """Whether a socket listens on ``port``, read from the kernel's tables: a probe
    connection would itself be an association attempt to storescp, which serves one at a
    time, and the test's own association could then meet an abort instead of the refusal."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Until storescp (``process``) listens on ``port``."""
    deadline = time.monotonic() + 10
    while not _listening(port):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "storescp did not start"
        time.sleep(0.05)


def test_write_back_to_a_peer_that_refuses_the_association_is_unavailable(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "--refuse", "-aet", "PACS", "-od", str(tmp_path), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Not a fixed pause: on a loaded machine storescp may not listen yet, and a refused
        # connection reads as "aborted", not as the refusal this test is about.
        _wait_listening(process, port)
        report = sr_report(tmp_path / "report.dcm", generate_uid())
        with pytest.raises(SourceUnavailableError, match="rejected"):
            WriteBack("PACS", "127.0.0.1", port, timeout=5).send([report])
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("status", "error"),
    [(0xA900, SourceError), (0xC001, SourceError), (0xA700, SourceUnavailableError)],
    ids=["does-not-match-sop-class", "cannot-understand", "out-of-resources"],
)
def test_write_back_failure_status_raises_with_the_code_in_hex(
    tmp_path: Path, status: int, error: type[SourceError]
) -> None:
    # storescp answers success or nothing; a pynetdicom SCP is a real peer that can refuse.
    peer = AE(ae_title="PACS")
    peer.add_supported_context(ComprehensiveSRStorage, ExplicitVRLittleEndian)
    server = peer.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda event: status)]
    )
    assert server is not None
    report = sr_report(tmp_path / "report.dcm", generate_uid())
    try:
        with pytest.raises(error, match=f"0x{status:04X}") as info:
            send_cstore(
                [report],
                ae_title="PACS",
                host="127.0.0.1",
                port=server.server_address[1],
                calling_ae_title="MAMMOTRIAGE",
                timeout=5,
            )
    finally:
        peer.shutdown()
    assert type(info.value) is error


def test_dcmtk_tools_are_installed() -> None:
    assert all(shutil.which(tool) for tool in ("storescu", "storescp", "echoscu", "dcmcjpeg"))
