"""The HL7 outbox: result messages waiting for the RIS, delivered at least once and in order.

A message is written here (by the code that records the exam's decision, in the same
transaction when it can) before any attempt to send it, so that a crash, a restart or a RIS
down for hours loses nothing: :func:`deliver_due` sends what is due, oldest first.

Order and single sending rest on the database:

- ``UNIQUE(control_id)``: enqueueing the same message twice stores it once;
- only the oldest QUEUED message (creation order) can be claimed, and only when its
  ``next_attempt_at`` has come; a claim moves ``next_attempt_at`` a lease ahead in one
  ``UPDATE ... WHERE id = (oldest) AND due ... RETURNING``, so two senders (two workers)
  never send at once and never overtake each other: the next message waits until the one
  before it is delivered or has failed for good;
- AA marks it DELIVERED; AE, a timeout or no connection puts it back with backoff (it
  keeps its place at the head); AR marks it FAILED with the RIS's reason, and the next one
  goes. A FAILED message goes again only when someone asks (:meth:`HL7Outbox.requeue`).

A message that was sent but whose ACK was lost is sent again with the same control id
(MSH-10), by which the RIS recognises the repeat; after an ACK it is never sent again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from mammotriage.errors import ConfigError
from mammotriage.hl7.config import charset_codec
from mammotriage.hl7.mllp import Delivery, Outcome
from mammotriage.timeutil import require_aware
from mammotriage.worklist.database import Database
from mammotriage.worklist.models import AuditRow, ExamRow, Hl7OutboxRow, OutboxState

#: How long a claimed message is held from other senders: longer than one send can take.
DEFAULT_LEASE = timedelta(minutes=2)
#: Who the audit log names for what the sender does.
SENDER_ACTOR = "hl7-sender"
#: The most a message lists of its reason.
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class OutboxMessage:
    """One row of the outbox."""

    id: int
    control_id: str
    exam_public_id: uuid.UUID
    created_at: datetime
    state: OutboxState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    #: None once delivered.
    er7: str | None


@dataclass(frozen=True)
class OutboxBackoff:
    """The wait after a failed try: ``base * 2**(attempts-1)``, at most ``cap``.

    There is no last try: a message waits as long as the RIS is away (it shows in the
    outbox counts and its age); only an AR ends it.

    Raises
    ------
    ConfigError
        If a duration is not positive or ``cap`` is shorter than ``base``.
    """

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ConfigError(
                f"outbox backoff needs 0 < base <= cap, got base {self.base}, cap {self.cap}"
            )

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed try."""
        exponent = min(max(attempts - 1, 0), 32)
        return min(self.cap, self.base * 2**exponent)


class Sender(Protocol):
    """What sends a message: :class:`mammotriage.hl7.mllp.MllpClient`."""

    def send(self, er7: str, control_id: str, encoding: str = "utf-8") -> Delivery: ...


@dataclass(frozen=True)
class DeliveryRound:
    """What one :func:`deliver_due` did: messages delivered, failed, and whether it stopped
    on one to retry later."""

    delivered: int = 0
    failed: int = 0
    waiting: bool = False


