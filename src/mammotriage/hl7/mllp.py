"""Sending one HL7 v2 message over MLLP and reading what the receiver made of it.

MLLP (HL7 v2 Minimal Lower Layer Protocol, HL7 v2.5.1 Appendix C) frames each message as
``<VT> message <FS><CR>`` on a TCP connection; the receiver answers with an ACK in the same
framing. This client opens one connection per message, so that no half-closed connection
left by a RIS that drops idle peers is ever written to, and waits for the ACK within a
deadline.

The ACK decides (original acknowledgment mode, HL7 v2.5.1 2.9.2; the enhanced mode's
commit codes are read the same way):

- ``AA`` (``CA``): the RIS has the result: :attr:`Outcome.DELIVERED`;
- ``AE`` (``CE``): an error on its side that may pass: :attr:`Outcome.RETRY`;
- ``AR`` (``CR``): the RIS refuses the message: :attr:`Outcome.REJECTED`, for good;
- no connection, a timeout, a closed connection, an ACK that is not one or that answers
  another message: :attr:`Outcome.RETRY`. The message may have arrived; it is sent again
  with the same control id (MSH-10), by which a receiver recognises a repeat.

The reason kept is the ACK's own words (MSA-3, else ERR-8, ERR-3's text or ERR-1), cut to
one line, or the socket error: never the message, which names the patient.
"""

from __future__ import annotations

import enum
import socket
import time
from dataclasses import dataclass

from mammotriage.errors import ConfigError

#: MLLP framing bytes: start block, end block, carriage return.
START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\r"
#: An ACK longer than this is not one (a peer talking nonsense must not fill memory).
MAX_ACK_BYTES = 1 << 20
#: The longest reason kept from an ACK.
MAX_REASON_LENGTH = 300


class Outcome(str, enum.Enum):
    """What became of one send."""

    DELIVERED = "delivered"
    #: Send it again later (backoff): the RIS was down, slow, or answered AE.
    RETRY = "retry"
    #: The RIS refused it (AR): sending it again will not help.
    REJECTED = "rejected"


@dataclass(frozen=True)
class Delivery:
    """One send's result: the outcome, the ACK code (None without an ACK) and the reason."""

    outcome: Outcome
    ack_code: str | None = None
    reason: str | None = None


_OUTCOMES = {
    "AA": Outcome.DELIVERED,
    "CA": Outcome.DELIVERED,
    "AE": Outcome.RETRY,
    "CE": Outcome.RETRY,
    "AR": Outcome.REJECTED,
    "CR": Outcome.REJECTED,
}


