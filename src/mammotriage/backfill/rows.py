"""What one scored exam becomes in the backfill's Parquet files (:mod:`.schema`).

Pure: an :class:`~mammotriage.infer.scores.ExamScore`, the exam it came from and the triage
policy in; plain dicts out (one exam row, one row per image). No Ray, no pyarrow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from mammotriage.backfill.schema import FAILED, PARTIAL, SCORED, UNSCORED
from mammotriage.dicom import Exam, Image
from mammotriage.infer.scores import ExamScore
from mammotriage.triage import TriagePolicy, decide_scored
from mammotriage.triage.policy import TriageDecision, decide_unscored, not_scored_reason

#: Received time given to backfilled exams: triage's decision does not depend on it.
_RECEIVED = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _most_common(values: Iterable[str | None]) -> str | None:
    """The most frequent non-empty value (ties: the smallest, so rows are deterministic)."""
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    top = max(counts.values())
    return min(v for v, n in counts.items() if n == top)


def _exam_facts(images: Iterable[Image]) -> dict[str, Any]:
    found = list(images)
    usable = [im for im in found if im.usable] or found
    return {
        "accession_number": _most_common(im.accession_number for im in found),
        "manufacturer": _most_common(im.manufacturer for im in usable),
        "manufacturer_model_name": _most_common(im.manufacturer_model_name for im in usable),
        "station_name": _most_common(im.station_name for im in usable),
        "study_date": _most_common(im.study_date for im in found),
    }


def decision_of(policy: TriagePolicy, scored: ExamScore) -> TriageDecision:
    """The policy's reading for a scored exam, as the worker decides it (double reading,
    never priority, when nothing could be scored)."""
    return decide_scored(policy, scored, _RECEIVED)


def exam_rows(
    exam: Exam,
    scored: ExamScore,
    policy: TriagePolicy,
    *,
    shard: int,
    demonstration: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The exam's row and its images' rows."""
    decision = decision_of(policy, scored)
    if scored.score is None:
        status = UNSCORED
        reason: str | None = not_scored_reason(scored)
    elif scored.partial:
        status = PARTIAL
        reason = "no " + " ".join(slot.label for slot in scored.missing)
    else:
        status, reason = SCORED, None
    breasts = {lat.value: value for lat, value in scored.breasts.items()}
    row = {
        "exam_id": scored.exam_id,
        "exam_id_source": exam.exam_id_source,
        **_exam_facts(exam.images),
        "status": status,
        "reason": reason,
        "score": scored.score,
        "category": scored.category,
        "breast_left": breasts.get("L"),
        "breast_right": breasts.get("R"),
        "max_finding_score": scored.max_finding_score,
        "partial": scored.partial,
        "missing": " ".join(slot.label for slot in scored.missing),
        "reading_mode": decision.mode.value,
        "priority": decision.priority,
        "rule": decision.rule,
        "policy_version": decision.policy_version,
        "model_name": scored.model_name,
        "model_sha256": scored.model_sha256,
        "demonstration_model": demonstration,
        "images_usable": sum(im.usable for im in scored.images),
        "images_unusable": sum(not im.usable for im in scored.images),
        "shard": shard,
    }
    images = [
        {
            "exam_id": scored.exam_id,
            "path": None if im.path is None else str(im.path),
            "sop_instance_uid": im.sop_instance_uid,
            "laterality": im.laterality.value,
            "view": im.view.value,
            "usable": im.usable,
            "score": im.score,
            "reason": im.reason,
            "shard": shard,
        }
        for im in scored.images
    ]
    return row, images


def failed_rows(
    exam_id: str,
    exam_id_source: str,
    paths: Iterable[str],
    reason: str,
    policy: TriagePolicy,
    *,
    shard: int,
    model_name: str,
    model_sha256: str,
    demonstration: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The rows of an exam whose scoring failed as a whole: read by people, with why."""
    decision = decide_unscored(policy, exam_id, f"scoring failed: {reason}")
    files = sorted(paths)
    row = {
        "exam_id": exam_id,
        "exam_id_source": exam_id_source,
        "accession_number": None,
        "manufacturer": None,
        "manufacturer_model_name": None,
        "station_name": None,
        "study_date": None,
        "status": FAILED,
        "reason": reason,
        "score": None,
        "category": None,
        "breast_left": None,
        "breast_right": None,
        "max_finding_score": None,
        "partial": True,
        "missing": "",
        "reading_mode": decision.mode.value,
        "priority": decision.priority,
        "rule": decision.rule,
        "policy_version": decision.policy_version,
        "model_name": model_name,
        "model_sha256": model_sha256,
        "demonstration_model": demonstration,
        "images_usable": 0,
        "images_unusable": len(files),
        "shard": shard,
    }
    images = [
        {
            "exam_id": exam_id,
            "path": path,
            "sop_instance_uid": None,
            "laterality": "U",
            "view": "UNKNOWN",
            "usable": False,
            "score": None,
            "reason": reason,
            "shard": shard,
        }
        for path in files
    ]
    return row, images


__all__ = ["PARTIAL", "SCORED", "decision_of", "exam_rows", "failed_rows"]
