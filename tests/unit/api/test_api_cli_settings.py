"""``mammotriage users`` and ``serve``, and the settings' refusal of a default secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mammotriage.api.security import token_sha256, verify_password
from mammotriage.api.settings import DEVELOPMENT_SESSION_SECRET, ApiSettings, load_api_settings
from mammotriage.cli import app
from mammotriage.errors import ConfigError
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role

SECRET = "x" * 40


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "api.yaml"
    path.write_text(
        yaml.safe_dump({"database": str(tmp_path / "var" / "mt.sqlite"), "session_secret": SECRET})
    )
    return path


def test_users_add_stores_an_argon2_hash_not_the_password(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = CliRunner().invoke(
        app,
        ["users", "add", "anna", "--role", "radiologist", "--password-stdin", "-c", str(config)],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    store = Store(str(tmp_path / "var" / "mt.sqlite"))
    user = store.users.get("anna")
    store.close()
    assert user is not None and user.role is Role.RADIOLOGIST
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert "a long enough password" not in user.password_hash
    assert verify_password(user.password_hash, "a long enough password")


def test_users_add_service_prints_a_token_stored_only_as_sha256(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = CliRunner().invoke(
        app, ["users", "add", "ris", "--role", "service", "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    store = Store(str(tmp_path / "var" / "mt.sqlite"))
    user = store.users.for_token(token_sha256(token))
    store.close()
    assert user is not None and user.username == "ris"
    listed = CliRunner().invoke(app, ["users", "list", "-c", str(config)])
    assert "ris" in listed.output and "service" in listed.output


def test_users_add_refuses_a_short_password(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "users",
            "add",
            "ben",
            "--role",
            "admin",
            "--password-stdin",
            "-c",
            str(_config(tmp_path)),
        ],
        input="short\n",
    )
    assert result.exit_code == 2 and "at least" in result.output


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serve_refuses_a_network_address_without_tls_or_the_flag(host: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", host])
    assert result.exit_code == 2
    assert "without TLS" in result.output and "--allow-insecure-bind" in result.output


def test_settings_refuse_the_default_secret_outside_development() -> None:
    with pytest.raises(ValueError, match="secrets.token_urlsafe"):
        ApiSettings(session_secret=DEVELOPMENT_SESSION_SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secrets.token_urlsafe"):
        ApiSettings(session_secret="")  # type: ignore[arg-type]
    assert ApiSettings(environment="development").environment == "development"
    assert ApiSettings(session_secret=SECRET).environment == "production"  # type: ignore[arg-type]


def test_the_shipped_config_is_refused_until_a_secret_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = Path(__file__).parents[3] / "configs" / "api.yaml"
    with pytest.raises(ConfigError, match="MAMMOTRIAGE_API_SESSION_SECRET"):
        load_api_settings(shipped)
    monkeypatch.setenv("MAMMOTRIAGE_API_SESSION_SECRET", SECRET)
    settings = load_api_settings(shipped)
    # relative to the config file's folder: the checkout's var/
    assert settings.database == str(shipped.parents[1].resolve() / "var" / "mammotriage.sqlite")
    assert settings.session_secret.get_secret_value() == SECRET
