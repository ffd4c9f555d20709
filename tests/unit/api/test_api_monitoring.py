"""The service's monitoring: ``GET /admin/monitor`` (admins only), the ``mammotriage_monitor_*``
gauges on ``/metrics`` (every metric the shipped Prometheus rules use among them), the
admin's monitoring page rendered on the server, and a monitor that cannot be built or run
keeping the service up.

The store holds three devices' exams of four weeks, one device drifting to categories 9-10
in the last three (tests/monitor_seed.py); the monitor's rules are the defaults with a small
``min_exams``."""

from __future__ import annotations

import logging
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api_site import NOW, POLICY, READER_TOKEN, SERVICE_TOKEN, Site, make_site
from mammotriage.errors import ConfigError
from mammotriage.monitor import Monitor, load_monitor_settings, report_json
from mammotriage.outcomes import OutcomeRecord, OutcomesFile
from mammotriage.worklist.models import AuditRow
from monitor_seed import (
    DRIFTING,
    ELSEWHERE,
    SITE,
    STEADY,
    STUDY_ROOT,
    device_name,
    mondays_before,
    monitor_config,
    seed_drift,
)

REPO = Path(__file__).resolve().parents[3]
ALERT_RULES = REPO / "configs" / "prometheus" / "mammotriage-alerts.yml"
DRIFT_KEY = (SITE, device_name(DRIFTING))
#: PromQL words that are not metric names.
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev",
    "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return monitor_config(tmp_path / "monitor.yaml")


@pytest.fixture
def drift(site: Site, config: Path) -> Site:
    """The seeded store, served with the test's monitor settings."""
    seed_drift(site.store, mondays_before(NOW.date(), 4), POLICY)
    return make_site(site.store, monitor=str(config))


