"""Benchmark: the same full-size vendor-mix exams through `score` and through `backfill`.

    .venv/bin/python scripts/bench_backfill.py [--exams 16] [--seed 5511] [--data DIR]

Writes ``--exams`` full-size synthetic exams (the six-vendor mix; or scores ``--data``),
then, in this one process and on the same files:

- `score`: the scoring engine as `mammotriage score` runs it (2 decode threads), timed from
  a loaded model to the last exam (header reading included);
- `backfill` with an embedded Ray (started and stopped by each run), with 1 and 2 scoring
  actors: Ray's start, the index (headers), the scoring pipeline, and the whole command.

Prints exams/s for each, the start-up time, and the ratio of backfill to score: once
started (index + scoring, Ray's start left out) and scoring alone (the pipeline, the
actors' start included); the peak RSS per Ray worker process and the object store's peak
use (/dev/shm, sampled every 0.5 s). A figure, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from mammotriage import defaults


class Sampler:
    """Peak RSS per Ray worker process (by its process title) and the object store's peak
    use, sampled in a thread while a backfill runs."""

    def __init__(self) -> None:
        self.rss: dict[str, float] = {}
        self.store_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for proc in psutil.process_iter(["cmdline", "memory_info"]):
                cmd = " ".join(proc.info["cmdline"] or [])
                info = proc.info["memory_info"]
                if not cmd.startswith("ray::") or info is None:
                    continue
                title = cmd.split()[0]
                self.rss[title] = max(self.rss.get(title, 0.0), info.rss / 2**20)
            self.store_mb = max(self.store_mb, _object_store_mb())


def _object_store_mb() -> float:
    """Ray's object store lives in /dev/shm here: the pages it holds are what is in use
    (an approximation: anything else in /dev/shm counts too)."""
    try:
        return shutil.disk_usage("/dev/shm").used / 2**20
    except OSError:
        return 0.0


def bench_score(data: Path, model: Path) -> dict:
    from mammotriage.infer.engine import ScoringEngine

    started = time.perf_counter()
    with ScoringEngine(model, decode_workers=2) as engine:
        loaded = time.perf_counter()
        exams = engine.score_paths([data])
        done = time.perf_counter()
    return {
        "exams": len(exams),
        "startup_s": round(loaded - started, 2),
        "run_s": round(done - loaded, 2),
        "exams_per_s": round(len(exams) / (done - loaded), 3),
    }


def bench_backfill(data: Path, model: Path, workers: int, work: Path) -> dict:
    from mammotriage.backfill.run import BackfillOptions, run_backfill

    out = work / f"backfill-{workers}"
    baseline = _object_store_mb()
    with Sampler() as sampler:
        summary = run_backfill(
            [data],
            out,
            BackfillOptions(model=model, workers=workers, shard_size=8),
        )

    started = summary.index_s + summary.scoring_s
    return {
        "workers": workers,
        "exams": summary.exams,
        "startup_s": summary.startup_s,
        "index_s": summary.index_s,
        "scoring_s": summary.scoring_s,
        "wall_s": summary.wall_s,
        "exams_per_s_once_started": round(summary.exams / started, 3),
        "exams_per_s_scoring_only": round(summary.exams / summary.scoring_s, 3),
        "exams_per_s_whole_command": round(summary.exams / summary.wall_s, 3),
        "peak_rss_mb_per_process": {k: round(v) for k, v in sorted(sampler.rss.items())},
        "object_store_peak_mb": round(max(0.0, sampler.store_mb - baseline)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5511)
    parser.add_argument("--data", type=Path, help="score these files instead of new exams")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    model = defaults.model_path()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            from mammotriage.synth.batch import generate

            data = work / "exams"
            print(f"writing {args.exams} full-size vendor-mix exams (seed {args.seed}) ...")
            generate(data, exams=args.exams, seed=args.seed, small=False)
        data = data.absolute()
        report: dict = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
            "python": sys.version.split()[0],
            "score": bench_score(data, model),
        }
        print("score:", json.dumps(report["score"]))
        for workers in args.workers:
            result = bench_backfill(data, model, workers, work)
            for key in ("once_started", "scoring_only"):
                result[f"ratio_to_score_{key}"] = round(
                    result[f"exams_per_s_{key}"] / report["score"]["exams_per_s"], 2
                )
            report[f"backfill_{workers}_workers"] = result
            print(f"backfill, {workers} workers:", json.dumps(result))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
