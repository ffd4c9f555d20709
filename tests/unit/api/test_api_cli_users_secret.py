"""``mammotriage users ...`` only opens the store, so it runs before the session secret is
set; ``serve``, which signs the session cookie with it, still refuses to start without it."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from mammotriage.cli import app
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role


def _config(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "api.yaml"
    path.write_text(
        yaml.safe_dump(
            {"database": str(tmp_path / "mt.sqlite"), "environment": "production", **values}
        )
    )
    return path


def test_users_add_and_list_run_before_the_session_secret_is_set(tmp_path: Path) -> None:
    config = _config(tmp_path, session_secret="change-me-development-only")
    added = CliRunner().invoke(
        app,
        ["users", "add", "anna", "--role", "radiologist", "--password-stdin", "-c", str(config)],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    listed = CliRunner().invoke(app, ["users", "list", "-c", str(config)])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].strip() == "1 user" and "anna" in listed.output
    store = Store(str(tmp_path / "mt.sqlite"))
    user = store.users.get("anna")
    store.close()
    assert user is not None and user.role is Role.RADIOLOGIST

    served = CliRunner().invoke(app, ["serve", "-c", str(config)])
    assert served.exit_code == 2
    assert "session_secret" in served.output and "MAMMOTRIAGE_API_SESSION_SECRET" in served.output


def test_users_add_still_refuses_a_wrong_setting(tmp_path: Path) -> None:
    config = _config(tmp_path, forwarded_allow_ips=["*"])
    added = CliRunner().invoke(app, ["users", "add", "ris", "--role", "service", "-c", str(config)])
    assert added.exit_code == 2 and "forwarded_allow_ips" in added.output
    served = CliRunner().invoke(app, ["serve", "-c", str(config)])
    assert served.exit_code == 2 and "'*' is not an IP address or network" in served.output
