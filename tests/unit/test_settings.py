"""Config files: relative paths mean the file's folder, defaults come from the package, and
``mammotriage config show`` says where every effective value came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammotriage import defaults
from mammotriage.cli import app
from mammotriage.errors import ConfigError
from mammotriage.settings import describe_settings
from mammotriage.worker.config import load_worker_settings

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "worker.yaml"
    path.write_text(
        "database: state/worklist.sqlite\n"
        "work_dir: /srv/work\n"
        "source: {kind: cstore, incoming: ../incoming, reports: out}\n"
        "retry: {max_attempts: 3}\n"
    )
    return path


def test_relative_paths_in_a_file_are_relative_to_the_file(config, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_worker_settings(config)
    assert settings.database == str(config.parent / "state" / "worklist.sqlite")
    assert settings.source.incoming == tmp_path / "incoming"
    assert settings.source.reports == config.parent / "out"
    assert settings.work_dir == Path("/srv/work")


def test_a_database_url_in_a_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "worker.yaml"
    url = "postgresql+psycopg://mammotriage@db.example.org/mammotriage"
    path.write_text(f"database: {url}\nsource: {{kind: folder, path: x}}\n")
    assert load_worker_settings(path).database == url


def test_relative_paths_from_the_environment_stay_relative_to_the_current_directory(
    config, monkeypatch
):
    monkeypatch.setenv("MAMMOTRIAGE_WORKER_DATABASE", "here.sqlite")
    assert load_worker_settings(config).database == "here.sqlite"


def test_model_and_policy_default_to_the_packaged_ones(config):
    settings = load_worker_settings(config)
    assert settings.model == defaults.model_path()
    assert settings.policy == defaults.policy_path()
    assert settings.model.with_suffix(".json").is_file()


def test_each_setting_says_where_it_came_from(config, monkeypatch):
    monkeypatch.setenv("MAMMOTRIAGE_WORKER_SOURCE__PORT", "11113")
    rows = {r.key: r for r in describe_settings(load_worker_settings(config), config, "worker")}
    assert rows["database"].source == f"file {config}"
    assert rows["retry.max_attempts"].source == f"file {config}"
    assert rows["retry.base_seconds"].source == "default"
    assert rows["model"].source == "default"
    assert rows["source.port"].value == 11113
    assert rows["source.port"].source == "environment $MAMMOTRIAGE_WORKER_SOURCE__PORT"


def test_a_bad_value_from_the_environment_names_its_variable(config, monkeypatch):
    monkeypatch.setenv("MAMMOTRIAGE_WORKER_SOURCE__QUIET_SECONDS", "abc")
    with pytest.raises(ConfigError, match=r"\$MAMMOTRIAGE_WORKER_SOURCE__QUIET_SECONDS"):
        load_worker_settings(config)


def test_config_show_prints_the_effective_worker_settings(config):
    result = runner.invoke(app, ["config", "show", "worker", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["model"] == {
        "key": "model", "value": str(defaults.model_path()), "source": "default"
    }
    assert rows["source.incoming"]["value"] == str(config.parent.parent / "incoming")


def test_config_show_masks_secrets(tmp_path):
    path = tmp_path / "api.yaml"
    secret = "s" * 40
    path.write_text(f"session_secret: {secret}\n")
    result = runner.invoke(app, ["config", "show", "api", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert secret not in result.stdout
    rows = {r["key"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["session_secret"]["source"] == f"file {path}"


def test_config_show_refuses_a_bad_config_in_one_line(tmp_path):
    path = tmp_path / "worker.yaml"
    path.write_text("source: {kind: folder}\n")
    result = runner.invoke(app, ["config", "show", "worker", "--config", str(path)])
    assert result.exit_code == 2
    assert "source.folder.path" in result.output and "Traceback" not in result.output
