"""Benchmark of the batch worker against a real Orthanc: studies per minute from arrival in
the PACS to the SR stored back, with 1 and 2 workers, and the latency from Orthanc's
StableStudy to the exam on the worklist.

    .venv/bin/python scripts/bench_worker.py [--exams 24] [--full-size] [--database URL]

Starts its own Orthanc (Debian ``orthanc``, the same launcher as the tests) on free loopback
ports, uploads a synthetic batch all at once (the way a modality's day arrives in bursts),
and runs ``mammotriage worker`` processes (source kind orthanc) until every study has its
SR. The time from upload to SR includes Orthanc's StableAge (2 s here): a study is not
scored before the PACS says it is complete. Two workers share one database: PostgreSQL when
``--database`` names one, otherwise one SQLite file (both workers on one machine).
A figure, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def _change_times(server) -> dict[str, float]:
    """StableStudy time (epoch seconds) per StudyInstanceUID, from Orthanc's change log."""
    times: dict[str, float] = {}
    since = 0
    while True:
        page = server.http.get("/changes", params={"since": since, "limit": 1000}).json()
        for change in page["Changes"]:
            if change["ChangeType"] == "StableStudy":
                study = server.http.get(f"/studies/{change['ID']}").json()
                uid = study["MainDicomTags"]["StudyInstanceUID"]
                stamp = datetime.strptime(change["Date"], "%Y%m%dT%H%M%S")
                times.setdefault(uid, stamp.replace(tzinfo=timezone.utc).timestamp())
        since = page["Last"]
        if page["Done"]:
            return times


def _log_events(path: Path, event: str) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("event") == event:
            out.append(entry)
    return out


def _stamp(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"]).timestamp()


def run(
    n_workers: int,
    exams: Path,
    database: str | None,
    work: Path,
    stable_age: int,
    trickle: float = 0.0,
) -> dict:
    from fixtures_orthanc import OrthancServer
    from mammotriage.worklist import Store

    server = OrthancServer(stable_age=stable_age)
    try:
        db = database or f"sqlite:///{work / f'bench-{n_workers}.sqlite'}"
        if database:
            store = Store(database)
            store.migrate()
            with store.db.engine.begin() as connection:
                for table in (
                    "findings",
                    "scores",
                    "assignments",
                    "decisions",
                    "images",
                    "exams",
                    "jobs",
                    "source_cursors",
                    "audit_log",
                ):
                    connection.exec_driver_sql(f"DELETE FROM {table}")
            store.close()
        config = {
            "database": db,
            "work_dir": str(work / f"work-{n_workers}"),
            "poll_seconds": 0.5,
            "allow_demonstration_model": True,  # the packaged model, on synthetic exams
            "threads": max(1, (os.cpu_count() or 2) // n_workers),
            "source": {
                "kind": "orthanc",
                "url": server.url,
                "username": server.username,
                "password": server.password,
            },
        }
        config_path = work / f"worker-{n_workers}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        logs = [work / f"worker-{n_workers}-{i}.log" for i in range(n_workers)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mammotriage",
                    "worker",
                    "--config",
                    str(config_path),
                    "--name",
                    f"bench-{i}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
                env=env,
                cwd=REPO,
            )
            for i, log in enumerate(logs)
        ]
        time.sleep(4)  # models loaded: measure scoring, not start-up
        files = sorted(p for p in exams.rglob("*.dcm"))
        studies = {p.parent for p in files}
        t0 = time.time()
        if trickle:
            for study in sorted(studies):
                server.upload_all(sorted(study.glob("*.dcm")))
                time.sleep(trickle)
        else:
            server.upload_all(files)
        uploaded = time.time()
        deadline = time.time() + 1800
        while time.time() < deadline:
            done = sum(len(_log_events(log, "report-stored")) for log in logs)
            if done >= len(studies):
                break
            time.sleep(0.5)
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        stored = [e for log in logs for e in _log_events(log, "exam-stored")]
        reports = [e for log in logs for e in _log_events(log, "report-stored")]
        stable = _change_times(server)
        store = Store(db)
        uid_of = {str(e.public_id): e.study_instance_uid for e in store.exams.all()}
        store.close()
        latency = [
            _stamp(e) - stable[uid_of[e["exam_id"]]]
            for e in stored
            if uid_of.get(e["exam_id"]) in stable
        ]
        last_report = max(_stamp(e) for e in reports)
        per_worker = [len(_log_events(log, "exam-stored")) for log in logs]
        return {
            "workers": n_workers,
            "studies": len(studies),
            "images": len(files),
            "upload_s": round(uploaded - t0, 1),
            "arrival_to_last_sr_s": round(last_report - t0, 1),
            "studies_per_min": round(len(studies) / ((last_report - t0) / 60), 1),
            "stable_to_worklist_median_s": round(statistics.median(latency), 1),
            "stable_to_worklist_max_s": round(max(latency), 1),
            "exams_per_worker": per_worker,
            "database": "postgresql" if database else "sqlite",
            "arrivals": f"one study every {trickle:g} s" if trickle else "all at once",
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exams", type=int, default=24)
    parser.add_argument("--full-size", action="store_true", help="full-size phantoms (slow)")
    parser.add_argument("--database", help="PostgreSQL URL shared by the workers")
    parser.add_argument("--stable-age", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument(
        "--trickle",
        type=float,
        default=0.0,
        help="upload one study every N seconds instead of all at once (latency when idle)",
    )
    args = parser.parse_args()

    from mammotriage.synth.batch import generate

    with tempfile.TemporaryDirectory(prefix="mt-bench-worker-") as tmp:
        work = Path(tmp)
        exams = work / "exams"
        started = time.time()
        generate(exams, exams=args.exams, seed=4242, small=not args.full_size, prevalence=0.2)
        print(
            f"generated {args.exams} exams in {time.time() - started:.0f} s "
            f"({'full-size' if args.full_size else 'small'} phantoms)",
            flush=True,
        )
        for n in (int(x) for x in args.workers.split(",")):
            result = run(n, exams, args.database, work, args.stable_age, args.trickle)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