def metrics_of(site: Site) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` (as the service token) by sample name: each sample's labels and value."""
    answer = site.client().get("/metrics", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
    assert answer.status_code == 200, answer.text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def by_device(samples: list[tuple[dict[str, str], float]]) -> dict[tuple[str, str], float]:
    return {(labels["site"], labels["device"]): value for labels, value in samples}


# -- GET /admin/monitor --------------------------------------------------------------------


def test_an_admin_gets_the_report_and_the_stored_alerts(drift: Site, config: Path) -> None:
    root, _ = drift.login("root")
    answer = root.get("/admin/monitor")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    stored = body.pop("stored_alerts")
    # The report as `mammotriage monitor --json` gives it for the same store and time.
    expected = report_json(Monitor(drift.store, load_monitor_settings(config)).run(NOW).report)
    assert datetime.fromisoformat(body.pop("generated_at")) == NOW
    expected.pop("generated_at")
    assert body == expected
    # The drifting device alone raised the drift alert: for its third and fourth weeks (the
    # second and third of PSI over 0.2).
    assert {(a["rule"], a["site"], a["device"]) for a in body["alerts"]} == {
        ("category-drift", *DRIFT_KEY)
    }
    weeks = [w.isoformat() for w in mondays_before(NOW.date(), 4)]
    assert [(a["rule"], a["device"], a["week"]) for a in stored] == [
        ("category-drift", DRIFT_KEY[1], weeks[3]),
        ("category-drift", DRIFT_KEY[1], weeks[2]),
    ]  # newest week first
    assert stored[0]["raised_at"].startswith("2024-03-11T12:00:00")


def test_the_report_is_for_admins_only(drift: Site) -> None:
    assert drift.client().get("/admin/monitor").status_code == 401
    anna, _ = drift.login("anna")
    assert anna.get("/admin/monitor").status_code == 403
    for token in (READER_TOKEN, SERVICE_TOKEN):
        headers = {"Authorization": f"Bearer {token}"}
        assert drift.client().get("/admin/monitor", headers=headers).status_code == 403


def test_the_report_is_computed_again_only_after_refresh_seconds(drift: Site) -> None:
    root, _ = drift.login("root")
    first = root.get("/admin/monitor").json()["generated_at"]
    drift.clock.now = NOW + timedelta(seconds=299)
    assert root.get("/admin/monitor").json()["generated_at"] == first
    drift.clock.now = NOW + timedelta(seconds=300)
    later = root.get("/admin/monitor").json()["generated_at"]
    assert datetime.fromisoformat(later) == NOW + timedelta(seconds=300)


# -- /metrics ------------------------------------------------------------------------------


def test_metrics_expose_the_monitor_gauges_per_device(drift: Site) -> None:
    samples = metrics_of(drift)
    psi = by_device(samples["mammotriage_monitor_category_psi"])
    assert set(psi) == {(d.site, device_name(d)) for d in (STEADY, DRIFTING, ELSEWHERE)}
    assert psi[DRIFT_KEY] > 0.2
    assert psi[(SITE, device_name(STEADY))] == pytest.approx(0.0, abs=1e-9)
    assert by_device(samples["mammotriage_monitor_scored_exams"])[DRIFT_KEY] == 10
    assert [(labels, value) for labels, value in samples["mammotriage_monitor_alert_active"]] == [
        ({"rule": "category-drift", "site": SITE, "device": DRIFT_KEY[1]}, 1.0)
    ]
    rules = {labels["rule"]: value for labels, value in samples["mammotriage_monitor_alerts"]}
    assert rules == {
        "category-drift": 2.0,
        "unusable-images": 0.0,
        "partial-exams": 0.0,
        "recall-in-single-read-band": 0.0,
    }
    ((_, last_run),) = samples["mammotriage_monitor_last_run_timestamp_seconds"]
    assert last_run == NOW.timestamp()
    assert "mammotriage_worklist_exams" in samples  # the service's own metrics still there


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside label matchers,
    range selectors and strings, that are no function (followed by "(") and no keyword."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    found = re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", bare)
    return {name for name, call in found if not call and name.lower() not in PROMQL_WORDS}


def test_metric_names_are_found_in_promql() -> None:
    expr = 'sum by (site) (rate(a_total{rule="x y"}[5m])) / on(site) b_seconds > 0.5 and time() - c'
    assert metric_names(expr) == {"a_total", "b_seconds", "c"}


def test_every_metric_the_shipped_alerting_rules_use_is_exposed(drift: Site) -> None:
    exposed = set(metrics_of(drift))
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    used = {
        name
        for group in groups
        for rule in group["rules"]
        for name in metric_names(str(rule["expr"]))
    }
    assert {"mammotriage_monitor_alert_active"} <= used
    assert used <= exposed, sorted(used - exposed)


def test_a_report_that_cannot_be_computed_costs_a_log_line_not_the_scrape(
    drift: Site, caplog: pytest.LogCaptureFixture
) -> None:
    before = metrics_of(drift)["mammotriage_monitor_last_run_timestamp_seconds"]
    with drift.store.db.session() as session:
        session.execute(text("DROP TABLE monitor_alerts"))
    drift.clock.now = NOW + timedelta(hours=1)  # past refresh_seconds: computed again
    with caplog.at_level(logging.WARNING, logger="mammotriage.api.metrics"):
        after = metrics_of(drift)
    lines = [r for r in caplog.records if r.name == "mammotriage.api.metrics"]
    assert len(lines) == 1 and "monitoring report not computed" in lines[0].getMessage()
    assert "\n" not in lines[0].getMessage()
    # The gauges keep the last report's values (its time: what the stale alert watches).
    assert after["mammotriage_monitor_last_run_timestamp_seconds"] == before
    assert "mammotriage_worklist_exams" in after


# -- the page ------------------------------------------------------------------------------


def plots(html: str) -> dict[str, str]:
    """Each device figure's opening tag, by its data-device."""
    return {
        device: tag
        for tag, device in re.findall(
            r'(<figure [^>]*data-testid="device-plot"[^>]*data-device="([^"]+)"[^>]*>)', html
        )
    }


def test_the_monitoring_page_plots_each_device_and_marks_the_drifting_one(drift: Site) -> None:
    root, _ = drift.login("root")
    admin = root.get("/admin").text
    assert 'href="/ui/admin/monitoring"' in admin
    answer = root.get("/ui/admin/monitoring")
    assert answer.status_code == 200
    html = answer.text
    figures = plots(html)
    assert set(figures) == {device_name(d) for d in (STEADY, DRIFTING, ELSEWHERE)}
    for device, tag in figures.items():
        drifting = device == DRIFT_KEY[1]
        assert ('data-alert="true"' in tag) is drifting, device
    assert html.count("<svg ") == 3 and html.count('class="device-plot alert"') == 1
    assert 'data-testid="device-alert">alert: category-drift<' in html
    assert html.count('data-testid="stored-alert"') == 2
    # The site's "&" is escaped once, in the page and in the plots; no script anywhere.
    assert "St. Mary &amp; St. John" in html and "St. Mary & St." not in html
    assert "&amp;amp;" not in html and "<script>" not in html.split("</head>", 1)[1]


def test_the_page_shows_readers_and_outcomes(drift: Site) -> None:
    # Anna reads a category-1 exam (single reading) and recalls it; the registry reports a
    # screen-detected cancer for the first seeded exam (category 1, recalled in its file).
    exam = next(
        item
        for item in drift.store.readings.reader_queue("anna", NOW, POLICY, limit=500).items
        if item.category == 1
    )
    anna, csrf = drift.login("anna")
    headers = {"X-CSRF-Token": csrf}
    assert anna.post(f"/exams/{exam.exam_id}/claim", headers=headers).is_success
    decided = anna.post(f"/exams/{exam.exam_id}/decision", json={"recall": True}, headers=headers)
    assert decided.is_success, decided.text
    record = OutcomeRecord(f"{STUDY_ROOT}.1", True, False, True, 2)
    outcomes = OutcomesFile(Path("outcomes.csv"), "exam_id", (record,))
    assert drift.store.monitoring.import_outcomes(outcomes, "0" * 64).added == 1
    root, _ = drift.login("root")
    html = root.get("/ui/admin/monitoring").text
    readers = {
        band: re.findall(r"<td>(.*?)</td>", row)
        for band, row in re.findall(
            r'<tr data-testid="reader-figures" data-site="[^"]+" data-band="([^"]+)">(.*?)</tr>',
            html,
            re.S,
        )
    }
    assert set(readers) == {"1-5 (single reading)", "all"}
    # site, band, read, recall rate, disagreement, single-read recalled, in consensus
    assert readers["1-5 (single reading)"][2:] == ["1", "100.0%", "-", "1 of 1 (100.0%)", "0"]
    outcome_rows = dict(
        re.findall(r'<tr data-testid="outcome-figures" data-band="([^"]+)">(.*?)</tr>', html, re.S)
    )
    assert set(outcome_rows) == {"1-5 (single reading)", "all"}
    cells = re.findall(r"<td>(.*?)</td>", outcome_rows["1-5 (single reading)"])
    # band, exams, screen-detected, per 1000, recalled, PPV, interval, single-read interval
    assert cells[1:6] == ["1", "1", "1000.0", "1", "100.0%"]


def test_the_page_is_for_admins_only(drift: Site) -> None:
    answer = drift.client().get("/ui/admin/monitoring")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    anna, _ = drift.login("anna")
    assert anna.get("/ui/admin/monitoring").status_code == 403


def test_admin_views_of_the_monitoring_are_not_audited_as_the_other_admin_views(
    drift: Site,
) -> None:
    root, _ = drift.login("root")
    with drift.store.db.session() as session:
        before = session.query(AuditRow).count()
    for path in ("/admin", "/admin/stats", "/ui/admin/monitoring", "/admin/monitor"):
        assert root.get(path).status_code == 200, path
    with drift.store.db.session() as session:
        assert session.query(AuditRow).count() == before


# -- a monitor that cannot be built ----------------------------------------------------------


def test_a_monitor_without_its_model_leaves_the_service_up_and_says_why(
    site: Site, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "site-model.onnx"
    config = monitor_config(tmp_path / "monitor.yaml", model=str(missing))
    served = make_site(site.store, monitor=str(config))
    root, _ = served.login("root")
    answer = root.get("/admin/monitor")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.startswith("monitoring unavailable: ") and "site-model" in detail
    page = root.get("/ui/admin/monitoring")
    assert page.status_code == 200
    assert re.search(
        r'data-testid="monitoring-error">monitoring unavailable: [^<]*site-model', page.text
    )
    samples = metrics_of(served)
    assert "mammotriage_worklist_exams" in samples
    assert "mammotriage_monitor_alert_active" not in samples
    assert root.get("/admin/stats").status_code == 200


def test_a_wrong_monitor_settings_file_is_refused_at_start(site: Site, tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        yaml.safe_dump({"alerts": [{"name": "Bad Name", "metric": "psi", "above": 1}]})
    )
    with pytest.raises(ConfigError, match="monitor config"):
        make_site(site.store, monitor=str(config))


# -- the shipped alerting rules, judged by Prometheus's own promtool (Debian prometheus,
# installed by `make test`) ---------------------------------------------------------------

def test_promtool_accepts_the_shipped_alerting_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERT_RULES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def _series(labels: dict[str, str], name: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def test_the_shipped_rules_page_on_what_metrics_says(drift: Site, tmp_path: Path) -> None:
    """promtool's rule unit test, fed with this service's own /metrics samples: the drift
    alert fires for the drifting device and nothing else, and a report a day old is stale.
    The rules are the shipped file's less their annotations (promtool compares annotations
    verbatim; `check rules` above judges their templates)."""
    samples = metrics_of(drift)
    active = samples["mammotriage_monitor_alert_active"]
    assert [labels["device"] for labels, _ in active] == [device_name(DRIFTING)]
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    drift_labels = active[0][0]
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": _series(labels, "mammotriage_monitor_alert_active"),
                        "values": f"{value:g}x120",
                    }
                    for labels, value in active
                ]
                + [
                    {
                        # The report's time as the service last computed it; the test's
                        # clock starts at 0, so it is a report from the start of the test.
                        "series": "mammotriage_monitor_last_run_timestamp_seconds",
                        "values": "0x2000",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "MammotriageCategoryDrift",
                        "exp_alerts": [
                            {
                                "exp_labels": drift_labels
                                | {"alertname": "MammotriageCategoryDrift", "severity": "warning"}
                            }
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "MammotriageUnusableImages",
                        "exp_alerts": [],
                    },
                    {"eval_time": "10m", "alertname": "MammotriageMonitorStale", "exp_alerts": []},
                    {
                        "eval_time": "26h",
                        "alertname": "MammotriageMonitorStale",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "alertname": "MammotriageMonitorStale",
                                    "severity": "info",
                                }
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
