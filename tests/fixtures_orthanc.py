"""A real Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``) for the source tests.

Each server is its own ``/usr/sbin/Orthanc cfg.json`` process on free loopback ports with a
throw-away storage and index, HTTP basic authentication and the DICOMweb plugin; the Debian
service stays stopped. Tests that need options (a longer ``StableAge``, our C-STORE SCP
registered as a modality) start one through :func:`orthanc_factory`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from dicom_builders import mg_dataset, write
from mammotriage.worker.sources.orthanc import REPORT_MANUFACTURER, REPORT_SERIES_DESCRIPTION

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
INSTALL_HINT = "install orthanc orthanc-dicomweb (make test does)"

#: A DICOM peer Orthanc may send to: AE title, host, port (Orthanc's ``DicomModalities``).
Modality = tuple[str, str, int]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OrthancServer:
    """One running Orthanc: its URLs, credentials and a few conveniences for tests.

    ``http`` is an :class:`httpx.Client` on :attr:`url` that already authenticates.
    """

    def __init__(
        self,
        *,
        stable_age: int = 1,
        modalities: Mapping[str, Modality] | None = None,
        aet: str = "ORTHANC",
        username: str = "mammotriage",
        password: str = "s3cret-test-pw",
        extra: Mapping[str, Any] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        for path, what in ((ORTHANC, "Orthanc"), (DICOMWEB_PLUGIN, "the Orthanc DICOMweb plugin")):
            if not os.path.exists(path):
                pytest.fail(f"{what} ({path}) is missing: {INSTALL_HINT}", pytrace=False)
        self.aet = aet
        self.username = username
        self.password = password
        self.root = Path(tempfile.mkdtemp(prefix="mt-orthanc-"))
        self.log_path = self.root / "orthanc.log"
        self._config: dict[str, Any] = {
            "Name": "mammotriage-test",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {username: password},
            "DicomServerEnabled": True,
            "DicomAet": aet,
            "DicomModalities": {
                name: [peer_aet, host, port]
                for name, (peer_aet, host, port) in (modalities or {}).items()
            },
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "StableAge": stable_age,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 10,
            "SaveJobs": False,
            "StorageCompression": False,
        }
        self._config.update(extra or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.dicom_port = 0
        self.http = httpx.Client(auth=(username, password), timeout=30.0)
        try:
            self._start(startup_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The REST root, ``http://127.0.0.1:PORT`` (no trailing slash, no credentials)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root, ``http://127.0.0.1:PORT/dicom-web``."""
        return f"{self.url}/dicom-web"

    def _start(self, timeout: float) -> None:
        # Free ports are found by binding and closing; another process may take one in
        # between, so a server that dies at once is started again on new ports.
        for _attempt in range(3):
            self.http_port, self.dicom_port = _free_port(), _free_port()
            config = dict(self._config, HttpPort=self.http_port, DicomPort=self.dicom_port)
            config_path = self.root / "orthanc.json"
            config_path.write_text(json.dumps(config, indent=2))
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [ORTHANC, str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.root
                )
            self.http.base_url = httpx.URL(self.url)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if self.http.get("/system").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                pytest.fail(f"Orthanc did not answer /system within {timeout} s\n{self.log()}")
        code = self.process.returncode if self.process is not None else None
        pytest.fail(f"Orthanc exited at start (code {code})\n{self.log()}")

    def log(self) -> str:
        """Orthanc's own log so far (the last 8000 characters)."""
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return "(no Orthanc log)"

    def upload(self, path: Path) -> dict[str, Any]:
        """Store one DICOM file through REST; returns Orthanc's answer (``ID``, ``Status``...)."""
        reply = self.http.post(
            "/instances",
            content=Path(path).read_bytes(),
            headers={"Content-Type": "application/dicom"},
        )
        reply.raise_for_status()
        answer: dict[str, Any] = reply.json()
        return answer

    def upload_all(self, paths: list[Path]) -> None:
        for path in paths:
            self.upload(path)

    def count_instances(self, study_instance_uid: str) -> int:
        """How many instances Orthanc holds for the study (0 when it holds none)."""
        found = self.http.post("/tools/lookup", content=study_instance_uid).json()
        ids = [item["ID"] for item in found if item["Type"] == "Study"]
        if not ids:
            return 0
        return len(self.http.get(f"/studies/{ids[0]}/instances").json())

    def last_change(self) -> str:
        """The number of Orthanc's latest change, as a cursor to poll from."""
        return str(self.http.get("/changes", params={"last": ""}).json()["Last"])

    def halt(self) -> None:
        """Terminate Orthanc (kill it if it does not stop in 10 s); storage, index and ports
        are kept for :meth:`resume`."""
        # Close our keep-alive connections first: Orthanc waits for open ones when it stops.
        self.http.close()
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def resume(self, timeout: float = 30.0) -> None:
        """Start Orthanc again after :meth:`halt`: same storage, index, ports and config."""
        self.http = httpx.Client(auth=(self.username, self.password), timeout=30.0)
        self.http.base_url = httpx.URL(self.url)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [ORTHANC, str(self.root / "orthanc.json")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.http.get("/system").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"Orthanc did not come back on {self.url} within {timeout} s\n{self.log()}")

    def stop(self) -> None:
        """Terminate Orthanc (kill it if it does not stop in 10 s) and remove its storage."""
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)


