"""Session fixtures shared by the model tests: one tiny synthetic data set, one tiny training
run on it and its exported model, so that train, export and validate are each checked on the
real thing without paying for it more than once."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from api_site import site  # noqa: F401
from fixtures_browser import browser_artifacts, chromium, reading_service  # noqa: F401
from fixtures_orthanc import orthanc, orthanc_factory  # noqa: F401
from fixtures_ray import local_ray  # noqa: F401
from mammotriage.worklist import Store
from sr_validators import conformance  # noqa: F401

#: The tiny recipe: train-default.yaml's shape at 128 x 64, two epochs, one thread (more
#: threads on a small shared machine are many times slower at this size).
TINY_RECIPE: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"kind": "synthetic", "val_fraction": 0.34, "workers": 1},
    "preprocess": {
        "input_height": 128,
        "input_width": 64,
        "margin": 0.02,
        "normalisation": "zscore",
        "mean": 0.3,
        "std": 0.25,
        "version": "1",
    },
    "network": {"name": "tiny-cnn", "pooling": "topk", "topk_fraction": 0.03},
    "optim": {"epochs": 2, "batch_size": 8, "lr": 0.003, "threads": 1},
}

Recipe = Callable[..., Path]


@dataclass(frozen=True)
class CliRun:
    """A command run through the CLI and the folder or file it made."""

    exit_code: int
    output: str
    path: Path


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 small synthetic exams (12 women), half with a cancer."""
    from mammotriage.synth.batch import generate

    root = tmp_path_factory.mktemp("tiny-synthetic")
    generate(root, exams=12, seed=0, small=True, prevalence=0.5, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic: Path) -> Recipe:
    """``tiny_recipe(name, optim={...}, data={...}, ...)`` writes :data:`TINY_RECIPE` with
    those blocks updated and returns its path. Every recipe shares one preprocessed cache."""
    folder = tmp_path_factory.mktemp("recipes")
    cache = tmp_path_factory.mktemp("tiny-cache")

    def write(name: str = "tiny", **blocks: dict[str, Any]) -> Path:
        recipe = {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in TINY_RECIPE.items()
        }
        recipe["data"].update(root=str(tiny_synthetic), cache_dir=str(cache))
        for key, update in blocks.items():
            recipe[key].update(update)
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Recipe) -> CliRun:
    """``mammotriage train`` of the tiny recipe (two epochs) into a fresh run folder."""
    from mammotriage.cli import app

    folder = tmp_path_factory.mktemp("runs") / "tiny"
    arguments = ["train", "--config", str(tiny_recipe()), "--out", str(folder)]
    result = CliRunner().invoke(app, arguments)
    return CliRun(result.exit_code, result.output, folder)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_run: CliRun) -> CliRun:
    """``mammotriage export --int8`` of the tiny run's best.pt to ``models/tiny.onnx``."""
    from mammotriage.cli import app

    assert tiny_run.exit_code == 0, tiny_run.output
    out = tmp_path_factory.mktemp("export") / "models" / "tiny.onnx"
    checkpoint = tiny_run.path / "best.pt"
    result = CliRunner().invoke(
        app, ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--int8"]
    )
    return CliRun(result.exit_code, result.output, out)


# -- PostgreSQL ---------------------------------------------------------------------------


def _postgres_binaries() -> dict[str, str]:
    """``initdb``, ``pg_ctl`` and ``pg_isready`` of the newest Debian PostgreSQL installed."""
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        paths = {name: os.path.join(bindir, name) for name in ("initdb", "pg_ctl", "pg_isready")}
        if all(os.access(path, os.X_OK) for path in paths.values()):
            return paths
    pytest.fail(
        "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl) not found: "
        "`make test` installs them (Debian package postgresql, via "
        "scripts/install-system-deps.sh test)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresCluster:
    """The session's PostgreSQL server: its URL, and stop / start for the fault tests (same
    data directory, same port)."""

    url: str
    port: int
    prefix: tuple[str, ...]
    binaries: dict[str, str]
    data: Path
    log: Path
    options: str

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        """``pg_ctl start`` and wait until it accepts connections (30 s at most)."""
        pg_ctl = self.binaries["pg_ctl"]
        data, log = str(self.data), str(self.log)
        self._run(pg_ctl, "-D", data, "-l", log, "-o", self.options, "-w", "-t", "60", "start")
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [self.binaries["pg_isready"], "-h", "127.0.0.1", "-p", str(self.port), "-U", "mt"],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL on port {self.port} not ready after 30 s")
            time.sleep(0.2)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: open connections are cut, as in a server restart."""
        self._run(self.binaries["pg_ctl"], "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL server on a free loopback port, for the whole session.

    Its URL is ``postgresql+psycopg://mt@127.0.0.1:PORT/mammotriage`` (trust auth, user
    ``mt``). The server runs as the ``postgres`` system user when the tests run as root
    (PostgreSQL refuses to run as root) and is stopped and its data removed at the end.
    """
    binaries = _postgres_binaries()
    as_root = os.geteuid() == 0
    prefix = ("runuser", "-u", "postgres", "--") if as_root else ()
    # Under /tmp, not pytest's tmp_path: its parents are private to root and the socket path
    # must stay short.
    root = Path(tempfile.mkdtemp(prefix="mt-pg-"))
    data, sockets = root / "data", root / "sock"
    data.mkdir()
    sockets.mkdir()
    if as_root:
        root.chmod(0o755)
        for path in (root, data, sockets):
            shutil.chown(path, "postgres", "postgres")
    port = _free_port()
    cluster = PostgresCluster(
        url=f"postgresql+psycopg://mt@127.0.0.1:{port}/mammotriage",
        port=port,
        prefix=prefix,
        binaries=binaries,
        data=data,
        log=root / "server.log",
        options=f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
    )
    started = False
    try:
        cluster._run(
            binaries["initdb"],
            "-D",
            str(data),
            "--auth=trust",
            "-U",
            "mt",
            "-E",
            "UTF8",
            "--no-sync",
        )
        started = True
        cluster.start()
        _postgres_admin(port, "CREATE DATABASE mammotriage")
        yield cluster
    finally:
        if started:
            subprocess.run(
                [*prefix, binaries["pg_ctl"], "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """``postgresql+psycopg://mt@127.0.0.1:PORT/mammotriage`` on :func:`postgres_cluster`."""
    return postgres_cluster.url


def _postgres_admin(port: int, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the ``postgres`` db."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user="mt", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty worklist database URL: a SQLite file, or a new database on the
    session's PostgreSQL server (dropped after the test)."""
    if request.param == "sqlite":
        yield str(tmp_path / "worklist.db")
        return
    from sqlalchemy import make_url

    server = make_url(request.getfixturevalue("postgres_url"))
    name = f"t_{uuid.uuid4().hex}"
    _postgres_admin(int(server.port or 5432), f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    _postgres_admin(int(server.port or 5432), f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh, migrated worklist store on each database ``store_url`` names."""
    store = Store(store_url)
    store.migrate()
    yield store
    store.close()
