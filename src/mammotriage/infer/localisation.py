"""Does the model point at the lesion? Top finding of each cancer image against its true box."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from mammotriage.infer.scores import ExamScore


class _TruthRow(Protocol):
    path: str
    cancer: Any
    box: Any


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def top_finding_overlaps(
    exams: Iterable[ExamScore], truth: Iterable[_TruthRow], root: Path, *, threshold: float = 0.3
) -> list[tuple[_TruthRow, bool]]:
    """For every image with a true lesion box: does its highest-scoring finding (in original
    pixels) overlap the box with an IoU of at least ``threshold``? An image without a
    finding is a miss."""
    top: dict[str, tuple[float, float, float, float]] = {}
    for exam in exams:
        for finding in sorted(exam.findings, key=lambda f: -f.score):
            if finding.path is None:
                continue
            key = str(Path(finding.path).resolve())
            top.setdefault(key, finding.box_original)
    out = []
    for row in truth:
        if not int(row.cancer) or row.box is None:
            continue
        box = (row.box.x0, row.box.y0, row.box.x1, row.box.y1)
        found = top.get(str((root / row.path).resolve()))
        out.append((row, found is not None and iou(found, box) >= threshold))
    return out
