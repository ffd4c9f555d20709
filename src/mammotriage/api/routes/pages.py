"""The reading-room page: the queue, one exam, the decision, and the admin overview.

Plain HTML forms (each with the session's CSRF token) posting to ``/ui/...`` and redirecting
(post/redirect/get), so the page works without JavaScript; ``static/app.js`` only adds the
keyboard shortcuts. Unauthenticated visitors are sent to ``/login`` (see ``app.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from mammotriage.api import service
from mammotriage.api.deps import (
    AdminUser,
    ExamId,
    NowDep,
    PolicyDep,
    RadiologistUser,
    ReaderAction,
    SettingsDep,
    StoreDep,
    WorklistViewer,
)
from mammotriage.api.schemas import DecisionIn, ExamOut, QueueStatsOut, UserOut
from mammotriage.api.security import MIN_PASSWORD_LENGTH
from mammotriage.api.templating import render
from mammotriage.worklist import ReadingQueue
from mammotriage.worklist.users import Token

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
    return render(
        request,
        "queue.html",
        {
            "user": user,
            "page": page,
            "queue": queue,
            "queues": [(q, QUEUE_LABELS[q]) for q in ReadingQueue],
            "can_read": user.reader is not None,
        },
    )


@router.get("/ui/exams/{exam_id}", response_class=HTMLResponse)
def exam_page(
    request: Request, exam_id: ExamId, user: RadiologistUser, store: StoreDep, now: NowDep
) -> HTMLResponse:
    detail = service.view_exam(store, user, exam_id, now)
    exam = ExamOut.of(detail, report_downloadable=service.report_file(detail) is not None)
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
        },
    )
