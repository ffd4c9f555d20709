"""The site's commands: ``score``, ``calibrate``, ``simulate``, ``queue``.

Plain functions; :mod:`mammotriage.cli.main` adds them to the app. Runs on an ONNX Runtime
install: nothing here imports torch, and the scoring modules are imported inside each
command.

``queue`` reads the JSON lines of ``mammotriage score --json``. Until the worklist store
exists, the exams of one file are taken as arriving together (now); an exam the model could
not score is never put on a single-reader queue: it is listed first, for human double
reading.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mammotriage import defaults
from mammotriage.cli.common import (
    BatchOption,
    ModelOption,
    ThreadsOption,
    WorkersOption,
    console,
    fail,
    model_path,
    progress,
    progress_callback,
)
from mammotriage.errors import ConfigError, MammotriageError

if TYPE_CHECKING:
    from mammotriage.infer.scores import ExamScore

POLICY_HELP = f"Triage policy (default: the packaged {defaults.TRIAGE_POLICY})."


def _finding_text(exam: ExamScore) -> str:
    if not exam.findings:
        return "-"
    top = exam.findings[0]
    x0, y0, x1, y1 = (round(v) for v in top.box_original)
    return f"{top.laterality.value}-{top.view.value} {top.score} ({x0},{y0})-({x1},{y1})"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


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
    from mammotriage.dicom.model import Laterality
    from mammotriage.infer.engine import ScoringEngine
    from mammotriage.sidecar import DEMONSTRATION_NOTICE

    exams: list[ExamScore] = []
    try:
        engine = ScoringEngine(
            model_path(model),
            batch_size=batch_size,
            decode_workers=decode_workers,
            providers=provider or None,
            threads=threads,
        )
        # A model trained on synthetic data says so on every line and under the table.
        notice = {"demonstration_model": engine.sidecar.demonstration} | (
            {"notice": DEMONSTRATION_NOTICE} if engine.sidecar.demonstration else {}
        )
        with engine, progress() as bar:
            for exam in engine.iter_paths(paths, progress=progress_callback(bar)):
                if as_json:
                    sys.stdout.write(json.dumps(json.loads(exam.to_json()) | notice) + "\n")
                    sys.stdout.flush()
                else:
                    exams.append(exam)
    except MammotriageError as exc:
        fail(exc)
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
            _number(exam.breasts.get(Laterality.LEFT)),
            _number(exam.breasts.get(Laterality.RIGHT)),
            _finding_text(exam),
            f"[red]{unusable}[/red]" if unusable else "0",
        )
    if sidecar.demonstration:
        table.caption = f"{sidecar.name}: {DEMONSTRATION_NOTICE} (trained on synthetic data)"
    Console().print(table)
    console.print(f"calibration: {sidecar.calibration.reference}")
    if sidecar.demonstration:
        console.print(f"[bold red]{DEMONSTRATION_NOTICE}[/bold red]: {sidecar.name} was trained "
                      "on synthetic phantoms; its scores say nothing about patients")


def calibrate(
    data: Annotated[
        Path, typer.Option("--data", help="The site's reference exams: a folder of DICOM.")
    ],
    model: ModelOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the new sidecar (default: replace the model's own, keeping "
            "the old one as NAME.json.TIME.bak; the packaged model's sidecar is never changed)."
        ),
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

    try:
        model_file = model_path(model)
        written = run_calibration(
            model_file,
            data,
            out,
            population=population,
            batch_size=batch_size,
            decode_workers=decode_workers,
            threads=threads,
        )
    except MammotriageError as exc:
        fail(exc)
        return
    sidecar = written.sidecar
    cuts = ", ".join(f"{t:g}" for t in sidecar.calibration.thresholds)
    console.print(f"thresholds (categories 1|2|...|10): {cuts}")
    console.print(sidecar.calibration.reference)
    # paths whole on one line, whatever the terminal's width: scripts and people copy them
    console.print(f"wrote {written.path}", soft_wrap=True)
    if written.backup is not None:
        console.print(f"the sidecar it replaced is kept as {written.backup}", soft_wrap=True)


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
        typer.Option("--policy", help=POLICY_HELP),
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

    try:
        triage_policy = load_policy(policy or defaults.policy_path())
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
        fail(exc)
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


def _read_scores(path: Path) -> list[dict[str, Any]]:
    """The exam lines of a `mammotriage score --json` file (same reader as `simulate`)."""
    from mammotriage.triage.simulate import read_score_lines

    exams = []
    for number, record in read_score_lines(path):
        if "exam_id" not in record:
            raise ConfigError(
                f"{path}:{number}: no exam_id (expected `mammotriage score --json` output)"
            )
        exams.append(record)
    return exams


def queue(
    scores: Annotated[Path, typer.Argument(help="JSON lines from `mammotriage score --json`.")],
    policy: Annotated[Path | None, typer.Option(help=POLICY_HELP)] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per queued exam.")
    ] = False,
) -> None:
    """Decide single / double reading and priority per exam and print the reading queue in order."""
    from mammotriage.triage import ExamForTriage, WorklistItem, decide, load_policy, order_worklist
    from mammotriage.triage.simulate import max_finding_score

    try:
        rules = load_policy(policy or defaults.policy_path())
        records = _read_scores(scores)
    except FileNotFoundError as exc:
        fail(ConfigError(f"{exc.filename} not found"))
        return
    except MammotriageError as exc:
        fail(exc)
        return
    now = datetime.now(timezone.utc)
    unscored = [r for r in records if r.get("category") is None]
    items = []
    for record in records:
        if record.get("category") is None:
            continue
        top_finding = max_finding_score(record.get("findings"), f"{scores}: {record['exam_id']}")
        exam = ExamForTriage(
            exam_id=record["exam_id"],
            score=float(record["score"]),
            category=int(record["category"]),
            max_finding_score=None if top_finding is None else float(top_finding),
            partial=bool(record.get("partial")),
            received_at=now,
        )
        items.append(WorklistItem(decide(rules, exam), exam))
    ordered = order_worklist(items, now, rules)

    if as_json:
        for record in unscored:
            print(
                json.dumps(
                    {
                        "exam_id": record["exam_id"],
                        "mode": "double",
                        "priority": False,
                        "rule": "not scored by the model: human double reading",
                        "policy_version": rules.version,
                    }
                )
            )
        for item in ordered:
            d = item.decision
            print(
                json.dumps(
                    {
                        "exam_id": d.exam_id,
                        "mode": d.mode.value,
                        "priority": d.priority,
                        "category": item.exam.category,
                        "score": item.exam.score,
                        "rule": d.rule,
                        "policy_version": d.policy_version,
                    }
                )
            )
        return
    table = Table(title=f"reading queue ({rules.version}): {len(records)} exams, in reading order")
    for column in ("#", "exam", "category", "score", "reading", "priority", "rule"):
        table.add_column(column, overflow="fold")
    position = 0
    for record in unscored:
        position += 1
        table.add_row(
            str(position),
            record["exam_id"][-20:],
            "-",
            "-",
            "double",
            "",
            "not scored by the model: human double reading",
        )
    for item in ordered:
        position += 1
        d = item.decision
        table.add_row(
            str(position),
            d.exam_id[-20:],
            str(item.exam.category),
            f"{item.exam.score:.1f}",
            d.mode.value,
            "yes" if d.priority else "",
            d.rule,
        )
    Console().print(table)
    modes: dict[str, int] = {}
    for item in ordered:
        modes[item.decision.mode.value] = modes.get(item.decision.mode.value, 0) + 1
    reads = sum({"single": 1, "double": 2}.get(m, 0) * n for m, n in modes.items()) + 2 * len(
        unscored
    )
    console.print(
        f"reading modes: {modes}, not scored: {len(unscored)}; reads {reads} of {2 * len(records)} "
        f"under double reading of every exam ({reads / max(1, 2 * len(records)):.0%})"
    )
