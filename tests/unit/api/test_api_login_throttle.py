"""Login throttling: after a few wrong passwords a username (or a client address) is blocked
for a growing time, answered 429 with Retry-After and no password check, every throttled
attempt audited; the correct password works again once the block has passed. Password
checks run a bounded number at a time, so that a flood of logins leaves the worklist
served."""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_site import PASSWORD, SERVICE_TOKEN, Site, csrf_of, make_site
from mammotriage.worklist.models import AuditRow

WRONG = "not the password"


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification the service runs (the real one, counted)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append("verify")
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return calls


class LoginForm:
    """One browser at the login form: its session's CSRF token, then POSTs."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.token = csrf_of(client.get("/login").text)

    def post(self, username: str, password: str = WRONG) -> httpx.Response:
        return self.client.post(
            "/login", data={"username": username, "password": password, "csrf_token": self.token}
        )


def audit(site: Site, action: str) -> list[tuple[str, dict[str, Any]]]:
    with site.store.db.session() as session:
        rows = session.execute(
            select(AuditRow.actor, AuditRow.detail)
            .where(AuditRow.action == action)
            .order_by(AuditRow.id)
        ).all()
    return [(actor, detail) for actor, detail in rows]


def test_after_five_free_failures_the_next_attempt_is_429_without_a_password_check(
    site: Site, argon2_calls: list[str]
) -> None:
    form = LoginForm(site.client())
    for _ in range(6):  # five free, the sixth starts a 1 s block
        assert form.post("anna").status_code == 401
    assert len(argon2_calls) == 6
    answer = form.post("anna", PASSWORD)  # even the right password waits
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "1"
    assert 'data-testid="login-error"' in answer.text
    assert "Too many failed logins: try again in 1 second." in answer.text
    assert len(argon2_calls) == 6
    assert form.client.get("/worklist").status_code == 401


def test_each_further_failure_blocks_twice_as_long(site: Site) -> None:
    form = LoginForm(site.client())
    for _ in range(6):
        form.post("anna")
    waits = []
    for _ in range(4):
        refused = form.post("anna")
        assert refused.status_code == 429
        seconds = int(refused.headers["Retry-After"])
        waits.append(seconds)
        site.clock.now += timedelta(seconds=seconds)  # the block has passed
        assert form.post("anna").status_code == 401  # another wrong password: a longer block
    assert waits == [1, 2, 4, 8]


def test_the_correct_password_works_once_the_block_has_passed_and_clears_the_count(
    site: Site,
) -> None:
    form = LoginForm(site.client())
    for _ in range(6):
        form.post("anna")
    site.clock.now += timedelta(seconds=1)
    assert form.post("anna").status_code == 401  # the seventh: blocked for 2 s
    refused = form.post("anna", PASSWORD)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
    site.clock.now += timedelta(seconds=2)
    assert form.post("anna", PASSWORD).status_code == 303
    # The count starts again from nothing: five free failures, not a block at once.
    other = LoginForm(site.client())
    for _ in range(5):
        assert other.post("anna").status_code == 401
    assert other.post("anna", PASSWORD).status_code == 303


def test_one_address_trying_many_usernames_is_blocked(site: Site) -> None:
    strict = make_site(site.store, login_address_free_attempts=3)
    try:
        form = LoginForm(strict.client())
        for name in ("anna", "ben", "carl", "dora"):  # dora is nobody: counted all the same
            assert form.post(name).status_code == 401
        answer = form.post("root", PASSWORD)
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
        [(actor, detail)] = audit(strict, "login-throttled")
        assert actor == "root"
        assert detail == {"limit": "address", "retry_after": 1, "address": "testclient"}
        # The usernames themselves were tried once each: not blocked as usernames.
        assert audit(strict, "login-failed")[-1] == (
            "dora",
            {"blocked": "address", "blocked_seconds": 1},
        )
    finally:
        for client in strict.clients:
            client.close()


def test_an_unknown_username_is_throttled_like_a_real_one(site: Site) -> None:
    form = LoginForm(site.client())
    answers = [form.post(name).status_code for name in ("anna", "nobody") for _ in range(7)]
    assert answers == [401] * 6 + [429] + [401] * 6 + [429]


def test_every_throttled_attempt_is_audited_without_the_password(site: Site) -> None:
    form = LoginForm(site.client())
    for _ in range(6):
        form.post("anna")
    for password in (WRONG, PASSWORD, "another guess"):
        assert form.post("anna", password).status_code == 429
    assert form.post("Not A Valid Name!").status_code == 401  # the address: 6 of 20 failures
    throttled = audit(site, "login-throttled")
    assert throttled == [("anna", {"limit": "user", "retry_after": 1, "address": "testclient"})] * 3
    assert audit(site, "login-failed")[5] == ("anna", {"blocked": "user", "blocked_seconds": 1})
    assert audit(site, "login-failed")[-1] == ("(invalid username)", {})
    with site.store.db.session() as session:
        details = " ".join(str(d) for d in session.execute(select(AuditRow.detail)).scalars())
    assert PASSWORD not in details and WRONG not in details


@pytest.mark.skipif(sys.platform != "linux", reason="niceness per thread is Linux's")
def test_passwords_are_checked_at_a_lower_cpu_priority_than_requests(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    niceness: list[int] = []
    real = PasswordHasher.verify

    def observed(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", observed)
    form = LoginForm(site.client())
    assert form.post("anna").status_code == 401
    assert form.post("anna", PASSWORD).status_code == 303
    assert niceness == [min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)] * 2


@pytest.fixture
def held_verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """argon2 verifications that wait in the middle until ``release`` is set; ``peak``: the
    most that were ever inside at once."""
    real = PasswordHasher.verify
    state: dict[str, Any] = {"inside": 0, "peak": 0, "release": threading.Event()}
    lock = threading.Lock()

    def held(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        with lock:
            state["inside"] += 1
            state["peak"] = max(state["peak"], state["inside"])
        try:
            state["release"].wait(timeout=120)
            return real(self, hash, password)
        finally:
            with lock:
                state["inside"] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", held)
    yield state
    state["release"].set()


def test_a_login_flood_checks_one_password_at_a_time_and_the_worklist_is_still_served(
    site: Site, held_verifications: dict[str, Any]
) -> None:
    # More logins at once than FastAPI has request threads (40).
    flood, queue = 45, 3
    gated = make_site(site.store, login_verifications=1, login_queue=queue)
    turned_away = flood - 1 - queue
    with TestClient(gated.app, follow_redirects=False) as client:
        form = LoginForm(client)
        with ThreadPoolExecutor(flood) as pool:
            futures = [pool.submit(form.post, f"user{i}") for i in range(flood)]
            try:
                # While one password is being checked and three logins wait for it, the
                # others are answered at once (a liveness bound, not a timing: 60 s).
                for _ in range(6000):
                    if sum(f.done() for f in futures) >= turned_away:
                        break
                    threading.Event().wait(0.01)
                assert sum(f.done() for f in futures) == turned_away
                worklist = client.get(
                    "/worklist", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
                )
                assert worklist.status_code == 200
                assert held_verifications["inside"] == 1
            finally:
                held_verifications["release"].set()
            answers = [f.result(timeout=60) for f in futures]
    assert held_verifications["peak"] == 1
    assert Counter(a.status_code for a in answers) == {503: turned_away, 401: 1 + queue}
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == "1"
    assert "busy checking other logins" in busy.text
    assert len([d for _, d in audit(gated, "login-throttled") if d["limit"] == "busy"]) == (
        turned_away
    )
