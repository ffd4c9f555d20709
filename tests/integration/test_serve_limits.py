"""The request limits on a real ``mammotriage serve``: uvicorn's own parser reads the request
line, the header fields and the body before the app sees them, so these are sent over a
socket as an attacker sends them — a header of megabytes, a hundred thousand header fields,
a 200 MB body declared or chunked — and the answer is read as soon as it comes."""

from __future__ import annotations

import os
import secrets
import select
import socket
import subprocess
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from fixtures_browser import _cli, _free_port, _stop, _wait_for_health

pytestmark = pytest.mark.integration

MB = 1024 * 1024
DECISION = "/exams/00000000-0000-0000-0000-000000000001/decision"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mammotriage serve`` with the default limits on an empty store: its URL."""
    root = tmp_path_factory.mktemp("serve-limits")
    config = root / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": str(root / "store.sqlite"),
                "environment": "production",
                "session_secret": secrets.token_urlsafe(32),
            }
        )
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "serve.log"
    env: dict[str, Any] = {
        key: value for key, value in os.environ.items() if not key.startswith("MAMMOTRIAGE_API_")
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _cli("serve", "--port", str(port), "--config", str(config)),
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
        )
    try:
        _wait_for_health(url, process, log)
        yield url
    finally:
        _stop(process)


def send_until_answered(url: str, head: bytes, body: Iterable[bytes]) -> tuple[bytes, int]:
    """Send ``head``, then ``body`` piece by piece until the server answers (or all is sent).

    Returns the answer (status line, header fields and body) and the bytes of ``body`` sent.
    """
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        try:
            sock.sendall(head)
            for piece in body:
                if select.select([sock], [], [], 0.01)[0]:
                    break
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while this was still sending
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, sent


def filler(total: int, piece: bytes) -> Iterator[bytes]:
    for _ in range(total // len(piece)):
        yield piece


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_no_server_banner_and_the_security_headers(served: str) -> None:
    answer = httpx.get(f"{served}/health")
    assert answer.status_code == 200
    assert "server" not in answer.headers
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def test_a_16_mb_header_is_431_while_it_arrives(served: str) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
    answer, sent = send_until_answered(served, head, filler(16 * MB, b"a" * 8192))
    assert status_of(answer) == 431
    assert sent < MB  # answered after the limit, long before the header's end


def test_a_hundred_thousand_header_fields_are_431(served: str) -> None:
    fields = (
        b"".join(b"X-F-%06d: 1\r\n" % i for i in range(start, start + 500))
        for start in range(0, 100_000, 500)
    )
    answer, sent = send_until_answered(served, b"GET /health HTTP/1.1\r\nHost: x\r\n", fields)
    assert status_of(answer) == 431
    assert sent < MB


def test_a_few_hundred_small_header_fields_are_431(served: str) -> None:
    # Under the byte limit, over the count: the app's own check.
    answer = httpx.get(f"{served}/health", headers={f"x-f-{i}": "1" for i in range(300)})
    assert answer.status_code == 431


def test_a_declared_200_mb_body_is_413_before_a_byte_of_it_is_sent(served: str) -> None:
    head = (
        f"POST {DECISION} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {200 * MB}\r\n\r\n"
    ).encode()
    answer, sent = send_until_answered(served, head, [])
    assert status_of(answer) == 413 and sent == 0
    assert b"connection: close" in answer.lower()


def test_a_chunked_200_mb_body_is_413_once_it_passes_the_limit(served: str) -> None:
    head = (
        f"POST {DECISION} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"
    answer, sent = send_until_answered(served, head, filler(200 * MB, chunk))
    assert status_of(answer) == 413
    assert sent < 8 * MB  # of 200 MB


def test_the_limits_leave_ordinary_requests_alone(served: str) -> None:
    answer = httpx.get(f"{served}/health", headers={f"x-f-{i}": "1" for i in range(50)})
    assert answer.status_code == 200
    unauthenticated = httpx.post(f"{served}{DECISION}", json={"recall": True, "note": "n" * 4000})
    assert unauthenticated.status_code == 401
