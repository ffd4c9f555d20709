"""How long the monitor takes on a large store: writes N synthetic exam rows (no DICOM, no
scoring) into a fresh SQLite file (or an empty PostgreSQL database) and times the report.

Each exam gets four image rows (1 % unusable), a score by the packaged model, its
assignment as the packaged policy decides, and, for the exams whose week is over, two
readers' decisions (double reading) or one (single); 2 % of exams are partial; outcomes are
imported for half. Exams spread over 26 weeks, 3 sites and 12 devices; one device's scores
shift upward in the last 8 weeks, so that the report has a drift alert to raise.

    .venv/bin/python scripts/bench_monitor.py --exams 100000 [--database URL] [--repeat 3]

Prints the rows written, the time to write them and, per repeat, the report's time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from mammotriage import defaults
from mammotriage.monitor import Monitor, MonitorSettings
from mammotriage.sidecar import load_sidecar
from mammotriage.triage.policy import load_policy
from mammotriage.worklist import Store
from mammotriage.worklist.models import (
    AssignmentRow,
    DecisionRow,
    ExamRow,
    ImageRow,
    OutcomeRow,
    ReadingStatus,
    ScoreRow,
)

FIRST_WEEK = date(2026, 6, 1)
WEEKS = 26
NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
CHUNK = 20_000


def write(store: Store, exams: int, seed: int) -> None:
    sidecar = load_sidecar(defaults.model_path(), verify_hash=False)
    policy = load_policy(defaults.policy_path())
    thresholds = np.asarray(sidecar.calibration.thresholds)
    rng = np.random.default_rng(seed)
    # Scores drawn from the reference's own deciles (uniform category), one device shifted.
    device = rng.integers(0, 12, exams)
    site = device % 3
    day = rng.integers(0, 7 * WEEKS, exams)
    quantile = rng.uniform(0, 1, exams)
    drifting = (device == 5) & (day >= 7 * (WEEKS - 8))
    quantile = np.where(drifting, 1 - (1 - quantile) ** 3, quantile)
    cuts = np.r_[0.0, thresholds, 100.0]
    position = quantile * 10
    lower = np.floor(position).astype(int)
    score = cuts[lower] + (cuts[np.minimum(lower + 1, 10)] - cuts[lower]) * (position - lower)
    category = 1 + np.searchsorted(thresholds, score, side="left")
    partial = rng.uniform(0, 1, exams) < 0.02
    now = NOW
    with store.db.engine.begin() as conn:
        for start in range(0, exams, CHUNK):
            part = range(start, min(exams, start + CHUNK))
            conn.execute(
                insert(ExamRow),
                [
                    {
                        "id": i + 1,
                        "public_id": uuid.UUID(int=i + 1),
                        "study_instance_uid": f"2.25.{i + 1}",
                        "received_at": NOW,
                        "partial": bool(partial[i]),
                        "status": "scored",
                        "site": f"Site {int(site[i])}",
                        "manufacturer": f"VENDOR{int(device[i]) % 4}",
                        "device_model": f"Model {int(device[i]) % 4}",
                        "station_name": f"ROOM-{int(device[i])}",
                        "study_date": FIRST_WEEK + timedelta(days=int(day[i])),
                        "exam_date": FIRST_WEEK + timedelta(days=int(day[i])),
                        "image_count": 4,
                        "unusable_images": sum((i * 4 + k) % 100 == 0 for k in range(4)),
                    }
                    for i in part
                ],
            )
            conn.execute(
                insert(ImageRow),
                [
                    {
                        "exam_id": i + 1,
                        "position": k,
                        "laterality": "L" if k < 2 else "R",
                        "view": "CC" if k % 2 == 0 else "MLO",
                        "usable": (i * 4 + k) % 100 != 0,
                        "reason": None if (i * 4 + k) % 100 else "damaged DICOM header: x",
                    }
                    for i in part
                    for k in range(4)
                ],
            )
            conn.execute(
                insert(ScoreRow),
                [
                    {
                        "id": i + 1,
                        "exam_id": i + 1,
                        "model_sha256": sidecar.sha256,
                        "model_name": sidecar.name,
                        "score": float(score[i]),
                        "category": int(category[i]),
                        "breasts": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in part
                ],
            )
            single = policy.single_reading_max_category
            conn.execute(
                insert(AssignmentRow),
                [
                    {
                        "id": i + 1,
                        "exam_id": i + 1,
                        "score_id": i + 1,
                        "mode": "single" if category[i] <= single else "double",
                        "priority": bool(category[i] >= policy.priority_min_category),
                        "category": int(category[i]),
                        "rule": "bench",
                        "rule_code": "category-single"
                        if category[i] <= single
                        else "category-double",
                        "policy_version": policy.version,
                        "status": ReadingStatus.READ.value
                        if day[i] < 7 * (WEEKS - 1)
                        else ReadingStatus.UNREAD.value,
                    }
                    for i in part
                ],
            )
            decisions = []
            for i in part:
                if day[i] >= 7 * (WEEKS - 1):
                    continue
                recall_p = 0.01 if category[i] <= 5 else 0.04 if category[i] < 10 else 0.25
                readers = 1 if category[i] <= single else 2
                for r in range(readers):
                    decisions.append(
                        {
                            "assignment_id": i + 1,
                            "reader": f"r{r}",
                            "recall": bool(rng.uniform() < recall_p),
                            "consensus": False,
                            "decided_at": now,
                        }
                    )
            conn.execute(insert(DecisionRow), decisions)
            conn.execute(
                insert(OutcomeRow),
                [
                    {
                        "exam_id": i + 1,
                        "screen_detected_cancer": bool(category[i] == 10 and i % 40 == 0),
                        "interval_cancer": bool(category[i] <= 5 and i % 997 == 0),
                        "recall": None,
                        "imported_at": now,
                        "source_sha256": "0" * 64,
                        "line": i + 2,
                    }
                    for i in part
                    if i % 2 == 0
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=100_000)
    parser.add_argument("--database", help="an empty database URL (default: a temp SQLite file)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or str(Path(tmp) / "monitor-bench.sqlite")
        store = Store(url)
        store.migrate()
        started = time.perf_counter()
        write(store, args.exams, args.seed)
        with store.db.session() as session:
            rows = {
                model.__tablename__: session.execute(
                    select(model.id).order_by(model.id.desc()).limit(1)
                ).scalar()
                for model in (ExamRow, ImageRow, DecisionRow, OutcomeRow)
            }
        print(f"wrote {rows} (last ids) in {time.perf_counter() - started:.1f} s to {url}")
        settings = MonitorSettings(database=url, weeks=WEEKS)
        monitor = Monitor(store, settings)
        for n in range(args.repeat):
            started = time.perf_counter()
            run = monitor.run(NOW, since=FIRST_WEEK, until=NOW.date())
            took = time.perf_counter() - started
            report = run.report
            print(
                f"run {n + 1}: {took:.2f} s: {len(report.device_weeks)} device-weeks, "
                f"{sum(f.read for f in report.readers if f.band == 'all')} read exams, "
                f"{len(report.alerts)} alerts ({len(run.new_alerts)} new)"
            )
        for alert in report.alerts[:5]:
            print("  ", alert.message)
        store.close()


if __name__ == "__main__":
    main()
