"""The reading service's memory while unauthenticated clients post huge bodies.

A bounded benchmark, not a test (tests/integration/test_serve_limits.py checks the answers).
It starts ``mammotriage serve`` on an empty SQLite store and posts ``--size-mb`` of JSON-ish
filler to ``POST /exams/{id}/decision`` without logging in, over plain sockets, sending the
whole body whatever the server answers (as an attacker does). Three phases: one body with a
declared ``Content-Length``, one chunked, then ``--parallel`` at once (half of each kind).
The server process's resident memory is sampled every 10 ms.

It prints one JSON object: per phase the resident memory before, at its peak and after (MB),
the answers' status lines and the MB each client got to send before the server closed.

    python scripts/bench_body_flood.py [--size-mb 200] [--parallel 4]

Run it against older code by putting that code's ``src`` first on ``PYTHONPATH`` (the server
is started with this environment).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_worklist import start_server, stop_server  # noqa: E402

MB = 1024 * 1024
PATH = "/exams/00000000-0000-0000-0000-000000000001/decision"
#: One MB of a JSON array of ones: what a parser would have to hold.
PIECE = b"[" + b"1," * (MB // 2 - 1) + b"1"


def post(base: str, size_mb: int, chunked: bool) -> dict[str, Any]:
    """One unauthenticated POST of ``size_mb`` MB; the status line and the MB sent."""
    host, port = base.removeprefix("http://").split(":")
    head = f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += (
        "Transfer-Encoding: chunked\r\n\r\n"
        if chunked
        else f"Content-Length: {size_mb * MB}\r\n\r\n"
    )
    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        try:
            sock.sendall(head.encode())
            for _ in range(size_mb):
                sock.sendall(b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE)
                sent += 1
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed
        sock.settimeout(120)
        try:
            status = sock.recv(200).split(b"\r\n", 1)[0].decode("latin-1")
        except OSError as exc:
            status = type(exc).__name__
    return {"kind": "chunked" if chunked else "content-length", "status": status, "sent_mb": sent}


def phase(process: psutil.Process, run: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    posts = run()
    time.sleep(0.5)
    done.set()
    sampler.join()
    after = process.memory_info().rss
    return {
        "rss_before_mb": round(before / MB),
        "rss_peak_mb": round(max(peak, after) / MB),
        "rss_after_mb": round(after / MB),
        "posts": posts,
    }


def in_parallel(base: str, size_mb: int, count: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda c=i % 2 == 1: results.append(post(base, size_mb, c)))
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results, key=lambda r: (r["kind"], r["sent_mb"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, help="Body size of each POST (MB).")
    parser.add_argument("--parallel", type=int, default=4, help="POSTs at once in phase 3.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="body-flood-") as tmp:
        database = str(Path(tmp) / "store.sqlite")
        server_cmd = [sys.executable, "-m", "mammotriage"]
        process, base, _ = start_server(database, Path(tmp), server_cmd)
        try:
            server = psutil.Process(process.pid)
            result: dict[str, Any] = {
                "one_content_length": phase(server, lambda: [post(base, args.size_mb, False)]),
                "one_chunked": phase(server, lambda: [post(base, args.size_mb, True)]),
                f"{args.parallel}_in_parallel": phase(
                    server, lambda: in_parallel(base, args.size_mb, args.parallel)
                ),
            }
        finally:
            stop_server(process)
    import mammotriage

    print(json.dumps({"code": str(Path(mammotriage.__file__).parents[1]), **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
