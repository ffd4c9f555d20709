"""Request limits at the door: a body over its limit is 413 and header fields past theirs
are 431, before the session, the routing or the authentication see the request; a body
sent in pieces is refused once it passes the limit, without the rest being read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from api_site import READER_TOKEN, Site, make_site
from mammotriage.worklist.models import AuditRow, DecisionRow

EXAM = "00000000-0000-0000-0000-000000000001"
KIB = 1024


def audit_count(site: Site) -> int:
    with site.store.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditRow)) or 0)


def decisions(site: Site) -> int:
    with site.store.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(DecisionRow)) or 0)


def streamed(
    site: Site, method: str, path: str, pieces: Iterator[bytes], headers: dict[str, str]
) -> tuple[int, dict[str, str], int]:
    """Drive the app as a server does, the body in pieces as they arrive (no Content-Length).

    Returns the status, the response's headers and how many body bytes the app pulled.
    """
    pulled = 0
    answer: dict[str, object] = {}

    async def receive() -> dict[str, object]:
        nonlocal pulled
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            answer.update(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(site.app(scope, receive, send))
    status, raw = answer["status"], answer["headers"]
    assert isinstance(status, int) and isinstance(raw, list)
    return status, {name.decode(): value.decode() for name, value in raw}, pulled


def pieces_of(total: int, size: int = 4 * KIB) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


def test_an_unauthenticated_oversized_decision_is_413_before_it_is_read(site: Site) -> None:
    client = site.client()
    body = b'{"recall": true, "note": "' + b"x" * (70 * KIB) + b'"}'
    answer = client.post(
        f"/exams/{EXAM}/decision", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": f"request body of {len(body)} bytes; at most {64 * KIB} are accepted for "
        "this request"
    }
    assert answer.headers["connection"] == "close"


def test_a_body_in_pieces_is_refused_once_it_passes_the_limit(site: Site) -> None:
    exam = site.exam(1, 2)
    auth = {"Authorization": f"Bearer {READER_TOKEN}"}
    assert site.client().post(f"/exams/{exam}/claim", headers=auth).status_code == 200
    audited = audit_count(site)

    # 200 MB offered in 4 KiB pieces, no Content-Length, from the exam's claiming reader.
    status, headers, pulled = streamed(
        site,
        "POST",
        f"/exams/{exam}/decision",
        pieces_of(200 * KIB * KIB),
        {"content-type": "application/json", **auth},
    )
    assert status == 413 and headers["connection"] == "close"
    assert 64 * KIB < pulled <= 64 * KIB + 4 * KIB  # read up to the limit and one piece more
    assert decisions(site) == 0 and audit_count(site) == audited  # the route never ran


def test_a_page_form_in_pieces_is_refused_too(site: Site) -> None:
    status, _, pulled = streamed(
        site,
        "POST",
        "/login",
        pieces_of(10 * KIB * KIB),
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert status == 413 and pulled <= 68 * KIB
    assert audit_count(site) == 0  # no login attempt recorded


def test_an_oversized_login_form_is_413_and_no_attempt_is_recorded(site: Site) -> None:
    answer = site.client().post(
        "/login", data={"username": "anna", "password": "p" * (70 * KIB), "csrf_token": "x"}
    )
    assert answer.status_code == 413
    assert audit_count(site) == 0


def test_the_longest_note_fits_the_limits_even_fully_escaped(site: Site) -> None:
    exam = site.exam(1, 2)
    auth = {"Authorization": f"Bearer {READER_TOKEN}"}
    assert site.client().post(f"/exams/{exam}/claim", headers=auth).status_code == 200
    # 4,000 characters outside the BMP: two \\uXXXX escapes each, as json.dumps writes them.
    body = json.dumps({"recall": False, "note": "\U0001f600" * 4000}).encode()
    assert len(body) > 48_000
    answer = site.client().post(
        f"/exams/{exam}/decision",
        content=body,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text


def test_a_body_on_a_get_is_refused(site: Site) -> None:
    answer = site.client().request("GET", "/health", content=b"x" * 10)
    assert answer.status_code == 413
    assert "takes none" in answer.json()["detail"]


def test_too_many_header_fields_are_431(site: Site) -> None:
    client = site.client()
    ok = client.get("/health", headers={f"x-field-{i}": "1" for i in range(80)})
    assert ok.status_code == 200
    many = client.get("/health", headers={f"x-field-{i}": "1" for i in range(150)})
    assert many.status_code == 431
    assert "header fields; at most 100 are accepted" in many.json()["detail"]


def test_a_header_field_past_the_byte_limit_is_431(site: Site) -> None:
    client = site.client()
    assert client.get("/health", headers={"x-big": "a" * (12 * KIB)}).status_code == 200
    answer = client.get("/health", headers={"x-big": "a" * (17 * KIB)})
    assert answer.status_code == 431
    assert answer.json()["detail"].startswith("header fields of ")


def test_a_refusal_comes_before_authentication(site: Site) -> None:
    # A bearer token that would be refused (401) is not looked at: the size is refused first.
    answer = site.client().post(
        f"/exams/{EXAM}/decision",
        content=b"{}" + b" " * (70 * KIB),
        headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"},
    )
    assert answer.status_code == 413


@pytest.mark.parametrize(
    ("setting", "value", "request_kwargs", "status"),
    [
        ("max_body_bytes", 2 * KIB, {"content": b" " * (3 * KIB)}, 413),
        ("max_form_bytes", 2 * KIB, {"data": {"note": "n" * (3 * KIB)}}, 413),
        ("max_headers", 20, {"headers": {f"x-{i}": "1" for i in range(25)}}, 431),
        ("max_header_bytes", 4 * KIB, {"headers": {"x-big": "a" * (5 * KIB)}}, 431),
    ],
)
def test_the_limits_are_settings(
    site: Site, setting: str, value: int, request_kwargs: dict[str, Any], status: int
) -> None:
    strict = make_site(site.store, **{setting: value})
    assert strict.client().post(f"/exams/{EXAM}/decision", **request_kwargs).status_code == status
    # The same request is within the default limits (an unauthenticated 401 or a 422).
    default = site.client().post(f"/exams/{EXAM}/decision", **request_kwargs)
    assert default.status_code in (401, 422)
