"""What the API sends and accepts: pydantic models, separate from the store's tables and
records. Exams are named by their internal UUID only; no password hash ever appears here.
Patient data (an exam's :class:`IdentifiersOut`, and the study's UID inside a PACS viewer
link) go to radiologists only, in the body of an audited exam view, never in a URL of
this service."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mammotriage.api.pacs_link import viewer_link
from mammotriage.triage import ReadingMode
from mammotriage.worklist import QueueStats, ReadingStatus
from mammotriage.worklist.decisions import Outcome
from mammotriage.worklist.detail import ExamDetail
from mammotriage.worklist.exams import StudyIdentifiers
from mammotriage.worklist.models import Role
from mammotriage.worklist.queues import QueueItem, QueuePage
from mammotriage.worklist.users import User


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class QueueItemOut(_Out):
    exam_id: uuid.UUID
    received_at: datetime
    waiting_seconds: float
    score: float | None
    category: int | None = Field(description="AI category 1-10; null when unscored")
    mode: ReadingMode
    priority: bool
    overdue: bool
    rule: str = Field(description="The policy rule that gave the exam its reading mode")
    status: ReadingStatus
    partial: bool
    decisions: int
    readers_needed: int
    claimed_by_me: bool

    @classmethod
    def of(cls, item: QueueItem) -> QueueItemOut:
        return cls(
            exam_id=item.exam_id,
            received_at=item.received_at,
            waiting_seconds=item.waiting.total_seconds(),
            score=item.score,
            category=item.category,
            mode=item.mode,
            priority=item.priority,
            overdue=item.overdue,
            rule=item.rule,
            status=item.status,
            partial=item.partial,
            decisions=item.decisions,
            readers_needed=item.readers_needed,
            claimed_by_me=item.claimed_by_me,
        )


class WorklistOut(_Out):
    items: list[QueueItemOut]
    total: int
    offset: int
    limit: int
    oldest_waiting_seconds: float | None

    @classmethod
    def of(cls, page: QueuePage) -> WorklistOut:
        oldest = page.oldest_waiting
        return cls(
            items=[QueueItemOut.of(item) for item in page.items],
            total=page.total,
            offset=page.offset,
            limit=page.limit,
            oldest_waiting_seconds=None if oldest is None else oldest.total_seconds(),
        )


class ClaimOut(_Out):
    exam_id: uuid.UUID
    expires_at: datetime


class DecisionIn(BaseModel):
    """A screening decision: one of the site's decision categories (``decision_categories``
    in the service's settings) with reasons from its own; any other is refused (422).
    ``recall`` alone (no category) is the plain form for API clients without categories."""

    model_config = ConfigDict(extra="forbid")

    category: str | None = Field(
        default=None, max_length=40, description="A configured decision category code"
    )
    reasons: list[str] = Field(
        default_factory=list,
        max_length=30,
        description="Reason codes of the chosen category",
    )
    recall: bool | None = Field(
        default=None, description="Implied by the category; alone: a decision without one"
    )
    birads: int | None = Field(
        default=None, ge=0, le=6, description="BI-RADS 0-6 (API only; the form does not ask)"
    )
    note: str | None = Field(default=None, max_length=4000)


class OutcomeOut(_Out):
    status: ReadingStatus
    decisions: int
    readers_needed: int

    @classmethod
    def of(cls, outcome: Outcome) -> OutcomeOut:
        return cls(
            status=outcome.status,
            decisions=outcome.decisions,
            readers_needed=outcome.readers_needed,
        )


class ImageOut(_Out):
    index: int
    laterality: str
    view: str
    usable: bool
    reason: str | None
    thumbnail_url: str | None


class FindingOut(_Out):
    number: int = Field(
        description="1, 2, ... in this order (right breast first, then by "
        "score); the label on the box in the thumbnail"
    )
    image_index: int | None
    laterality: str | None
    view: str | None
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1, original pixels")
    score: int


class HangingPlaceOut(_Out):
    slot: str = Field(description="R-CC, L-CC, R-MLO, L-MLO: the standard hanging, in order")
    image_index: int | None = Field(description="The view hung there; null: the exam lacks it")


class DecisionOut(_Out):
    reader: str
    recall: bool
    birads: int | None
    note: str | None
    decided_at: datetime
    consensus: bool
    outcome: Literal["no-recall", "recall", "technical-recall"] | None = None
    category: str | None = Field(default=None, description="The decision category code")
    reasons: list[str] = Field(default_factory=list, description="The reason codes given")


#: How each of the worker's report sinks words where a report went (the start of its
#: record), and what a reader calls it. A record that is none of these is a folder's path.
_PACS_RECORDS = (
    ("Orthanc ", "PACS (Orthanc)"),
    ("DICOMweb ", "PACS (DICOMweb)"),
    ("C-STORE to ", "PACS (DICOM C-STORE)"),
)
_NOT_STORED_RECORD = "not stored"


class ReportOut(_Out):
    """Where the AI's structured report went, in a reader's terms: never the worker's
    record of it (a server path named after the study, a PACS address) nor a UID."""

    destination: Literal["pacs", "folder", "none"] = Field(
        description="pacs: sent to the PACS; folder: written to the service's reports "
        "folder (see download_url); none: not stored anywhere"
    )
    sent_to: str | None = Field(description="The PACS kind, e.g. 'PACS (Orthanc)'")
    sent_at: datetime | None
    download_url: str | None
    summary: str = Field(description="One line for a reader")

    @classmethod
    def of(cls, detail: ExamDetail, download_url: str | None) -> ReportOut:
        record = detail.report_location or ""
        at = detail.report_sent_at
        when = f" at {at:%Y-%m-%d %H:%M} UTC" if at is not None else ""
        sent_to = next((name for start, name in _PACS_RECORDS if record.startswith(start)), None)
        if sent_to is not None:
            destination: Literal["pacs", "folder", "none"] = "pacs"
            summary = f"Sent to {sent_to}{when}"
        elif not record or record.startswith(_NOT_STORED_RECORD):
            destination, summary = "none", "Not stored: no PACS or reports folder is configured"
        else:
            destination = "folder"
            summary = f"Written to the reports folder{when}" + (
                "; available to download" if download_url else "; not readable by this service"
            )
        return cls(
            destination=destination,
            sent_to=sent_to,
            sent_at=at,
            download_url=download_url,
            summary=summary,
        )


class IdentifiersOut(_Out):
    """What a radiologist finds the exam by in the PACS and the RIS, from the image header
    (null: not in it). Patient data: radiologists only, each view audited."""

    accession_number: str | None
    patient_id: str | None
    patient_name: str | None = Field(
        description="DICOM PN as in the header: Family^Given^Middle^Prefix^Suffix"
    )
    study_date: date | None

    @classmethod
    def of(cls, identifiers: StudyIdentifiers) -> IdentifiersOut:
        return cls(
            accession_number=identifiers.accession_number,
            patient_id=identifiers.patient_id,
            patient_name=identifiers.patient_name,
            study_date=identifiers.study_date,
        )

    @property
    def patient_name_shown(self) -> str | None:
        """The name as a reader reads it: ``Family, Given Middle``, each group of the PN."""
        return None if self.patient_name is None else person_name(self.patient_name)


def person_name(value: str) -> str:
    """A DICOM PN (``Family^Given^Middle^Prefix^Suffix``, up to three ``=``-separated
    groups, PS3.5 6.2.1) as ``Family, Prefix Given Middle Suffix``."""
    shown = []
    for group in value.split("="):
        parts = [p.strip() for p in group.split("^")] + [""] * 5
        family, given, middle, prefix, suffix = parts[:5]
        rest = " ".join(p for p in (prefix, given, middle, suffix) if p)
        text = ", ".join(p for p in (family, rest) if p)
        if text:
            shown.append(text)
    return " = ".join(shown) or value


class ExamOut(_Out):
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
    breasts: dict[str, float | None]
    model_name: str | None
    model_sha256: str | None
    report: ReportOut | None
    images: list[ImageOut]
    hanging: list[HangingPlaceOut] = Field(
        description="R-CC | L-CC above R-MLO | L-MLO, chest walls meeting in the middle"
    )
    extra_views: list[int] = Field(description="Indexes of the other images, hung after")
    findings: list[FindingOut]
    decisions: list[DecisionOut]
    #: True while a double reading's other decision is hidden from this reader.
    blinded: bool
    claim_expires_at: datetime | None
    consensus_by: list[str] = Field(
        description="Who recorded the consensus: both first readers, or the arbitrator"
    )
    notice: str = "The diagnostic read happens in the PACS viewer; these are thumbnails only."
    identifiers: IdentifiersOut | None = Field(
        default=None, description="To find the exam in the PACS; radiologists only"
    )
    pacs_viewer_url: str | None = Field(
        default=None,
        description="The study in the site's PACS viewer (the configured pacs_viewer_url); "
        "radiologists only, null when none is configured or the exam lacks its values",
    )

    @classmethod
    def of(
        cls,
        detail: ExamDetail,
        *,
        report_downloadable: bool,
        identifiers: bool = False,
        pacs_viewer_url: str | None = None,
    ) -> ExamOut:
        """The exam as the API shows it; ``identifiers`` (a radiologist looking) adds the
        patient identifiers and the link made from the ``pacs_viewer_url`` template."""
        base = f"/exams/{detail.exam_id}"
        report = None
        if detail.report_sop_instance_uid:
            download = f"{base}/report.dcm" if report_downloadable else None
            report = ReportOut.of(detail, download)
        return cls(
            exam_id=detail.exam_id,
            received_at=detail.received_at,
            status=detail.status,
            mode=detail.mode,
            priority=detail.priority,
            rule=detail.rule,
            policy_version=detail.policy_version,
            partial=detail.partial,
            score=detail.score,
            category=detail.category,
            breasts={side.value: value for side, value in detail.breasts.items()},
            model_name=detail.model_name,
            model_sha256=detail.model_sha256,
            report=report,
            images=[
                ImageOut(
                    index=n,
                    laterality=im.laterality,
                    view=im.view,
                    usable=im.usable,
                    reason=im.reason,
                    thumbnail_url=f"{base}/images/{n}.png" if im.thumbnail else None,
                )
                for n, im in enumerate(detail.images)
            ],
            hanging=[
                HangingPlaceOut(slot=slot.value, image_index=index)
                for slot, index in detail.hanging.places
            ],
            extra_views=list(detail.hanging.extras),
            findings=[
                FindingOut(
                    number=n,
                    image_index=f.image_index,
                    laterality=f.laterality,
                    view=f.view,
                    box=f.box,
                    score=f.score,
                )
                for n, f in enumerate(detail.findings, start=1)
            ],
            decisions=[
                DecisionOut(
                    reader=d.reader,
                    recall=d.recall,
                    birads=d.birads,
                    note=d.note,
                    decided_at=d.decided_at,
                    consensus=d.consensus,
                    outcome=None if d.outcome is None else d.outcome.value,
                    category=d.category,
                    reasons=list(d.reasons),
                )
                for d in detail.decisions
            ],
            blinded=detail.blinded,
            claim_expires_at=detail.claim_expires_at,
            consensus_by=list(detail.consensus_by),
            identifiers=IdentifiersOut.of(detail.identifiers) if identifiers else None,
            pacs_viewer_url=viewer_link(
                pacs_viewer_url,
                accession_number=detail.identifiers.accession_number,
                study_instance_uid=detail.study_instance_uid,
                patient_id=detail.identifiers.patient_id,
            )
            if identifiers
            else None,
        )


class UserOut(_Out):
    username: str
    role: Role
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username, role=user.role, active=user.active, created_at=user.created_at
        )


class QueueStatsOut(_Out):
    waiting: int
    by_queue: dict[str, int]
    by_category: dict[str, int]
    waiting_seconds: dict[str, float | None]
    throughput_24h: dict[str, int]
    read_total: int

    @classmethod
    def of(cls, stats: QueueStats) -> QueueStatsOut:
        return cls(
            waiting=stats.waiting,
            by_queue=stats.by_queue.by_name(),
            by_category={str(category): n for category, n in stats.by_category.items()},
            waiting_seconds={
                "median": stats.waiting_seconds.median,
                "max": stats.waiting_seconds.max,
            },
            throughput_24h={
                "decisions": stats.throughput_24h.decisions,
                "exams_received": stats.throughput_24h.exams_received,
            },
            read_total=stats.read_total,
        )


class HealthOut(_Out):
    status: str


class ErrorOut(_Out):
    detail: str


__all__ = [
    "ClaimOut",
    "DecisionIn",
    "ErrorOut",
    "ExamOut",
    "HealthOut",
    "IdentifiersOut",
    "OutcomeOut",
    "QueueItemOut",
    "QueueStatsOut",
    "UserOut",
    "WorklistOut",
    "person_name",
]
