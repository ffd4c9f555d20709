"""Structured logs of the worker: one JSON object per line, internal ids only.

Log calls pass their fields in ``extra`` (``job_id``, ``exam_id``, ``event`` ...); the
formatter writes them next to the message. No patient name, patient ID, accession number or
study UID is ever passed: exams are named by their internal public id, jobs by their number.

Everything else that would reach stderr goes through the same handler, so the log is JSON
line by line (:func:`configure_logging`): other libraries' log records (pydicom,
highdicom, pynetdicom, httpx), Python warnings (``logging.captureWarnings``) and uncaught
exceptions, in the main thread and in others (``sys.excepthook``, ``threading.excepthook``).
What bypasses Python's logging is not captured: native libraries (ONNX Runtime) writing to
file descriptor 2 directly; the decode pool's child processes run with warnings off (what
they would warn about is recorded as each image's reason). A foreign message is not ours to
vouch for, so it is scrubbed (:func:`scrub`): DICOM UIDs (dotted
digit strings) become ``<uid>`` everywhere, and anything quoted (``'...'``, ``"..."``) in a
foreign message or a traceback becomes ``'<value>'``, as pydicom quotes a dataset's value.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TextIO

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)
#: Three or more dot-separated numbers: a DICOM UID (or an IP address or version, told
#: apart in :func:`_uid`).
_DOTTED = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w])")
#: A quoted value: '...' or "..." on one line.
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_OWN = "mammotriage"


def _uid(match: re.Match[str]) -> str:
    parts = match.group(0).split(".")
    if len(parts) == 4 and all(len(p) <= 3 and int(p) <= 255 for p in parts) and parts[0] != "1":
        return match.group(0)  # an IPv4 address (a UID root starts 1. or 2.)
    if len(parts) == 3 and all(len(p) <= 3 for p in parts):
        return match.group(0)  # a version number such as 3.0.2
    return "<uid>"


def scrub(text: str, *, quoted: bool = True) -> str:
    """``text`` without DICOM UIDs and (with ``quoted``) without quoted values."""
    text = _DOTTED.sub(_uid, text)
    if quoted:
        text = _QUOTED.sub("'<value>'", text)
    return text


def _scrub_value(value: Any) -> Any:
    return scrub(value, quoted=False) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        foreign = not record.name.startswith(_OWN) or record.name == "py.warnings"
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage(), quoted=foreign),
        }
        entry.update(
            {k: _scrub_value(v) for k, v in vars(record).items() if k not in _STANDARD}
        )
        if record.exc_info:
            entry["traceback"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    """The plain-text format, scrubbed like the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        foreign = not record.name.startswith(_OWN)
        line = scrub(super().format(record), quoted=foreign)
        return line if not record.exc_info else line.split("\n", 1)[0] + "\n" + scrub(
            self.formatException(record.exc_info)
        )


def configure_logging(
    fmt: str, stream: TextIO, level: int = logging.INFO
) -> Callable[[], None]:
    """Send every log record, warning and uncaught exception to ``stream``, one per line.

    ``mammotriage`` logs at ``level``; other libraries at WARNING and above. The plain
    ``StreamHandler`` the command line installed on the root logger is replaced (it would
    print the same records again, as text). Returns a function that undoes all of it
    (for tests; the worker process keeps it until it exits).
    """
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._mammotriage_worker = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    removed = [
        h
        for h in root.handlers
        if type(h) is logging.StreamHandler or getattr(h, "_mammotriage_worker", False)
    ]
    for old in removed:
        root.removeHandler(old)
    own = logging.getLogger(_OWN)
    for old in list(own.handlers):
        if getattr(old, "_mammotriage_worker", False):
            own.removeHandler(old)
    previous = (root.level, own.level, own.propagate, sys.excepthook, threading.excepthook)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    own.setLevel(level)
    own.propagate = True
    logging.captureWarnings(True)
    crash = logging.getLogger("mammotriage.crash")

    def excepthook(
        kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous[3](kind, exc, tb)
            return
        crash.critical(
            "uncaught exception: %s", kind.__name__, exc_info=(kind, exc, tb),
            extra={"event": "uncaught"},
        )

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        crash.critical(
            "uncaught exception in thread %s: %s",
            getattr(args.thread, "name", "?"),
            args.exc_type.__name__,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
            extra={"event": "uncaught"},
        )

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook

    def restore() -> None:
        root.removeHandler(handler)
        for old in removed:
            root.addHandler(old)
        root.setLevel(previous[0])
        own.setLevel(previous[1])
        own.propagate = previous[2]
        logging.captureWarnings(False)
        sys.excepthook = previous[3]
        threading.excepthook = previous[4]

    return restore


__all__ = ["JsonFormatter", "configure_logging", "scrub"]
