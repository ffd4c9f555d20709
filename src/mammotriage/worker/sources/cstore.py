"""Our own DICOM Storage SCP as a source; reports go back by the C-STORE SCU in
:mod:`mammotriage.worker.sources.cstore_scu`.

A modality or PACS pushes an exam to us (C-STORE, DICOM Part 4 Annex B); each instance is
written to ``incoming/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` exactly as it came over
the wire (no decoding, no transcoding: a JPEG 2000 mammogram stays JPEG 2000) and only
then acknowledged, so a success status means the file is on disk. Deciding when an exam is
complete is the folder source's job (no new file for ``quiet_seconds``); this module only
receives, and hands reports to the SCU.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    UID,
    BreastTomosynthesisImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from mammotriage.atomic import atomic_write
from mammotriage.errors import ConfigError, SourceUnavailableError
from mammotriage.worker.source import Poll
from mammotriage.worker.sources.cstore_scu import (
    _UNCOMPRESSED,
    REPORT_SOP_CLASSES,
    WriteBack,
    _check_ae_title,
    _check_port,
    send_cstore,
)

if TYPE_CHECKING:
    from pynetdicom.events import Event
    from pynetdicom.transport import ThreadedAssociationServer

    from mammotriage.worker.sources.folder import FolderSource

log = logging.getLogger(__name__)

#: Storage statuses (Part 4, B.2.3): what the SCP answers when it could not keep an instance.
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000

#: The SOP classes a mammography site sends; accepted in addition to every other storage
#: class pynetdicom knows, listed so that a pynetdicom upgrade cannot drop them silently.
MAMMOGRAPHY_SOP_CLASSES: tuple[UID, ...] = (
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    BreastTomosynthesisImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

#: Every syntax pydicom knows, explicit VR LE first and implicit last: pynetdicom accepts the
#: first of ours the SCU proposes, and an explicit VR file should not arrive as implicit.
_ACCEPTED_SYNTAXES: list[str] = [
    ExplicitVRLittleEndian,
    *(uid for uid in ALL_TRANSFER_SYNTAXES if uid not in _UNCOMPRESSED),
    ImplicitVRLittleEndian,
]
#: Part 5, 9.1: digits and dots, no leading zero in a component, at most 64 characters.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: Verification SOP Class (Part 4, A.4): C-ECHO.
VERIFICATION = UID("1.2.840.10008.1.1")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def safe_uid(value: object) -> str | None:
    """``value`` if it is a well-formed UID (safe as a file name), else None."""
    text = str(value).strip().rstrip("\x00") if value is not None else ""
    return text if len(text) <= 64 and _UID.match(text) else None


# --- durable writes -------------------------------------------------------------------------


def _write_parts(handle: BinaryIO, parts: Iterable[bytes]) -> None:
    for part in parts:
        handle.write(part)


def write_durably(path: Path, parts: Iterable[bytes]) -> None:
    """Write ``parts`` to ``path`` atomically (:func:`mammotriage.atomic.atomic_write`),
    readable by its owner and group only: received images are patient data.

    Raises
    ------
    OSError
        The disk is full or not writable; no temporary file is left behind.
    """
    with atomic_write(path, mode=0o640) as handle:
        _write_parts(handle, parts)


# --- the SCP --------------------------------------------------------------------------------


class StorageSCP:
    """A Storage SCP (and Verification SCP) that keeps every instance exactly as received.

    Every storage SOP class pynetdicom knows is accepted with every transfer syntax pydicom
    knows, compressed ones included (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, deflate, big
    endian): the SCP never decodes pixels, so it needs no codec to accept them.

    Parameters
    ----------
    incoming
        Root under which instances are written, one folder per StudyInstanceUID.
    ae_title
        Our AE title (what the modality calls).
    host, port
        Where to listen; port ``0`` picks a free port (see :attr:`port`).
    allowed_calling_aets
        If given, associations from any other calling AE title are rejected
        (Part 8, A-ASSOCIATE-RJ reason 3, "calling AE title not recognized").
    max_pdu
        Largest PDU we accept, in bytes (0: no limit).
    """

    def __init__(
        self,
        incoming: Path,
        *,
        ae_title: str = "MAMMOTRIAGE",
        host: str = "127.0.0.1",
        port: int = 11112,
        allowed_calling_aets: set[str] | None = None,
        max_pdu: int = 131072,
    ) -> None:
        self.incoming = Path(incoming)
        self.ae_title = _check_ae_title("ae_title", ae_title)
        self.host = host
        self._configured_port = _check_port("port", port, allow_zero=True)
        if max_pdu < 0:
            raise ConfigError(f"max_pdu must be 0 (no limit) or positive, got {max_pdu!r}")
        self.allowed_calling_aets = (
            None
            if allowed_calling_aets is None
            else {_check_ae_title("allowed_calling_aets", aet) for aet in allowed_calling_aets}
        )
        self.max_pdu = max_pdu
        self._server: ThreadedAssociationServer | None = None
        self._ae: AE | None = None
        self._lock = threading.Lock()
        self.received = 0  # instances stored since start, for logs and health checks

    @property
    def port(self) -> int:
        """The port actually listened on (the chosen one when configured as 0)."""
        if self._server is None:
            return self._configured_port
        return int(self._server.server_address[1])

    @property
    def running(self) -> bool:
        return self._server is not None

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = self.max_pdu
        ae.acse_timeout = 30
        ae.dimse_timeout = 120
        ae.network_timeout = 120
        if self.allowed_calling_aets is not None:
            ae.require_calling_aet = sorted(self.allowed_calling_aets)
        sop_classes = {context.abstract_syntax for context in AllStoragePresentationContexts}
        sop_classes.update(MAMMOGRAPHY_SOP_CLASSES)
        for sop_class in sorted(uid for uid in sop_classes if uid):
            ae.add_supported_context(sop_class, _ACCEPTED_SYNTAXES)
        ae.add_supported_context(VERIFICATION, [*_UNCOMPRESSED, ExplicitVRBigEndian])
        return ae

    def start(self) -> None:
        """Start listening (non-blocking: associations are served on pynetdicom's threads).

        Raises
        ------
        SourceUnavailableError
            If the address cannot be bound (port in use, no such interface).
        """
        if self._server is not None:
            return
        self.incoming.mkdir(parents=True, exist_ok=True)
        ae = self._build_ae()
        try:
            self._server = ae.start_server(
                (self.host, self._configured_port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self.handle_store)],
            )
        except OSError as exc:
            raise SourceUnavailableError(
                f"Storage SCP {self.ae_title} cannot listen on "
                f"{self.host}:{self._configured_port}: {exc.strerror or exc}"
            ) from exc
        self._ae = ae
        log.info("storage SCP %s listening on %s:%d", self.ae_title, self.host, self.port)

    def stop(self) -> None:
        """Stop listening and abort associations still open (their instances are unacked)."""
        ae, self._ae, self._server = self._ae, None, None
        if ae is not None:
            ae.shutdown()
            log.info("storage SCP %s stopped after %d instances", self.ae_title, self.received)

    def __enter__(self) -> StorageSCP:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def destination(
        self,
        study_instance_uid: object,
        sop_instance_uid: object,
        fallback: Callable[[], str],
    ) -> Path:
        """``incoming/<study>/<sop>.dcm``; a missing or malformed UID becomes a hash, so that
        no value from the wire can reach outside ``incoming``."""
        study = safe_uid(study_instance_uid) or f"nostudy-{fallback()}"
        sop = safe_uid(sop_instance_uid) or f"nosop-{_digest(str(sop_instance_uid))}"
        return self.incoming / study / f"{sop}.dcm"

    def handle_store(self, event: Event) -> int:
        """EVT_C_STORE: write the data set as received, durably, then answer success.

        Never raises into pynetdicom: an unreadable data set answers 0xC000 (cannot
        understand), a write that fails (full disk) 0xA700 (out of resources).
        """
        try:
            request = event.request
            sop_class = UID(str(getattr(request, "AffectedSOPClassUID", "") or ""))
            sop_instance = str(getattr(request, "AffectedSOPInstanceUID", "") or "")
            stream = event.encoded_dataset(include_meta=False)
            # Parsing every element proves the data set is readable and gives the study;
            # the bytes written are still the ones received. Part 7, 9.1.1: the data set's
            # SOP Instance UID is the one the request announced.
            dataset = event.dataset
            for _element in dataset.iterall():
                pass
            if str(dataset.get("SOPInstanceUID", "")) != sop_instance:
                raise ValueError("SOPInstanceUID missing or not the Affected SOP Instance UID")
            study = dataset.get("StudyInstanceUID")
            grouping = [
                str(dataset.get(keyword) or "")
                for keyword in ("AccessionNumber", "PatientID", "StudyDate")
            ]
            file_meta = event.file_meta
            calling = event.assoc.requestor.ae_title
            if calling:
                file_meta.SourceApplicationEntityTitle = calling
            meta = DicomBytesIO()
            write_file_meta_info(meta, file_meta, enforce_standard=True)
        except Exception as exc:  # a data set we cannot read is refused, not crashed on
            # The exception text may quote element values: only its type is logged.
            log.warning("refused an unreadable data set (%s)", type(exc).__name__)
            return STATUS_CANNOT_UNDERSTAND

        def fallback() -> str:
            return _digest(*grouping) if any(grouping) else _digest(sop_instance)

        path = self.destination(study, sop_instance, fallback)
        try:
            write_durably(path, (b"\x00" * 128, b"DICM", meta.getvalue(), stream))
        except OSError as exc:
            log.error(
                "could not store an instance of %s (study %s): %s",
                sop_class.name,
                _digest(str(study)),
                errno.errorcode.get(exc.errno or 0, type(exc).__name__),
            )
            return STATUS_OUT_OF_RESOURCES
        except Exception as exc:  # never raise into pynetdicom's thread
            log.error("could not store an instance of %s: %s", sop_class.name, type(exc).__name__)
            return STATUS_OUT_OF_RESOURCES
        with self._lock:
            self.received += 1
            count = self.received
        log.info(
            "stored an instance of %s in study %s (%d since start)",
            sop_class.name,
            _digest(str(study)),
            count,
        )
        return STATUS_SUCCESS


# --- the source -----------------------------------------------------------------------------


class CStoreSource:
    """Studies pushed to our own Storage SCP; reports sent back by C-STORE.

    The SCP writes instances under ``incoming``; a :class:`FolderSource` over the same
    folder decides when a study is complete and lists its files. Reports go to
    ``write_back`` by C-STORE, or when it is None, into ``reports_dir`` as files.

    The SCP starts on construction (``start=False``: on :meth:`start`) and stops on
    :meth:`close`.

    Parameters
    ----------
    incoming
        Where the SCP writes and the folder source looks.
    quiet_seconds
        A study is complete when no instance of it arrived for this long.
    write_back
        Where :meth:`store_reports` sends reports by C-STORE; None: into ``reports_dir``.
    ae_title, host, port, allowed_calling_aets, max_pdu
        The SCP's settings (see :class:`StorageSCP`).
    name
        Key of the source in the store; default ``cstore:<ae_title>@<host>:<port>``.

    Raises
    ------
    ConfigError
        A bad AE title, port or folder setting.
    SourceUnavailableError
        The SCP cannot listen on ``host:port``.
    """

    def __init__(
        self,
        incoming: Path,
        *,
        quiet_seconds: float,
        write_back: WriteBack | None,
        ae_title: str = "MAMMOTRIAGE",
        host: str = "127.0.0.1",
        port: int = 11112,
        allowed_calling_aets: set[str] | None = None,
        max_pdu: int = 131072,
        reports_dir: Path | None = None,
        name: str | None = None,
        start: bool = True,
    ) -> None:
        from mammotriage.worker.sources.folder import FolderSource

        self.scp = StorageSCP(
            incoming,
            ae_title=ae_title,
            host=host,
            port=port,
            allowed_calling_aets=allowed_calling_aets,
            max_pdu=max_pdu,
        )
        self.write_back = write_back
        self.scp.incoming.mkdir(parents=True, exist_ok=True)
        # Built before the SCP starts so that a bad folder setting leaves no server behind.
        self._folder: FolderSource = FolderSource(
            self.scp.incoming,
            quiet_seconds=quiet_seconds,
            reports_dir=reports_dir,
            name=name,
        )
        if start:
            self.scp.start()
        self.name = name or f"cstore:{self.scp.ae_title}@{host}:{self.scp.port}"

    def start(self) -> None:
        """Start the SCP if it was built with ``start=False``."""
        self.scp.start()

    def poll(self, cursor: str | None) -> Poll:
        return self._folder.poll(cursor)

    def fetch(self, study_key: str, into: Path) -> list[Path]:
        return self._folder.fetch(study_key, into)

    def store_reports(self, study_key: str, reports: Sequence[Path]) -> str:
        if self.write_back is None:
            return self._folder.store_reports(study_key, reports)
        self.write_back.send(reports)
        return str(self.write_back)

    def close(self) -> None:
        try:
            self.scp.stop()
        finally:
            self._folder.close()


__all__ = [
    "MAMMOGRAPHY_SOP_CLASSES",
    "REPORT_SOP_CLASSES",
    "CStoreSource",
    "StorageSCP",
    "WriteBack",
    "safe_uid",
    "send_cstore",
    "write_durably",
]
