"""multipart/related bodies (RFC 2387, RFC 2046 §5.1), as DICOMweb uses them.

WADO-RS answers a study as one ``multipart/related`` body, one DICOM instance per part
(PS3.18 §8.7.3); :func:`write_parts` streams such a body to one file per part without
holding it in memory. STOW-RS takes the same form (PS3.18 §10.5); :func:`encode_parts`
builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from mammotriage.errors import SourceError
from mammotriage.worker.crashpoints import crash_point
from mammotriage.worker.sources.http import disk_error


def multipart_boundary(content_type: str) -> str | None:
    """The boundary parameter of a ``multipart/...`` Content-Type (RFC 2046 §5.1.1)."""
    header = Message()
    header["Content-Type"] = content_type
    if header.get_content_maintype() != "multipart":
        return None
    boundary = header.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def write_parts(chunks: Iterable[bytes], boundary: str, into: Path, what: str) -> list[Path]:
    """Write each body part of a streamed multipart body to ``into/<n>.dcm``.

    The body is never held whole in memory: what cannot yet be told from a delimiter is
    written out as it comes (RFC 2046 §5.1.1: a delimiter is CRLF, ``--``, the boundary).
    """
    splitter = _PartSplitter(boundary.encode("ascii", "replace"), into)
    try:
        for chunk in chunks:
            splitter.feed(chunk)
        return splitter.finish(what)
    except OSError as exc:
        splitter.abort()
        raise disk_error(exc, into) from exc
    except BaseException:
        splitter.abort()
        raise


class _PartSplitter:
    """A push parser for multipart bodies that writes each part to its own file."""

    _MAX_HEADERS = 64 * 1024

    def __init__(self, boundary: bytes, into: Path) -> None:
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter has no CRLF before it; pretend it had.
        self._buffer = b"\r\n"
        self._state = "preamble"  # preamble -> delimiter -> headers -> body -> ... -> end
        self._into = into
        self._out: BinaryIO | None = None
        self._partial: Path | None = None
        self._written: list[Path] = []

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while self._step():
            pass

    def _step(self) -> bool:
        """Advance as far as the buffer allows; ``False`` when more bytes are needed."""
        buffer, delimiter = self._buffer, self._delimiter
        if self._state in ("preamble", "body"):
            at = buffer.find(delimiter)
            if at < 0:
                keep = len(delimiter) - 1
                if self._state == "body" and len(buffer) > keep:
                    self._write(buffer[:-keep])
                self._buffer = buffer[-keep:] if len(buffer) > keep else buffer
                return False
            if self._state == "body":
                self._write(buffer[:at])
                self._close_part()
            self._buffer, self._state = buffer[at:], "delimiter"
            return True
        if self._state == "delimiter":
            rest = buffer[len(delimiter) :]
            if rest.startswith(b"--"):
                self._buffer, self._state = b"", "end"
                return False
            line_end = rest.find(b"\r\n")
            if line_end < 0:
                return False
            self._buffer, self._state = rest[line_end + 2 :], "headers"
            return True
        if self._state == "headers":
            if buffer.startswith(b"\r\n"):  # a part with no headers
                self._buffer = buffer[2:]
            else:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > self._MAX_HEADERS:
                        raise SourceError("multipart part headers longer than 64 KiB")
                    return False
                self._buffer = buffer[end + 4 :]
            self._open_part()
            self._state = "body"
            return True
        self._buffer = b""  # the epilogue is ignored
        return False

    def _open_part(self) -> None:
        target = self._into / f"{len(self._written) + 1}.dcm"
        self._partial = target.with_name(target.name + ".part")
        self._out = self._partial.open("wb")

    def _write(self, data: bytes) -> None:
        if self._out is not None and data:
            self._out.write(data)

    def _close_part(self) -> None:
        if self._out is None or self._partial is None:
            return
        self._out.close()
        target = self._partial.with_name(self._partial.name.removesuffix(".part"))
        os.replace(self._partial, target)
        self._written.append(target)
        self._out = self._partial = None
        if len(self._written) == 1:
            crash_point("mid-fetch")

    def finish(self, what: str) -> list[Path]:
        if self._state != "end":
            self.abort()
            raise SourceError(f"{what} sent a WADO-RS reply that ends before its last part")
        return list(self._written)

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)
        self._out = self._partial = None


def encode_parts(
    parts: Iterable[bytes], boundary: str, content_type: str = "application/dicom"
) -> bytes:
    """A multipart body with one part of ``content_type`` per item of ``parts``.

    ``boundary`` must not occur in any part (a random UUID in hex does not, in practice).
    """
    body = bytearray()
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        body += part
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body)


__all__ = ["encode_parts", "multipart_boundary", "write_parts"]
