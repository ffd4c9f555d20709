"""A running reading service and a Chromium for the page tests.

The data are the real worker's: it scores a few of the tiny synthetic exams into a SQLite
store and writes their thumbnails and SRs; ``mammotriage users add`` and ``mammotriage
serve`` then run as an operator runs them, against that store, on a free loopback port.
Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright without any browser
download.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from worker_helpers import POLICY, REPO, build, folder_settings, run_once

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: Where the page tests leave their screenshots (gitignored; written on every run).
ARTIFACTS = REPO / "test-artifacts" / "browser"
#: How many of ``tiny_synthetic``'s 12 exams the worker scores for the page tests: the first
#: eight hold single, double and priority (category 10) exams, some with findings.
BROWSER_EXAMS = 8
#: The site's PACS viewer (never opened: the page tests check the link).
PACS_VIEWER_URL = "http://pacs.invalid/viewer?study={study_instance_uid}&acc={accession_number}"
PASSWORD = "browser-test-password"
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ReadingService:
    """One ``mammotriage serve`` process and who may log in to it."""

    url: str
    database: Path
    readers: tuple[str, str, str]
    admin: str
    password: str
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mammotriage", *args]


def _add_users(config: Path, users: dict[str, str], cwd: Path) -> None:
    """``mammotriage users add NAME --role ROLE --password-stdin``, all at once (each one is
    a process start and an argon2 hash; the store is already migrated by the worker)."""
    running = {
        name: subprocess.Popen(
            _cli("users", "add", name, "--role", role, "--password-stdin", "--config", str(config)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )
        for name, role in users.items()
    }
    for name, process in running.items():
        output, _ = process.communicate(PASSWORD + "\n", timeout=60)
        if process.returncode != 0:
            pytest.fail(f"mammotriage users add {name} failed:\n{output}")


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mammotriage serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"mammotriage serve not up after {STARTUP_TIMEOUT} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def reading_service(
    tmp_path_factory: pytest.TempPathFactory, tiny_synthetic: Path
) -> Iterator[ReadingService]:
    """The worker's store of :data:`BROWSER_EXAMS` scored exams, three radiologists
    (``readers``) and an admin, and ``mammotriage serve`` on it (stopped at teardown)."""
    root = tmp_path_factory.mktemp("browser-site")
    settings = folder_settings(root)
    exams = sorted(path for path in tiny_synthetic.iterdir() if path.is_dir())[:BROWSER_EXAMS]
    for exam in exams:
        shutil.copytree(exam, root / "incoming" / exam.name)
    summary = run_once(build(settings))
    assert summary.scored == len(exams), summary

    config = root / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": settings.database,
                "policy": str(POLICY),
                "environment": "production",
                "session_secret": secrets.token_urlsafe(32),
                "pacs_viewer_url": PACS_VIEWER_URL,
            }
        )
    )
    readers = ("alice", "bob", "carol")
    admin = "admin1"
    url = f"http://127.0.0.1:{_free_port()}"
    log = root / "serve.log"
    env: dict[str, Any] = {
        key: value for key, value in os.environ.items() if not key.startswith("MAMMOTRIAGE_API_")
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _cli(
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                url.rsplit(":", 1)[1],
                "--config",
                str(config),
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
        )
    try:
        _add_users(config, {**dict.fromkeys(readers, "radiologist"), admin: "admin"}, root)
        _wait_for_health(url, process, log)
        yield ReadingService(url, Path(settings.database), readers, admin, PASSWORD, log)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Debian Chromium for the module (a Playwright ``Browser``)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("install chromium (make test does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser_artifacts() -> Path:
    """``test-artifacts/browser/`` under the repository root, for screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
