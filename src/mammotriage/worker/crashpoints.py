"""Named crash points: places in the worker where a test build may SIGKILL itself.

The crash tests kill the worker at a named moment of a job (after the claim, after the
fetch, between storing the exam and sending its SR, ...) instead of after a guessed delay,
so that each test knows where its kill landed. A point is armed by two environment
variables, both read once, when this module is first imported:

- ``MAMMOTRIAGE_TEST_CRASH_POINTS=1``, the test switch: without it nothing here ever kills,
  whatever else is set, so a production worker cannot die from a stray variable;
- ``MAMMOTRIAGE_CRASH_AT=NAME`` (one of :data:`CRASH_POINTS`), or ``NAME@N``: the N-th
  time the point is reached (a later job, or a later instance), not the first.

When the armed point is reached, :func:`crash_point` logs a ``crash-point`` event (JSON
logs: ``{"event": "crash-point", "point": NAME}``) and sends SIGKILL to its own process:
no ``finally`` block, no atexit handler, no flush of anything else runs, as with ``kill -9``.
Unarmed, a call is one comparison with None.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("mammotriage.worker")

#: The environment variable that turns crash points on (value ``1``); tests only.
SWITCH = "MAMMOTRIAGE_TEST_CRASH_POINTS"
#: The environment variable naming the point to die at.
VARIABLE = "MAMMOTRIAGE_CRASH_AT"

#: Every crash point, in the order a job reaches them; where each one is:
CRASH_POINTS: tuple[str, ...] = (
    # factory.build_worker: the model is loaded, the store not yet migrated, no source yet
    "after-model-load",
    # Worker._begin (fetch stage): a job was claimed (RUNNING under this worker's name),
    # nothing fetched yet
    "after-claim",
    # PACS sources that download instance by instance: the first one is on disk
    "mid-fetch",
    # Worker._fetch: the source returned the study's files
    "after-fetch",
    # Worker._fetch: the next study fetched while an earlier one is still being decoded,
    # scored or written (the pipeline's overlap: two studies claimed, neither done)
    "fetched-during-overlap",
    # Worker._score: every exam of the study scored, nothing stored yet
    "after-score",
    # Worker._store_exam: exam, images, score, its HL7 results (outbox) and audit row
    # committed; no thumbnail, no SR, no HL7 result sent unless the sender thread was quick
    "after-exam-stored",
    # Worker._store_exam: thumbnails written and recorded; the SR not yet written
    "after-thumbnails",
    # Worker._store_exam: the SR is stored by the source (file, REST, C-STORE); the store
    # does not know yet
    "after-report-written",
    # Worker._store_exam: the store records the SR; the job is not yet DONE
    "after-report-stored",
)


def _armed() -> tuple[str, int] | None:
    if os.environ.get(SWITCH) != "1":
        return None
    value = os.environ.get(VARIABLE, "").strip()
    if not value:
        return None
    name, _, nth = value.partition("@")
    if name not in CRASH_POINTS or not (nth or "1").isdigit() or int(nth or "1") < 1:
        raise ValueError(f"{VARIABLE}={value!r} is not NAME or NAME@N; names: {CRASH_POINTS}")
    return name, int(nth or "1")


#: The point armed for this process and at which pass it kills, or None (read once, at import).
ARMED: tuple[str, int] | None = _armed()
_reached = 0


def crash_point(name: str) -> None:
    """SIGKILL this process if ``name`` is the armed crash point (at its armed pass)."""
    global _reached
    if ARMED is None or name != ARMED[0]:
        return
    _reached += 1
    if _reached < ARMED[1]:
        return
    log.warning(
        "crash point %s reached: SIGKILL",
        name,
        extra={"event": "crash-point", "point": name, "pass": _reached},
    )
    for handler in logging.getLogger("mammotriage").handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ARMED", "CRASH_POINTS", "SWITCH", "VARIABLE", "crash_point"]
