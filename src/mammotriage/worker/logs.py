"""Structured logs of the worker: one JSON object per line, internal ids only.

Log calls pass their fields in ``extra`` (``job_id``, ``exam_id``, ``event`` ...); the
formatter writes them next to the message. No patient name, patient ID, accession number or
study UID is ever passed: exams are named by their internal public id, jobs by their number.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, TextIO

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str, stream: TextIO, level: int = logging.INFO) -> None:
    """Send ``mammotriage`` logs to ``stream``, as JSON lines or plain text."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("mammotriage")
    for old in list(logger.handlers):
        if getattr(old, "_mammotriage_worker", False):
            logger.removeHandler(old)
    handler._mammotriage_worker = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # not twice: the root handler of the CLI would print it again


__all__ = ["JsonFormatter", "configure_logging"]
