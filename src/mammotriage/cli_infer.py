"""The site's commands: ``score``, ``calibrate``, ``simulate``.

Registered on :data:`mammotriage.cli.app`. Runs on an ONNX Runtime install: nothing here
imports torch, and the scoring modules are imported inside each command.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli import _fail, _progress, app, console
from mammotriage.cli_options import (
    BatchOption,
    ModelOption,
    ThreadsOption,
    WorkersOption,
    _model_path,
    _repository_root,
)
from mammotriage.errors import ConfigError, MammotriageError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from mammotriage.infer.scores import ExamScore

DEFAULT_POLICY = Path("configs") / "triage.yaml"


def _callback(progress: Progress) -> Callable[[str, int, int], None]:
    tasks: dict[str, TaskID] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total)
        progress.update(tasks[label], completed=done, total=total)

    return update


def _finding_text(exam: ExamScore) -> str:
    if not exam.findings:
        return "-"
    top = exam.findings[0]
    x0, y0, x1, y1 = (round(v) for v in top.box_original)
    return f"{top.laterality.value}-{top.view.value} {top.score} ({x0},{y0})-({x1},{y1})"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@app.command()
def score(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per exam per line.")
    ] = False,
    model: ModelOption = None,
    batch_size: BatchOption = 8,
    threads: ThreadsOption = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="ONNX Runtime execution provider, e.g. CPUExecutionProvider (repeat for a "
            "fallback order; default: the best available).",
        ),
    ] = None,
    decode_workers: WorkersOption = 2,
) -> None:
    """Score exams: calibrated category 1-10, breast scores and finding regions per exam."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file or folder: {missing[0]}")
        raise typer.Exit(code=2)
    from mammotriage.infer.engine import ScoringEngine

    exams: list[ExamScore] = []
    try:
        engine = ScoringEngine(
            _model_path(model),
            batch_size=batch_size,
            decode_workers=decode_workers,
            providers=provider or None,
            threads=threads,
        )
        with engine, _progress() as progress:
            for exam in engine.iter_paths(paths, progress=_callback(progress)):
                if as_json:
                    sys.stdout.write(exam.to_json() + "\n")
                    sys.stdout.flush()
                else:
                    exams.append(exam)
    except MammotriageError as exc:
        _fail(exc)
        return
    if as_json:
        return

    sidecar = engine.sidecar
    table = Table(title=f"{len(exams)} exams scored by {sidecar.name} ({sidecar.sha256[:12]})")
    for column in ("exam", "score", "category", "partial", "L", "R", "top finding", "unusable"):
        table.add_column(column, overflow="fold")
    for exam in exams:
        unusable = len(exam.unusable_images)
        table.add_row(
            f"…{exam.exam_id[-20:]}" if len(exam.exam_id) > 20 else exam.exam_id,
            _number(exam.score),
            "-" if exam.category is None else str(exam.category),
            ("yes: no " + " ".join(exam.missing)) if exam.partial else "no",
            _number(exam.breasts.get("L")),
            _number(exam.breasts.get("R")),
            _finding_text(exam),
            f"[red]{unusable}[/red]" if unusable else "0",
        )
    Console().print(table)
    console.print(f"calibration: {sidecar.calibration.reference}")


@app.command()
def calibrate(
    data: Annotated[
        Path, typer.Option("--data", help="The site's reference exams: a folder of DICOM.")
    ],
    model: ModelOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the new sidecar (default: replace the model's own)."),
    ] = None,
    population: Annotated[
        str | None,
        typer.Option(help="Words for the reference population, recorded in the sidecar."),
    ] = None,
    batch_size: BatchOption = 8,
    threads: ThreadsOption = None,
    decode_workers: WorkersOption = 2,
) -> None:
    """Set the category thresholds to the exam-score deciles of a reference population."""
    from mammotriage.infer.calibrate import calibrate as run_calibration
    from mammotriage.sidecar import sidecar_path

    try:
        model_path = _model_path(model)
        sidecar = run_calibration(
            model_path,
            data,
            out,
            population=population,
            batch_size=batch_size,
            decode_workers=decode_workers,
            threads=threads,
        )
    except MammotriageError as exc:
        _fail(exc)
        return
    cuts = ", ".join(f"{t:g}" for t in sidecar.calibration.thresholds)
    console.print(f"thresholds (categories 1|2|...|10): {cuts}")
    console.print(sidecar.calibration.reference)
    console.print(f"wrote {out or sidecar_path(model_path)}")