class HL7Outbox:
    """The ``hl7_outbox`` table of ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(
        self, control_id: str, exam_public_id: uuid.UUID, er7: str, *, now: datetime
    ) -> OutboxMessage:
        """Add a message (its own transaction); the same control id again changes nothing."""
        with self.db.session() as session:
            return self.enqueue_in(session, control_id, exam_public_id, er7, now=now)

    def enqueue_in(
        self,
        session: Session,
        control_id: str,
        exam_public_id: uuid.UUID,
        er7: str,
        *,
        now: datetime,
    ) -> OutboxMessage:
        """:meth:`enqueue` inside ``session``: the caller's transaction (the one that
        records the exam's decision) commits the message with it or not at all."""
        require_aware("now", now)
        statement = (
            self.db.insert(Hl7OutboxRow)
            .values(
                control_id=control_id,
                exam_public_id=exam_public_id,
                created_at=now,
                state=OutboxState.QUEUED,
                attempts=0,
                er7=er7,
            )
            .on_conflict_do_nothing(index_elements=["control_id"])
        )
        session.execute(statement)
        row = session.execute(
            select(Hl7OutboxRow).where(Hl7OutboxRow.control_id == control_id)
        ).scalar_one()
        return _message(row)

    def claim_next(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> OutboxMessage | None:
        """The oldest QUEUED message if it is due, held from other senders for ``lease``;
        None when there is none or the oldest must wait (the ones after it wait too)."""
        require_aware("now", now)
        head = (
            select(Hl7OutboxRow.id)
            .where(Hl7OutboxRow.state == OutboxState.QUEUED)
            .order_by(Hl7OutboxRow.created_at, Hl7OutboxRow.id)
            .limit(1)
            .scalar_subquery()
        )
        statement = (
            update(Hl7OutboxRow)
            .where(
                Hl7OutboxRow.id == head,
                Hl7OutboxRow.state == OutboxState.QUEUED,
                or_(Hl7OutboxRow.next_attempt_at.is_(None), Hl7OutboxRow.next_attempt_at <= now),
            )
            .values(attempts=Hl7OutboxRow.attempts + 1, next_attempt_at=now + lease)
            .returning(*Hl7OutboxRow.__table__.c)
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as session:
            row = session.execute(statement).mappings().one_or_none()
            return None if row is None else _message_from_mapping(row)

    def delivered(self, message_id: int, now: datetime) -> None:
        """The RIS accepted it (AA): never sent again, and its text (which names the
        patient) is dropped. Audited (``hl7-result-delivered``)."""
        with self.db.session() as session:
            row = session.get(Hl7OutboxRow, message_id)
            if row is None:
                return
            row.state = OutboxState.DELIVERED
            row.delivered_at = require_aware("now", now)
            row.next_attempt_at = None
            row.last_error = None
            row.er7 = None
            _audit(session, row, "hl7-result-delivered")

    def retry(self, message_id: int, error: str, next_attempt_at: datetime) -> None:
        """Not delivered this time: it stays at the head of the queue until then."""
        self._set(
            message_id,
            next_attempt_at=require_aware("next_attempt_at", next_attempt_at),
            last_error=error[:MAX_ERROR_LENGTH],
        )

    def failed(self, message_id: int, error: str) -> None:
        """The RIS refused it (AR): FAILED with its reason, not sent again unless requeued.
        Audited (``hl7-result-rejected``)."""
        with self.db.session() as session:
            row = session.get(Hl7OutboxRow, message_id)
            if row is None:
                return
            row.state = OutboxState.FAILED
            row.next_attempt_at = None
            row.last_error = error[:MAX_ERROR_LENGTH]
            _audit(session, row, "hl7-result-rejected", reason=row.last_error)

    def requeue(self, message_id: int) -> bool:
        """A FAILED message goes again (at its place in creation order); False if it was
        not FAILED."""
        with self.db.session() as session:
            result = session.execute(
                update(Hl7OutboxRow)
                .where(Hl7OutboxRow.id == message_id, Hl7OutboxRow.state == OutboxState.FAILED)
                .values(state=OutboxState.QUEUED, next_attempt_at=None)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0))

    def get(self, message_id: int) -> OutboxMessage | None:
        with self.db.session() as session:
            row = session.get(Hl7OutboxRow, message_id)
            return None if row is None else _message(row)

    def messages(self, state: OutboxState | None = None, limit: int = 100) -> list[OutboxMessage]:
        """Messages in creation order, of one state or all."""
        query = select(Hl7OutboxRow).order_by(Hl7OutboxRow.created_at, Hl7OutboxRow.id)
        if state is not None:
            query = query.where(Hl7OutboxRow.state == state)
        with self.db.session() as session:
            return [_message(row) for row in session.execute(query.limit(limit)).scalars()]

    def control_ids_of(self, study_instance_uid: str) -> list[str]:
        """The control ids of every message queued for the exam of this study, oldest
        first (a result sent before makes the next one a correction)."""
        query = (
            select(Hl7OutboxRow.control_id)
            .join(ExamRow, ExamRow.public_id == Hl7OutboxRow.exam_public_id)
            .where(ExamRow.study_instance_uid == study_instance_uid)
            .order_by(Hl7OutboxRow.created_at, Hl7OutboxRow.id)
        )
        with self.db.session() as session:
            return [str(control_id) for control_id in session.execute(query).scalars()]

    def counts(self) -> Mapping[OutboxState, int]:
        """Messages per state (every state listed)."""
        with self.db.session() as session:
            rows = session.execute(
                select(Hl7OutboxRow.state, func.count()).group_by(Hl7OutboxRow.state)
            ).all()
        found = {OutboxState(state): int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in OutboxState}

    def oldest_queued_at(self) -> datetime | None:
        """When the oldest message still to deliver was written (None: none waits)."""
        with self.db.session() as session:
            value: datetime | None = session.execute(
                select(func.min(Hl7OutboxRow.created_at)).where(
                    Hl7OutboxRow.state == OutboxState.QUEUED
                )
            ).scalar_one_or_none()
        return value

    def _set(self, message_id: int, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(
                update(Hl7OutboxRow).where(Hl7OutboxRow.id == message_id).values(**values)
            )


def deliver_due(
    outbox: HL7Outbox,
    sender: Sender,
    now: datetime,
    *,
    backoff: OutboxBackoff = OutboxBackoff(),
    lease: timedelta = DEFAULT_LEASE,
) -> DeliveryRound:
    """Send every due message, oldest first, until none is due or one must wait.

    A message to retry stops the round (the ones after it must not overtake it); a
    rejected one is marked FAILED and the round goes on.
    """
    delivered = failed = 0
    while (message := outbox.claim_next(now, lease)) is not None:
        assert message.er7 is not None  # only a delivered message has none
        delivery = sender.send(message.er7, message.control_id, charset_codec(message.er7))
        if delivery.outcome is Outcome.DELIVERED:
            outbox.delivered(message.id, now)
            delivered += 1
        elif delivery.outcome is Outcome.REJECTED:
            outbox.failed(message.id, delivery.reason or "rejected")
            failed += 1
        else:
            outbox.retry(
                message.id, delivery.reason or "retry", now + backoff.delay(message.attempts)
            )
            return DeliveryRound(delivered, failed, waiting=True)
    return DeliveryRound(delivered, failed, waiting=False)


def _audit(session: Session, row: Hl7OutboxRow, action: str, **detail: Any) -> None:
    """An audit line for the exam in the same transaction (the control id, never the text)."""
    session.add(
        AuditRow(
            actor=SENDER_ACTOR,
            action=action,
            exam_public_id=row.exam_public_id,
            detail={"control_id": row.control_id, "attempts": row.attempts, **detail},
        )
    )


def _message(row: Hl7OutboxRow) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        control_id=row.control_id,
        exam_public_id=row.exam_public_id,
        created_at=row.created_at,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        er7=row.er7,
    )


def _message_from_mapping(row: Any) -> OutboxMessage:
    """From an ``UPDATE ... RETURNING`` row: raw column values (the column types convert
    datetimes and enums on SQLite and PostgreSQL alike)."""
    values = {field: row[field] for field in OutboxMessage.__dataclass_fields__}
    return OutboxMessage(**{**values, "state": OutboxState(row["state"])})


__all__ = [
    "DEFAULT_LEASE",
    "DeliveryRound",
    "HL7Outbox",
    "OutboxBackoff",
    "OutboxMessage",
    "Sender",
    "deliver_due",
]
