"""Benchmark of the worker against the engine on the same files: ``mammotriage score``, a
warm in-process :class:`~mammotriage.infer.engine.ScoringEngine`, ``mammotriage worker
--once`` on a folder, and ``mammotriage worker`` against a real Orthanc, with throughput,
the worker's overhead as a ratio to the engine, and the peak memory of each run.

    .venv/bin/python scripts/bench_worker.py [--exams 8] [--full-size] [--seed 5511]
        [--data DIR] [--executor default,thread,process] [--decode-workers 2]
        [--threads N] [--parts engine,folder,orthanc] [--workers 1] [--json FILE]

Why each figure is there:

- **engine, score CLI**: the wall time of ``mammotriage score --json FILES``, what a user
  waits for (process start and model load included). ``score`` has no executor option, so
  this figure is always the thread pool.
- **engine, warm**: ``ScoringEngine.score_paths`` on every file, in a child process, after
  the model is loaded and one exam is scored to warm it (decode pool started, ONNX Runtime's
  first run done). This is "the engine" the ratios divide by: the work itself, no start.
- **worker, folder**: ``mammotriage worker --once`` on a folder source (quiet period 0,
  SQLite in a temp folder, SRs to a folder, thumbnails on as in a default install). Raw
  wall; steady = first ``arrived`` log event to the last ``report-stored`` (the jobs, not
  the start); and, as a cross-check that does not read the logs, the wall minus the wall of
  the same worker on an empty folder (its start and stop alone).
- **worker, Orthanc**: starts its own Orthanc (Debian ``orthanc``, the tests' launcher) on
  free loopback ports, starts the worker(s), waits 4 s for the model to load, uploads every
  study at once (a modality's day arrives in bursts) and waits for every SR. Upload start
  to last SR (includes the upload and Orthanc's StableAge, 2 s here: a study is not scored
  before the PACS says it is complete), first StableStudy to last SR, and steady (first
  ``arrived`` to last ``report-stored``). Two or more ``--workers`` share one database:
  PostgreSQL when ``--database`` names one, otherwise one SQLite file.

Peak memory is sampled with psutil every 0.1 s: the process alone and its tree (the process
plus every descendant: decode-pool processes and their forkserver). The tree figure sums
RSS, so pages shared between a parent and its forked children count once per process.

``--executor`` sets the decode pool for both the engine and the workers: ``thread``,
``process`` (the worker's ``isolate_decoding: true``, which also gives each decode the
worker's 120 s budget; the warm engine gets the same budget), or ``default`` (what each uses
when nothing is set: the engine threads, the worker processes). A comma list runs each in
turn on the same files. A figure, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

EXECUTORS = ("default", "thread", "process")
PARTS = ("engine", "folder", "orthanc")
#: What the worker gives each isolated decode (WorkerSettings.decode_timeout_seconds).
WORKER_DECODE_TIMEOUT = 120.0
ENGINE_CHILD = "_engine-child"


# --- measuring ------------------------------------------------------------------------------


class PeakRss:
    """Samples a process and its descendants every ``interval`` seconds until stopped; the
    peak of the process alone and of the tree's sum, in MiB."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.main_mb = 0.0
        self.tree_mb = 0.0
        self.most_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                main = root.memory_info().rss
                children = root.children(recursive=True)
            except psutil.Error:
                return  # the process ended
            tree = main
            for child in children:
                with contextlib.suppress(psutil.Error):  # ended between listing and reading
                    tree += child.memory_info().rss
            self.main_mb = max(self.main_mb, main / 2**20)
            self.tree_mb = max(self.tree_mb, tree / 2**20)
            self.most_processes = max(self.most_processes, 1 + len(children))
            self._stop.wait(self.interval)

    def figures(self) -> dict[str, float | int]:
        return {
            "peak_rss_tree_mb": round(self.tree_mb),
            "peak_rss_main_mb": round(self.main_mb),
            "most_processes": self.most_processes,
        }


