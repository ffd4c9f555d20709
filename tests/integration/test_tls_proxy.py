"""The reading page behind a real TLS-terminating reverse proxy, as the README recommends:
Debian's nginx on loopback, with a self-signed certificate made for the test, in front of a
real ``mammotriage serve`` that believes the proxy's ``X-Forwarded-*`` headers
(``forwarded_allow_ips``). Chromium logs in over https, the queue gets its style and its
script (nothing blocked as mixed content), the session cookie is Secure although
``secure_cookies`` is off, the login throttle counts the browser's address rather than the
proxy's, and logout works.

nginx runs in the foreground from the test's own folder (config, pid, logs, temp files):
no root path, no system service. It connects to ``serve`` from 127.0.0.2, so that the
proxy's address (127.0.0.2) and the browser's (127.0.0.1) differ.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from argon2 import PasswordHasher
from playwright.sync_api import Browser, ConsoleMessage, Request, Response, expect

from api_site import NOW, STUDY_ROOT, add_exam
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role

pytestmark = pytest.mark.integration

NGINX = "/usr/sbin/nginx"
#: The address nginx connects to ``serve`` from: the only one ``serve`` trusts.
PROXY_ADDRESS = "127.0.0.2"
BROWSER_ADDRESS = "127.0.0.1"
READER = "rita"
PASSWORD = "tls proxy test password"
STARTUP_TIMEOUT = 30.0
#: static/app.css's page background (--bg: #111418).
PAGE_BACKGROUND = "rgb(17, 20, 24)"

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {root}/nginx-access.log;
    client_body_temp_path {root}/temp/client;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    server {{
        listen {browser}:{port} ssl;
        ssl_certificate {root}/cert.pem;
        ssl_certificate_key {root}/key.pem;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind {proxy};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class ProxiedService:
    """``serve`` on plain http, and nginx in front of it on https."""

    url: str
    database: Path
    serve_log: Path
    nginx_log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{what} not up after {STARTUP_TIMEOUT} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _self_signed_certificate(root: Path) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", f"/CN={BROWSER_ADDRESS}",
            "-addext", f"subjectAltName=IP:{BROWSER_ADDRESS}",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _site(root: Path) -> Path:
    """A migrated store with two exams waiting and the radiologist :data:`READER`."""
    database = root / "worklist.sqlite"
    store = Store(str(database))
    try:
        store.migrate()
        add_exam(store, f"{STUDY_ROOT}.1", 10, NOW - timedelta(hours=2))
        add_exam(store, f"{STUDY_ROOT}.2", 3, NOW - timedelta(hours=1))
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        store.users.add(READER, Role.RADIOLOGIST, cheap.hash(PASSWORD))
    finally:
        store.close()
    return database


@pytest.fixture
def proxied_service(tmp_path: Path) -> Iterator[ProxiedService]:
    if not os.access(NGINX, os.X_OK):
        pytest.fail("install nginx (make test does)", pytrace=False)
    database = _site(tmp_path)
    config = tmp_path / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": str(database),
                "environment": "production",
                "session_secret": secrets.token_urlsafe(32),
                "forwarded_allow_ips": [PROXY_ADDRESS],
                "secure_cookies": False,
            }
        )
    )
    upstream, port = _free_port(), _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAMMOTRIAGE_")}
    serve_log = tmp_path / "serve.log"
    with serve_log.open("wb") as sink:
        serve = subprocess.Popen(
            [sys.executable, "-m", "mammotriage", "serve", "--port", str(upstream),
             "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )  # fmt: skip
    nginx: subprocess.Popen[bytes] | None = None
    try:
        _self_signed_certificate(tmp_path)
        (tmp_path / "temp").mkdir()
        # Run as root (a container), nginx's workers would switch to nobody, who cannot
        # enter the test's private folder: keep them as the test's user.
        user = "user root;" if os.geteuid() == 0 else ""
        (tmp_path / "nginx.conf").write_text(
            NGINX_CONF.format(
                root=tmp_path,
                user=user,
                browser=BROWSER_ADDRESS,
                port=port,
                upstream=upstream,
                proxy=PROXY_ADDRESS,
            )
        )
        nginx_log = tmp_path / "nginx-error.log"
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(nginx_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait_until_up(f"http://127.0.0.1:{upstream}", serve, serve_log, "mammotriage serve")
        url = f"https://{BROWSER_ADDRESS}:{port}"
        _wait_until_up(url, nginx, nginx_log, "nginx")
        yield ProxiedService(url, database, serve_log, nginx_log)
    finally:
        if nginx is not None:
            _stop(nginx)
        _stop(serve)


def _throttled_addresses(database: Path) -> set[str]:
    store = Store(str(database))
    try:
        from sqlalchemy import select

        from mammotriage.worklist.models import LoginThrottleRow

        with store.db.session() as session:
            keys = session.execute(select(LoginThrottleRow.key)).scalars().all()
    finally:
        store.close()
    return {key.removeprefix("address:") for key in keys if key.startswith("address:")}


def test_the_page_works_behind_nginx_terminating_tls(
    proxied_service: ProxiedService, chromium: Browser
) -> None:
    origin = proxied_service.url
    context = chromium.new_context(
        base_url=origin, ignore_https_errors=True, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(10_000)
    console: list[str] = []
    elsewhere: list[str] = []
    failed: list[str] = []
    refused: list[tuple[str, str, int]] = []

    def on_console(message: ConsoleMessage) -> None:
        # A mixed-content block is an error ("Mixed Content: ... blocked"); a 4xx answer is
        # one too ("Failed to load resource"), checked below by its request instead.
        text = message.text
        if message.type == "warning" or (
            message.type == "error" and not text.startswith("Failed to load resource")
        ):
            console.append(f"{message.type}: {text}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            path = response.url.removeprefix(origin)
            refused.append((response.request.method, path, response.status))

    def on_request(request: Request) -> None:
        if not request.url.startswith(f"{origin}/"):
            elsewhere.append(request.url)

    try:
        page = context.new_page()
        page.on("console", on_console)
        page.on("request", on_request)
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", on_response)

        # A wrong password first: the throttle counts the browser, not the proxy.
        page.goto("/login")
        page.get_by_test_id("login-username").fill(READER)
        page.get_by_test_id("login-password").fill("not the password")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-error")).to_be_visible()
        assert _throttled_addresses(proxied_service.database) == {BROWSER_ADDRESS}

        page.get_by_test_id("login-username").fill(READER)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("user-menu")).to_contain_text(READER)
        assert page.url == f"{origin}/"

        # app.css is loaded over https and applied...
        sheets = page.evaluate(
            "() => Array.from(document.styleSheets, s => [s.href, s.cssRules.length])"
        )
        assert len(sheets) == 1 and sheets[0][0] == f"{origin}/static/app.css" and sheets[0][1]
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == PAGE_BACKGROUND
        # ...and app.js runs: the keyboard cursor starts on the first row, j moves it down.
        rows = page.get_by_test_id("queue-row")
        expect(rows).to_have_count(2)
        expect(rows.first).to_have_attribute("aria-selected", "true")
        page.keyboard.press("j")
        expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
        expect(rows.first).to_have_attribute("aria-selected", "false")

        # The session cookie came over https through the proxy: Secure.
        [cookie] = [c for c in context.cookies() if c["name"] == "mammotriage_session"]
        assert cookie["secure"] is True and cookie["httpOnly"] is True

        page.get_by_test_id("logout").click()
        page.wait_for_url(f"{origin}/login**")
        expect(page.get_by_test_id("login-form")).to_be_visible()
        page.goto("/")
        page.wait_for_url(f"{origin}/login**")  # logged out: the queue needs a login again

        assert console == [], console
        assert elsewhere == [], elsewhere
        assert failed == [], failed
        # The wrong password; Chromium's own look for a favicon, which the service has none of.
        assert set(refused) <= {("POST", "/login", 401), ("GET", "/favicon.ico", 404)}, refused
        assert ("POST", "/login", 401) in refused
    finally:
        context.close()