def _scored_lines_only(scores: Path, folder: Path) -> tuple[Path, int]:
    """A copy of ``scores`` with unscored exams (score null: no usable image) blanked out,
    keeping line numbers for error messages; triage cannot place an exam without a score."""
    try:
        lines = scores.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ConfigError(f"scores file {scores} not found") from exc
    kept, dropped = [], 0
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None  # reported, with its line number, by load_sim_inputs
        if isinstance(record, dict) and "score" in record and record["score"] is None:
            kept.append("")
            dropped += 1
        else:
            kept.append(line)
    copy = folder / scores.name
    copy.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return copy, dropped


def _estimate_text(estimate: dict[str, Any], fmt: str = "{:.0%}") -> str:
    value, ci = estimate.get("value"), estimate.get("ci95")
    if value is None:
        return "undefined"
    text = fmt.format(value)
    return text + (f" (95% CI {fmt.format(ci[0])} to {fmt.format(ci[1])})" if ci else "")


@app.command()
def simulate(
    scores: Annotated[
        Path, typer.Option("--scores", help="Exam scores, as `mammotriage score --json` writes.")
    ],
    truth: Annotated[
        Path, typer.Option("--truth", help="Per-image ground truth CSV (exam_id, cancer).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for simulation.json and the plot.")],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help=f"Triage policy (default: {DEFAULT_POLICY})."),
    ] = None,
    n_boot: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for the CIs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """What a triage policy does to reading workload and to the cancers, on scored exams."""
    from mammotriage.triage import (
        load_policy,
        load_sim_inputs,
        plot_workload_curve,
        workload_curve,
    )
    from mammotriage.triage import simulate as run_simulation

    if policy is None:
        policy = DEFAULT_POLICY if DEFAULT_POLICY.exists() else _repository_root() / DEFAULT_POLICY
    try:
        triage_policy = load_policy(policy)
        with tempfile.TemporaryDirectory() as tmp:
            scored, unscored = _scored_lines_only(scores, Path(tmp))
            exams = load_sim_inputs(scored, truth)
        result = run_simulation(exams, triage_policy, n_boot=n_boot, seed=seed)
        curve = workload_curve(exams, policy=triage_policy)
        result["unscored_exams_left_out"] = unscored
        result["workload_curve"] = [point.to_dict() for point in curve]
        out.mkdir(parents=True, exist_ok=True)
        (out / "simulation.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_workload_curve(curve, out / "workload_curve.png")
    except MammotriageError as exc:
        _fail(exc)
        return
    shares = result["mode_share"]
    console.print(
        f"{result['n_exams']} exams ({result['n_cancers']} with cancer), policy "
        f"{result['policy_version']}"
        + (f"; {unscored} unscored exams left out (read by people)" if unscored else "")
    )
    console.print(
        f"reading workload {_estimate_text(result['workload'], '{:.2f}')} of double reading; "
        + ", ".join(f"{mode} {_estimate_text(est)}" for mode, est in shares.items())
    )
    double = _estimate_text(result["cancers_double_read"]["share"])
    single = result["cancers_single_read"]["count"]
    console.print(
        f"cancers double-read {double}, single-read {single}, "
        f"ruled out {result['cancers_ruled_out']['count']}"
    )
    console.print(f"wrote {out / 'simulation.json'} and {out / 'workload_curve.png'}")