@dataclass
class Figure:
    """One measured run: what was timed, over how many exams, and its peak memory."""

    executor: str
    what: str
    seconds: float
    exams: int
    note: str = ""
    rss: dict[str, float | int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exams_per_s(self) -> float:
        return self.exams / self.seconds if self.seconds > 0 else float("nan")


def _run_sampled(
    command: Sequence[str], *, stdout: Any, stderr: Any, env: dict[str, str]
) -> tuple[int, float, PeakRss]:
    """Run ``command`` to its end; exit status, wall seconds and its peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    with PeakRss(process.pid) as rss:
        code = process.wait()
    return code, time.perf_counter() - started, rss


def _child_env() -> dict[str, str]:
    # ONNX Runtime's intra-op threads are set by --threads; OpenMP inside codecs stays at one.
    return dict(os.environ, OMP_NUM_THREADS="1")


def _log_events(path: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            out.append(entry)
    return out


def _stamp(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["time"]).timestamp()


def _steady_span(logs: Sequence[Path]) -> tuple[float | None, int]:
    """Seconds from the first ``arrived`` to the last ``report-stored`` (``exam-stored``
    when no SR was written) over ``logs``, and how many exams were stored."""
    arrived = [_stamp(e) for log in logs for e in _log_events(log, "arrived")]
    stored = [_stamp(e) for log in logs for e in _log_events(log, "exam-stored")]
    reports = [_stamp(e) for log in logs for e in _log_events(log, "report-stored")]
    ends = reports or stored
    if not arrived or not ends:
        return None, len(stored)
    return max(ends) - min(arrived), len(stored)


# --- data -----------------------------------------------------------------------------------


def exams_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """The synthetic exams: from the ``--data`` cache when generated there before, else
    generated (into the cache, or into ``scratch``). ``truth.csv`` is written last, so a
    folder with it is complete."""
    name = f"exams-{args.exams}-seed{args.seed}-{'full' if args.full_size else 'small'}"
    folder = (args.data or scratch) / name
    if (folder / "truth.csv").exists():
        print(f"reusing {folder}", flush=True)
        return folder
    from mammotriage.synth.batch import generate

    shutil.rmtree(folder, ignore_errors=True)
    started = time.time()
    generate(folder, exams=args.exams, seed=args.seed, small=not args.full_size, prevalence=0.2)
    print(
        f"generated {args.exams} exams in {time.time() - started:.0f} s into {folder} "
        f"({'full-size' if args.full_size else 'small'} phantoms, seed {args.seed})",
        flush=True,
    )
    return folder


def describe(files: Sequence[Path]) -> dict[str, dict[str, int]]:
    """Transfer syntaxes and manufacturers present: the vendor mix, not only JPEG 2000."""
    import pydicom

    syntaxes: Counter[str] = Counter()
    vendors: Counter[str] = Counter()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        syntaxes[ds.file_meta.TransferSyntaxUID.name] += 1
        vendors[str(ds.get("Manufacturer", "?"))] += 1
    return {"transfer_syntaxes": dict(syntaxes), "manufacturers": dict(vendors)}


def _link_tree(exam_dirs: Sequence[Path], target: Path) -> None:
    """The exam folders under ``target`` as hard links (a copy where links cannot be made)."""
    for exam in exam_dirs:
        (target / exam.name).mkdir(parents=True)
        for path in exam.iterdir():
            try:
                os.link(path, target / exam.name / path.name)
            except OSError:
                shutil.copy2(path, target / exam.name / path.name)


# --- engine ---------------------------------------------------------------------------------


def engine_child(argv: Sequence[str]) -> None:
    """In a child process: load the engine, warm it on one exam, then time every file."""
    options = json.loads(argv[0])
    from mammotriage import defaults
    from mammotriage.infer.engine import ScoringEngine

    files = [Path(p) for p in options["files"]]
    warm = [Path(p) for p in options["warm"]]
    started = time.perf_counter()
    engine = ScoringEngine(
        defaults.model_path(),
        decode_workers=options["decode_workers"],
        threads=options["threads"],
        executor=options["executor"],
        decode_timeout=WORKER_DECODE_TIMEOUT if options["executor"] == "process" else None,
    )
    with engine:
        loaded = time.perf_counter()
        engine.score_paths(warm)
        warmed = time.perf_counter()
        scores = engine.score_paths(files)
        done = time.perf_counter()
    print(
        json.dumps(
            {
                "load_s": loaded - started,
                "warm_up_s": warmed - loaded,
                "score_s": done - warmed,
                "exams": len(scores),
                "unscored": sum(1 for s in scores if s.score is None),
            }
        ),
        flush=True,
    )


def bench_engine(
    executor: str,
    exam_dirs: Sequence[Path],
    files: Sequence[Path],
    args: argparse.Namespace,
    work: Path,
) -> list[Figure]:
    env = _child_env()
    cli_out = work / f"score-{executor}.jsonl"
    command = [
        sys.executable,
        "-m",
        "mammotriage",
        "score",
        "--json",
        "--decode-workers",
        str(args.decode_workers),
        "--threads",
        str(args.threads),
        *map(str, exam_dirs),
    ]
    with cli_out.open("w") as out, (work / f"score-{executor}.err").open("w") as err:
        code, wall, rss = _run_sampled(command, stdout=out, stderr=err, env=env)
    scored = sum(1 for line in cli_out.read_text().splitlines() if line.startswith("{"))
    cli = Figure(
        executor,
        "engine: score CLI wall",
        wall,
        scored,
        note="thread pool (score has no --executor)" + (f"; exit {code}" if code else ""),
        rss=rss.figures(),
        extra={"command": " ".join(command[1:3] + command[3:9]) + " DIRS"},
    )

    pool = "thread" if executor == "default" else executor
    options = {
        "files": [str(p) for p in files],
        "warm": [str(p) for p in sorted(exam_dirs[0].glob("*.dcm"))],
        "decode_workers": args.decode_workers,
        "threads": args.threads,
        "executor": pool,
    }
    child = [sys.executable, str(Path(__file__).resolve()), ENGINE_CHILD, json.dumps(options)]
    child_out = work / f"engine-{executor}.json"
    with child_out.open("w") as out, (work / f"engine-{executor}.err").open("w") as err:
        code, wall, rss = _run_sampled(child, stdout=out, stderr=err, env=env)
    if code:
        raise SystemExit(f"warm engine failed (exit {code}): see {work / f'engine-{executor}.err'}")
    timing = json.loads(child_out.read_text().splitlines()[-1])
    warm = Figure(
        executor,
        "engine: warm score_paths",
        timing["score_s"],
        timing["exams"],
        note=f"{pool} pool; load {timing['load_s']:.1f} s, "
        f"warm-up exam {timing['warm_up_s']:.1f} s",
        rss=rss.figures(),
        extra=timing | {"process_wall_s": wall},
    )
    return [cli, warm]


# --- worker on a folder ---------------------------------------------------------------------


def _worker_config(
    executor: str,
    args: argparse.Namespace,
    root: Path,
    source: dict[str, Any],
    database: str,
    threads: int,
) -> Path:
    """A worker config in ``root``: SQLite (or ``database``), scratch, thumbnails and the
    decode pool as ``executor`` says; the rest as a default install has it."""
    config: dict[str, Any] = {
        "name": "bench",
        "database": database,
        "work_dir": str(root / "work"),
        "thumbnails_dir": str(root / "thumbnails"),  # on, as in configs/worker.yaml
        "poll_seconds": 0.5,
        "allow_demonstration_model": True,  # the packaged model, on synthetic exams
        "threads": threads,
        "decode_workers": args.decode_workers,
        "log_format": "json",
        "source": source,
    }
    if executor != "default":
        config["isolate_decoding"] = executor == "process"
    path = root / "worker.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _worker_once(config: Path, log: Path) -> tuple[int, float, PeakRss]:
    command = [sys.executable, "-m", "mammotriage", "worker", "--once", "--config", str(config)]
    with log.open("w") as err:
        return _run_sampled(command, stdout=subprocess.DEVNULL, stderr=err, env=_child_env())


def bench_folder(
    executor: str, exam_dirs: Sequence[Path], args: argparse.Namespace, work: Path
) -> list[Figure]:
    figures = []
    walls = {}
    for label, dirs in (("empty", ()), ("exams", exam_dirs)):
        root = work / f"folder-{executor}-{label}"
        incoming = root / "incoming"
        incoming.mkdir(parents=True)
        _link_tree(dirs, incoming)
        source = {
            "kind": "folder",
            "path": str(incoming),
            "quiet_seconds": 0.0,
            "reports": str(root / "reports"),
        }
        config = _worker_config(
            executor, args, root, source, f"sqlite:///{root / 'worklist.sqlite'}", args.threads
        )
        log = root / "worker.log"
        code, wall, rss = _worker_once(config, log)
        walls[label] = wall
        if label == "empty":
            continue
        steady, stored = _steady_span([log])
        status = f"; exit {code} (see {log})" if code else ""
        figures.append(
            Figure(
                executor,
                "worker folder: --once wall",
                wall,
                stored,
                note=f"start+stop alone (empty folder) {walls['empty']:.1f} s{status}",
                rss=rss.figures(),
            )
        )
        figures.append(
            Figure(executor, "worker folder: wall - empty wall", wall - walls["empty"], stored)
        )
        if steady is not None:
            figures.append(
                Figure(
                    executor,
                    "worker folder: steady",
                    steady,
                    stored,
                    note="first arrived -> last report-stored",
                )
            )
    return figures


# --- worker against Orthanc -----------------------------------------------------------------


def _change_times(server: Any) -> dict[str, float]:
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


def _clear(database: str) -> None:
    """Empty a shared PostgreSQL worklist so that every study is new to it."""
    from mammotriage.worklist import Store

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


def bench_orthanc(
    executor: str, n_workers: int, files: Sequence[Path], args: argparse.Namespace, work: Path
) -> list[Figure]:
    from fixtures_orthanc import OrthancServer
    from mammotriage.worklist import Store

    root = work / f"orthanc-{executor}-{n_workers}"
    root.mkdir()
    server = OrthancServer(stable_age=args.stable_age)
    try:
        database = args.database or f"sqlite:///{root / 'worklist.sqlite'}"
        if args.database:
            _clear(args.database)
        source = {
            "kind": "orthanc",
            "url": server.url,
            "username": server.username,
            "password": server.password,
        }
        threads = max(1, args.threads // n_workers)
        config = _worker_config(executor, args, root, source, database, threads)
        logs = [root / f"worker-{i}.log" for i in range(n_workers)]
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mammotriage",
                    "worker",
                    "--config",
                    str(config),
                    "--name",
                    f"bench-{i}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
                env=_child_env(),
                cwd=REPO,
            )
            for i, log in enumerate(logs)
        ]
        samplers = [PeakRss(p.pid).__enter__() for p in processes]
        time.sleep(4)  # models loaded: measure scoring, not start-up
        studies = {p.parent for p in files}
        t0 = time.time()
        if args.trickle:
            for study in sorted(studies):
                server.upload_all(sorted(study.glob("*.dcm")))
                time.sleep(args.trickle)
        else:
            server.upload_all(list(files))
        uploaded = time.time()
        deadline = time.time() + 1800
        while time.time() < deadline:
            if sum(len(_log_events(log, "report-stored")) for log in logs) >= len(studies):
                break
            if any(p.poll() is not None for p in processes):
                break  # a worker died: its log says why
            time.sleep(0.5)
        for process in processes:
            process.terminate()
        codes = [process.wait(timeout=60) for process in processes]
        for sampler in samplers:
            sampler.__exit__()
        stored = [e for log in logs for e in _log_events(log, "exam-stored")]
        reports = [e for log in logs for e in _log_events(log, "report-stored")]
        if not reports:
            raise SystemExit(f"no SR stored by the Orthanc worker (exit {codes}): see {logs[0]}")
        stable = _change_times(server)
        store = Store(database)
        uid_of = {str(e.public_id): e.study_instance_uid for e in store.exams.all()}
        store.close()
        latency = [
            _stamp(e) - stable[uid_of[e["exam_id"]]]
            for e in stored
            if uid_of.get(e["exam_id"]) in stable
        ]
        last_report = max(_stamp(e) for e in reports)
        steady, _ = _steady_span(logs)
        rss: dict[str, float | int] = {
            "peak_rss_tree_mb": round(sum(s.tree_mb for s in samplers)),
            "peak_rss_main_mb": round(max(s.main_mb for s in samplers)),
            "most_processes": sum(s.most_processes for s in samplers),
        }
        label = f"worker orthanc x{n_workers}"
        extra = {
            "workers": n_workers,
            "threads_per_worker": threads,
            "upload_s": round(uploaded - t0, 1),
            "stable_to_worklist_median_s": round(statistics.median(latency), 1)
            if latency
            else None,
            "stable_to_worklist_max_s": round(max(latency), 1) if latency else None,
            "exams_per_worker": [len(_log_events(log, "exam-stored")) for log in logs],
            "database": "postgresql" if args.database else "sqlite",
            "arrivals": f"one study every {args.trickle:g} s" if args.trickle else "all at once",
        }
        n = len(reports)
        figures = [
            Figure(
                executor,
                f"{label}: upload start -> last SR",
                last_report - t0,
                n,
                note=f"upload {uploaded - t0:.1f} s, StableAge {args.stable_age} s",
                rss=rss,
                extra=extra,
            )
        ]
        if stable:
            # Orthanc stamps its changes to the second.
            figures.append(
                Figure(
                    executor,
                    f"{label}: first StableStudy -> last SR",
                    last_report - min(stable.values()),
                    n,
                    note="StableStudy to 1 s",
                )
            )
        if steady is not None:
            figures.append(
                Figure(
                    executor,
                    f"{label}: steady",
                    steady,
                    n,
                    note="first arrived -> last report-stored",
                )
            )
        return figures
    finally:
        server.stop()


# --- report ---------------------------------------------------------------------------------


def ratios(figures: Sequence[Figure]) -> None:
    """Each worker figure's time per exam over the warm engine's, same executor."""
    engine = {f.executor: f for f in figures if f.what == "engine: warm score_paths"}
    cli = {f.executor: f for f in figures if f.what == "engine: score CLI wall"}
    for figure in figures:
        if not figure.what.startswith("worker") or not figure.exams:
            continue
        per_exam = figure.seconds / figure.exams
        base = engine.get(figure.executor)
        if base is not None and base.exams:
            figure.extra["x_engine"] = round(per_exam / (base.seconds / base.exams), 2)
        if figure.what.endswith("--once wall") and figure.executor in cli:
            raw = cli[figure.executor]
            if raw.exams:
                x = round(per_exam / (raw.seconds / raw.exams), 2)
                figure.extra["x_score_cli_wall"] = x
                figure.note = f"{x:.2f}x score CLI wall; {figure.note}"


def print_table(figures: Sequence[Figure]) -> None:
    header = (
        f"{'executor':9} {'what':46} {'s':>7} {'exams':>5} {'exams/s':>8} {'/min':>6} "
        f"{'x eng':>6} {'tree MB':>8} {'main MB':>8} {'procs':>5}  note"
    )
    print("\n" + header)
    print("-" * len(header))
    for f in figures:
        x = f.extra.get("x_engine")
        print(
            f"{f.executor:9} {f.what:46} {f.seconds:7.2f} {f.exams:5d} {f.exams_per_s:8.3f} "
            f"{60 * f.exams_per_s:6.1f} {'' if x is None else f'{x:.2f}':>6} "
            f"{f.rss.get('peak_rss_tree_mb', ''):>8} {f.rss.get('peak_rss_main_mb', ''):>8} "
            f"{f.rss.get('most_processes', ''):>5}  {f.note}"
        )
    print(
        "\nx eng: seconds per exam over the warm engine's (same executor); the engine figure "
        "is the warm in-process ScoringEngine.score_paths. MB: peak RSS, tree = process and "
        "descendants summed. default: each as installed (engine threads, worker processes), "
        "so its x eng compares a process-pool worker with a thread-pool engine.",
        flush=True,
    )


def _load() -> str:
    """The machine's load and what else runs now: timings under load are noisy."""
    one, five, _ = os.getloadavg()
    me = psutil.Process()
    mine = {me.pid} | {p.pid for p in me.children(recursive=True) + me.parents()}
    listed = subprocess.run(
        ["pgrep", "-fa", "pytest|bench_|mammotriage bench"], capture_output=True, text=True
    ).stdout.splitlines()
    others = [line[:80] for line in listed if int(line.split()[0]) not in mine]
    return f"load {one:.2f}/{five:.2f} (1/5 min); others running: {others or 'none'}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == ENGINE_CHILD:
        engine_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exams", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5511)
    parser.add_argument("--full-size", action="store_true", help="full-size phantoms")
    parser.add_argument("--data", type=Path, help="cache folder for the generated exams")
    parser.add_argument(
        "--executor",
        default="default",
        help=f"decode pool, comma list of {', '.join(EXECUTORS)} (default: default)",
    )
    parser.add_argument("--decode-workers", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="ONNX Runtime intra-op threads for engine and worker (split among --workers)",
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS)
    )
    parser.add_argument("--database", help="PostgreSQL URL shared by the Orthanc workers")
    parser.add_argument("--stable-age", type=int, default=2)
    parser.add_argument("--workers", default="1", help="Orthanc workers, comma list (1,2)")
    parser.add_argument(
        "--trickle",
        type=float,
        default=0.0,
        help="upload one study every N seconds instead of all at once (latency when idle)",
    )
    parser.add_argument("--json", type=Path, dest="json_out", help="write every figure here")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (logs, configs, SRs)"
    )
    args = parser.parse_args()
    executors = [e.strip() for e in args.executor.split(",") if e.strip()]
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for value, allowed, option in ((executors, EXECUTORS, "--executor"), (parts, PARTS, "--parts")):
        wrong = [v for v in value if v not in allowed]
        if wrong or not value:
            chosen = ", ".join(wrong) or "empty"
            parser.error(f"{option}: {chosen} (choose from {', '.join(allowed)})")
    if args.keep and args.keep.exists():
        parser.error(f"--keep: {args.keep} exists (give a new folder)")
    if args.exams < 1 or args.decode_workers < 1 or args.threads < 1:
        parser.error("--exams, --decode-workers and --threads must be >= 1")

    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            work = args.keep.resolve()
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mt-bench-worker-")))
        data = exams_folder(args, work)
        exam_dirs = sorted(p for p in data.iterdir() if p.is_dir())
        files = sorted(p for d in exam_dirs for p in d.glob("*.dcm"))
        mix = describe(files)
        print(f"{len(exam_dirs)} exams, {len(files)} files", flush=True)
        for key, counts in mix.items():
            print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        machine = f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB"
        print(f"machine: {machine}; {_load()}", flush=True)
        figures: list[Figure] = []
        for executor in executors:
            if "engine" in parts:
                figures += bench_engine(executor, exam_dirs, files, args, work)
                print(f"[{executor}] engine done; {_load()}", flush=True)
            if "folder" in parts:
                figures += bench_folder(executor, exam_dirs, args, work)
                print(f"[{executor}] folder worker done; {_load()}", flush=True)
            if "orthanc" in parts:
                for n in (int(x) for x in args.workers.split(",")):
                    figures += bench_orthanc(executor, n, files, args, work)
                print(f"[{executor}] Orthanc worker done; {_load()}", flush=True)
        ratios(figures)
        print_table(figures)
        if args.json_out:
            args.json_out.write_text(
                json.dumps(
                    {
                        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "machine": machine,
                        "command": " ".join(sys.argv),
                        "exams": len(exam_dirs),
                        "files": len(files),
                        "seed": args.seed,
                        "full_size": args.full_size,
                        "decode_workers": args.decode_workers,
                        "threads": args.threads,
                        **mix,
                        "figures": [asdict(f) | {"exams_per_s": f.exams_per_s} for f in figures],
                    },
                    indent=2,
                )
                + "\n"
            )
            print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
