"""A real MLLP receiver for the HL7 tests, run in its own process on loopback.

    python tests/mllp_peer.py RECORD_FILE [PLAN [PORT]]

It listens on loopback, on PORT or a free port, and prints ``PORT <n>`` on its first
line. Each message it receives is parsed and validated with hl7apy against its own
version's structures (strict), written to RECORD_FILE as one JSON line (control id,
answer, whether it validated, the error, the ER7 text) *before* it answers, and answered
per PLAN: a comma list of ``AA``, ``AE``, ``AR`` (an ACK with that code), ``HANG`` (no
answer, the connection held open) or ``CLOSE`` (the connection closed, no answer), one
entry per message in the order they arrive; past the end of the plan, ``AA``. A message
that does not validate is answered ``AR`` with the error, whatever the plan says. It takes
results (ORU^R01) and order updates (OMI^O23, ORM^O01); hl7apy checks a choice group as if
every member were required, so the peer reads it as a choice (exactly one member).

Built on hl7apy's MLLP server (one message per connection, as the client sends). Tests
start it with :func:`start_peer` and stop it with :meth:`PeerProcess.stop`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hl7apy import load_library
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import ValidationError
from hl7apy.mllp import AbstractErrorHandler, AbstractHandler, MLLPServer
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

ANSWERS = ("AA", "AE", "AR", "HANG", "CLOSE")


class Close(Exception):
    """Raised by the handler to have the server close the connection without an answer."""


class Peer:
    """The plan and the record, shared by the server's handler threads."""

    def __init__(self, record: Path, plan: list[str]) -> None:
        self.record = record
        self.plan = plan
        self.count = 0
        self.lock = threading.Lock()

    def next_answer(self) -> str:
        with self.lock:
            answer = self.plan[self.count] if self.count < len(self.plan) else "AA"
            self.count += 1
            return answer

    def write(self, entry: dict[str, object]) -> None:
        with self.lock, self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()


def _control_id(er7: str) -> str:
    msh = er7.split("\r", 1)[0]
    fields = msh.split(msh[3]) if len(msh) > 3 else []
    return fields[9] if len(fields) > 9 else ""


def _ack(code: str, control_id: str, text: str | None) -> str:
    ack = Message("ACK", version="2.5.1")
    ack.msh.msh_3 = "MLLP-PEER"
    ack.msh.msh_5 = "MAMMOTRIAGE"
    ack.msh.msh_9 = "ACK^R01^ACK"
    ack.msh.msh_10 = f"ACK{int(time.time() * 1000) % 10**12}"
    ack.msh.msh_11 = "P"
    ack.msa.msa_1 = code
    ack.msa.msa_2 = control_id
    if text:
        clean = "".join(" " if ch in "|^~\\&\r\n" else ch for ch in text)[:80]
        ack.msa.msa_3 = clean
        ack.add_segment("ERR")
        ack.err.err_3 = "207^Application internal error^HL70357"
        ack.err.err_4 = "E"
        ack.err.err_8 = clean
    return ack.to_mllp()


def validate(message: Message) -> None:
    """Strict validation against the message's version, each choice group a choice."""

    def relaxed(structure: Any) -> Any:
        children = []
        for name, ref, (low, high), kind, *rest in structure[1]:
            ref = relaxed(ref) if kind == "GRP" else ref
            low = 0 if structure[0] == "choice" else low
            children.append((name, ref, (low, high), kind, *rest))
        return (structure[0], tuple(children), *structure[2:])

    def one_member(element: Any, structure: Any) -> None:
        groups = {child[0]: child[1] for child in structure[1] if child[3] == "GRP"}
        for child in element.children:
            if child.name in groups:
                if groups[child.name][0] == "choice" and len({c.name for c in child.children}) != 1:
                    raise ValidationError(f"{child.name} must hold exactly one member")
                one_member(child, groups[child.name])

    reference = relaxed(load_library(message.version).MESSAGES[message.name])
    Validator.validate(message, reference=reference)
    one_member(message, reference)


def handler_for(peer: Peer) -> type[AbstractHandler]:
    class Handler(AbstractHandler):
        def reply(self) -> str:
            er7 = self.incoming_message
            control_id = _control_id(er7)
            answer = peer.next_answer()
            error = None
            try:
                validate(parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT))
            except Exception as exc:  # the peer reports any failure as the reason
                error = f"{type(exc).__name__}: {exc}"
                answer = "AR"
            peer.write(
                {
                    "control_id": control_id,
                    "answer": answer,
                    "valid": error is None,
                    "error": error,
                    "message": er7,
                }
            )
            if answer == "HANG":
                time.sleep(3600)
            if answer == "CLOSE":
                raise Close
            text = error or {"AE": "RIS busy, try later", "AR": "unknown order"}.get(answer)
            return _ack(answer, control_id, text)

    return Handler


class ErrorHandler(AbstractErrorHandler):
    def reply(self) -> str:
        if isinstance(self.exc, Close):
            raise self.exc  # hl7apy's server closes the connection
        return _ack("AR", "", f"{type(self.exc).__name__}: {self.exc}")


def main(argv: list[str]) -> None:
    record = Path(argv[1])
    plan = [p.strip().upper() for p in argv[2].split(",") if p.strip()] if len(argv) > 2 else []
    for answer in plan:
        if answer not in ANSWERS:
            raise SystemExit(f"plan entries must be one of {ANSWERS}, got {answer!r}")
    peer = Peer(record, plan)
    handler = handler_for(peer)
    types = ("ORU^R01^ORU_R01", "ORU^R01", "OMI^O23^OMI_O23", "ORM^O01^ORM_O01", "ORM^O01")
    handlers: dict[str, tuple[Any, ...]] = {t: (handler,) for t in types}
    handlers["ERR"] = (ErrorHandler,)
    port = int(argv[3]) if len(argv) > 3 else 0
    server = MLLPServer("127.0.0.1", port, handlers, timeout=30)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


@dataclass
class PeerProcess:
    """A running peer: its port, its record file and its process."""

    port: int
    record: Path
    process: subprocess.Popen[str]

    def received(self) -> list[dict[str, object]]:
        """What it received so far, in order (one dict per message)."""
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def er7_field(er7: str, segment: str, index: int) -> str:
    """Field ``index`` of the first ``segment`` of a message as received (MSH counts its
    field separator as field 1)."""
    for line in er7.split("\r"):
        fields = line.split("|")
        if fields[0] == segment:
            return fields[index - 1] if segment == "MSH" else fields[index]
    raise AssertionError(f"no {segment} segment")


def start_peer(record: Path, plan: str = "", port: int = 0) -> PeerProcess:
    """Start the peer in its own process; returns once it listens."""
    process = subprocess.Popen(
        [sys.executable, __file__, str(record), plan, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(f"MLLP peer did not start: {line!r}")
    return PeerProcess(int(line.split()[1]), record, process)


if __name__ == "__main__":
    main(sys.argv)
