"""Load test of the reading service's worklist: many readers polling ``GET /worklist``.

A bounded load script, not a test. It

1. migrates and seeds a PostgreSQL (or SQLite) database with ``--exams`` synthetic scored
   exams (categories 1-10 about 10 % each, so with the packaged triage policy about half single and
   half double reading; received over the last 6 days, so a few are overdue), ``--readers``
   radiologists, and a few claims and first-round decisions per reader, so that every reader's
   queue is their own;
2. starts ``mammotriage serve`` (uvicorn, one process) on a free loopback port against that
   database and waits for ``/health``;
3. logs ``--clients`` clients in through the real login form (GET /login for the session's
   CSRF token, POST /login with it; clients share the readers round-robin) and lets each loop
   ``GET /worklist?queue=...&limit=50`` (queue all/single/double/priority, offset 0-20) for
   ``--seconds`` (after ``--warmup`` seconds that are not counted);
4. prints one JSON object: requests, requests/s, latency percentiles (ms), errors by kind,
   and stops the server.

``--profile`` adds an in-process breakdown after the run: ``store.readings.reader_queue``
alone, the same request through the app (TestClient), and a cProfile of that request.

    python scripts/load_worklist.py --database postgresql+psycopg://mt@127.0.0.1:55433/load \\
        [--exams 500] [--clients 50] [--seconds 60] [--readers 10] [--reset] [--profile]

The database must be empty (or give ``--reset``: drops every table, PostgreSQL's ``public``
schema or the SQLite file's tables). Synthetic data only: no DICOM, no patient data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, inspect, select, text

from mammotriage import defaults
from mammotriage.api.security import hash_password
from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.infer.scores import ExamScore, Finding, ImageScore
from mammotriage.triage import ExamForTriage, decide, load_policy
from mammotriage.worklist import Store
from mammotriage.worklist.models import ExamRow, Role
from mammotriage.worklist.snapshot import reading_state

ROOT = Path(__file__).resolve().parents[1]
POLICY_PATH = defaults.policy_path()
STUDY_ROOT = "1.2.826.0.1.3680043.9.8888"
PASSWORD = "load-test-password-not-secret"
QUEUES = ("all", "all", "single", "double", "priority")
OFFSETS = (0, 0, 0, 10, 20)
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- seeding (a copy of tests/unit/api/api_site.py's synthetic exams) -----------------------


def exam_score(study: str, category: int, rng: random.Random) -> ExamScore:
    """A scored four-view exam with one finding (score below the safety net's threshold)."""
    views = [
        (lat, view)
        for lat in (Laterality.LEFT, Laterality.RIGHT)
        for view in (ViewPosition.CC, ViewPosition.MLO)
    ]
    images = tuple(
        ImageScore(
            path=None,
            sop_instance_uid=f"{study}.{i}",
            laterality=lat,
            view=view,
            usable=True,
            reason=None,
            probability=category / 10 - 0.05,
        )
        for i, (lat, view) in enumerate(views)
    )
    box = (10.0, 20.0, 60.0, 80.0)
    finding = Finding(f"{study}.0", None, Laterality.LEFT, ViewPosition.CC, box, rng.randint(5, 60))
    return ExamScore(
        exam_id=study,
        score=category * 10 - rng.uniform(0.5, 9.5),
        category=category,
        partial=False,
        breasts={"L": category * 10 - 5, "R": 1.0},
        findings=(finding,),
        images=images,
        model_name="load-model",
        model_sha256="b" * 64,
    )


def reset(store: Store) -> None:
    if store.db.engine.dialect.name == "postgresql":
        with store.db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    else:
        with store.db.engine.begin() as connection:
            connection.execute(text("PRAGMA foreign_keys = OFF"))
            for table in inspect(connection).get_table_names():
                connection.execute(text(f'DROP TABLE "{table}"'))


def seed(store: Store, exams: int, readers: int, seed_value: int) -> dict[str, Any]:
    """Exams, readers and a few claims/decisions; returns counts for the report."""
    rng = random.Random(seed_value)
    policy = load_policy(POLICY_PATH)
    now = datetime.now(timezone.utc)
    ids = []
    modes: Counter[str] = Counter()
    for n in range(exams):
        category = n % 10 + 1  # exactly 10 % per category (shuffled by received time below)
        study = f"{STUDY_ROOT}.{n + 1}"
        received = now - timedelta(minutes=rng.uniform(5, 6 * 24 * 60))
        score = exam_score(study, category, rng)
        top = max(f.score for f in score.findings)
        decision = decide(
            policy, ExamForTriage(study, float(score.score or 0), category, top, False, received)
        )
        modes[decision.mode.value] += 1
        ids.append((store.exams.save_score(score, decision, received), decision.mode.value))
    names = [f"reader{i:02d}" for i in range(1, readers + 1)]
    password_hash = hash_password(PASSWORD)  # the real argon2 parameters; one hash, shared
    for name in names:
        store.users.add(name, Role.RADIOLOGIST, password_hash)
    # Per reader: 2 exams claimed (theirs), 3 double-reading exams decided (first reading),
    # so that each reader's queue leaves out different exams.
    single = [i for i, m in ids if m == "single"]
    double = [i for i, m in ids if m == "double"]
    rng.shuffle(single)
    rng.shuffle(double)
    claims = decisions = 0
    for name in names:
        for exam_id in (single.pop(), double.pop()):
            store.readings.claim(exam_id, name, now)
            claims += 1
        for _ in range(3):
            exam_id = double.pop()
            store.readings.claim(exam_id, name, now)
            store.readings.record_decision(
                exam_id, name, recall=rng.random() < 0.1, birads=1, now=now
            )
            decisions += 1
    return {"modes": dict(modes), "claims": claims, "decisions": decisions, "readers": names}


# -- the server -------------------------------------------------------------------------------


def database_sessions(database: str) -> int | None:
    """PostgreSQL's count of connections ever opened to this database (None for SQLite)."""
    store = Store(database)
    try:
        if store.db.engine.dialect.name != "postgresql":
            return None
        with store.db.engine.connect() as connection:
            query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            return int(connection.execute(text(query)).scalar_one())
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    database: str, workdir: Path, server_cmd: list[str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    config = workdir / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {"database": database, "policy": str(POLICY_PATH), "environment": "production"}
        ),
        encoding="utf-8",
    )
    env = dict(os.environ, MAMMOTRIAGE_API_SESSION_SECRET=secrets.token_urlsafe(32))
    log = workdir / "serve.log"
    command = [*server_cmd, "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--config", str(config), "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mammotriage serve exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise SystemExit(f"mammotriage serve did not answer /health in 60 s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the load -----------------------------------------------------------------------------------


async def login(client: httpx.AsyncClient, username: str) -> None:
    """What a browser does: the login page (session cookie + CSRF token), then the form."""
    page = await client.get("/login")
    match = CSRF_RE.search(page.text)
    if page.status_code != 200 or not match:
        raise RuntimeError(f"login page: {page.status_code}, no CSRF token")
    answer = await client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": match.group(1)}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"login of {username}: {answer.status_code}")


class KeepAliveGet:
    """One client's keep-alive HTTP/1.1 connection for the measured GETs.

    The load generator runs on the same cores as the server: httpx costs about a millisecond
    of CPU per request, which this plain asyncio-stream client does not, so that the figures
    are the server's and not the generator's. The browser's session cookie (from the real
    login) goes with every request.
    """

    def __init__(self, base: str, cookie: str) -> None:
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        self.cookie = cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Cookie: {self.cookie}\r\nAccept: application/json\r\n\r\n".encode()
        )
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.reader = None


