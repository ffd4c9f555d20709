"""Who may call what, table-driven: every endpoint for no one, a radiologist, an admin and a
service. Unauthenticated: 401 (API) or a redirect to /login (page); wrong role: 403."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api_site import SERVICE_TOKEN, Site

# (method, path, expected status for: none, radiologist, admin, service)
# {exam} is an exam the radiologist holds (claimed before the calls).
MATRIX: list[tuple[str, str, tuple[int, int, int, int]]] = [
    ("GET", "/health", (200, 200, 200, 200)),
    ("GET", "/health/ready", (200, 200, 200, 200)),
    ("GET", "/worklist", (401, 200, 200, 200)),
    ("GET", "/exams/{exam}", (401, 200, 403, 403)),
    ("GET", "/exams/{exam}/images/0.png", (401, 404, 403, 403)),
    ("GET", "/exams/{exam}/report.dcm", (401, 404, 403, 403)),
    ("POST", "/exams/{exam}/claim", (401, 200, 403, 403)),
    ("POST", "/exams/{other}/release", (401, 204, 403, 403)),
    ("POST", "/exams/{exam}/decision", (401, 200, 403, 403)),
    ("GET", "/admin/stats", (401, 403, 200, 403)),
    ("GET", "/admin/readers", (401, 403, 200, 403)),
    ("GET", "/admin/policy", (401, 403, 200, 403)),
    ("GET", "/metrics", (401, 403, 200, 200)),
    ("GET", "/", (303, 200, 200, 200)),
    ("GET", "/ui/exams/{exam}", (303, 200, 403, 403)),
    ("GET", "/admin", (303, 403, 200, 403)),
    ("GET", "/openapi.json", (401, 200, 200, 200)),
]
ROLES = ("none", "radiologist", "admin", "service")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_expected_status_on_each_endpoint(site: Site, role: str) -> None:
    exam, other = site.exam(1, 2), site.exam(2, 3)
    anna, anna_csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": anna_csrf})
    client: TestClient
    headers: dict[str, str] = {}
    if role == "none":
        client = site.client()
    elif role == "radiologist":
        client, headers["X-CSRF-Token"] = anna, anna_csrf
    elif role == "admin":
        client, headers["X-CSRF-Token"] = site.login("root")
    else:
        client = site.client()
        headers["Authorization"] = f"Bearer {SERVICE_TOKEN}"
    column = ROLES.index(role)
    wrong = []
    for method, template, statuses in MATRIX:
        path = template.format(exam=exam, other=other)
        body = {"recall": False} if path.endswith("/decision") else None
        answer = client.request(method, path, headers=headers, json=body)
        if answer.status_code != statuses[column]:
            wrong.append(f"{method} {template}: {answer.status_code} != {statuses[column]}")
    assert not wrong, wrong


def test_a_reader_cannot_open_another_readers_claimed_exam(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})
    ben, _ = site.login("ben")
    answer = ben.get(f"/exams/{exam}")
    assert answer.status_code == 403
    assert "another reader" in answer.json()["detail"]
    assert ben.get(f"/exams/{exam}/images/0.png").status_code == 403
    assert ben.get(f"/ui/exams/{exam}").status_code == 403
