"""The reading-room page: the queue, one exam, the decision, the admin overview (with the
exams' outputs and the HL7 outbox, whose refused messages an admin sends again) and the
admin's monitoring view.

Plain HTML forms (each with the session's CSRF token) posting to ``/ui/...`` and redirecting
(post/redirect/get), so the page works without JavaScript; ``static/app.js`` only adds the
keyboard shortcuts. Unauthenticated visitors are sent to ``/login`` (see ``app.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from mammotriage.api import monitoring, service
from mammotriage.api.decision_categories import DecisionCategory
from mammotriage.api.deps import (
    AdminAction,
    AdminUser,
    ExamId,
    MonitorDep,
    NowDep,
    PolicyDep,
    Principal,
    RadiologistUser,
    ReaderAction,
    SettingsDep,
    StoreDep,
    WorklistViewer,
)
from mammotriage.api.rule_words import rule_in_words
from mammotriage.api.schemas import DecisionIn, ExamOut, IdentifiersOut, QueueStatsOut, UserOut
from mammotriage.api.security import MIN_PASSWORD_LENGTH
from mammotriage.api.templating import render
from mammotriage.errors import ConflictError, NotFoundError
from mammotriage.worklist import ReadingQueue
from mammotriage.worklist.models import OutboxState, OutputState, ReadingStatus
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
    after_decision = bool(request.session.pop(AFTER_DECISION, False))
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
            "next_unread": next_unread(page.items) if user.reader is not None else None,
            "after_decision": after_decision,
            "rule_in_words": rule_in_words,
        },
    )


#: The session flag a decision sets: the queue page it returns to offers the next unread exam.
AFTER_DECISION = "after_decision"


def next_unread(items: Sequence[QueueItem]) -> uuid.UUID | None:
    """The first exam of ``items`` (a reader's queue, in reading order) that waits for a
    first reading: not one in consensus, nor one the reader already holds."""
    return next(
        (
            item.exam_id
            for item in items
            if item.status is not ReadingStatus.CONSENSUS and not item.claimed_by_me
        ),
        None,
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
    return render(
        request,
        "exam.html",
        {
            "user": user,
            "exam": exam,
            "holding": mine,
            "decision_categories": settings.decision_categories,
            "category_label": _category_labels(settings.decision_categories),
            "rule_in_words": rule_in_words,
        },
    )


def _category_labels(
    categories: Sequence[DecisionCategory],
) -> Callable[[str | None, Sequence[str]], str]:
    """A decision's category and reasons as the page words them (a code no longer
    configured is shown as the code)."""
    by_code = {c.code: c for c in categories}

    def label(category: str | None, reasons: Sequence[str]) -> str:
        chosen = by_code.get(category or "")
        text = (chosen.label if chosen else category) or ""
        named = [chosen.reason_label(r) if chosen else r for r in reasons]
        return text + (f" ({', '.join(named)})" if named else "")

    return label


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
    settings: SettingsDep,
    now: NowDep,
    category: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[list[str] | None, Form(max_length=30)] = None,
    note: Annotated[str, Form(max_length=4000)] = "",
    recall: Annotated[str, Form(max_length=5)] = "",
    birads: Annotated[str, Form(max_length=2)] = "",
) -> RedirectResponse:
    """The form's decision: one of the site's categories (radio ``category``) and the
    reasons ticked under it (checkboxes ``reason``, each ``category:code``; those ticked
    under another category are dropped). Back to the queue, which offers the next unread
    exam.

    A form of the earlier page (``recall`` true/false, optional ``birads`` 0-6, no
    category) is a decision without a category, as the API's ``recall`` alone.
    """
    plain = not category and recall in ("true", "false")
    if not category and not plain:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="choose a decision")
    prefix = f"{category}:"
    reasons = [r.removeprefix(prefix) for r in reason or () if r.startswith(prefix)]
    try:
        decision = DecisionIn(
            category=category or None,
            reasons=reasons,
            recall=(recall == "true") if plain else None,
            birads=int(birads) if birads.strip() else None,
            note=note.strip() or None,
        )
        outcome = service.decide(
            store, user, exam_id, decision, now, policy, settings.decision_categories
        )
    except (ValueError, ValidationError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the decision was not understood"
        ) from exc
    except RequestValidationError as exc:  # not one of the site's categories or reasons
        detail = "; ".join(str(e.get("msg")) for e in exc.errors())
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail) from exc
    label = next(
        (c.label for c in settings.decision_categories if c.code == category),
        "recall" if decision.recall else "no recall",
    )
    request.session["flash"] = f"Decision recorded ({label}); exam now {outcome.status.value}."
    request.session[AFTER_DECISION] = True
    return RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)


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


@router.get("/ui/admin/monitoring", response_class=HTMLResponse)
def monitoring_page(
    request: Request, user: AdminUser, store: StoreDep, monitor: MonitorDep, now: NowDep
) -> HTMLResponse:
    """Drift per device (a plot each, drawn here as SVG), the stored alerts, reader and
    outcome tables: sites, devices and bands only, nothing of an exam (not audited, as the
    rest of the admin page)."""
    context: dict[str, object] = {"user": user, "error": monitor.error}
    if monitor.cached is not None:
        report = monitor.current(now).report  # first: a new report stores its new alerts
        context |= {
            "report": report,
            "refresh_seconds": monitor.settings.refresh_seconds,
            "devices": monitoring.device_views(report, monitor.psi_threshold),
            "readers": monitoring.reader_rows(report),
            "outcomes": monitoring.outcome_rows(report),
        }
    stored = store.monitoring.alerts(limit=monitoring.STORED_ALERTS_SHOWN)
    context["stored_alerts"] = monitoring.alert_rows(stored)
    return render(request, "monitoring.html", context)
