"""The reading service behind a TLS-terminating reverse proxy: forwarded headers believed
from the proxies in ``forwarded_allow_ips`` only (the login throttle counts the real client),
the session cookie Secure once the request came over HTTPS, and pages that name every URL
root-relative, so that nothing loads as mixed content. The same through a real nginx, in
Chromium: tests/integration/test_tls_proxy.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_site import PASSWORD, Site, csrf_of, make_site
from mammotriage.api.settings import ApiSettings, load_api_settings
from mammotriage.errors import ConfigError
from mammotriage.worklist.models import LoginThrottleRow

PROXY = "10.0.0.5"
CLIENT = "198.51.100.7"
#: Every URL-valued attribute a page can carry.
URL_ATTRIBUTE = re.compile(r'\b(?:src|href|action|formaction)="([^"]*)"')

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def proxied(site: Site) -> Iterator[Site]:
    """The test site's store and users, served with ``forwarded_allow_ips: [PROXY]``."""
    behind = make_site(site.store, forwarded_allow_ips=[PROXY])
    yield behind
    for client in behind.clients:
        client.close()


def _peer(site: Site, address: str, **headers: str) -> TestClient:
    client = TestClient(
        site.app,  # type: ignore[arg-type]
        follow_redirects=False,
        client=(address, 40000),
        headers=headers,
    )
    site.clients.append(client)
    return client


def _fail_login(client: TestClient) -> str:
    """One wrong password; the session cookie as the login form set it. The cookie goes
    back by hand: the test client keeps a Secure one for https only, and it talks http to
    the service as the proxy does."""
    form = client.get("/login")
    cookie = form.headers["set-cookie"]
    answer = client.post(
        "/login",
        data={"username": "anna", "password": "wrong password", "csrf_token": csrf_of(form.text)},
        headers={"Cookie": cookie.split(";", 1)[0]},
    )
    assert answer.status_code == 401, answer.text
    return cookie


def _throttled_addresses(site: Site) -> set[str]:
    with site.store.db.session() as session:
        keys = session.execute(select(LoginThrottleRow.key)).scalars().all()
    return {key.removeprefix("address:") for key in keys if key.startswith("address:")}


@sqlite_only
def test_a_listed_proxy_names_the_client_and_the_scheme(proxied: Site) -> None:
    # The client wrote its own X-Forwarded-For; the proxy appended the address it saw.
    browser = _peer(
        proxied,
        PROXY,
        **{"X-Forwarded-For": f"203.0.113.1, {CLIENT}", "X-Forwarded-Proto": "https"},
    )
    cookie = _fail_login(browser)
    assert _throttled_addresses(proxied) == {CLIENT}
    assert cookie.startswith("mammotriage_session=") and "; secure" in cookie.lower()


@sqlite_only
def test_forwarded_headers_from_anyone_else_are_ignored(proxied: Site, site: Site) -> None:
    forged = {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"}
    _fail_login(_peer(proxied, "10.0.0.6", **forged))  # not the listed proxy
    assert _throttled_addresses(proxied) == {"10.0.0.6"}
    cookie = _fail_login(_peer(site, PROXY, **forged))  # nobody listed (the default)
    assert _throttled_addresses(site) == {"10.0.0.6", PROXY}
    assert "secure" not in cookie.lower()


@sqlite_only
def test_hsts_goes_with_https_through_a_listed_proxy_only(proxied: Site, site: Site) -> None:
    https = {"X-Forwarded-Proto": "https"}
    assert "strict-transport-security" in _peer(proxied, PROXY, **https).get("/login").headers
    for client in (_peer(proxied, PROXY), _peer(proxied, "10.0.0.6", **https)):
        assert "strict-transport-security" not in client.get("/login").headers
    assert "strict-transport-security" not in _peer(site, PROXY, **https).get("/login").headers


def _login_cookie(client: TestClient) -> str:
    """anna's correct password; the Set-Cookie of the answer."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": "anna", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text
    cookie: str = answer.headers["set-cookie"]
    assert cookie.startswith("mammotriage_session=")
    return cookie.lower()


@sqlite_only
def test_the_session_cookie_is_secure_over_https_whatever_secure_cookies_says(
    site: Site,
) -> None:
    assert site.settings.secure_cookies is False
    for base_url, secure in (("https://reading.example", True), ("http://reading.example", False)):
        client = TestClient(site.app, base_url=base_url, follow_redirects=False)  # type: ignore[arg-type]
        site.clients.append(client)
        assert _login_cookie(client).count("; secure") == int(secure), base_url
    configured = make_site(site.store, secure_cookies=True)
    with TestClient(
        configured.app, base_url="https://reading.example", follow_redirects=False
    ) as client:  # type: ignore[arg-type]
        assert _login_cookie(client).count("; secure") == 1  # said once, not twice


@sqlite_only
def test_every_page_names_its_urls_root_relative(site: Site) -> None:
    exam = site.exam(1, 10)
    anna, csrf = site.login("anna")
    opened = anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    assert opened.status_code == 303
    root, _ = site.login("root")
    pages = {
        "login": site.client().get("/login"),
        "failed login": site.client().post("/login", data={"username": "anna"}),
        "queue": anna.get("/"),
        "consensus queue": anna.get("/?queue=consensus"),
        "exam": anna.get(opened.headers["location"]),
        "admin": root.get("/admin"),
        "error": anna.get(f"/ui/exams/{uuid.uuid4()}"),
    }
    for name, page in pages.items():
        assert page.headers["content-type"].startswith("text/html"), name
        urls = URL_ATTRIBUTE.findall(page.text)
        assert urls, name
        absolute = [url for url in urls if not url.startswith("/") or url.startswith("//")]
        assert absolute == [], f"{name} page: {absolute}"
        assert "http://" not in page.text, name
    assert {"/static/app.css", "/static/app.js"} <= set(URL_ATTRIBUTE.findall(pages["login"].text))


def test_forwarded_allow_ips_takes_addresses_and_networks_only() -> None:
    settings = ApiSettings(
        environment="development",
        forwarded_allow_ips=[" 127.0.0.1", "::1", "10.1.2.3/8", "fd00::/64"],
    )
    assert settings.forwarded_allow_ips == ["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/64"]
    assert ApiSettings(environment="development").forwarded_allow_ips == []
    for wrong in ("*", "proxy.example.org", "10.0.0.300"):
        with pytest.raises(ConfigError, match="not an IP address or network") as caught:
            load_api_settings(None, environment="development", forwarded_allow_ips=[wrong])
        assert repr(wrong) in str(caught.value) and "\n" not in str(caught.value)
