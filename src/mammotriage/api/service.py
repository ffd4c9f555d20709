"""What a reading action does, shared by the JSON API and the page: call the store, write
the audit line. The store enforces the reading rules; this module only records who did what
(internal exam ids and users only: no DICOM UID, no note text in the audit log)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from fastapi import HTTPException, status

from mammotriage.api.decision_categories import (
    DEFAULT_DECISION_CATEGORIES,
    DecisionCategory,
    resolve,
)
from mammotriage.api.deps import Principal
from mammotriage.api.schemas import DecisionIn
from mammotriage.errors import NotFoundError
from mammotriage.triage import TriagePolicy
from mammotriage.worklist import Store
from mammotriage.worklist.decisions import Outcome
from mammotriage.worklist.detail import ExamDetail, ExamImage
from mammotriage.worklist.models import Role


def shows_identifiers(user: Principal) -> bool:
    """Whether ``user`` sees patient identifiers (a radiologist; admins and services see the
    internal exam id only). Every view that shows them is audited."""
    return user.role is Role.RADIOLOGIST


def claim(
    store: Store, user: Principal, exam_id: uuid.UUID, now: datetime, policy: TriagePolicy
) -> datetime:
    expires = store.readings.claim(exam_id, user.username, now, consensus=policy.consensus)
    store.audit.record(user.username, "claimed", exam_id, {"expires_at": expires.isoformat()})
    return expires


def release(store: Store, user: Principal, exam_id: uuid.UUID, now: datetime) -> None:
    store.readings.release(exam_id, user.username, now)
    store.audit.record(user.username, "released", exam_id, {})


def decide(
    store: Store,
    user: Principal,
    exam_id: uuid.UUID,
    decision: DecisionIn,
    now: datetime,
    policy: TriagePolicy,
    categories: Sequence[DecisionCategory] = DEFAULT_DECISION_CATEGORIES,
) -> Outcome:
    """Record the decision; 422 for a category or reason ``categories`` (the site's) lack."""
    choice = resolve(
        categories, category=decision.category, reasons=decision.reasons, recall=decision.recall
    )
    try:
        outcome = store.readings.record_decision(
            exam_id,
            user.username,
            recall=choice.recall,
            birads=decision.birads,
            note=decision.note,
            now=now,
            consensus=policy.consensus,
            outcome=choice.outcome,
            category=choice.category,
            reasons=choice.reasons,
        )
    except ValueError as exc:  # BI-RADS the schema let through (the store is the judge)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    store.audit.record(
        user.username,
        "decided",
        exam_id,
        {
            "recall": choice.recall,
            "outcome": None if choice.outcome is None else choice.outcome.value,
            "category": choice.category,
            "reasons": list(choice.reasons),
            "birads": decision.birads,
            "with_note": bool(decision.note),
            "status": outcome.status.value,
        },
    )
    return outcome


def view_exam(store: Store, user: Principal, exam_id: uuid.UUID, now: datetime) -> ExamDetail:
    """The exam as this reader may see it (403 for another reader's claimed exam)."""
    detail = store.readings.exam_detail(exam_id, user.username, now)
    shown = shows_identifiers(user)  # the audit says so; never the identifiers themselves
    audit = {"status": detail.status.value, "identifiers_shown": shown}
    store.audit.record(user.username, "exam-viewed", exam_id, audit)
    return detail


def view_image(
    store: Store, user: Principal, exam_id: uuid.UUID, index: int, now: datetime
) -> tuple[ExamDetail, ExamImage]:
    """The exam and its ``index``-th image, which must have a thumbnail (404 otherwise)."""
    detail = store.readings.exam_detail(exam_id, user.username, now)
    if not 0 <= index < len(detail.images) or detail.images[index].thumbnail is None:
        raise NotFoundError("no thumbnail for this view")
    store.audit.record(user.username, "image-viewed", exam_id, {"index": index})
    return detail, detail.images[index]


def report_file(detail: ExamDetail) -> Path | None:
    """The SR file when the report went to a local folder (``<folder>/<SOPInstanceUID>.dcm``)."""
    if not detail.report_sop_instance_uid or not detail.report_location:
        return None
    folder = Path(detail.report_location)
    if not folder.is_dir():
        return None
    candidate = folder / f"{detail.report_sop_instance_uid}.dcm"
    # The name comes from the store, but keep the file inside the folder whatever it says.
    if candidate.resolve().parent != folder.resolve() or not candidate.is_file():
        return None
    return candidate


def view_report(store: Store, user: Principal, exam_id: uuid.UUID, now: datetime) -> Path:
    detail = store.readings.exam_detail(exam_id, user.username, now)
    path = report_file(detail)
    if path is None:
        raise NotFoundError("the report is not in a local folder this service can read")
    store.audit.record(user.username, "report-viewed", exam_id, {})
    return path


__all__ = [
    "claim",
    "decide",
    "release",
    "report_file",
    "shows_identifiers",
    "view_exam",
    "view_image",
    "view_report",
]