# -- studies to send it ---------------------------------------------------------------------

VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def wait_stable(orthanc: OrthancServer, study_uid: str, timeout: float = 20.0) -> None:
    """Wait until Orthanc calls the study stable (for studies the source should ignore)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = orthanc.http.post("/tools/lookup", content=study_uid).json()
        if found and orthanc.http.get(found[0]["Path"]).json()["IsStable"]:
            return
        time.sleep(0.25)
    pytest.fail(f"study {study_uid} not stable within {timeout} s")


def write_exam(folder: Path, study_uid: str, views: tuple[tuple[str, str], ...]) -> list[Path]:
    """One file per view, each in its own series, as many units write them."""
    return [
        write(
            mg_dataset(
                StudyInstanceUID=study_uid,
                StudyDate=date.today().strftime("%Y%m%d"),
                ImageLaterality=laterality,
                ViewPosition=view,
                Manufacturer="SYNTH-UNIT",
            ),
            folder / f"{study_uid[-6:]}-{laterality}{view}.dcm",
        )
        for laterality, view in views
    ]


def write_report(folder: Path, study_uid: str) -> Path:
    """A minimal SR of ours (Manufacturer and SeriesDescription as the report writer sets)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(BASIC_TEXT_SR)
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "TEST0001"
    ds.PatientName = "TEST^PHANTOM"
    ds.StudyDate = date.today().strftime("%Y%m%d")
    ds.Modality = "SR"
    ds.Manufacturer = REPORT_MANUFACTURER
    ds.SeriesDescription = REPORT_SERIES_DESCRIPTION
    ds.SeriesNumber = 9901
    ds.InstanceNumber = 1
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    path = folder / f"report-{ds.SOPInstanceUID[-8:]}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


OrthancFactory = Callable[..., OrthancServer]


@contextmanager
def _servers(request: pytest.FixtureRequest) -> Iterator[OrthancFactory]:
    """Starts servers on demand; stops them all at the end, showing their logs if a test
    failed meanwhile (teardown output of a failed test is not shown, so it bypasses capture)."""
    servers: list[OrthancServer] = []
    failed_before = request.session.testsfailed

    def start(**options: Any) -> OrthancServer:
        server = OrthancServer(**options)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            if request.session.testsfailed > failed_before:
                print(f"\n--- Orthanc log ({server.url}) ---\n{server.log()}", file=sys.__stderr__)
            server.stop()


@pytest.fixture
def orthanc_factory(request: pytest.FixtureRequest) -> Iterator[OrthancFactory]:
    """``orthanc_factory(stable_age=1, modalities={"SCP": ("MT", "127.0.0.1", 11112)}, ...)``
    starts an :class:`OrthancServer` of the test's own with those options (stopped after it)."""
    with _servers(request) as start:
        yield start


@pytest.fixture(scope="module")
def orthanc(request: pytest.FixtureRequest) -> Iterator[OrthancServer]:
    """An Orthanc with ``StableAge`` 1 s shared by the tests of one module.

    Orthanc takes ~3 s to stop, so tests share it: each works on studies of its own and
    starts polling from :meth:`OrthancServer.last_change`. A test that needs an empty
    server, or stops it, takes one from :func:`orthanc_factory`.
    """
    with _servers(request) as start:
        yield start()


def worker_source(server: OrthancServer) -> dict[str, Any]:
    """The worker's ``source:`` settings for ``server``."""
    return {
        "kind": "orthanc",
        "url": server.url,
        "username": server.username,
        "password": server.password,
        "timeout_seconds": 10,
    }

