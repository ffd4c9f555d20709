"""``mammotriage queue``: scored exams -> reading decisions -> the ordered reading queue.

Reads the JSON lines of ``mammotriage score --json``. Until the worklist store exists, the
exams of one file are taken as arriving together (now); an exam the model could not score
is never put on a single-reader queue: it is listed first, for human double reading.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli import _fail, app, console
from mammotriage.errors import ConfigError, MammotriageError

DEFAULT_POLICY = Path("configs/triage.yaml")


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


@app.command()
def queue(
    scores: Annotated[Path, typer.Argument(help="JSON lines from `mammotriage score --json`.")],
    policy: Annotated[Path, typer.Option(help="Triage policy (YAML).")] = DEFAULT_POLICY,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per queued exam.")
    ] = False,
) -> None:
    """Decide single / double reading and priority per exam and print the reading queue in order."""
    from mammotriage.triage import ExamForTriage, WorklistItem, decide, load_policy, order_worklist
    from mammotriage.triage.simulate import max_finding_score

    try:
        rules = load_policy(policy)
        records = _read_scores(scores)
    except FileNotFoundError as exc:
        _fail(ConfigError(f"{exc.filename} not found"))
        return
    except MammotriageError as exc:
        _fail(exc)
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
