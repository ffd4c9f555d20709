"""The report's pictures, as PNG bytes to embed in the HTML.

matplotlib's Agg canvas only (no pyplot, no global backend), as
:func:`~mammotriage.triage.plot_workload_curve` draws: a report never touches the caller's
matplotlib state, and nothing needs a display.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.category import CATEGORIES
from mammotriage.errors import ConfigError
from mammotriage.triage import WorkloadPoint, plot_workload_curve


def _figure(width: float = 6.4, height: float = 4.2) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "the evaluation report's plots need matplotlib: pip install 'mammotriage[backfill]'"
        ) from exc
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def workload_png(curve: Sequence[WorkloadPoint]) -> bytes:
    """:func:`~mammotriage.triage.plot_workload_curve`'s plot, as bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        return plot_workload_curve(curve, Path(tmp) / "workload.png").read_bytes()


def roc_png(
    fpr: np.ndarray, tpr: np.ndarray, auc: float | None, operating: dict[str, tuple[float, float]]
) -> bytes:
    """The ROC curve of the exam score, with the policy's operating points marked
    (``operating``: label -> (1 - specificity, sensitivity))."""
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    if fpr.size:
        label = "exam score" + ("" if auc is None else f" (AUC {auc:.3f})")
        ax.plot(fpr, tpr, label=label)
    for (name, (x, y)), marker in zip(operating.items(), "os^", strict=False):
        ax.plot([x], [y], marker=marker, linestyle="none", label=name)
    ax.set_xlabel("1 - specificity (non-cancers flagged)")
    ax.set_ylabel("sensitivity (cancers flagged)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    ax.set_title("Exam score against cancer")
    return _png(fig)


def device_png(devices: Sequence[str], shares: np.ndarray, reference: float) -> bytes:
    """Share of each device's scored exams per category (rows of ``shares``), against the
    calibration reference (``reference`` per category)."""
    fig = _figure(8.4, 4.2)
    ax = fig.add_subplot()
    cats = np.array(list(CATEGORIES))
    width = 0.8 / max(1, len(devices))
    for i, (name, row) in enumerate(zip(devices, shares, strict=True)):
        ax.bar(cats - 0.4 + width * (i + 0.5), row, width=width, label=name[:48])
    ax.axhline(reference, color="black", linestyle="--", linewidth=1, label="calibration reference")
    ax.set_xticks(cats)
    ax.set_xlabel("category")
    ax.set_ylabel("share of the device's scored exams")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.subplots_adjust(left=0.1, right=0.68)
    ax.set_title("Category distribution per device")
    return _png(fig)
