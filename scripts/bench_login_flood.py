"""Worklist latency while someone hammers the login form with wrong passwords.

A bounded benchmark, not a test. It seeds a database as ``scripts/load_worklist.py`` does
(synthetic exams, radiologists with real argon2id hashes), starts ``mammotriage serve`` and
logs a few readers in, who poll ``GET /worklist`` with a short think time. Three phases of
``--seconds`` each, the pollers running throughout:

1. ``quiet``: the pollers alone;
2. ``one-attacker``: one client posts wrong passwords for one reader as fast as it is
   answered (the security review's case: ~6 per second, one connection);
3. ``flood``: ``--attackers`` clients at once, each from its own loopback address
   (127.0.0.2, 127.0.0.3, ...), each posting wrong passwords for ever new usernames, so that
   neither one address nor one username stands out quickly.

Attackers ignore Retry-After and run in a process of their own, so that their loop does not
delay the pollers'.

It prints one JSON object: per phase the worklist's latency percentiles (ms) and errors, the
login answers by status, the password checks the server ran (its audit log's
``login-failed`` lines; throttled attempts check none) and the server process's largest
resident memory (``--workers 1``: the process ``serve`` runs in).

    python scripts/bench_login_flood.py --database postgresql+psycopg://mt@127.0.0.1:55433/flood \\
        --reset [--seconds 20] [--pollers 5] [--attackers 48] [--workers 1]

Run it against older code by putting that code's ``src`` first on ``PYTHONPATH`` (the server
is started with this environment). Synthetic data only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_worklist import (  # noqa: E402
    CSRF_RE,
    KeepAliveGet,
    login,
    reset,
    seed,
    start_server,
    stop_server,
    summary,
)

from mammotriage.worklist import Store  # noqa: E402
from mammotriage.worklist.models import AuditRow  # noqa: E402

WRONG = "not-the-password"


async def poll(
    client: KeepAliveGet, stop: asyncio.Event, think: float, out: dict[str, Any]
) -> None:
    """One reader's page: GET /worklist, wait ``think`` seconds, again."""
    while not stop.is_set():
        begin = time.perf_counter()
        try:
            status, _ = await client.get("/worklist?queue=all&limit=50")
            if status != 200:
                out["errors"][f"http_{status}"] += 1
            else:
                out["latencies"].append((time.perf_counter() - begin) * 1000)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            out["errors"][type(exc).__name__] += 1
        await asyncio.sleep(think)


async def attack(
    base: str,
    stop: asyncio.Event,
    usernames: Iterator[str],
    answers: Counter[str],
    local_address: str | None = None,
) -> None:
    """Wrong passwords through the real form (one session, its CSRF token), back to back."""
    transport = httpx.AsyncHTTPTransport(local_address=local_address) if local_address else None
    async with httpx.AsyncClient(
        base_url=base, timeout=60, follow_redirects=False, transport=transport
    ) as client:
        page = await client.get("/login")
        match = CSRF_RE.search(page.text)
        if not match:
            raise RuntimeError(f"login page: {page.status_code}, no CSRF token")
        while not stop.is_set():
            data = {"username": next(usernames), "password": WRONG, "csrf_token": match[1]}
            try:
                answer = await client.post("/login", data=data)
                answers[str(answer.status_code)] += 1
            except httpx.HTTPError as exc:
                answers[type(exc).__name__] += 1


