"""Schemathesis against the live schema, for each role (a radiologist by token and by
session with its CSRF header, an admin by session, a service by token) and signed out:
every answer must be documented (status, content type, body schema, headers) and none may
be a 5xx.

Bounded and repeatable: a few examples per operation and generation mode (valid and
invalid inputs), derandomised (the same cases every run), no example database, no
shrinking. The store is the real one, with exams a reader holds and one with its report in
a folder, so that the cases reach the routes' real answers and not only 404s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_site import PASSWORD, READER_TOKEN, SERVICE_TOKEN, STUDY_ROOT, Site, csrf_of

#: Examples per operation and generation mode (each sent as every role).
EXAMPLES = 5
ROLES = ("radiologist-bearer", "radiologist-cookie", "admin-cookie", "service-bearer", "none")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: Credentials each case's own (generated) ones are replaced with.
AUTH_HEADERS = {"authorization", "x-csrf-token"}
SESSION_COOKIE = "mammotriage_session"


@dataclass
class Caller:
    """One role's client and the credentials it sends with every case."""

    client: TestClient
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, kwargs: dict[str, Any]) -> Any:
        headers = {
            k: v for k, v in kwargs.pop("headers", {}).items() if k.lower() not in AUTH_HEADERS
        }
        # The API takes no cookie but the session's; the caller's own session (if any) is in
        # the client's jar, a generated one would replace it.
        cookies = kwargs.pop("cookies", None) or {}
        assert set(cookies) <= {SESSION_COOKIE}, cookies
        if isinstance(kwargs.get("data"), bytes | str):  # a raw body, not a form
            kwargs["content"] = kwargs.pop("data")
        return self.client.request(headers=headers | self.headers, **kwargs)


def caller(site: Site, role: str) -> Caller:
    client = TestClient(site.app, raise_server_exceptions=False, follow_redirects=False)  # type: ignore[arg-type]
    site.clients.append(client)
    if role == "none":  # signed out: every protected operation's 401 must be documented too
        return Caller(client)
    if role.endswith("bearer"):
        token = READER_TOKEN if role.startswith("radiologist") else SERVICE_TOKEN
        return Caller(client, {"Authorization": f"Bearer {token}"})
    username = "anna" if role.startswith("radiologist") else "root"
    csrf = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf}
    )
    assert answer.status_code == 303, answer.text
    return Caller(client, {"X-CSRF-Token": csrf_of(client.get("/login").text)})


def with_report(site: Site, tmp_path: Path, exam: int) -> None:
    """Exam ``exam``'s SR in a reports folder the service can read (for report.dcm)."""
    study, sop = f"{STUDY_ROOT}.{exam}", f"{STUDY_ROOT}.{exam}.99"
    folder = tmp_path / "reports" / "study"
    folder.mkdir(parents=True)
    (folder / f"{sop}.dcm").write_bytes(b"\0" * 128 + b"DICM")
    site.store.exams.save_report(study, sop, str(folder))


def run_operation(
    operation: Any, callers: dict[str, Caller], exams: list[str], failures: dict[str, str]
) -> None:
    """``EXAMPLES`` cases per generation mode, each sent as every role; valid cases on the
    store's exams as well as on random ids."""
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(mode)
        if "{exam_id}" in operation.path and mode is GenerationMode.POSITIVE:
            strategy = st.one_of(
                strategy,
                *(operation.as_strategy(mode, path_parameters={"exam_id": e}) for e in exams),
            )
        test = _cases(operation, mode.value, callers, failures)
        try:
            given(case=strategy)(test)()
        except Unsatisfiable:  # nothing to make invalid (GET /health has no parameters)
            assert mode is GenerationMode.NEGATIVE and not operation.path_parameters


def _cases(operation: Any, mode: str, callers: dict[str, Caller], failures: dict[str, str]) -> Any:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send_as_each_role(case: Any) -> None:
        for role, caller in callers.items():
            response = caller.send(case.as_transport_kwargs())
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:
                for failure in group.exceptions:
                    key = f"{role}: {operation.label} [{mode}]: {failure.title}"
                    failures.setdefault(key, f"{response.status_code} {response.text[:200]}")

    return send_as_each_role


def test_every_answer_is_documented_and_none_is_a_server_error(site: Site, tmp_path: Path) -> None:
    exams = [str(site.exam(n, category)) for n, category in ((1, 9), (2, 3), (3, 5))]
    with_report(site, tmp_path, 1)
    callers = {role: caller(site, role) for role in ROLES}
    for role in ("radiologist-bearer", "radiologist-cookie"):  # anna holds exam 1
        claim = callers[role].send({"method": "POST", "url": f"/exams/{exams[0]}/claim"})
        assert claim.status_code == 200, claim.text
    live = [who.send({"method": "GET", "url": "/openapi.json"}) for who in callers.values()]
    assert [answer.status_code for answer in live] == [200] * (len(ROLES) - 1) + [401]
    live.pop()
    assert all(answer.json() == live[0].json() for answer in live)
    schema = schemathesis.openapi.from_dict(live[0].json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    failures: dict[str, str] = {}
    for operation in operations:
        run_operation(operation, callers, [*exams, str(uuid.uuid4())], failures)
    assert not failures, "\n".join(f"{k}\n    {v}" for k, v in failures.items())
