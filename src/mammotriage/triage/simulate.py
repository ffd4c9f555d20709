"""What a policy would do to a programme: reading workload and where the cancers go.

Before a programme switches policy it wants two numbers on its own past exams: how many
human reads it saves, and how many cancers lose their second reader (or, under rule-out,
every reader). :func:`simulate` runs the real :func:`~mammotriage.triage.policy.decide` on
scored exams with known outcome and reports those numbers with bootstrap 95 % intervals;
:func:`workload_curve` sweeps the single-reading cut-off so that the programme can choose it.

Workload is counted in human reads (single = 1, double = 2, rule-out = 0) relative to double
reading of every exam, the Danish standard before AI: 0.67 means a third fewer reads.
Consensus reads after a disagreement are not counted: the inputs carry no reader decisions.
Each consensus would add :attr:`~mammotriage.triage.policy.ConsensusMode.reads` (2 under
``both-readers``, 1 under ``third-reader`` or ``either-reader``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mammotriage.category import CATEGORIES
from mammotriage.errors import ConfigError
from mammotriage.triage.policy import (
    ExamForTriage,
    ReadingMode,
    SafetyNetPolicy,
    TriagePolicy,
    decide,
    validate_exam_values,
)

#: Modes in the order of the count arrays' mode axis.
_MODES: tuple[ReadingMode, ...] = tuple(ReadingMode)
_READS = np.array([mode.reads for mode in _MODES], dtype=np.float64)
#: Arrival time given to simulated exams: ordering plays no part in simulation.
_ARRIVAL = datetime(2000, 1, 1, tzinfo=timezone.utc)
_CI_LEVEL = 0.95
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


@dataclass(frozen=True)
class SimExam:
    """One scored exam with known outcome (``cancer``: screen-detected or interval cancer)."""

    exam_id: str
    category: int
    score: float
    max_finding_score: float | None
    cancer: bool
    #: The exam lacked views when it was scored (never ruled out; see ``decide``).
    partial: bool = False

    def __post_init__(self) -> None:
        validate_exam_values(self.exam_id, self.score, self.category, self.max_finding_score)
        for name in ("cancer", "partial"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"exam {self.exam_id}: {name} must be a bool, got {getattr(self, name)!r}"
                )

    def for_triage(self) -> ExamForTriage:
        return ExamForTriage(
            exam_id=self.exam_id,
            score=self.score,
            category=self.category,
            max_finding_score=self.max_finding_score,
            partial=self.partial,
            received_at=_ARRIVAL,
        )


@dataclass(frozen=True)
class WorkloadPoint:
    """One cut-off of :func:`workload_curve`."""

    single_reading_max_category: int
    #: Human reads relative to double reading of every exam.
    workload: float
    #: Share of exams read by one reader.
    single_share: float
    #: Cancers sent to double reading / all cancers; ``None`` without cancers.
    cancers_double_read_share: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell_counts(exams: Sequence[SimExam], policy: TriagePolicy) -> np.ndarray:
    """Exams counted by (reading mode, cancer, category): shape (3, 2, 10).

    Every number :func:`simulate` reports depends on an exam only through this cell.
    """
    counts = np.zeros((len(_MODES), 2, len(CATEGORIES)), dtype=np.int64)
    for exam in exams:
        mode = decide(policy, exam.for_triage()).mode
        counts[_MODES.index(mode), int(exam.cancer), exam.category - 1] += 1
    return counts


def _check_exams(exams: Sequence[SimExam]) -> None:
    if not exams:
        raise ConfigError("no exams to simulate")
    ids = Counter(e.exam_id for e in exams)
    duplicates = {exam_id for exam_id, n in ids.items() if n > 1}
    if duplicates:
        raise ConfigError(
            f"{len(duplicates)} exam ids appear more than once, e.g. {sorted(duplicates)[:5]}"
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _metrics(counts: np.ndarray, priority_min_category: int) -> dict[str, np.ndarray]:
    """Shares and ratios from counts of shape (..., 3, 2, 10); NaN where undefined."""
    n = counts.sum(axis=(-3, -2, -1)).astype(np.float64)
    by_mode = counts.sum(axis=(-2, -1))
    cancers_by_mode = counts[..., 1, :].sum(axis=-1)
    n_cancers = cancers_by_mode.sum(axis=-1)
    out = {f"mode:{m.value}": _ratio(by_mode[..., i], n) for i, m in enumerate(_MODES)}
    out["priority"] = _ratio(counts[..., priority_min_category - 1 :].sum(axis=(-3, -2, -1)), n)
    out["workload"] = _ratio(by_mode @ _READS, 2 * n)
    for i, m in enumerate(_MODES):
        out[f"cancers:{m.value}"] = _ratio(cancers_by_mode[..., i], n_cancers)
    return out


def estimate(value: float, boot: np.ndarray) -> dict[str, Any]:
    """``{"value": v, "ci95": [lo, hi]}``: the bootstrap percentile 95 % interval of the
    resampled values ``boot`` (NaN resamples left out); ``None`` where undefined (JSON has
    no NaN). Shared with :mod:`mammotriage.evaluation`."""
    if math.isnan(value):
        return {"value": None, "ci95": None}
    finite = boot[~np.isnan(boot)]
    if finite.size == 0:
        return {"value": value, "ci95": None}
    tail = 100 * (1 - _CI_LEVEL) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return {"value": value, "ci95": [float(low), float(high)]}


def simulate(
    scores: Sequence[SimExam], policy: TriagePolicy, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Apply ``policy`` to ``scores`` and report workload and cancers per reading mode.

    Intervals are bootstrap percentile 95 % intervals over exams resampled with replacement.
    Since every reported number depends on an exam only through its (mode, cancer, category)
    cell, a resample is drawn as one multinomial of the 60 cell counts, which has the same
    distribution as resampling exams and costs nothing per exam. Shares among cancers are
    undefined in a resample without cancers; such resamples are left out of that interval.

    Returns
    -------
    dict
        JSON-ready (plain ints, floats, ``None``, strings): ``policy_version``, ``n_exams``,
        ``n_cancers``, ``bootstrap`` (``n_boot``, ``seed``, ``level``), ``mode_share`` (per
        mode), ``priority_share``, ``workload`` (reads / reads under double reading of
        every exam) and ``workload_change`` (workload - 1), ``cancers_by_mode`` (counts),
        ``by_category`` (exams and cancers per category 1-10, each about a tenth of a
        screening population), ``cancers_single_read``, ``cancers_ruled_out`` and
        ``cancers_double_read`` (each ``count`` and ``share`` of all cancers; the last is the
        sensitivity-like share). Estimates are ``{"value": v, "ci95": [lo, hi]}``.

    Raises
    ------
    ConfigError
        If ``scores`` is empty, holds an exam id twice, or ``n_boot`` is below 1.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    _check_exams(scores)
    counts = _cell_counts(scores, policy)
    n = int(counts.sum())
    rng = np.random.default_rng(seed)
    boot = rng.multinomial(n, counts.ravel() / n, size=n_boot).reshape(n_boot, *counts.shape)
    observed = _metrics(counts, policy.priority_min_category)
    resampled = _metrics(boot, policy.priority_min_category)

    def est(name: str) -> dict[str, Any]:
        return estimate(float(observed[name]), resampled[name])

    cancers_by_mode = counts[:, 1, :].sum(axis=1)
    workload = est("workload")
    change = {
        "value": workload["value"] - 1,
        "ci95": [workload["ci95"][0] - 1, workload["ci95"][1] - 1],
    }
    return {
        "policy_version": policy.version,
        "n_exams": n,
        "n_cancers": int(cancers_by_mode.sum()),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": _CI_LEVEL},
        "mode_share": {m.value: est(f"mode:{m.value}") for m in _MODES},
        "priority_share": est("priority"),
        "workload": workload,
        "workload_change": change,
        "cancers_by_mode": {m.value: int(cancers_by_mode[i]) for i, m in enumerate(_MODES)},
        "by_category": {
            str(c): {
                "exams": int(counts[:, :, c - 1].sum()),
                "cancers": int(counts[:, 1, c - 1].sum()),
            }
            for c in CATEGORIES
        },
        **{
            f"cancers_{label}": {
                "count": int(cancers_by_mode[_MODES.index(mode)]),
                "share": est(f"cancers:{mode.value}"),
            }
            for label, mode in (
                ("single_read", ReadingMode.SINGLE),
                ("ruled_out", ReadingMode.RULE_OUT),
                ("double_read", ReadingMode.DOUBLE),
            )
        },
    }


def candidate_cut_offs(policy: TriagePolicy) -> list[int]:
    """The single-reading cut-offs a sweep tries under ``policy``: 1-10, or from the rule-out
    category up when the policy rules out by category (a lower cut-off would leave no
    single-reading band below rule-out)."""
    rule_out = policy.rule_out
    lowest = rule_out.max_category if rule_out.enabled and rule_out.max_category else 1
    return list(range(lowest, 11))


def workload_curve(
    scores: Sequence[SimExam],
    thresholds: Iterable[int] | None = None,
    *,
    policy: TriagePolicy | None = None,
) -> list[WorkloadPoint]:
    """Workload and cancers double-read for each single-reading cut-off category.

    With ``policy`` the sweep keeps its other rules (safety net, rule-out) and varies only
    ``single_reading_max_category``; without, it is the plain category cut-off (no safety
    net, no rule-out). A cut-off of 0 is double reading of every exam. ``thresholds``
    defaults to 1-10, or from the rule-out category up when the policy rules out by category
    (a lower cut-off would leave no single-reading band below rule-out).

    Raises
    ------
    ConfigError
        If ``scores`` is empty or has duplicate ids, or a threshold is not a valid cut-off
        for the policy (outside 0-10, or below its rule-out category).
    """
    _check_exams(scores)
    if policy is None:
        policy = TriagePolicy(version="category-cut-off", safety_net=SafetyNetPolicy(enabled=False))
    if thresholds is None:
        thresholds = candidate_cut_offs(policy)
    base = policy.model_dump()
    points = []
    for threshold in thresholds:
        variant = TriagePolicy(**{**base, "single_reading_max_category": threshold})
        metrics = _metrics(_cell_counts(scores, variant), variant.priority_min_category)
        double = float(metrics[f"cancers:{ReadingMode.DOUBLE.value}"])
        points.append(
            WorkloadPoint(
                single_reading_max_category=threshold,
                workload=float(metrics["workload"]),
                single_share=float(metrics[f"mode:{ReadingMode.SINGLE.value}"]),
                cancers_double_read_share=None if math.isnan(double) else double,
            )
        )
    return points


def plot_workload_curve(curve: Sequence[WorkloadPoint], path: Path) -> Path:
    """Draw workload and cancers double-read against the cut-off, as a PNG at ``path``.

    matplotlib is imported here, and only its Agg canvas (no pyplot, no global backend), so
    that triage runs without it and a plot never touches the caller's matplotlib state.

    Raises
    ------
    ConfigError
        If ``curve`` is empty or matplotlib is not installed.
    """
    if not curve:
        raise ConfigError("workload curve is empty: nothing to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "plotting the workload curve needs matplotlib: pip install 'mammotriage[train]'"
        ) from exc
    cut = [p.single_reading_max_category for p in curve]
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(
        cut,
        [p.workload for p in curve],
        marker="o",
        label="reading workload (vs double reading of all)",
    )
    shares = [(c, p.cancers_double_read_share) for c, p in zip(cut, curve, strict=True)]
    known = [(c, s) for c, s in shares if s is not None]
    if known:
        ax.plot(*zip(*known, strict=True), marker="s", label="cancers sent to double reading")
    ax.set_xlabel("single reading up to category")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(sorted(set(cut)))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Choosing the single-reading cut-off")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def load_sim_inputs(scores_jsonl: Path, truth_csv: Path) -> list[SimExam]:
    """Join exam scores (JSONL) with per-image ground truth (``truth.csv``) into exams.

    ``scores_jsonl``: one JSON object per line with at least ``exam_id``, ``score`` and
    ``category``; optionally ``findings`` (a list of ``{"score": ...}``) and ``partial``.
    ``truth_csv``: per-image rows with at least ``exam_id`` and ``cancer`` (0/1), as
    :mod:`mammotriage.synth` writes it; an exam is a cancer if any of its images is. Exams
    in the truth without a score are ignored (only scored exams can be triaged).

    Raises
    ------
    ConfigError
        For a missing or malformed file (naming the line and field), a truth file without
        the needed columns, or scored exams absent from the truth (saying how many).
    """
    truth = _read_truth(Path(truth_csv))
    exams = []
    for line_no, record in read_score_lines(Path(scores_jsonl)):
        where = f"{scores_jsonl}:{line_no}"
        exam_id = record.get("exam_id")
        if not isinstance(exam_id, str) or not exam_id:
            raise ConfigError(f"{where}: exam_id must be a non-empty string, got {exam_id!r}")
        missing = [k for k in ("score", "category") if k not in record]
        if missing:
            raise ConfigError(f"{where}: exam {exam_id} lacks {missing}")
        try:
            exams.append(
                SimExam(
                    exam_id=exam_id,
                    category=record["category"],
                    score=record["score"],
                    max_finding_score=max_finding_score(record.get("findings"), where),
                    cancer=truth.get(exam_id, False),
                    partial=record.get("partial", False),
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    unknown = [e.exam_id for e in exams if e.exam_id not in truth]
    if unknown:
        raise ConfigError(
            f"{len(unknown)} of {len(exams)} scored exams are not in {truth_csv}, "
            f"e.g. {unknown[:5]}"
        )
    _check_exams(exams)
    return exams


def read_score_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines scores file.

    Raises
    ------
    ConfigError
        If the file is missing or a line is not a JSON object.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ConfigError(f"scores file {path} not found") from exc
    records = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{line_no}: not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{line_no}: expected a JSON object per line")
        records.append((line_no, record))
    return records


def max_finding_score(findings: Any, where: str) -> float | None:
    """Highest ``score`` among a scores line's ``findings``; None when there are none."""
    if findings is None:
        return None
    if not isinstance(findings, list):
        raise ConfigError(f"{where}: findings must be a list, got {type(findings).__name__}")
    scores = []
    for i, finding in enumerate(findings):
        if not isinstance(finding, dict) or "score" not in finding:
            raise ConfigError(f"{where}: findings[{i}] must be an object with a score")
        scores.append(finding["score"])
    try:
        return max(scores) if scores else None
    except TypeError as exc:
        raise ConfigError(f"{where}: finding scores must be numbers, got {scores!r}") from exc


def _read_truth(path: Path) -> dict[str, bool]:
    """Exam id -> cancer (any image of the exam with cancer 1)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in ("exam_id", "cancer") if c not in columns]
            if missing:
                raise ConfigError(
                    f"truth file {path} lacks columns {missing} (has {list(columns)})"
                )
            truth: dict[str, bool] = {}
            for row_no, row in enumerate(reader, start=2):
                value = (row["cancer"] or "").strip().lower()
                if value not in _TRUE | _FALSE:
                    raise ConfigError(
                        f"{path}:{row_no}: cancer must be 0 or 1, got {row['cancer']!r}"
                    )
                exam_id = row["exam_id"]
                truth[exam_id] = truth.get(exam_id, False) or value in _TRUE
    except FileNotFoundError as exc:
        raise ConfigError(f"truth file {path} not found") from exc
    return truth
