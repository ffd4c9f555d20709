"""The admin's monitoring view in Debian's Chromium, on a real ``mammotriage serve`` whose
config names a monitor settings file: three devices' exams of the last four weeks, one
drifting to categories 9-10 in the last three (written with the store's API:
tests/monitor_seed.py). The drifting device's plot is marked with its alert, the others'
are not, and the page runs under the service's strict content security policy (the plots
are inline SVG, drawn on the server). A screenshot goes to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from argon2 import PasswordHasher
from playwright.sync_api import Browser, ConsoleMessage, expect

from api_site import POLICY
from fixtures_browser import _cli, _free_port, _stop, _wait_for_health
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role
from monitor_seed import DEVICES, DRIFTING, device_name, mondays_before, monitor_config, seed_drift

pytestmark = pytest.mark.integration

ADMIN = "monitor-admin"
PASSWORD = "monitoring-browser-password"
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (event) =>
    console.error(`csp-violation ${event.violatedDirective} ${event.blockedURI}`));"""


@dataclass(frozen=True)
class Served:
    url: str
    log: Path


@pytest.fixture(scope="module")
def drifting_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``mammotriage serve`` on a store with a drifting device (weeks before today: the
    service's clock is the real one) and an admin."""
    root = tmp_path_factory.mktemp("monitoring-site")
    database = root / "var" / "mammotriage.sqlite"
    database.parent.mkdir()
    store = Store(str(database))
    try:
        store.migrate()
        seed_drift(store, mondays_before(datetime.now(timezone.utc).date(), 4), POLICY)
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        store.users.add(ADMIN, Role.ADMIN, cheap.hash(PASSWORD))
    finally:
        store.close()
    config = root / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": str(database),
                "environment": "production",
                "session_secret": secrets.token_urlsafe(32),
                "monitor": str(monitor_config(root / "monitor.yaml")),
            }
        )
    )
    url = f"http://127.0.0.1:{_free_port()}"
    log = root / "serve.log"
    env: dict[str, Any] = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MAMMOTRIAGE_API_", "MAMMOTRIAGE_MONITOR_"))
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _cli(
                "serve", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1], "-c", str(config)
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
        )
    try:
        _wait_for_health(url, process, log)
        yield Served(url, log)
    finally:
        _stop(process)


def test_the_drifting_devices_plot_carries_its_alert_and_the_others_do_not(
    drifting_service: Served, chromium: Browser, browser_artifacts: Path
) -> None:
    context = chromium.new_context(
        viewport={"width": 1400, "height": 900}, base_url=drifting_service.url
    )
    context.set_default_timeout(15_000)
    context.add_init_script(CSP_LISTENER)
    problems: list[str] = []

    def collect(message: ConsoleMessage) -> None:
        if "csp-violation" in message.text or "Content Security Policy" in message.text:
            problems.append(message.text)

    try:
        page = context.new_page()
        page.on("console", collect)
        page.goto("/login")
        page.get_by_test_id("login-username").fill(ADMIN)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.wait_for_url("**/admin")
        page.get_by_test_id("admin-monitoring-link").click()
        page.wait_for_url("**/ui/admin/monitoring")

        plots = page.get_by_test_id("device-plot")
        expect(plots).to_have_count(len(DEVICES))
        for device in DEVICES:
            figure = page.locator(
                f'[data-testid="device-plot"][data-site="{device.site}"]'
                f'[data-device="{device_name(device)}"]'
            )
            svg = figure.locator("svg.device-plot")
            expect(svg).to_be_visible()
            # Four week bars after the reference bar, each stacked from its ten categories.
            expect(svg.locator("g.bar")).to_have_count(5)
            expect(svg.locator('g.bar[data-reference="true"]')).to_contain_text("reference")
            box = svg.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 200, box
            if device is DRIFTING:
                expect(figure).to_have_attribute("data-alert", "true")
                expect(svg).to_have_class("device-plot alert")
                expect(figure.get_by_test_id("device-alert")).to_have_text("alert: category-drift")
                expect(svg.locator("text", has_text="alert").first).to_be_visible()
                expect(svg.locator("circle.psi-point.above")).to_have_count(3)
            else:
                expect(figure).to_have_attribute("data-alert", "false")
                expect(svg).to_have_class("device-plot")
                expect(figure.get_by_test_id("device-alert")).to_have_count(0)
                expect(svg.locator("text", has_text="alert")).to_have_count(0)
                expect(svg.locator("circle.psi-point.above")).to_have_count(0)
        # The stored alert, newest week first, names the drifting device.
        alerts = page.get_by_test_id("stored-alert")
        expect(alerts).to_have_count(2)
        expect(alerts.first).to_contain_text(device_name(DRIFTING))
        # The bars' colours are drawn (fill attributes are allowed by style-src 'self').
        fill = page.locator('svg.device-plot rect.segment[data-category="10"]').first.evaluate(
            "rect => getComputedStyle(rect).fill"
        )
        assert fill == "rgb(165, 0, 38)", fill
        page.screenshot(path=str(browser_artifacts / "monitoring.png"), full_page=True)
        assert problems == [], problems
    finally:
        context.close()
