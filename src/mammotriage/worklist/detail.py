"""One exam as a reader may see it: its score, images (and how they hang), findings and the
decisions they may see (blinded double reading), and who may open it at all.

Right before left wherever the breasts are listed: the breast scores and the findings (right
breast first, then the most suspicious first), as screening readers read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mammotriage.dicom.model import Laterality
from mammotriage.errors import ForbiddenError, NotFoundError
from mammotriage.triage.policy import ReadingMode
from mammotriage.worklist.claims import live_claims
from mammotriage.worklist.decisions import Decision, ScreeningOutcome, loaded_reasons
from mammotriage.worklist.exams import StudyIdentifiers, identifiers_of_row
from mammotriage.worklist.hanging import LATERALITY_ORDER, Hanging, finding_sort_key, hang
from mammotriage.worklist.models import (
    AssignmentRow,
    ClaimRow,
    DecisionRow,
    ExamRow,
    FindingRow,
    ImageRow,
    ReadingStatus,
    ScoreRow,
)
from mammotriage.worklist.rules import is_blinded, others_decisions_shown


@dataclass(frozen=True)
class ExamImage:
    sop_instance_uid: str | None
    laterality: str
    view: str
    usable: bool
    reason: str | None
    rows: int | None
    columns: int | None
    thumbnail: str | None


@dataclass(frozen=True)
class ExamFinding:
    sop_instance_uid: str | None
    box: tuple[float, float, float, float]
    score: int
    #: The view it was found on (the first image with its SOP Instance UID), if any.
    image_index: int | None = None
    laterality: str | None = None
    view: str | None = None


@dataclass(frozen=True)
class ExamDetail:
    """What a reader may see of one exam (others' decisions only once they may)."""

    exam_id: uuid.UUID
    received_at: datetime
    status: ReadingStatus
    mode: ReadingMode
    priority: bool
    rule: str
    policy_version: str
    partial: bool
    score: float | None
    category: int | None
    breasts: dict[Laterality, float | None]
    model_name: str | None
    model_sha256: str | None
    report_sop_instance_uid: str | None
    report_location: str | None
    report_sent_at: datetime | None
    images: tuple[ExamImage, ...]
    findings: tuple[ExamFinding, ...]
    decisions: tuple[Decision, ...]
    claim_expires_at: datetime | None
    #: True while a double reading's other decision is withheld from this reader.
    blinded: bool
    #: Who recorded the consensus decisions, in order: both first readers' names, or the
    #: arbitrator's (or one first reader's); empty before consensus.
    consensus_by: tuple[str, ...]
    #: What a radiologist needs to find the exam in the PACS (patient data: the API shows
    #: it to radiologists only), and the study's UID for a PACS viewer link.
    identifiers: StudyIdentifiers = StudyIdentifiers()
    study_instance_uid: str | None = field(default=None, repr=False)
    #: The four standard views in reading order (missing ones as None), then the others.
    hanging: Hanging = Hanging((), ())


def exam_detail(
    session: Session, exam_id: uuid.UUID, reader: str | None, now: datetime
) -> ExamDetail:
    """The exam as ``reader`` may see it (``reader`` None: an admin tool, sees everything).

    Raises
    ------
    NotFoundError
        No such exam.
    ForbiddenError
        The reader neither holds nor has decided it (another reader's exam, or unclaimed).
    """
    exam, assignment = _exam_and_assignment(session, exam_id)
    claims = live_claims(session, assignment, now)
    decisions = _decisions(session, assignment)
    my_claim = next((c for c in claims if c.reader == reader), None)
    if reader is not None:
        _check_may_open(reader, my_claim, claims, decisions)
    shown = others_decisions_shown(assignment.status)
    visible = [d for d in decisions if reader is None or shown or d.reader == reader]
    score = session.get(ScoreRow, assignment.score_id) if assignment.score_id is not None else None
    images = _images(session, exam)
    return ExamDetail(
        exam_id=exam.public_id,
        received_at=exam.received_at,
        status=assignment.status,
        mode=assignment.mode,
        priority=assignment.priority,
        rule=assignment.rule,
        policy_version=assignment.policy_version,
        partial=exam.partial,
        score=None if score is None else score.score,
        category=assignment.category,
        breasts={} if score is None else _right_first(score.breasts),
        model_name=None if score is None else score.model_name,
        model_sha256=None if score is None else score.model_sha256,
        report_sop_instance_uid=exam.report_sop_instance_uid,
        report_location=exam.report_location,
        report_sent_at=exam.report_sent_at,
        images=images,
        findings=() if score is None else _findings(session, score, images),
        decisions=tuple(
            Decision(
                d.reader,
                d.recall,
                d.birads,
                d.note,
                d.decided_at,
                d.consensus,
                None if d.outcome is None else ScreeningOutcome(d.outcome),
                d.category,
                loaded_reasons(d.reasons),
            )
            for d in visible
        ),
        claim_expires_at=None if my_claim is None else my_claim.expires_at,
        blinded=is_blinded(assignment.mode, assignment.status),
        consensus_by=tuple(d.reader for d in decisions if d.consensus),
        identifiers=identifiers_of_row(exam),
        study_instance_uid=exam.study_instance_uid,
        hanging=hang([(im.laterality, im.view, im.thumbnail is not None) for im in images]),
    )


def _exam_and_assignment(session: Session, exam_id: uuid.UUID) -> tuple[ExamRow, AssignmentRow]:
    row = session.execute(
        select(ExamRow, AssignmentRow)
        .join(AssignmentRow, AssignmentRow.exam_id == ExamRow.id)
        .where(ExamRow.public_id == exam_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError("no such exam on the reading lists")
    return row[0], row[1]


def _decisions(session: Session, assignment: AssignmentRow) -> Sequence[DecisionRow]:
    return (
        session.execute(
            select(DecisionRow)
            .where(DecisionRow.assignment_id == assignment.id)
            .order_by(DecisionRow.decided_at, DecisionRow.id)
        )
        .scalars()
        .all()
    )


def _check_may_open(
    reader: str,
    my_claim: ClaimRow | None,
    claims: Sequence[ClaimRow],
    decisions: Sequence[DecisionRow],
) -> None:
    """A reader opens an exam they hold a live claim on, or have decided."""
    if my_claim is not None or any(d.reader == reader for d in decisions):
        return
    raise ForbiddenError(
        "this exam is claimed by another reader" if claims else "claim the exam to open it"
    )


def _images(session: Session, exam: ExamRow) -> tuple[ExamImage, ...]:
    rows = session.execute(
        select(ImageRow).where(ImageRow.exam_id == exam.id).order_by(ImageRow.id)
    ).scalars()
    return tuple(
        ExamImage(
            im.sop_instance_uid,
            im.laterality.value,
            im.view.value,
            im.usable,
            im.reason,
            im.rows,
            im.columns,
            im.thumbnail,
        )
        for im in rows
    )


def _right_first(breasts: dict[str, float | None]) -> dict[Laterality, float | None]:
    """The breast scores, right before left."""
    ordered = sorted(breasts, key=lambda k: LATERALITY_ORDER.get(k, len(LATERALITY_ORDER)))
    return {Laterality(k): breasts[k] for k in ordered}


def _findings(
    session: Session, score: ScoreRow, images: Sequence[ExamImage]
) -> tuple[ExamFinding, ...]:
    """The score's findings with their views: right breast before left (unknown last), then
    the most suspicious first; this order numbers them on the page and on the thumbnails."""
    rows = session.execute(
        select(FindingRow)
        .where(FindingRow.score_id == score.id)
        .order_by(FindingRow.score.desc(), FindingRow.id)
    ).scalars()
    by_uid: dict[str, int] = {}
    for n, im in enumerate(images):
        if im.sop_instance_uid is not None:
            by_uid.setdefault(im.sop_instance_uid, n)
    findings = []
    for f in rows:
        index = None if f.sop_instance_uid is None else by_uid.get(f.sop_instance_uid)
        image = None if index is None else images[index]
        findings.append(
            ExamFinding(
                f.sop_instance_uid,
                (f.x0, f.y0, f.x1, f.y1),
                f.score,
                index,
                None if image is None else image.laterality,
                None if image is None else image.view,
            )
        )
    findings.sort(key=lambda f: finding_sort_key(f.laterality, f.score))
    return tuple(findings)


__all__ = ["ExamDetail", "ExamFinding", "ExamImage", "exam_detail"]