@dataclass(frozen=True)
class MllpClient:
    """Sends ER7 messages to one MLLP receiver (a RIS or an interface engine).

    Parameters
    ----------
    host, port
        The receiver.
    connect_timeout
        Seconds to wait for the TCP connection.
    read_timeout
        Seconds from the end of the send to the end of the ACK: a receiver that says
        nothing for that long is taken as down for now.

    Raises
    ------
    ConfigError
        If the port is not 1-65535 or a timeout is not positive.
    """

    host: str
    port: int
    connect_timeout: float = 10.0
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("MLLP host must not be empty")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"MLLP port must be 1-65535, got {self.port}")
        for name in ("connect_timeout", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"MLLP {name} must be positive, got {getattr(self, name)}")

    def send(self, er7: str, control_id: str, encoding: str = "utf-8") -> Delivery:
        """Send ``er7`` (segments separated by CR) and read the receiver's ACK.

        ``control_id`` is the message's MSH-10: the ACK must name it in MSA-2. ``encoding``
        is the Python codec of the message's MSH-18 character set (the ACK is read in it).
        Never raises for the receiver's sake: every failure is a :class:`Delivery`.
        """
        payload = START_BLOCK + er7.encode(encoding) + END_BLOCK + CARRIAGE_RETURN
        try:
            connection = socket.create_connection(
                (self.host, self.port), timeout=self.connect_timeout
            )
        except TimeoutError:
            return Delivery(
                Outcome.RETRY, reason=f"no connection within {self.connect_timeout:g} s"
            )
        except OSError as exc:
            return Delivery(Outcome.RETRY, reason=_one_line(f"MLLP connection failed: {exc}"))
        with connection:
            try:
                connection.settimeout(self.read_timeout)
                connection.sendall(payload)
                frame = self._read_frame(connection)
            except TimeoutError:
                return Delivery(Outcome.RETRY, reason=f"no ACK within {self.read_timeout:g} s")
            except OSError as exc:
                return Delivery(Outcome.RETRY, reason=_one_line(f"MLLP connection lost: {exc}"))
        if frame is None:
            return Delivery(Outcome.RETRY, reason="the receiver closed the connection without ACK")
        return read_ack(frame.decode(encoding, errors="replace"), control_id)

    def _read_frame(self, connection: socket.socket) -> bytes | None:
        """The first MLLP frame's content, or None if the peer closed the connection first.

        Raises
        ------
        TimeoutError
            If the frame is not complete within :attr:`read_timeout`.
        """
        deadline = time.monotonic() + self.read_timeout
        received = b""
        while True:
            start = received.find(START_BLOCK)
            if start >= 0:
                end = received.find(END_BLOCK + CARRIAGE_RETURN, start)
                if end >= 0:
                    return received[start + 1 : end]
            if len(received) > MAX_ACK_BYTES:
                raise ConnectionError(f"ACK longer than {MAX_ACK_BYTES} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            connection.settimeout(remaining)
            chunk = connection.recv(65536)
            if not chunk:
                return None
            received += chunk


def read_ack(text: str, control_id: str) -> Delivery:
    """What an ACK says about the message ``control_id``.

    Read by hand, not with a full parser: an ACK may come in any HL7 v2 version and with any
    encoding characters (MSH-1, MSH-2), and only MSH, MSA and ERR matter here.
    """
    segments = [s for s in text.replace("\n", "\r").split("\r") if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        return Delivery(Outcome.RETRY, reason="the reply is not an HL7 ACK (no MSH)")
    field_separator = segments[0][3]
    component_separator = segments[0][4]
    escape = segments[0][6] if len(segments[0]) > 6 else "\\"
    fields = {s[:3]: s.split(field_separator) for s in reversed(segments)}
    msa = fields.get("MSA")
    if msa is None or len(msa) < 3:
        return Delivery(Outcome.RETRY, reason="the ACK has no MSA acknowledgment")
    code = msa[1].strip().upper()
    if code not in _OUTCOMES:
        return Delivery(Outcome.RETRY, reason=_one_line(f"unknown acknowledgment code {code!r}"))
    if msa[2].strip() != control_id:
        return Delivery(
            Outcome.RETRY, ack_code=code, reason="the ACK answers another message (MSA-2)"
        )
    outcome = _OUTCOMES[code]
    if outcome is Outcome.DELIVERED:
        return Delivery(outcome, ack_code=code)
    reason = _reason(msa, fields.get("ERR"), component_separator, escape)
    return Delivery(outcome, ack_code=code, reason=reason or f"{code} without a reason")


def _reason(msa: list[str], err: list[str] | None, component: str, escape: str) -> str | None:
    """MSA-3, else ERR-8 (user message), ERR-3's text (CWE.2) or ERR-1 (v2.4 and older)."""
    candidates = [msa[3] if len(msa) > 3 else ""]
    if err is not None:
        candidates.append(err[8] if len(err) > 8 else "")
        error_code = err[3].split(component) if len(err) > 3 else []
        candidates.append(" ".join(error_code[:2]) if error_code else "")
        candidates.append(err[1].replace(component, " ") if len(err) > 1 else "")
    for candidate in candidates:
        if candidate.strip():
            return _one_line(_unescape(candidate, escape))
    return None


def _unescape(text: str, escape: str) -> str:
    """HL7 escapes of the delimiters back to the characters (HL7 v2.5.1 2.7.4)."""
    for code, char in (("F", "|"), ("S", "^"), ("T", "&"), ("R", "~"), ("E", "\\")):
        text = text.replace(f"{escape}{code}{escape}", char)
    return text


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON_LENGTH else line[: MAX_REASON_LENGTH - 3] + "..."


__all__ = ["Delivery", "MllpClient", "Outcome", "read_ack"]
