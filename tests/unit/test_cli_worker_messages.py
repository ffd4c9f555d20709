"""What ``mammotriage worker`` tells its operator: counts with the right noun (``1 exam``),
and one JSON log line (event ``stopping``, the signal's name) as soon as SIGTERM or SIGINT
arrives."""

from __future__ import annotations

import io
import json
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from api_site import NOW, POLICY, STUDY_ROOT, add_exam
from mammotriage.cli.common import counted
from mammotriage.cli.worker import _print_queues, _stop_on_signals
from mammotriage.worker.logs import configure_logging
from mammotriage.worklist import Store


def test_counted_says_one_exam_and_two_exams() -> None:
    assert [counted(n, "exam") for n in (0, 1, 2)] == ["0 exams", "1 exam", "2 exams"]
    assert counted(1, "HL7 result") == "1 HL7 result"
    assert counted(3, "analysis", "analyses") == "3 analyses"


def test_show_queues_titles_say_one_exam(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "worklist.sqlite"))
    store.migrate()
    try:
        add_exam(store, f"{STUDY_ROOT}.1", 10, NOW)  # category 10: read first
        out = Console(width=200, record=True)
        _print_queues(SimpleNamespace(store=store, policy=POLICY), out)  # type: ignore[arg-type]
    finally:
        store.close()
    titles = [line.strip() for line in out.export_text().splitlines() if ": " in line[:40]]
    assert titles[0] == "read first (priority, overdue): 1 exam"
    assert "double reading: 0 exams" in titles and "single reading: 0 exams" in titles


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    undo = configure_logging("json", stream)
    yield stream
    undo()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_is_logged_as_one_json_line_and_sets_stop(
    json_log: io.StringIO, sig: signal.Signals
) -> None:
    before = signal.getsignal(sig)
    stop = threading.Event()
    with _stop_on_signals(stop, logging.getLogger("mammotriage.worker")):
        signal.raise_signal(sig)
        assert stop.is_set()
    assert signal.getsignal(sig) is before
    [line] = json_log.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["event"], entry["signal"], entry["level"]) == ("stopping", sig.name, "info")
    assert entry["logger"] == "mammotriage.worker"


def test_a_run_that_ends_without_a_signal_logs_no_stopping(json_log: io.StringIO) -> None:
    stop = threading.Event()
    with _stop_on_signals(stop, logging.getLogger("mammotriage.worker")):
        assert not stop.is_set()
    assert stop.is_set() and json_log.getvalue() == ""
