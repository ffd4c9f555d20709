"""The worker's HL7 output: each exam's result message, queued with its decision, and the
sender that delivers the outbox to the RIS.

Why a thread of the worker and not a process of its own: the outbox lives in the worklist
store the worker already holds, there is one thing less to run and supervise, and the
outbox's claim (only the oldest due message, leased in one ``UPDATE``) keeps several
workers' senders from sending at once or out of order. A thread rather than a step of the
job loop, so that a RIS that hangs for its read timeout never holds up scoring, and a long
job never holds up a message.

The control id (MSH-10) is derived from what the message says about which files: the same
job retried (an SR that could not be sent) queues the same control id, which the outbox
stores once; a rescore (a late view changed the study) queues a new one, with result status
``C`` since a result went before it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom import dcmread
from pydicom.dataset import Dataset

from mammotriage.dicom.model import Laterality
from mammotriage.errors import MammotriageError
from mammotriage.hl7.config import Hl7Settings
from mammotriage.infer.scores import ExamScore
from mammotriage.triage import TriageDecision
from mammotriage.worklist import Store
from mammotriage.worklist.database import StoreError
from mammotriage.worklist.models import utcnow
from mammotriage.worklist.outbox import DeliveryRound, OutboxBackoff, deliver_due

if TYPE_CHECKING:
    from mammotriage.hl7.messages import Order, Patient

log = logging.getLogger("mammotriage.worker")

#: MSH-10 length used here (the v2.5.1 maximum).
_CONTROL_ID_LENGTH = 20


class ResultMessageError(MammotriageError):
    """The exam's HL7 result cannot be built (no readable header, no PatientID, no order
    number): a fault of the study that will not pass by retrying."""


def control_id(kind: str, study_instance_uid: str, fingerprint: str | None, *values: object) -> str:
    """A 20-character MSH-10 from what the message says: the same inputs, the same id."""
    text = "\x1f".join(str(v) for v in (kind, study_instance_uid, fingerprint or "", *values))
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode()[:_CONTROL_ID_LENGTH]


class ResultMessages:
    """Builds the messages of one exam for the outbox: the ``ORU^R01`` result and, when the
    site asks, the order update carrying the priority.

    Parameters
    ----------
    settings
        The site's HL7 output (mapping, time zone, order update).
    model_name
        The model's name (OBX-18 with its SHA-256).
    demonstration
        The model is a demonstration model: every result says it is not for clinical use.
    """

    def __init__(
        self, settings: Hl7Settings, model_name: str, *, demonstration: bool = False
    ) -> None:
        # hl7apy is imported only where an HL7 output is configured.
        from mammotriage.hl7 import messages

        self._messages = messages
        self.settings = settings
        self.model_name = model_name
        self.demonstration = demonstration
        #: What went wrong in the last :meth:`build` that did not stop the result (the
        #: order update could not be built); None when nothing.
        self.last_problem: str | None = None
        self._zone = settings.zone()

    def build(
        self,
        exam_score: ExamScore,
        decision: TriageDecision,
        *,
        fingerprint: str | None,
        earlier: Sequence[str],
        now: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """(control id, ER7) of each message for the exam, in sending order.

        ``earlier`` are the control ids queued for the exam before (any state): a result
        not among them that follows one is a correction (``C``).

        Raises
        ------
        ResultMessageError
            If no image header can be read, or the study lacks what the message needs.
        """
        from mammotriage.hl7.study import order_of, patient_of

        messages = self._messages
        self.last_problem = None
        now = now or utcnow()
        header = first_header([im.path for im in exam_score.images if im.path is not None])
        try:
            patient = patient_of(header)
            order = order_of(header, self._zone)
        except messages.MessageError as exc:
            raise ResultMessageError(str(exc)) from exc
        key = (
            exam_score.model_sha256,
            exam_score.score,
            exam_score.category,
            decision.mode.value,
            decision.priority,
            tuple(sorted((lat.value, v) for lat, v in exam_score.breasts.items())),
        )
        oru_id = control_id("ORU", exam_score.exam_id, fingerprint, *key)
        result = messages.ReadingResult(
            score=exam_score.score,
            category=exam_score.category,
            mode=decision.mode,
            priority=decision.priority,
            model_name=self.model_name,
            model_sha256=exam_score.model_sha256,
            analysed_at=now,
            left_breast_score=exam_score.breasts.get(Laterality.LEFT),
            right_breast_score=exam_score.breasts.get(Laterality.RIGHT),
            correction=any(c != oru_id for c in earlier),
            demonstration=self.demonstration,
        )
        mapping = self.settings.mapping
        try:
            oru = messages.build_oru(patient, order, result, mapping, now=now, control_id=oru_id)
        except messages.MessageError as exc:
            raise ResultMessageError(str(exc)) from exc
        out = [(oru.control_id, oru.er7)]
        try:
            update = self._order_update(patient, order, decision, exam_score, fingerprint, now)
        except messages.MessageError as exc:
            # The result still goes; the missing update is the HL7 output's recorded fault.
            self.last_problem = f"order update not built: {exc}"
        else:
            if update is not None:
                out.append(update)
        return out

    def _order_update(
        self,
        patient: Patient,
        order: Order,
        decision: TriageDecision,
        exam_score: ExamScore,
        fingerprint: str | None,
        now: datetime,
    ) -> tuple[str, str] | None:
        """The order update carrying the priority (``order_update``), or None when off."""
        kind = self.settings.order_update
        if kind == "none":
            return None
        update_id = control_id(
            kind, exam_score.exam_id, fingerprint, exam_score.model_sha256, decision.priority
        )
        message = self._messages.build_order_update(
            patient,
            order,
            decision.priority,
            self.settings.mapping,
            kind=kind,
            now=now,
            control_id=update_id,
        )
        return message.control_id, message.er7


def first_header(paths: Sequence[Path]) -> Dataset:
    """The header of the first image that can still be read (the patient and the order are
    the same in every image of a study)."""
    reasons = []
    for path in paths:
        try:
            return dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # any file that cannot be read: try the next
            reasons.append(f"{type(exc).__name__}: {exc}")
    why = f": {reasons[0]}" if reasons else ""
    raise ResultMessageError(f"no image header of the study can be read for the HL7 result{why}")


class OutboxSender:
    """Delivers the outbox in a thread of the worker until stopped.

    Parameters
    ----------
    store
        The worklist store holding the outbox.
    sender
        What sends one message (an :class:`~mammotriage.hl7.mllp.MllpClient`).
    backoff
        The wait after a failed try.
    interval
        Seconds between rounds when nothing wakes it (a message queued wakes it at once).
    on_round
        Called after each round (the worker refreshes its metrics).
    join_timeout
        How long stopping waits for a send in progress (its connect and read timeouts).
    """

    def __init__(
        self,
        store: Store,
        sender: object,
        *,
        backoff: OutboxBackoff,
        interval: float = 1.0,
        on_round: Callable[[DeliveryRound], None] | None = None,
        join_timeout: float = 45.0,
    ) -> None:
        self.store = store
        self.join_timeout = join_timeout
        self.sender = sender
        self.backoff = backoff
        self.interval = interval
        self.on_round = on_round
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hl7-sender", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something was queued: deliver it now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def deliver_now(self) -> DeliveryRound:
        """One round in the caller's thread (``worker --once`` ends with one)."""
        return self._round()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._round()
            self._wake.wait(self.interval)
            self._wake.clear()

    def _round(self) -> DeliveryRound:
        try:
            done = deliver_due(
                self.store.outbox,
                self.sender,  # type: ignore[arg-type]
                utcnow(),
                backoff=self.backoff,
            )
        except StoreError as exc:
            log.error("worklist database unavailable: %s", exc, extra={"event": "store-down"})
            return DeliveryRound(waiting=True)
        except Exception as exc:  # a bug must not end the thread: logged, tried again
            log.exception("HL7 sender error: %s", exc, extra={"event": "hl7-sender-error"})
            return DeliveryRound(waiting=True)
        if done.delivered or done.failed or done.waiting:
            log.info(
                "HL7 results sent",
                extra={
                    "event": "hl7-round",
                    "delivered": done.delivered,
                    "rejected": done.failed,
                    "waiting": done.waiting,
                },
            )
        if self.on_round is not None:
            self.on_round(done)
        return done


def backoff_of(settings: Hl7Settings) -> OutboxBackoff:
    return OutboxBackoff(
        base=timedelta(seconds=settings.retry_base_seconds),
        cap=timedelta(seconds=settings.retry_max_seconds),
    )


__all__ = [
    "OutboxSender",
    "ResultMessageError",
    "ResultMessages",
    "backoff_of",
    "control_id",
    "first_header",
]
