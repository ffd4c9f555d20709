"""Drift on one device, end to end: synthetic exams of three devices over two weeks go
through the real worker (folder source, SQLite, the packaged model); on one store a device's
processing was updated (hologic-like-updated: same manufacturer, model and station, a much
steeper tone curve) and the model's scores for it move. ``mammotriage monitor`` raises the
drift alert for that device and no other; the store without the update raises none.

The rules are the shipped ones (configs/monitor.yaml) but for ``min_exams``, the weekly
sample a rule needs, set to what the test can afford to score (10 exams per device-week).
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mammotriage import synth
from mammotriage.cli.main import app
from mammotriage.monitor import DEFAULT_RULES
from worker_helpers import build, folder_settings, run_once

pytestmark = pytest.mark.integration

WEEKS = ((date(2026, 11, 9), date(2026, 11, 15)), (date(2026, 11, 16), date(2026, 11, 22)))
PER_DEVICE_WEEK = 10
DRIFTING = "SYNTH-HOLOGIC-LIKE / Synthetic Dimensions-like / HOLOGIC-LIKE"


def _store(root: Path, hologic_key: str) -> Path:
    """A store of two weeks of ge-like, siemens-like and (``hologic_key``) exams, scored by
    the worker; returns the monitor config for it."""
    settings = folder_settings(root, thumbnails_dir=None, outputs={"sr": {"enabled": False}})
    incoming = root / "incoming"
    for week, (first, last) in enumerate(WEEKS):
        for part, keys in enumerate((("ge-like", "siemens-like"), (hologic_key,))):
            synth.generate(
                incoming / f"w{week}p{part}",
                exams=PER_DEVICE_WEEK * len(keys),
                seed=100 + 10 * week + part,
                small=True,
                prevalence=0.01,
                workers=1,
                profiles=[synth.profile_by_key(k) for k in keys],
                dates=(first, last),
            )
    for truth in incoming.rglob("truth.csv"):
        truth.unlink()
    summary = run_once(build(settings))
    assert summary.scored == 3 * 2 * PER_DEVICE_WEEK
    rules = [r.model_dump(exclude={"description"}) for r in DEFAULT_RULES]
    for rule in rules:
        rule["min_exams"] = PER_DEVICE_WEEK
    config = root / "monitor.yaml"
    config.write_text(
        yaml.safe_dump({"database": str(root / "db.sqlite"), "alerts": rules}), encoding="utf-8"
    )
    return config


def _monitor(config: Path) -> dict:
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "--config",
            str(config),
            "--since",
            "2026-11-09",
            "--until",
            "2026-11-22",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("drifted"), "hologic-like-updated")


def test_drift_alert_fires_for_the_updated_device_only(drifted: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mammotriage.monitor"):
        report = _monitor(drifted)
    alerts = report["alerts"]
    assert [(a["rule"], a["device"], a["week"]) for a in alerts] == [
        ("category-drift", DRIFTING, "2026-11-16")
    ]
    assert report["new_alerts"] == 1
    # Stored and logged once, without any identifier: the log line names rule, site and device.
    logged = [r for r in caplog.records if getattr(r, "event", None) == "monitor-alert"]
    assert [(r.rule, r.device) for r in logged] == [("category-drift", DRIFTING)]
    weeks = {(d["device"], d["week"]): d for d in report["devices"]}
    assert len(weeks) == 6
    for (device, _), week in weeks.items():
        assert week["scored"] == PER_DEVICE_WEEK
        if device == DRIFTING:
            assert week["psi"] > 0.2 and week["p_value"] < 0.001
            assert sum(week["category_counts"][7:]) >= PER_DEVICE_WEEK - 1
        else:
            assert week["p_value"] > 0.001


def test_monitoring_again_stores_and_logs_nothing_new(drifted: Path, caplog) -> None:
    _monitor(drifted)
    with caplog.at_level(logging.WARNING, logger="mammotriage.monitor"):
        again = _monitor(drifted)
    assert len(again["alerts"]) == 1 and again["new_alerts"] == 0
    assert not [r for r in caplog.records if getattr(r, "event", None) == "monitor-alert"]


def test_the_same_devices_without_the_update_raise_no_alert(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    report = _monitor(_store(tmp_path_factory.mktemp("steady"), "hologic-like"))
    assert report["alerts"] == []
    devices = {d["device"] for d in report["devices"]}
    assert DRIFTING in devices and len(devices) == 3
