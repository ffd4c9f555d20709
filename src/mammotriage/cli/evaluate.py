"""``mammotriage evaluate``: the go-live report from a backfill's scores and known outcomes.

A plain function; :mod:`mammotriage.cli.main` adds it to the app. pandas, pyarrow and
matplotlib (the ``backfill`` extra) are imported inside the command, so the rest of the
command line runs without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mammotriage import defaults
from mammotriage.cli.common import console, counted, fail
from mammotriage.errors import ConfigError, MammotriageError


def _estimate(estimate: dict[str, Any], fmt: str) -> str:
    if estimate.get("value") is None:
        return "undefined"
    ci = estimate.get("ci95")
    text = fmt.format(estimate["value"])
    return text + (f" (95% CI {fmt.format(ci[0])} to {fmt.format(ci[1])})" if ci else "")


def evaluate(
    scores: Annotated[
        Path, typer.Option("--scores", help="A `mammotriage backfill` output folder.")
    ],
    outcomes: Annotated[
        Path,
        typer.Option(
            "--outcomes",
            help="Outcomes CSV: exam_id or accession_number, screen_detected_cancer, "
            "interval_cancer, recall (0/1); see docs/evaluation.md.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Report folder: report.html, metrics.json, unmatched lists."),
    ],
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help=f"Triage policy to evaluate (default: the packaged {defaults.TRIAGE_POLICY}).",
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=1, help="Bootstrap resamples for the CIs.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    interval_months: Annotated[
        int,
        typer.Option(
            "--interval-months",
            min=1,
            help="Interval-cancer window of the outcomes (months), recorded in the report.",
        ),
    ] = 24,
    sidecar_out: Annotated[
        Path | None,
        typer.Option(
            "--sidecar-out",
            help="Also write site-calibrated sidecars here: site.json, and device-*.json for "
            "devices whose categories spread differently.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="With --sidecar-out: the .onnx that made the scores, whose sidecar is "
            f"recalibrated (default: the packaged {defaults.DEMONSTRATION_MODEL}).",
        ),
    ] = None,
) -> None:
    """The go-live report: AUC, sensitivity, workload, cancers per band, device drift."""
    try:
        from mammotriage.evaluation import evaluate as run_evaluation
    except ImportError as exc:  # pandas / pyarrow / matplotlib: the backfill extra
        fail(ConfigError(f"evaluate needs {exc.name}: pip install 'mammotriage[backfill]'"))
    try:
        if sidecar_out is not None and model is None:
            model = defaults.model_path()
        result = run_evaluation(
            scores,
            outcomes,
            out,
            policy=policy or defaults.policy_path(),
            n_boot=n_boot,
            seed=seed,
            interval_months=interval_months,
            sidecar_out=sidecar_out,
            model=model,
        )
    except MammotriageError as exc:
        fail(exc)
    m = result.metrics
    e = m["exams"]
    if m["notice"]:
        console.print(f"[bold red]{m['notice']}[/bold red]")
    console.print(
        f"{counted(e['total'], 'exam')} ({e['unscored']} not scored), {e['with_outcome']} with "
        f"an outcome; {counted(e['without_outcome'], 'exam')} without an outcome, "
        f"{counted(e['outcomes_without_exam'], 'outcome')} without an exam"
    )
    console.print(f"AUC {_estimate(m['auc'], '{:.3f}')}")
    console.print(
        f"policy {m['inputs']['policy_version']}: workload "
        f"{_estimate(m['workload'], '{:.2f}')} of double reading; cancers with one reader "
        f"{m['cancers_by_reading']['one_reader']['count']}, double-reading sensitivity "
        f"{_estimate(m['double_reading']['sensitivity'], '{:.0%}')}"
    )
    if m["sidecars"]:
        for written in m["sidecars"]["written"]:
            console.print(f"wrote {written['file']} ({written['why']})", soft_wrap=True)
    console.print(f"report: {result.report}", soft_wrap=True)
