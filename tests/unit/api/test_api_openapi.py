"""The API's description: no docs pages, the schema for signed-in users only (or off), and a
schema that says what each operation refuses and how a caller authenticates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from api_site import READER_TOKEN, SERVICE_TOKEN, Site, make_site
from mammotriage.cli import app as cli

#: The operations that need a signed-in caller, and which of them check a role or CSRF.
PROTECTED = {
    ("get", "/worklist"): False,
    ("get", "/exams/{exam_id}"): True,
    ("post", "/exams/{exam_id}/claim"): True,
    ("post", "/exams/{exam_id}/release"): True,
    ("post", "/exams/{exam_id}/decision"): True,
    ("get", "/exams/{exam_id}/images/{index}.png"): True,
    ("get", "/exams/{exam_id}/report.dcm"): True,
    ("get", "/admin/stats"): True,
    ("get", "/admin/readers"): True,
    ("get", "/admin/policy"): True,
    ("get", "/admin/monitor"): True,
    ("get", "/metrics"): True,
}
STATE_CHANGES = {op for op in PROTECTED if op[0] == "post"}


def schema_of(site: Site) -> dict[str, Any]:
    answer = site.client().get(
        "/openapi.json", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    schema: dict[str, Any] = answer.json()
    return schema


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_no_docs_pages_for_anyone(site: Site, path: str) -> None:
    anna, _ = site.login("anna")
    for client in (site.client(), anna):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "cdn.jsdelivr.net" not in answer.text


def test_the_schema_needs_a_signed_in_user_of_any_role(site: Site) -> None:
    answer = site.client().get("/openapi.json")
    assert answer.status_code == 401
    assert answer.json() == {"detail": "not authenticated: log in or send a bearer token"}
    assert "paths" not in answer.text
    root, _ = site.login("root")
    assert root.get("/openapi.json").status_code == 200
    for token in (SERVICE_TOKEN, READER_TOKEN):
        headers = {"Authorization": f"Bearer {token}"}
        assert site.client().get("/openapi.json", headers=headers).status_code == 200


def test_the_schema_can_be_turned_off(site: Site) -> None:
    off = make_site(site.store, openapi="off")
    client = off.client()
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    assert client.get("/openapi.json", headers=headers).status_code == 404
    assert client.get("/worklist", headers=headers).status_code == 200
    client.close()


def test_every_protected_operation_documents_401_and_its_security(site: Site) -> None:
    paths = schema_of(site)["paths"]
    wrong = []
    for method, path in PROTECTED:
        operation = paths[path][method]
        if "401" not in operation["responses"]:
            wrong.append(f"{method} {path}: no 401")
        cookie = {"session": [], "csrf": []} if (method, path) in STATE_CHANGES else {"session": []}
        if operation.get("security") != [cookie, {"bearer": []}]:
            wrong.append(f"{method} {path}: security {operation.get('security')}")
    assert not wrong, wrong


def test_operations_that_check_a_role_or_csrf_document_403(site: Site) -> None:
    paths = schema_of(site)["paths"]
    for (method, path), refuses in PROTECTED.items():
        responses = paths[path][method]["responses"]
        assert ("403" in responses) is refuses, (method, path)
        if refuses:
            content = responses["403"]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorOut"}


def test_health_is_open_and_every_operation_documents_the_request_limits(site: Site) -> None:
    paths = schema_of(site)["paths"]
    for path in ("/health", "/health/ready"):
        assert paths[path]["get"]["security"] == []
        assert "401" not in paths[path]["get"]["responses"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert {"413", "431"} <= set(operation["responses"]), (method, path)


def test_security_schemes_are_bearer_session_cookie_and_csrf_header(site: Site) -> None:
    schemes = schema_of(site)["components"]["securitySchemes"]
    assert {
        name: {k: v for k, v in s.items() if k != "description"} for name, s in schemes.items()
    } == {
        "bearer": {"type": "http", "scheme": "bearer"},
        "session": {"type": "apiKey", "in": "cookie", "name": "mammotriage_session"},
        "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
    }


def test_a_negative_image_index_is_a_validation_error(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    assert anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf}).status_code == 200
    answer = anna.get(f"/exams/{exam}/images/-1.png")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["path", "index"]
    # A number past the exam's views reaches the route (not a routing 404).
    assert anna.get(f"/exams/{exam}/images/99.png").json() == {
        "detail": "no thumbnail for this view"
    }
    parameters = schema_of(site)["paths"]["/exams/{exam_id}/images/{index}.png"]["get"]
    index = next(p for p in parameters["parameters"] if p["name"] == "index")
    assert index["schema"]["minimum"] == 0


def test_serve_prints_the_schema_without_serving(tmp_path: Path) -> None:
    config = tmp_path / "api.yaml"
    database = tmp_path / "var" / "mt.sqlite"
    config.write_text(yaml.safe_dump({"database": str(database), "session_secret": "x" * 40}))
    result = CliRunner().invoke(cli, ["serve", "--print-openapi", "-c", str(config)])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "401" in schema["paths"]["/worklist"]["get"]["responses"]
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "session", "csrf"}
    assert not database.exists()  # nothing served, nothing migrated
