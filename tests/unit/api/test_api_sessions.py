"""Sessions that end: the cookie names a session held on the server, which logout ends at
once (a cookie saved before it is refused for claims and decisions), which ends after
``session_idle_minutes`` without a request and after ``session_max_age_hours`` in any case."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx
from sqlalchemy import select

from api_site import NOW, PASSWORD, Site, make_site
from mammotriage.api.app import SESSION_COOKIE
from mammotriage.worklist.models import AuditRow, SessionRow
from mammotriage.worklist.sessions import session_sha256


def _copy(site: Site, client: httpx.Client) -> httpx.Client:
    """Another client holding the same cookies: a cookie saved by someone else."""
    other = site.client()
    other.cookies.update(client.cookies)
    return other


def _audit(site: Site) -> list[tuple[str, str, dict[str, object]]]:
    with site.store.db.session() as session:
        rows = session.execute(select(AuditRow.actor, AuditRow.action, AuditRow.detail)).all()
    return [(a, b, dict(c)) for a, b, c in rows]


def _cookie_payload(client: httpx.Client) -> dict[str, object]:
    value = client.cookies[SESSION_COOKIE]
    data = value.split(".")[0]
    decoded: dict[str, object] = json.loads(base64.b64decode(data + "=" * (-len(data) % 4)))
    return decoded


def test_the_cookie_names_a_stored_session_not_the_user(site: Site) -> None:
    anna, _ = site.login("anna")
    payload = _cookie_payload(anna)
    assert "anna" not in json.dumps(payload)
    session_id = payload["sid"]
    assert isinstance(session_id, str)
    with site.store.db.session() as session:
        row = session.execute(select(SessionRow)).scalar_one()
    assert row.session_sha256 == session_sha256(session_id) != session_id
    assert row.expires_at == NOW + timedelta(hours=site.settings.session_max_age_hours)


def test_a_cookie_saved_before_logout_is_refused_after_it(site: Site) -> None:
    exam = site.exam(1, 3)
    anna, csrf = site.login("anna")
    saved = _copy(site, anna)
    headers = {"X-CSRF-Token": csrf}
    assert saved.get("/worklist").status_code == 200
    assert anna.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert saved.get("/worklist").status_code == 401
    assert saved.post(f"/exams/{exam}/claim", headers=headers).status_code == 401
    decided = saved.post(f"/exams/{exam}/decision", json={"recall": True}, headers=headers)
    assert decided.status_code == 401
    assert saved.get("/").headers["location"].startswith("/login")
    assert ("anna", "logout", {}) in _audit(site)
    # Logging in again works, with a new session.
    again, _ = site.login("anna")
    assert again.get("/worklist").status_code == 200


def test_logout_ends_the_session_at_once_even_with_the_user_cache_on(site: Site) -> None:
    cached = make_site(site.store, user_cache_seconds=60)
    anna, csrf = cached.login("anna")
    saved = _copy(cached, anna)
    assert saved.get("/worklist").status_code == 200  # the session is in the cache now
    assert anna.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert saved.get("/worklist").status_code == 401
    for client in cached.clients:
        client.close()


def test_a_session_ends_after_the_idle_timeout_and_it_is_audited(site: Site) -> None:
    anna, _ = site.login("anna")
    idle = timedelta(minutes=site.settings.session_idle_minutes)
    assert idle == timedelta(minutes=30)
    site.clock.now = NOW + idle - timedelta(minutes=1)
    assert anna.get("/worklist").status_code == 200  # a request inside the idle time
    site.clock.now += idle - timedelta(minutes=1)  # 58 minutes in, 29 after the last request
    assert anna.get("/worklist").status_code == 200
    saved = _copy(site, anna)
    site.clock.now += idle + timedelta(seconds=1)
    answer = anna.get("/worklist")
    assert answer.status_code == 401 and "idle" in answer.json()["detail"]
    site.clock.now = NOW + timedelta(minutes=59)  # the clock back: ended stays ended
    assert saved.get("/worklist").status_code == 401
    assert [e for e in _audit(site) if e[1] == "session-expired"] == [
        ("anna", "session-expired", {"reason": "idle"})
    ]


def test_a_session_ends_at_its_lifetime_however_busy(site: Site) -> None:
    anna, _ = site.login("anna")
    lifetime = timedelta(hours=site.settings.session_max_age_hours)
    while site.clock.now + timedelta(minutes=20) < NOW + lifetime:
        site.clock.now += timedelta(minutes=20)
        assert anna.get("/worklist").status_code == 200, site.clock.now
    site.clock.now = NOW + lifetime
    answer = anna.get("/worklist")
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    assert ("anna", "session-expired", {"reason": "expired"}) in _audit(site)
    again, _ = site.login("anna", PASSWORD)
    assert again.get("/worklist").status_code == 200