async def watch_memory(pid: int, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """The server process's largest resident set (MiB), sampled every 0.1 s."""
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mib"] = max(out.get("rss_mib", 0), int(line.split()[1]) // 1024)
        await asyncio.sleep(0.1)


def attack_process(base: str, victim: str, attackers: int, seconds: float, results: Any) -> None:
    """The attackers for one phase (none, one on ``victim``, or a flood of ``attackers`` from
    their own addresses with ever new usernames); their answers by status go to ``results``."""

    async def main() -> Counter[str]:
        stop = asyncio.Event()
        answers: Counter[str] = Counter()
        tasks = []
        if attackers == 1:
            tasks.append(asyncio.create_task(attack(base, stop, itertools.repeat(victim), answers)))
        elif attackers > 1:
            for i in range(attackers):
                names = (f"x{i}n{n}" for n in itertools.count())
                address = f"127.0.{(i + 2) // 250}.{(i + 2) % 250 + 1}"
                tasks.append(asyncio.create_task(attack(base, stop, names, answers, address)))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        return answers

    results.put("started")
    results.put(asyncio.run(main()))


def password_checks(database: str) -> int:
    """Failed logins in the audit log: each one ran one argon2 verification."""
    store = Store(database)
    try:
        with store.db.session() as session:
            return int(
                session.execute(
                    select(func.count()).where(AuditRow.action == "login-failed")
                ).scalar_one()
            )
    finally:
        store.close()


async def run(
    base: str, pid: int, database: str, readers: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    sessions = [
        httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=False)
        for _ in range(args.pollers)
    ]
    for i, session in enumerate(sessions):
        await login(session, readers[1 + i % (len(readers) - 1)])  # readers[0] is attacked
    cookies = ["; ".join(f"{k}={v}" for k, v in s.cookies.items()) for s in sessions]
    raw = [KeepAliveGet(base, cookie) for cookie in cookies]
    phases: dict[str, Any] = {}
    victim = readers[0]
    mp = multiprocessing.get_context("spawn")
    for phase in ("quiet", "one-attacker", "flood"):
        stop = asyncio.Event()
        out: dict[str, Any] = {"latencies": [], "errors": Counter()}
        checks_before = password_checks(database)
        # The attackers have a process of their own: their loop must not delay the pollers'.
        results: Any = mp.Queue()
        attackers = 0 if phase == "quiet" else 1 if phase == "one-attacker" else args.attackers
        child = mp.Process(
            target=attack_process, args=(base, victim, attackers, args.seconds, results)
        )
        child.start()
        await asyncio.to_thread(results.get)  # started: its imports done
        await asyncio.gather(*(r.close() for r in raw))  # fresh connections: idle ones time out
        begin = time.perf_counter()
        tasks = [asyncio.create_task(poll(r, stop, args.think, out)) for r in raw]
        tasks.append(asyncio.create_task(watch_memory(pid, stop, out)))
        await asyncio.sleep(args.seconds)
        stop.set()
        await asyncio.gather(*tasks)
        answers: Counter[str] = await asyncio.to_thread(results.get)
        child.join()
        wall = time.perf_counter() - begin
        checks = password_checks(database) - checks_before
        phases[phase] = {
            "seconds": round(wall, 1),
            "worklist_ms": summary(out["latencies"]),
            "worklist_requests": len(out["latencies"]),
            "worklist_errors": dict(out["errors"]),
            "login_answers": dict(answers),
            "login_attempts_per_s": round(sum(answers.values()) / wall, 1),
            "password_checks": checks,
            "password_checks_per_s": round(checks / wall, 1),
            "server_rss_max_mib": out.get("rss_mib"),
        }
    await asyncio.gather(*(r.close() for r in raw))
    await asyncio.gather(*(s.aclose() for s in sessions))
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="postgresql+psycopg://... (or SQLite)")
    parser.add_argument("--exams", type=int, default=500)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--pollers", type=int, default=5, help="readers polling the worklist")
    parser.add_argument("--think", type=float, default=0.05, help="seconds between polls")
    parser.add_argument("--attackers", type=int, default=48, help="clients in the flood")
    parser.add_argument("--seconds", type=float, default=20, help="per phase")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--reset", action="store_true", help="drop every table first")
    args = parser.parse_args()
    if args.readers < 2 or args.exams < 10 * args.readers or args.attackers > 60_000:
        parser.error("need readers >= 2, exams >= 10 x readers, attackers <= 60000")

    store = Store(args.database)
    try:
        if args.reset:
            reset(store)
        store.migrate()
        seeded = seed(store, args.exams, args.readers, 1)
    finally:
        store.close()
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        server_cmd = [sys.executable, "-m", "mammotriage"]
        process, base, _ = start_server(args.database, Path(tmp), server_cmd, args.workers)
        try:
            result = asyncio.run(run(base, process.pid, args.database, seeded["readers"], args))
        finally:
            stop_server(process)
    import mammotriage

    result = {
        "code": str(Path(mammotriage.__file__).parents[1]),
        "workers": args.workers,
        "pollers": args.pollers,
        "think_s": args.think,
        "attackers": args.attackers,
        **result,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
