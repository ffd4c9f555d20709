"""Security headers on every answer (the page, the API, errors, refusals) and no caching of
anything that carries data; only the page's static files may be cached."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api_site import READER_TOKEN, Site, make_site
from mammotriage.api.headers import SecurityHeadersMiddleware

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
AUTH = {"Authorization": f"Bearer {READER_TOKEN}"}


def assert_secured(headers: Mapping[str, str]) -> None:
    assert headers.get("content-security-policy") == STRICT_CSP
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "no-referrer"
    assert headers.get("cross-origin-opener-policy") == "same-origin"
    permissions = headers.get("permissions-policy", "")
    for feature in ("camera", "microphone", "geolocation"):
        assert f"{feature}=()" in permissions
    assert "strict-transport-security" not in headers  # plain HTTP: no HSTS


def test_the_page_the_api_and_their_errors_carry_the_headers_and_no_store(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, _ = site.login("anna")
    bearer = site.client()
    assert bearer.post(f"/exams/{exam}/claim", headers=AUTH).status_code == 200
    answers = {
        "login page": site.client().get("/login"),
        "queue page": anna.get("/"),
        "exam json": bearer.get(f"/exams/{exam}", headers=AUTH),
        "worklist json": bearer.get("/worklist", headers=AUTH),
        "health": bearer.get("/health"),
        "401": site.client().get("/worklist"),
        "404": bearer.get("/no-such-route"),
        "413 refusal": bearer.post("/exams/x/decision", content=b" " * (70 * 1024)),
    }
    for name, answer in answers.items():
        assert answer.headers.get("cache-control") == "no-store", name
        assert_secured(answer.headers)
    assert answers["exam json"].status_code == 200
    assert answers["worklist json"].status_code == 200


def test_metrics_are_not_cached(site: Site) -> None:
    anna, _ = site.login("root")
    answer = anna.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"


def test_a_route_that_sets_a_header_keeps_its_value() -> None:
    def own(_: Request) -> Response:
        return PlainTextResponse("x", headers={"Cache-Control": "private, max-age=60"})

    app = SecurityHeadersMiddleware(Starlette(routes=[Route("/own", own)]), tls=False)
    answer = TestClient(app).get("/own")
    assert answer.headers["cache-control"] == "private, max-age=60"
    assert_secured(answer.headers)


def test_static_files_may_be_cached_but_still_carry_the_headers(site: Site) -> None:
    answer = site.client().get("/static/app.js")
    assert answer.status_code == 200
    assert "cache-control" not in answer.headers
    assert_secured(answer.headers)


@pytest.mark.parametrize("secure", [True, False])
def test_hsts_only_when_the_service_runs_behind_tls(site: Site, secure: bool) -> None:
    served = make_site(site.store, secure_cookies=secure)
    answer = served.client().get("/health")
    hsts = answer.headers.get("strict-transport-security")
    assert hsts == ("max-age=31536000" if secure else None)
