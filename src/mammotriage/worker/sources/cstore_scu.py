"""A C-STORE SCU: sending reports (or any DICOM file) to a Storage SCP.

Files go as they are on disk, one association per call (DICOM Part 4 Annex B): a
compressed file is proposed in its own transfer syntax and never transcoded. The AE title
and port checks here are shared with the Storage SCP in
:mod:`mammotriage.worker.sources.cstore`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.filereader import dcmread, read_file_meta_info
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    EnhancedSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MammographyCADSRStorage,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE
from pynetdicom.status import code_to_category

from mammotriage.errors import ConfigError, SourceError, SourceUnavailableError

log = logging.getLogger(__name__)

#: What our reports are (SR, or a Secondary Capture snapshot): always proposed on write-back.
REPORT_SOP_CLASSES: tuple[UID, ...] = (
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    EnhancedSRStorage,
    BasicTextSRStorage,
    MammographyCADSRStorage,
    SecondaryCaptureImageStorage,
)

_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_MAX_CONTEXTS = 128  # Part 8, 9.3.2.2: presentation context IDs are odd numbers 1..255


def _check_ae_title(argument: str, value: str) -> str:
    """Part 5, 6.2 (AE VR): 1-16 characters, no backslash and no control characters."""
    stripped = value.strip()
    if not 1 <= len(stripped) <= 16 or "\\" in stripped or not stripped.isprintable():
        raise ConfigError(
            f"{argument} must be 1 to 16 printable characters without a backslash, got {value!r}"
        )
    return stripped


def _check_port(argument: str, value: int, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(f"{argument} must be between {low} and 65535, got {value!r}")
    return value


@dataclass(frozen=True)
class WriteBack:
    """A C-STORE destination for reports (a PACS or a reading workstation)."""

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = "MAMMOTRIAGE"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        _check_ae_title("ae_title", self.ae_title)
        _check_ae_title("calling_ae_title", self.calling_ae_title)
        _check_port("port", self.port, allow_zero=False)
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds, got {self.timeout!r}")

    def __str__(self) -> str:
        return f"C-STORE to {self.ae_title}@{self.host}:{self.port}"

    def send(self, paths: Sequence[Path]) -> None:
        send_cstore(
            paths,
            ae_title=self.ae_title,
            host=self.host,
            port=self.port,
            calling_ae_title=self.calling_ae_title,
            timeout=self.timeout,
        )


def _proposed_contexts(files: Sequence[tuple[Path, UID, UID]]) -> list[tuple[UID, list[UID]]]:
    """Report classes with explicit and implicit VR LE, plus each file's own class and
    transfer syntax (a compressed file is sent as it is, never transcoded)."""
    wanted: dict[UID, list[UID]] = {uid: list(_UNCOMPRESSED) for uid in REPORT_SOP_CLASSES}
    for _path, sop_class, syntax in files:
        syntaxes = wanted.setdefault(sop_class, [])
        for candidate in (syntax, *_UNCOMPRESSED) if not syntax.is_compressed else (syntax,):
            if candidate not in syntaxes:
                syntaxes.append(candidate)
    return list(wanted.items())


def send_cstore(
    paths: Sequence[Path],
    *,
    ae_title: str,
    host: str,
    port: int,
    calling_ae_title: str = "MAMMOTRIAGE",
    timeout: float = 30.0,
) -> None:
    """Send DICOM files to a Storage SCP over one association (C-STORE, Part 4 Annex B).

    Raises
    ------
    SourceUnavailableError
        Connection refused, association rejected or aborted, a timeout, or the peer out of
        resources (0xA7xx): worth retrying later.
    SourceError
        A file that is not DICOM, a class the peer does not accept, or any other failure
        status from the peer (the status is given in hex).
    """
    destination = f"{ae_title}@{host}:{port}"
    if not paths:
        return
    files: list[tuple[Path, UID, UID]] = []
    for path in paths:
        try:
            meta = read_file_meta_info(path)
            files.append(
                (Path(path), UID(meta.MediaStorageSOPClassUID), UID(meta.TransferSyntaxUID))
            )
        except Exception as exc:
            raise SourceError(
                f"cannot send {Path(path).name}: not a DICOM file ({type(exc).__name__})"
            ) from exc
    contexts = _proposed_contexts(files)
    if len(contexts) > _MAX_CONTEXTS:
        raise SourceError(
            f"cannot send {len(files)} files in one association: {len(contexts)} presentation "
            f"contexts needed, at most {_MAX_CONTEXTS} allowed"
        )
    ae = AE(ae_title=_check_ae_title("calling_ae_title", calling_ae_title))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, syntaxes)
    try:
        assoc = ae.associate(host, port, ae_title=_check_ae_title("ae_title", ae_title))
    except OSError as exc:
        raise SourceUnavailableError(f"C-STORE to {destination}: {exc}") from exc
    if not assoc.is_established:
        why = (
            "association rejected"
            if assoc.is_rejected
            else "association aborted"
            if assoc.is_aborted
            else "no association (connection refused or timed out)"
        )
        raise SourceUnavailableError(f"C-STORE to {destination}: {why}")
    try:
        for path, sop_class, _syntax in files:
            try:
                dataset = dcmread(path)
            except Exception as exc:
                raise SourceError(
                    f"cannot send {path.name}: unreadable DICOM ({type(exc).__name__})"
                ) from exc
            try:
                status = assoc.send_c_store(dataset)
            except ValueError as exc:  # no accepted context for this class / syntax
                raise SourceError(
                    f"C-STORE to {destination}: {path.name} ({sop_class.name}) not accepted: {exc}"
                ) from exc
            except (OSError, RuntimeError) as exc:
                raise SourceUnavailableError(f"C-STORE to {destination}: {exc}") from exc
            if "Status" not in status:
                raise SourceUnavailableError(
                    f"C-STORE to {destination}: no response for {path.name} "
                    "(timeout or association aborted)"
                )
            code = int(status.Status)
            category = code_to_category(code)
            if category in ("Success", "Warning"):
                if category == "Warning":
                    log.warning("C-STORE to %s: warning status 0x%04X", destination, code)
                continue
            message = f"C-STORE to {destination}: {path.name} refused with status 0x{code:04X}"
            if 0xA700 <= code <= 0xA7FF:
                raise SourceUnavailableError(f"{message} (out of resources)")
            raise SourceError(f"{message} ({category})")
    finally:
        if assoc.is_established:
            assoc.release()
    log.info("sent %d files by C-STORE to %s", len(files), destination)


__all__ = ["REPORT_SOP_CLASSES", "WriteBack", "send_cstore"]
