"""``mammotriage users deactivate | activate | passwd | revoke-token | end-sessions`` and
tokens with a name and an expiry, end to end: the commands change a real SQLite store that
a running service reads, each change is audited as ``cli``, an unknown user is a one-line
error with exit status 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner, Result

from api_site import PASSWORD, Site, make_site
from mammotriage.cli import app
from mammotriage.worklist import Store
from mammotriage.worklist.models import AuditRow

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "api.yaml"
    database = tmp_path / "var" / "mt.sqlite"
    path.write_text(yaml.safe_dump({"database": str(database), "session_secret": "x" * 40}))
    return path


@pytest.fixture
def live(config: Path) -> Iterator[Site]:
    """The service on the store the commands change, with the radiologist anna."""
    added = _users(
        config, "add", "anna", "--role", "radiologist", "--password-stdin", input=PASSWORD + "\n"
    )
    assert added.exit_code == 0, added.output
    store = Store(str(config.parent / "var" / "mt.sqlite"))
    site = make_site(store)
    yield site
    for client in site.clients:
        client.close()
    store.close()


def _users(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["users", *args, "-c", str(config)], input=input)


def _audit(site: Site) -> list[tuple[str, str, dict[str, object]]]:
    with site.store.db.session() as session:
        rows = session.execute(select(AuditRow.actor, AuditRow.action, AuditRow.detail)).all()
    return [(a, b, {k: v for k, v in dict(c).items() if k != "os_user"}) for a, b, c in rows]


def test_deactivate_ends_the_users_sessions_and_activate_lets_them_in_again(
    live: Site, config: Path
) -> None:
    anna, _ = live.login("anna")
    result = _users(config, "deactivate", "anna")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "deactivated anna; 1 session(s) ended, tokens refused while inactive"
    )
    assert anna.get("/worklist").status_code == 401
    result = _users(config, "activate", "anna")
    assert result.exit_code == 0 and result.output.strip() == "activated anna"
    assert anna.get("/worklist").status_code == 401  # ended stays ended
    assert live.login("anna")[0].get("/worklist").status_code == 200
    log = _audit(live)
    assert ("cli", "user-deactivated", {"user": "anna", "sessions_ended": 1}) in log
    assert ("cli", "user-activated", {"user": "anna"}) in log


def test_passwd_sets_a_new_password_and_ends_the_sessions(live: Site, config: Path) -> None:
    anna, _ = live.login("anna")
    result = _users(config, "passwd", "anna", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "password of anna changed; 1 session(s) ended" in result.output
    assert anna.get("/worklist").status_code == 401
    assert live.login("anna", NEW_PASSWORD)[0].get("/worklist").status_code == 200
    assert ("cli", "password-changed", {"user": "anna", "sessions_ended": 1}) in _audit(live)
    short = _users(config, "passwd", "anna", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "at least" in short.output


def test_a_named_token_with_an_expiry_works_is_listed_and_is_revoked(
    live: Site, config: Path
) -> None:
    made = _users(config, "token", "anna", "--name", "ris", "--expires-days", "90")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert live.client().get("/worklist", headers=headers).status_code == 200
    (listed,) = live.store.users.tokens("anna")
    assert listed.name == "ris" and listed.expires_at is not None
    assert (listed.expires_at - listed.created_at).days in (89, 90)
    shown = _users(config, "list")
    assert "ris" in shown.output and f"{listed.expires_at:%Y-%m-%d}" in shown.output
    assert token not in shown.output

    revoked = _users(config, "revoke-token", "anna", "--name", "ris")
    assert revoked.exit_code == 0 and "revoked 1 token(s) of anna" in revoked.output
    assert live.client().get("/worklist", headers=headers).status_code == 401
    log = _audit(live)
    assert ("cli", "token-issued", {"user": "anna", "token": "ris", "expires_days": 90}) in log
    assert ("cli", "tokens-revoked", {"user": "anna", "token": "ris", "count": 1}) in log


def test_tokens_expire_after_a_year_unless_asked_otherwise(live: Site, config: Path) -> None:
    assert _users(config, "token", "anna", "--name", "default").exit_code == 0
    assert (
        _users(config, "token", "anna", "--name", "forever", "--expires-days", "0").exit_code == 0
    )
    tokens = {t.name: t for t in live.store.users.tokens("anna")}
    default = tokens["default"]
    assert default.expires_at is not None
    assert (default.expires_at - default.created_at).days in (364, 365)
    assert tokens["forever"].expires_at is None
    result = _users(config, "revoke-token", "anna", "--all")
    assert result.exit_code == 0 and "revoked 2 token(s) of anna" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["deactivate", "nobody"],
        ["activate", "nobody"],
        ["end-sessions", "nobody"],
        ["revoke-token", "nobody", "--all"],
        ["revoke-token", "anna", "--name", "no-such-token"],
        ["revoke-token", "anna"],
        ["revoke-token", "anna", "--all", "--name", "ris"],
    ],
)
def test_an_unknown_user_or_token_is_a_one_line_error(
    live: Site, config: Path, args: list[str]
) -> None:
    result = _users(config, *args)
    assert result.exit_code == 2
    assert result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1


def test_end_sessions_logs_the_user_out_everywhere(live: Site, config: Path) -> None:
    first, _ = live.login("anna")
    second, _ = live.login("anna")
    result = _users(config, "end-sessions", "anna")
    assert result.exit_code == 0 and result.output.strip() == "ended 2 session(s) of anna"
    assert first.get("/worklist").status_code == 401 and second.get("/worklist").status_code == 401
