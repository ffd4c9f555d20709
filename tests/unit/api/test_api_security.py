"""Authentication and CSRF: login sets a session cookie, bearer tokens authenticate services,
cookie-authenticated state changes need the session's CSRF token and bearer calls do not."""

from __future__ import annotations

from sqlalchemy import select

from api_site import READER_TOKEN, SERVICE_TOKEN, Site, csrf_of
from mammotriage.worklist.models import AuditRow


def test_login_sets_an_httponly_lax_session_cookie_and_is_audited(site: Site) -> None:
    client = site.client()
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"username": "anna", "password": "correct horse battery staple", "csrf_token": token},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "mammotriage_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/worklist").status_code == 200
    with site.store.db.session() as session:
        actions = session.execute(select(AuditRow.actor, AuditRow.action)).all()
    assert ("anna", "login") in actions


def test_a_wrong_password_is_refused_and_audited(site: Site) -> None:
    client = site.client()
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": "anna", "password": "wrong", "csrf_token": token}
    )
    assert answer.status_code == 401 and 'data-testid="login-error"' in answer.text
    assert client.get("/worklist").status_code == 401
    with site.store.db.session() as session:
        actions = session.execute(select(AuditRow.actor, AuditRow.action)).all()
    assert ("anna", "login-failed") in actions


def test_login_without_the_csrf_token_is_refused(site: Site) -> None:
    client = site.client()
    client.get("/login")
    answer = client.post(
        "/login", data={"username": "anna", "password": "correct horse battery staple"}
    )
    assert answer.status_code == 403


def test_unauthenticated_api_is_401_and_page_redirects_to_login(site: Site) -> None:
    client = site.client()
    assert client.get("/worklist").status_code == 401
    page = client.get("/")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")


def test_a_bearer_token_authenticates_and_a_wrong_one_does_not(site: Site) -> None:
    client = site.client()
    ok = client.get("/worklist", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
    assert ok.status_code == 200
    bad = client.get("/worklist", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


def test_a_deactivated_user_loses_the_session_at_once(site: Site) -> None:
    anna, _ = site.login("anna")
    site.store.users.set_active("anna", active=False)
    assert anna.get("/worklist").status_code == 401


def test_cookie_posts_need_the_csrf_token(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    assert anna.post(f"/exams/{exam}/claim").status_code == 403
    assert anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_a_form_post_carries_the_csrf_token_in_a_hidden_field(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    assert anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": "forged"}).status_code == 403
    answer = anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == f"/ui/exams/{exam}"


def test_bearer_calls_are_exempt_from_csrf(site: Site) -> None:
    exam = site.exam(1, 2)
    client = site.client()
    headers = {"Authorization": f"Bearer {READER_TOKEN}"}
    assert client.post(f"/exams/{exam}/claim", headers=headers).status_code == 200
    decided = client.post(f"/exams/{exam}/decision", json={"recall": False}, headers=headers)
    assert decided.status_code == 200
