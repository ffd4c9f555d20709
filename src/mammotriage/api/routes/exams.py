"""One exam: claim, release, decide, and what a reader may see of it (audited).

The store decides who may do what (blinded double reading, one claim per slot, expiry);
its errors become 404 / 409 / 403 in :mod:`mammotriage.api.app`.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import FileResponse

from mammotriage.api import service
from mammotriage.api.deps import (
    ExamId,
    NowDep,
    PolicyDep,
    RadiologistUser,
    ReaderAction,
    SettingsDep,
    StoreDep,
)
from mammotriage.api.schemas import ClaimOut, DecisionIn, ErrorOut, ExamOut, OutcomeOut
from mammotriage.api.thumbnails import draw_findings

router = APIRouter(prefix="/exams", tags=["exams"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Wrong role, missing CSRF token, another's exam"},
    404: {"model": ErrorOut, "description": "No such exam"},
    409: {"model": ErrorOut, "description": "The exam's reading state does not allow it"},
}


@router.post("/{exam_id}/claim", response_model=ClaimOut, responses=_ERRORS)
def claim(
    exam_id: ExamId, user: ReaderAction, store: StoreDep, policy: PolicyDep, now: NowDep
) -> ClaimOut:
    """Open the exam for reading; the claim expires unless decided or renewed in time.

    An exam in consensus is claimed as the policy's ``consensus`` says (both first readers,
    an arbitrator, or either first reader); a 409 says why not.
    """
    expires = service.claim(store, user, exam_id, now, policy)
    return ClaimOut(exam_id=exam_id, expires_at=expires)


@router.post("/{exam_id}/release", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
def release(exam_id: ExamId, user: ReaderAction, store: StoreDep, now: NowDep) -> Response:
    """Give the exam back without deciding (releasing what one does not hold does nothing)."""
    service.release(store, user, exam_id, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{exam_id}/decision", response_model=OutcomeOut, responses=_ERRORS)
def decide(
    exam_id: ExamId,
    decision: DecisionIn,
    user: ReaderAction,
    store: StoreDep,
    policy: PolicyDep,
    settings: SettingsDep,
    now: NowDep,
) -> OutcomeOut:
    """Record a screening decision on an exam one holds: one of the site's decision
    categories (``decision_categories``) with reasons of its own, or ``recall`` alone;
    optional BI-RADS 0-6 and a note. An unknown category or reason is refused (422)."""
    return OutcomeOut.of(
        service.decide(store, user, exam_id, decision, now, policy, settings.decision_categories)
    )


@router.get("/{exam_id}", response_model=ExamOut, responses=_ERRORS)
def exam(
    exam_id: ExamId, user: RadiologistUser, store: StoreDep, settings: SettingsDep, now: NowDep
) -> ExamOut:
    """The exam as the caller may see it: others' decisions only once blinding ends; the
    patient identifiers and the PACS viewer link for a radiologist (the view is audited)."""
    detail = service.view_exam(store, user, exam_id, now)
    return ExamOut.of(
        detail,
        report_downloadable=service.report_file(detail) is not None,
        identifiers=service.shows_identifiers(user),
        pacs_viewer_url=settings.pacs_viewer_url,
    )


@router.get(
    "/{exam_id}/images/{index}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_ERRORS},
)
def image(
    exam_id: ExamId,
    index: Annotated[int, Path(ge=0, description="The view's place in the exam's images")],
    user: RadiologistUser,
    store: StoreDep,
    now: NowDep,
    highlight: Annotated[
        int | None, Query(ge=1, description="The finding (its number) to draw highlighted")
    ] = None,
) -> Response:
    """The view's thumbnail, hung (chest walls meeting), with the AI's findings outlined
    (colour by finding score) and labelled with their number in the exam's findings list."""
    detail, view = service.view_image(store, user, exam_id, index, now)
    assert view.thumbnail is not None  # view_image checked it
    boxes = [
        (number, finding.box, finding.score)
        for number, finding in enumerate(detail.findings, start=1)
        if finding.sop_instance_uid is not None
        and finding.sop_instance_uid == view.sop_instance_uid
    ]
    png = draw_findings(FilePath(view.thumbnail), view.rows, view.columns, boxes, highlight)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


@router.get(
    "/{exam_id}/report.dcm",
    response_class=FileResponse,
    responses={200: {"content": {"application/dicom": {}}}, **_ERRORS},
)
def report(exam_id: ExamId, user: RadiologistUser, store: StoreDep, now: NowDep) -> FileResponse:
    """The AI's DICOM SR, when the worker wrote it to a folder this service can read."""
    path = service.view_report(store, user, exam_id, now)
    return FileResponse(
        path,
        media_type="application/dicom",
        filename=f"{exam_id}.dcm",
        headers={"Cache-Control": "private, no-store"},
    )