async def run_load(
    base: str, readers: list[str], clients: int, seconds: float, warmup: float, seed_value: int
) -> dict[str, Any]:
    sessions = [
        httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(30.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=1),
        )
        for _ in range(clients)
    ]
    try:
        gate = asyncio.Semaphore(4)  # argon2 verification is meant to be slow: log in 4 at a time

        async def log_in(i: int) -> None:
            async with gate:
                await login(sessions[i], readers[i % len(readers)])

        started = time.perf_counter()
        await asyncio.gather(*(log_in(i) for i in range(clients)))
        login_s = time.perf_counter() - started

        # One look at every reader's queue: they differ (claims and decisions are per reader).
        totals = {}
        for i in range(min(clients, len(readers))):
            answer = await sessions[i].get("/worklist", params={"queue": "all", "limit": 1})
            totals[readers[i]] = answer.json()["total"]

        latencies: list[float] = []
        by_queue: dict[str, list[float]] = {}
        errors: Counter[str] = Counter()
        t0 = time.perf_counter()
        measure_from = t0 + warmup
        stop_at = measure_from + seconds

        cookies = [
            "; ".join(f"{name}={value}" for name, value in session.cookies.items())
            for session in sessions
        ]
        raw = [KeepAliveGet(base, cookie) for cookie in cookies]

        async def loop(i: int) -> None:
            rng = random.Random(seed_value * 1000 + i)
            client = raw[i]
            while True:
                begin = time.perf_counter()
                if begin >= stop_at:
                    return
                queue = rng.choice(QUEUES)
                params: dict[str, str | int] = {
                    "queue": queue,
                    "limit": 50,
                    "offset": rng.choice(OFFSETS),
                }
                kind = None
                target = "/worklist?" + "&".join(f"{k}={v}" for k, v in params.items())
                try:
                    status, body = await client.get(target)
                    if status != 200:
                        kind = f"http_{status}"
                    elif not body.startswith(b'{"items":'):
                        kind = "bad_body"
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    kind = type(exc).__name__
                end = time.perf_counter()
                if begin < measure_from:
                    continue
                if kind is not None:
                    errors[kind] += 1
                else:
                    ms = (end - begin) * 1000
                    latencies.append(ms)
                    by_queue.setdefault(queue, []).append(ms)

        await asyncio.gather(*(loop(i) for i in range(clients)))
        wall = time.perf_counter() - measure_from
        await asyncio.gather(*(r.close() for r in raw))
    finally:
        await asyncio.gather(*(s.aclose() for s in sessions))
    done = len(latencies) + sum(errors.values())
    return {
        "requests": done,
        "ok": len(latencies),
        "requests_per_s": round(done / wall, 1),
        "measured_s": round(wall, 1),
        "warmup_s": warmup,
        "latency_ms": summary(latencies),
        "latency_ms_by_queue": {q: summary(v) for q, v in sorted(by_queue.items())},
        "errors": dict(errors),
        "login_s": round(login_s, 2),
        "queue_total_by_reader": totals,
    }


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, min(len(values), round(p / 100 * len(values) + 0.5)))
    return values[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50), 1),
        "p95": round(percentile(ordered, 95), 1),
        "p99": round(percentile(ordered, 99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
    }


# -- in-process profile --------------------------------------------------------------------------


def profile(database: str, reader: str, repeat: int = 20) -> dict[str, Any]:
    """Where one worklist request's time goes, without HTTP or concurrency."""
    import cProfile
    import io
    import pstats

    from fastapi.testclient import TestClient

    from mammotriage.api.app import create_app
    from mammotriage.api.settings import ApiSettings

    policy = load_policy(POLICY_PATH)
    store = Store(database)
    settings = ApiSettings(database=database, policy=POLICY_PATH, environment="development")
    app = create_app(settings, store=store, policy=policy)
    out: dict[str, Any] = {}
    try:

        def timed(call: Any) -> dict[str, float]:
            call()  # warm
            samples = []
            for _ in range(repeat):
                begin = time.perf_counter()
                call()
                samples.append((time.perf_counter() - begin) * 1000)
            return summary(samples)

        now = datetime.now(timezone.utc)
        out["store.worklist_ms"] = timed(lambda: store.readings.worklist(now, policy))

        def claims_and_deciders() -> object:
            with store.db.session() as session:
                return reading_state(session, now)

        out["store._reading_state_ms"] = timed(claims_and_deciders)
        out["store.reader_queue_ms"] = timed(
            lambda: store.readings.reader_queue(reader, now, policy)
        )
        with TestClient(app, follow_redirects=False) as client:
            page = client.get("/login")
            token = CSRF_RE.search(page.text)
            assert token
            client.post(
                "/login", data={"username": reader, "password": PASSWORD, "csrf_token": token[1]}
            )
            out["request_in_process_ms"] = timed(lambda: client.get("/worklist?queue=all&limit=50"))
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(repeat):
                client.get("/worklist?queue=all&limit=50")
            profiler.disable()
        text_out = io.StringIO()
        stats = pstats.Stats(profiler, stream=text_out)
        stats.sort_stats("cumulative").print_stats(35)
        text_out.write("\n--- by own time ---\n")
        stats.sort_stats("tottime").print_stats(25)
        out["cprofile"] = text_out.getvalue()
    finally:
        store.close()
    return out


# -- main ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="postgresql+psycopg://... (or SQLite)")
    parser.add_argument("--exams", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=3, help="seconds not counted (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    parser.add_argument("--reset", action="store_true", help="drop every table first")
    parser.add_argument("--profile", action="store_true", help="in-process breakdown after")
    parser.add_argument("--profile-out", type=Path, help="write the cProfile text here")
    parser.add_argument(
        "--server-cmd",
        help="what runs the CLI (default: this python -m mammotriage); 'serve ...' is appended",
    )
    args = parser.parse_args()
    if args.readers < 1 or args.clients < 1 or args.exams < 10 * args.readers:
        parser.error("need readers >= 1, clients >= 1 and exams >= 10 x readers")

    store = Store(args.database)
    where = store.db.url.render_as_string(hide_password=True)
    try:
        if args.reset:
            reset(store)
        store.migrate()
        with store.db.engine.connect() as connection:
            existing = connection.execute(select(func.count()).select_from(ExamRow)).scalar_one()
        if existing:
            raise SystemExit(f"{where} already has {existing} exams: give --reset or an empty one")
        started = time.perf_counter()
        seeded = seed(store, args.exams, args.readers, args.seed)
        seed_s = time.perf_counter() - started
    finally:
        store.close()
    print(f"seeded {args.exams} exams, {args.readers} readers in {seed_s:.1f} s", file=sys.stderr)

    sessions_before = database_sessions(args.database)
    with tempfile.TemporaryDirectory(prefix="load-worklist-") as tmp:
        server_cmd = (
            args.server_cmd.split() if args.server_cmd else [sys.executable, "-m", "mammotriage"]
        )
        process, base, log = start_server(args.database, Path(tmp), server_cmd, args.workers)
        try:
            print(f"server {base} (pid {process.pid}); {args.clients} clients", file=sys.stderr)
            result = asyncio.run(
                run_load(
                    base, seeded["readers"], args.clients, args.seconds, args.warmup, args.seed
                )
            )
        finally:
            stop_server(process)
        server_errors = [
            line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line
        ]
    sessions_after = database_sessions(args.database)
    report: dict[str, Any] = {
        **result,
        "exams": args.exams,
        "reading_modes": seeded["modes"],
        "seeded_claims": seeded["claims"],
        "seeded_decisions": seeded["decisions"],
        "clients": args.clients,
        "server_workers": args.workers,
        "readers": args.readers,
        "database": where,
        "server_cmd": args.server_cmd or "python -m mammotriage",
        "server_tracebacks": len(server_errors),
        # Connections the server opened (PostgreSQL's pg_stat_database.sessions; includes the
        # server's start-up and the two counting queries): many more than the pool's size
        # means the pool closes and reopens connections under load.
        "database_connections_opened": (
            None
            if sessions_before is None or sessions_after is None
            else sessions_after - sessions_before
        ),
        "load_average_at_end": os.getloadavg(),
        "seed_s": round(seed_s, 1),
    }
    if args.profile:
        breakdown = profile(args.database, seeded["readers"][0])
        cprofile_text = breakdown.pop("cprofile")
        report["profile"] = breakdown
        if args.profile_out:
            args.profile_out.write_text(cprofile_text, encoding="utf-8")
        else:
            print(cprofile_text, file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
