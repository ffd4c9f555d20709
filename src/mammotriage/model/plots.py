"""Validation plots: ROC curves per reading level, calibration, score distributions.

matplotlib is imported inside the functions, so importing this module costs nothing and a
runtime install without matplotlib can still compute every metric. Figures are drawn on
their own Agg canvas (``matplotlib.figure.Figure``), never through ``pyplot``: no global
figure registry, no GUI backend, nothing left open in a long-running process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mammotriage.model.evaluation import ScoredImages, reading_levels
from mammotriage.model.metrics import (
    Aggregation,
    brier_score,
    expected_calibration_error,
    reliability_curve,
    roc_auc,
    roc_curve,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Operating points a screening programme asks about, drawn as guides on the ROC plot.
_GUIDE_SPECIFICITIES = (0.90, 0.95)
_DPI = 120


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target


def plot_roc(
    levels: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    path: str | Path,
    *,
    title: str = "ROC curve",
) -> Path:
    """One ROC curve per level (``{"exam": (labels, scores), ...}``), AUC and n in the legend.

    Dotted verticals mark 90 % and 95 % specificity, where screening programmes operate; a
    level whose AUC is undefined (one class absent) is listed but not drawn.
    """
    figure = _figure(5.5, 5.5)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for specificity in _GUIDE_SPECIFICITIES:
        axes.axvline(1 - specificity, linestyle=":", color="lightgrey", linewidth=1)
    for name, (labels, scores) in levels.items():
        y = np.asarray(labels)
        auc = roc_auc(y, scores)
        counts = f"n={y.size}, {int(np.sum(y))} cancers"
        if np.isnan(auc):
            axes.plot([], [], label=f"{name}: AUC undefined ({counts})")
            continue
        fpr, tpr, _ = roc_curve(y, scores)
        axes.plot(fpr, tpr, linewidth=1.5, label=f"{name}: AUC {auc:.3f} ({counts})")
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        aspect="equal",
        title=title,
        xlabel="1 − specificity (false-positive rate)",
        ylabel="Sensitivity (true-positive rate)",
    )
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_reliability(
    labels: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    path: str | Path,
    *,
    bins: int = 10,
    title: str = "Calibration",
) -> Path:
    """Reliability diagram over equal-width bins, with the number of items per bin below.

    The count panel is logarithmic: screening data are mostly near 0, and a well-calibrated
    curve built on three cases in a bin says little.
    """
    mean_predicted, fraction_positive, counts = reliability_curve(labels, probabilities, bins)
    ece = expected_calibration_error(labels, probabilities, bins)
    brier = brier_score(labels, probabilities)
    figure = _figure(5.5, 6.5)
    curve, histogram = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    curve.plot(mean_predicted, fraction_positive, marker="o", label="model")
    curve.set(
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"{title} (ECE {ece:.3f}, Brier {brier:.3f})",
        ylabel="Observed fraction with cancer",
    )
    curve.legend(loc="upper left", fontsize="small")
    edges = np.linspace(0.0, 1.0, bins + 1)
    histogram.hist(mean_predicted, bins=edges, weights=counts, log=True, color="tab:blue")
    histogram.set(xlabel="Mean predicted probability", ylabel="Items per bin")
    return _save(figure, path)


def plot_score_histogram(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    path: str | Path,
    *,
    bins: int = 50,
    title: str = "Score distribution by label",
) -> Path:
    """Score histograms of cancers and non-cancers, each normalised to its own area.

    Normalising per class keeps the few cancers visible beside thousands of normals; the
    overlap is what a triage threshold has to cut through.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    figure = _figure(6.5, 4.5)
    axes = figure.add_subplot()
    spread = bool(s.size) and s.min() < s.max()
    edges: int | list[float] = np.linspace(s.min(), s.max(), bins + 1).tolist() if spread else bins
    for mask, name, colour in ((~y, "no cancer", "tab:blue"), (y, "cancer", "tab:red")):
        if mask.any():
            axes.hist(
                s[mask],
                bins=edges,
                density=True,
                histtype="stepfilled",
                alpha=0.45,
                color=colour,
                label=f"{name} (n={int(mask.sum())})",
            )
    axes.set(title=title, xlabel="Model score", ylabel="Density (each label normalised)")
    axes.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def write_plots(
    images: ScoredImages, out_dir: str | Path, *, breast_aggregation: Aggregation = "max"
) -> list[Path]:
    """Write ``roc.png``, ``reliability.png`` and ``score_histogram.png`` into ``out_dir``.

    ROC at every reading level; calibration per image, the unit whose probability the model
    predicts (a max over views is not a calibrated probability); score histogram per exam,
    the unit triage sorts.
    """
    out = Path(out_dir)
    levels = reading_levels(images, breast_aggregation)
    pairs: dict[str, tuple[Any, Any]] = {
        name: (level.label, level.probability) for name, level in levels.items()
    }
    exam = levels["exam"]
    return [
        plot_roc(pairs, out / "roc.png", title="ROC curve by reading level"),
        plot_reliability(
            images.label, images.probability, out / "reliability.png", title="Calibration per image"
        ),
        plot_score_histogram(
            exam.label,
            exam.probability,
            out / "score_histogram.png",
            title="Exam scores by label",
        ),
    ]
