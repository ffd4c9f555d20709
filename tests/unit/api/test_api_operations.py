"""Health, readiness, metrics and the OpenAPI description: what operations and other
programs rely on."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from api_site import SERVICE_TOKEN, Site, make_site
from mammotriage.worklist import Store


def test_health_answers_without_authentication(site: Site) -> None:
    client = site.client()
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/ready").status_code == 200


def test_ready_is_503_when_the_database_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    store = Store(str(folder / "worklist.db"))
    store.migrate()
    site = make_site(store)
    client = site.client()
    assert client.get("/health/ready").status_code == 200
    store.db.engine.dispose()
    shutil.rmtree(folder)
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert client.get("/health").status_code == 200
    client.close()
    store.close()


def test_metrics_count_requests_by_route_and_show_worklist_sizes(site: Site) -> None:
    exam = site.exam(1, 10)
    site.exam(2, 2)
    client = site.client()
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    client.get("/worklist", headers=headers)
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'mammotriage_api_requests_total{method="GET",route="/worklist",status="200"} 1.0' in text
    assert 'mammotriage_worklist_exams{queue="all"} 2.0' in text
    assert 'mammotriage_worklist_exams{queue="priority"} 1.0' in text
    assert "mammotriage_api_request_seconds_bucket" in text
    assert str(exam) not in text


def test_openapi_lists_every_endpoint(site: Site) -> None:
    client, _ = site.login("anna")
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/worklist",
        "/exams/{exam_id}",
        "/exams/{exam_id}/claim",
        "/exams/{exam_id}/release",
        "/exams/{exam_id}/decision",
        "/exams/{exam_id}/images/{index}.png",
        "/exams/{exam_id}/report.dcm",
        "/admin/stats",
        "/admin/readers",
        "/admin/policy",
        "/health",
        "/health/ready",
        "/metrics",
    ):
        assert path in paths, path
    assert "/login" not in paths  # the page is not part of the API


def test_admin_stats_keep_their_json_shape(site: Site) -> None:
    site.exam(1, 10)
    site.exam(2, 2, waited=timedelta(hours=3))
    client, _ = site.login("root")
    stats = client.get("/admin/stats").json()
    assert list(stats) == [
        "waiting",
        "by_queue",
        "by_category",
        "waiting_seconds",
        "throughput_24h",
        "read_total",
    ]
    assert stats["waiting"] == 2
    assert stats["by_queue"] == {
        "single": 1,
        "double": 1,
        "priority": 1,
        "consensus": 0,
        "overdue": 0,
        "unscored": 0,
    }
    assert list(stats["by_category"]) == [str(c) for c in range(1, 11)]
    assert stats["by_category"]["10"] == 1 and stats["by_category"]["2"] == 1
    assert stats["waiting_seconds"] == {"median": 2 * 3600.0, "max": 3 * 3600.0}
    assert stats["throughput_24h"] == {"decisions": 0, "exams_received": 2}
    assert stats["read_total"] == 0
