"""Specification of :mod:`mammotriage.model.plots`: the validation figures get written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammotriage.model.evaluation import ScoredImages
from mammotriage.model.plots import (
    plot_reliability,
    plot_roc,
    plot_score_histogram,
    write_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file()
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 5_000


def scored_images(n_exams: int = 80, seed: int = 0) -> ScoredImages:
    rng = np.random.default_rng(seed)
    label = np.repeat(rng.random(2 * n_exams) < 0.1, 2).astype(int)
    return ScoredImages(
        exam_id=np.repeat(np.arange(n_exams), 4).astype(str),
        laterality=np.tile(["L", "L", "R", "R"], n_exams),
        view=np.tile(["CC", "MLO"], 2 * n_exams),
        label=label,
        probability=np.clip(rng.beta(2, 6, 4 * n_exams) + 0.4 * label, 0, 1),
    )


@pytest.fixture(scope="module")
def labelled_scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = (rng.random(500) < 0.2).astype(int)
    return labels, np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)


def test_plot_roc_writes_a_png_with_one_curve_per_level(
    tmp_path: Path, labelled_scores: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, scores = labelled_scores
    levels = {"image": (labels, scores), "exam": (labels[::2], scores[::2])}
    path = plot_roc(levels, tmp_path / "roc.png")
    assert path == tmp_path / "roc.png"
    assert_png(path)


def test_plot_roc_lists_a_level_without_cancers_instead_of_failing(tmp_path: Path) -> None:
    levels = {"exam": (np.zeros(20, int), np.linspace(0, 1, 20))}
    assert_png(plot_roc(levels, tmp_path / "roc.png"))


def test_plot_reliability_writes_a_png(
    tmp_path: Path, labelled_scores: tuple[np.ndarray, np.ndarray]
) -> None:
    assert_png(plot_reliability(*labelled_scores, tmp_path / "nested" / "reliability.png"))


def test_plot_score_histogram_writes_a_png(
    tmp_path: Path, labelled_scores: tuple[np.ndarray, np.ndarray]
) -> None:
    assert_png(plot_score_histogram(*labelled_scores, tmp_path / "histogram.png"))


def test_plot_score_histogram_copes_with_one_label_and_one_score(tmp_path: Path) -> None:
    assert_png(plot_score_histogram(np.zeros(5, int), np.full(5, 0.3), tmp_path / "flat.png"))


def test_write_plots_writes_the_three_named_figures(tmp_path: Path) -> None:
    paths = write_plots(scored_images(), tmp_path / "plots")
    assert [p.name for p in paths] == ["roc.png", "reliability.png", "score_histogram.png"]
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert_png(path)


def test_plots_leave_pyplot_figure_registry_alone(tmp_path: Path) -> None:
    # A long-running process (a notebook, a worker) must not accumulate open figures.
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    write_plots(scored_images(20), tmp_path)
    assert plt.get_fignums() == before
