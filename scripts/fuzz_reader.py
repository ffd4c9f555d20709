"""Fuzz the DICOM reader: mutate valid files, read each mutant in a child process with a time
and memory limit, count outcomes, keep every bad mutant.

    .venv/bin/python scripts/fuzz_reader.py --minutes 20 --jobs 2 [--seed 1] [--out DIR]
    .venv/bin/python scripts/fuzz_reader.py --count 500 --jobs 2
    .venv/bin/python scripts/fuzz_reader.py --replay DIR/findings.jsonl --out DIR2

A mutant is (seed file, mutation, rng seed). The seeds are written to ``OUT/seeds``; every
finding (escaped exception, crash, timeout, memory, non-finite pixels, long reason ...) is
written to ``OUT/findings/<n>-<outcome>.dcm`` with one JSON line in ``OUT/findings.jsonl``
saying how to rebuild it: ``mutate.build(seeds[seed], mutation, rng_seed)``. ``--replay``
rebuilds and rereads the mutants of such a file. A figure, not a test: the fixed-seed test is
``tests/unit/dicom/test_fuzz_reader.py``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import mutate  # noqa: E402
from fuzzing.runner import Result, Runner, Task, plan  # noqa: E402
from fuzzing.seeds import build_seeds, load_seeds  # noqa: E402


def _tasks(
    seeds: dict[str, bytes], source: Iterator[Task], deadline: float
) -> Iterator[tuple[Task, Callable[[], mutate.Mutant]]]:
    for task in source:
        if time.monotonic() > deadline:
            return
        yield task, functools.partial(mutate.build, seeds[task.seed], task.mutation, task.rng_seed)


def _replayed(path: Path) -> Iterator[Task]:
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            yield Task(rec["seed"], rec["mutation"], int(rec["rng_seed"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--count", type=int, default=None, help="stop after this many mutants")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="master seed of the mutant plan")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="CPU seconds per read (RLIMIT_CPU in the child)")
    parser.add_argument("--wall-timeout", type=float, default=None,
                        help="wall seconds before the child is killed (default 3x --timeout)")
    parser.add_argument("--heavy-weight", type=float, default=0.1,
                        help="how often the costly mutations (bombs) come, relative to others")
    parser.add_argument("--seeds", type=Path, default=None, help="reuse a seed folder")
    parser.add_argument("--replay", type=Path, default=None, help="a findings.jsonl to reread")
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="fuzz-reader-"))
    out.mkdir(parents=True, exist_ok=True)
    seed_dir = args.seeds or out / "seeds"
    started = time.monotonic()
    seeds = load_seeds(seed_dir) if args.seeds or (seed_dir / ".done").exists() else {}
    if not seeds:
        seeds = build_seeds(seed_dir)
        (seed_dir / ".done").write_text("")
    print(f"{len(seeds)} seeds in {seed_dir} ({time.monotonic() - started:.1f} s)", flush=True)

    # Mutants are written and read once each: on tmpfs where there is one.
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="fuzz-work-", dir=shm if shm.is_dir() else out))
    runner = Runner(work, jobs=args.jobs, timeout_s=args.timeout,
                    wall_timeout_s=args.wall_timeout)
    runner.warm(seed_dir / f"{name}.dcm" for name in seeds)
    if args.replay:
        source: Iterator[Task] = _replayed(args.replay)
    else:
        count = args.count if args.count is not None else 10**9
        source = plan(seeds, count, args.seed, heavy_weight=args.heavy_weight)
    minutes = args.minutes if args.minutes is not None else (1e9 if args.count else 5.0)
    begin = time.monotonic()
    deadline = begin + minutes * 60

    counts: collections.Counter[str] = collections.Counter()
    by_mutation: collections.Counter[tuple[str, str]] = collections.Counter()
    worst_time: Result | None = None
    worst_rss: Result | None = None
    findings = out / "findings"
    findings.mkdir(exist_ok=True)
    n = 0
    over_wall = 0
    with (out / "findings.jsonl").open("a") as log:
        for result in runner.run(_tasks(seeds, source, deadline)):
            n += 1
            counts[result.outcome] += 1
            over_wall += result.wall_s > args.timeout
            if result.outcome != "harness_error":
                if worst_time is None or result.wall_s > worst_time.wall_s:
                    worst_time = result
                if worst_rss is None or result.peak_rss_mb > worst_rss.peak_rss_mb:
                    worst_rss = result
            if result.bad:
                by_mutation[(result.outcome, result.task.mutation)] += 1
                name = f"{n:06d}-{result.outcome}.dcm"
                if result.mutant is not None:
                    result.mutant.write(findings / name)
                record = result.record() | {"file": f"findings/{name}"}
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(f"FINDING {result.outcome}: {result.task} {result.detail[:160]}", flush=True)
            if n % 500 == 0:
                rate = n / (time.monotonic() - begin)
                print(f"... {n} mutants, {rate:.1f}/s, {dict(counts)}", flush=True)
    elapsed = time.monotonic() - begin
    shutil.rmtree(work, ignore_errors=True)

    print(f"\n{n} mutants in {elapsed:.0f} s ({n / max(elapsed, 1e-9):.1f}/s), "
          f"jobs {args.jobs}, master seed {args.seed}")
    for outcome, number in counts.most_common():
        print(f"  {outcome:14s} {number}")
    if worst_time is not None:
        print(f"worst time: {worst_time.wall_s:.2f} s wall ({worst_time.cpu_s:.2f} s CPU) "
              f"{worst_time.task} {worst_time.note[:80]}")
    print(f"reads over {args.timeout:g} s wall (the machine's load counts too): {over_wall}")
    if worst_rss is not None:
        print(f"worst peak RSS: {worst_rss.peak_rss_mb:.0f} MB (parent baseline "
              f"{runner.baseline_rss_mb:.0f} MB) {worst_rss.task} {worst_rss.note[:80]}")
    for (outcome, mutation_name), number in sorted(by_mutation.items()):
        print(f"  finding {outcome} from {mutation_name}: {number}")
    print(f"findings: {out / 'findings.jsonl'}")
    return 1 if any(outcome not in ("usable", "unusable") for outcome in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
