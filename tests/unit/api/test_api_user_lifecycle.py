"""User and token lifecycle over HTTP: deactivation and a password change end existing
sessions and stop tokens at once; expired and revoked tokens get 401; the admin page's
forms deactivate, activate, reset a password, revoke tokens and end sessions, each needing
the admin role and the CSRF token, each audited with the admin's name."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from api_site import NOW, PASSWORD, READER_TOKEN, SERVICE_TOKEN, Site, make_site
from mammotriage.api.security import hash_password, token_sha256
from mammotriage.worklist.models import AuditRow

NEW_PASSWORD = "a brand new passphrase"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audit(site: Site) -> list[tuple[str, str, dict[str, object]]]:
    with site.store.db.session() as session:
        rows = session.execute(select(AuditRow.actor, AuditRow.action, AuditRow.detail)).all()
    return [(a, b, dict(c)) for a, b, c in rows]


def _saved(site: Site, client: httpx.Client) -> httpx.Client:
    other = site.client()
    other.cookies.update(client.cookies)
    return other


def _active(site: Site, name: str) -> bool:
    user = site.store.users.get(name)
    assert user is not None
    return user.active


# ---- the store's lifecycle, seen by the service ---------------------------------------


def test_deactivation_ends_sessions_and_stops_tokens_at_once(site: Site) -> None:
    anna, _ = site.login("anna")
    assert anna.get("/worklist").status_code == 200
    site.store.users.set_active("anna", active=False, now=NOW)
    assert anna.get("/worklist").status_code == 401
    assert site.client().get("/worklist", headers=_bearer(READER_TOKEN)).status_code == 401
    site.store.users.set_active("anna", active=True)
    assert anna.get("/worklist").status_code == 401  # the session stays ended
    assert site.client().get("/worklist", headers=_bearer(READER_TOKEN)).status_code == 200


def test_a_password_change_ends_existing_sessions(site: Site) -> None:
    anna, _ = site.login("anna")
    site.store.users.set_password("anna", hash_password(NEW_PASSWORD), NOW)
    answer = anna.get("/worklist")
    assert answer.status_code == 401 and "password-changed" in answer.json()["detail"]
    again, _ = site.login("anna", NEW_PASSWORD)
    assert again.get("/worklist").status_code == 200


def test_an_expired_token_gets_401(site: Site) -> None:
    site.store.users.add_token(
        "ris", token_sha256("feed-token-0123456789"), "feed", expires_at=NOW + timedelta(days=90)
    )
    client = site.client()
    assert client.get("/worklist", headers=_bearer("feed-token-0123456789")).status_code == 200
    site.clock.now = NOW + timedelta(days=90)
    answer = client.get("/worklist", headers=_bearer("feed-token-0123456789"))
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    assert client.get("/worklist", headers=_bearer(SERVICE_TOKEN)).status_code == 200


def test_a_revoked_token_gets_401_and_its_last_use_is_kept(site: Site) -> None:
    client = site.client()
    assert client.get("/worklist", headers=_bearer(SERVICE_TOKEN)).status_code == 200
    site.store.users.revoke_tokens("ris", NOW, "tests")
    answer = client.get("/worklist", headers=_bearer(SERVICE_TOKEN))
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    (token,) = site.store.users.tokens("ris")
    assert token.last_used_at == NOW and token.revoked_at == NOW


def test_a_revoked_token_is_refused_at_once_with_the_cache_on(site: Site) -> None:
    cached = make_site(site.store, user_cache_seconds=60)
    root, csrf = cached.login("root")
    client = cached.client()
    assert client.get("/worklist", headers=_bearer(SERVICE_TOKEN)).status_code == 200
    answer = root.post("/ui/admin/users/ris/revoke-tokens", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert client.get("/worklist", headers=_bearer(SERVICE_TOKEN)).status_code == 401
    for c in cached.clients:
        c.close()


# ---- the admin page ------------------------------------------------------------------


def test_the_admin_page_lists_tokens_and_sessions_with_a_form_per_action(site: Site) -> None:
    site.login("anna")
    root, _ = site.login("root")
    page = root.get("/admin")
    assert page.status_code == 200
    for action in ("deactivate", "end-sessions", "revoke-tokens", "password"):
        assert f'action="/ui/admin/users/anna/{action}"' in page.text
    assert 'action="/ui/admin/users/root/deactivate"' not in page.text  # not oneself
    assert SERVICE_TOKEN not in page.text and token_sha256(SERVICE_TOKEN) not in page.text
    assert "tests:" in page.text  # the token's name


def test_an_admin_deactivates_and_activates_a_user(site: Site) -> None:
    anna, _ = site.login("anna")
    root, csrf = site.login("root")
    answer = root.post("/ui/admin/users/anna/deactivate", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    assert "Deactivated anna: 1 session(s) ended" in root.get("/admin").text
    assert not _active(site, "anna")
    assert anna.get("/worklist").status_code == 401
    assert site.client().get("/worklist", headers=_bearer(READER_TOKEN)).status_code == 401
    answer = root.post("/ui/admin/users/anna/activate", data={"csrf_token": csrf})
    assert answer.status_code == 303 and _active(site, "anna")
    assert site.client().get("/worklist", headers=_bearer(READER_TOKEN)).status_code == 200
    log = _audit(site)
    assert ("root", "user-deactivated", {"user": "anna", "sessions_ended": 1}) in log
    assert ("root", "user-activated", {"user": "anna"}) in log


def test_an_admin_cannot_deactivate_themselves(site: Site) -> None:
    root, csrf = site.login("root")
    answer = root.post("/ui/admin/users/root/deactivate", data={"csrf_token": csrf})
    assert answer.status_code == 409 and "themselves" in answer.text
    assert _active(site, "root") and root.get("/admin").status_code == 200


def test_an_admin_resets_a_password(site: Site) -> None:
    anna, _ = site.login("anna")
    root, csrf = site.login("root")
    short = root.post(
        "/ui/admin/users/anna/password", data={"csrf_token": csrf, "password": "short"}
    )
    assert short.status_code == 422 and "at least 10" in short.text
    assert anna.get("/worklist").status_code == 200
    answer = root.post(
        "/ui/admin/users/anna/password", data={"csrf_token": csrf, "password": NEW_PASSWORD}
    )
    assert answer.status_code == 303
    assert anna.get("/worklist").status_code == 401
    again, _ = site.login("anna", NEW_PASSWORD)
    assert again.get("/worklist").status_code == 200
    assert ("root", "password-changed", {"user": "anna", "sessions_ended": 1}) in _audit(site)
    assert NEW_PASSWORD not in str(_audit(site))


def test_an_admin_revokes_tokens_and_ends_sessions(site: Site) -> None:
    anna, _ = site.login("anna")
    root, csrf = site.login("root")
    answer = root.post("/ui/admin/users/anna/revoke-tokens", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert site.client().get("/worklist", headers=_bearer(READER_TOKEN)).status_code == 401
    assert anna.get("/worklist").status_code == 200  # revoking tokens leaves sessions
    answer = root.post("/ui/admin/users/anna/end-sessions", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert anna.get("/worklist").status_code == 401 and _active(site, "anna")
    again, _ = site.login("anna", PASSWORD)
    assert again.get("/worklist").status_code == 200
    log = _audit(site)
    assert ("root", "tokens-revoked", {"user": "anna", "token": None, "count": 1}) in log
    assert ("root", "sessions-ended", {"user": "anna", "count": 1}) in log


@pytest.mark.parametrize("action", ["deactivate", "end-sessions", "revoke-tokens", "password"])
def test_the_admin_actions_need_the_csrf_token_and_the_admin_role(site: Site, action: str) -> None:
    anna, anna_csrf = site.login("anna")
    root, _ = site.login("root")
    form = {"password": NEW_PASSWORD}
    answer = root.post(f"/ui/admin/users/ben/{action}", data=form)
    assert answer.status_code == 403
    answer = root.post(f"/ui/admin/users/ben/{action}", data={**form, "csrf_token": "forged"})
    assert answer.status_code == 403
    answer = anna.post(f"/ui/admin/users/ben/{action}", data={**form, "csrf_token": anna_csrf})
    assert answer.status_code == 403
    assert site.client().post(f"/ui/admin/users/ben/{action}", data=form).status_code == 303
    assert _active(site, "ben") and site.login("ben")[0].get("/worklist").status_code == 200
    assert not [e for e in _audit(site) if e[2].get("user") == "ben"]


def test_an_unknown_user_is_a_404(site: Site) -> None:
    root, csrf = site.login("root")
    answer = root.post("/ui/admin/users/nobody/deactivate", data={"csrf_token": csrf})
    assert answer.status_code == 404 and "no user" in answer.text
