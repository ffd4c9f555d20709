"""The reading-room page: the queue, one exam, the decision, and the admin overview (with
the exams' outputs and the HL7 outbox, whose refused messages an admin sends again).

Plain HTML forms (each with the session's CSRF token) posting to ``/ui/...`` and redirecting
(post/redirect/get), so the page works without JavaScript; ``static/app.js`` only adds the
keyboard shortcuts. Unauthenticated visitors are sent to ``/login`` (see ``app.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from mammotriage.api import service
from mammotriage.api.deps import (
    AdminAction,
    AdminUser,
    ExamId,
    NowDep,
    PolicyDep,
    Principal,
    RadiologistUser,
    ReaderAction,
    SettingsDep,
    StoreDep,
    WorklistViewer,
)
from mammotriage.api.schemas import DecisionIn, ExamOut, IdentifiersOut, QueueStatsOut, UserOut
from mammotriage.api.security import MIN_PASSWORD_LENGTH
from mammotriage.api.templating import render
from mammotriage.errors import ConflictError, NotFoundError
from mammotriage.worklist import ReadingQueue
from mammotriage.worklist.models import OutboxState, OutputState
from mammotriage.worklist.outputs import OUTPUTS
from mammotriage.worklist.queues import QueueItem
from mammotriage.worklist.users import Token

if TYPE_CHECKING:
    from mammotriage.worklist import Store

router = APIRouter(tags=["page"], include_in_schema=False)

QUEUE_LABELS = {
    ReadingQueue.ALL: "All",
    ReadingQueue.PRIORITY: "Priority",
    ReadingQueue.DOUBLE: "Double reading",
    ReadingQueue.SINGLE: "Single reading",
    ReadingQueue.CONSENSUS: "Consensus",
    ReadingQueue.MINE: "Mine",
}


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request,
    user: WorklistViewer,
    store: StoreDep,
    policy: PolicyDep,
    settings: SettingsDep,
    now: NowDep,
    queue: Annotated[ReadingQueue, Query()] = ReadingQueue.ALL,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    page = store.readings.reader_queue(
        user.reader, now, policy, queue=queue, offset=offset, limit=settings.page_size
    )
    identifiers = _queue_identifiers(store, user, page.items, queue, offset)
    return render(
        request,
        "queue.html",
        {
            "user": user,
            "page": page,
            "queue": queue,
            "queues": [(q, QUEUE_LABELS[q]) for q in ReadingQueue],
            "can_read": user.reader is not None,
            "identifiers": identifiers,
        },
    )


def _queue_identifiers(
    store: Store, user: Principal, items: Sequence[QueueItem], queue: ReadingQueue, offset: int
) -> dict[uuid.UUID, IdentifiersOut] | None:
    """The rows' patient identifiers for a radiologist (None for the others), the view
    audited once with the internal ids of the exams it showed (never the identifiers)."""
    if not service.shows_identifiers(user) or not items:
        return None
    found = store.exams.identifiers_of(item.exam_id for item in items)
    shown = [item.exam_id for item in items if item.exam_id in found and found[item.exam_id].known]
    if shown:
        store.audit.record(
            user.username,
            "worklist-viewed",
            None,
            {"queue": queue.value, "offset": offset, "identifiers_shown": [str(e) for e in shown]},
        )
    return {exam_id: IdentifiersOut.of(found[exam_id]) for exam_id in shown}


@router.get("/ui/exams/{exam_id}", response_class=HTMLResponse)
def exam_page(
    request: Request,
    exam_id: ExamId,
    user: RadiologistUser,
    store: StoreDep,
    settings: SettingsDep,
    now: NowDep,
) -> HTMLResponse:
    detail = service.view_exam(store, user, exam_id, now)
    exam = ExamOut.of(
        detail,
        report_downloadable=service.report_file(detail) is not None,
        identifiers=service.shows_identifiers(user),
        pacs_viewer_url=settings.pacs_viewer_url,
    )
    mine = detail.claim_expires_at is not None
    return render(request, "exam.html", {"user": user, "exam": exam, "holding": mine})


@router.post("/ui/exams/{exam_id}/claim")
def claim_and_open(
    exam_id: ExamId, user: ReaderAction, store: StoreDep, policy: PolicyDep, now: NowDep
) -> RedirectResponse:
    service.claim(store, user, exam_id, now, policy)
    return RedirectResponse(f"/ui/exams/{exam_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/ui/exams/{exam_id}/release")
def release_and_return(
    request: Request, exam_id: ExamId, user: ReaderAction, store: StoreDep, now: NowDep
) -> RedirectResponse:
    service.release(store, user, exam_id, now)
    request.session["flash"] = "Exam released: back on the queue."
    return RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/ui/exams/{exam_id}/decision")
def decide_and_return(
    request: Request,
    exam_id: ExamId,
    user: ReaderAction,
    store: StoreDep,
    policy: PolicyDep,
    now: NowDep,
    recall: Annotated[str, Form()],
    birads: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> RedirectResponse:
    try:
        decision = DecisionIn(
            recall=_form_bool(recall),
            birads=int(birads) if birads.strip() else None,
            note=note.strip() or None,
        )
    except (ValueError, ValidationError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="choose recall or no recall; BI-RADS must be 0-6",
        ) from exc
    outcome = service.decide(store, user, exam_id, decision, now, policy)
    request.session["flash"] = (
        f"Decision recorded ({'recall' if decision.recall else 'no recall'}); "
        f"exam now {outcome.status.value}."
    )
    return RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)


def _form_bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError(f"recall must be true or false, got {value!r}")
    return value == "true"


@router.get("/admin", response_class=HTMLResponse)
def admin_page(
    request: Request,
    user: AdminUser,
    store: StoreDep,
    policy: PolicyDep,
    settings: SettingsDep,
    now: NowDep,
) -> HTMLResponse:
    stats = QueueStatsOut.of(store.readings.queue_stats(now, policy))
    readers = [UserOut.of(u) for u in store.users.all()]
    idle = timedelta(minutes=settings.session_idle_minutes)
    tokens: dict[str, list[Token]] = {}
    for token in store.users.tokens():
        tokens.setdefault(token.username, []).append(token)
    return render(
        request,
        "admin.html",
        {
            "user": user,
            "stats": stats,
            "readers": readers,
            "policy": policy,
            # The user lifecycle (routes/accounts.py): tokens, open sessions, the forms.
            "tokens": tokens,
            "sessions": store.sessions.open_counts(now, idle),
            "now": now,
            "min_password": MIN_PASSWORD_LENGTH,
            **_outputs_and_outbox(store, now),
        },
    )


#: The most failing outputs, and undelivered messages of each state, the admin page lists.
ADMIN_LIST_LIMIT = 20
#: The audit action of a requeued outbox message (``mammotriage outbox retry`` writes it too).
REQUEUED_ACTION = "hl7-result-requeued"


def _outputs_and_outbox(store: Store, now: datetime) -> dict[str, object]:
    """The admin page's outputs and HL7 outbox sections (internal exam ids only)."""
    counts = store.outputs.counts()
    oldest = store.outbox.oldest_queued_at()
    undelivered = [
        *store.outbox.messages(OutboxState.QUEUED, ADMIN_LIST_LIMIT),
        *store.outbox.messages(OutboxState.FAILED, ADMIN_LIST_LIMIT),
    ]
    return {
        "output_counts": [
            (
                name,
                counts.get((name, OutputState.DONE), 0),
                counts.get((name, OutputState.FAILED), 0),
            )
            for name in OUTPUTS
        ],
        "failing_outputs": store.outputs.failing(ADMIN_LIST_LIMIT),
        "outbox_counts": store.outbox.counts(),
        "outbox_oldest_age": None if oldest is None else now - oldest,
        "undelivered": sorted(undelivered, key=lambda m: (m.created_at, m.id)),
    }


@router.post("/ui/admin/outbox/{message_id}/retry")
def retry_outbox_message(
    request: Request,
    message_id: Annotated[int, Path(ge=1, description="the outbox message")],
    admin: AdminAction,
    store: StoreDep,
) -> RedirectResponse:
    """Send a message the RIS refused (FAILED) again: back to the queue at its place."""
    message = store.outbox.get(message_id)
    if message is None:
        raise NotFoundError(f"no outbox message {message_id}")
    if not store.outbox.requeue(message_id):
        raise ConflictError(
            f"outbox message {message_id} is {message.state.value}, not failed: "
            "only a failed message is retried"
        )
    store.audit.record(
        admin.username,
        REQUEUED_ACTION,
        message.exam_public_id,
        {"control_id": message.control_id, "attempts": message.attempts},
    )
    request.session["flash"] = f"HL7 message {message.control_id} queued again."
    return RedirectResponse("/admin", status_code=status.HTTP_303_SEE_OTHER)
