"""``mammotriage users ...`` and ``mammotriage serve``: the reading service's commands.

``serve`` is a plain function that :mod:`mammotriage.cli.main` adds to the app, and the
``users`` commands sit on their own :data:`users_app`, which it adds as ``users``. FastAPI
and uvicorn are imported inside the commands, so that ``mammotriage --help`` stays instant
and the worker's commands never load them.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import console, fail
from mammotriage.errors import ConfigError, MammotriageError
from mammotriage.worklist.models import Role

if TYPE_CHECKING:
    from mammotriage.api.settings import ApiSettings
    from mammotriage.worklist import Store

DEFAULT_CONFIG = Path("configs/api.yaml")

users_app = typer.Typer(help="Users of the reading service and their tokens.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Service settings (YAML; default configs/api.yaml if present)."
    ),
]


def _settings(config: Path | None, **overrides: object) -> ApiSettings:
    from mammotriage.api.settings import load_api_settings

    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    return load_api_settings(path, **overrides)


def _store(config: Path | None) -> Store:
    from mammotriage.api.app import open_store

    store = open_store(_settings(config))
    store.migrate()
    return store


def _read_password(from_stdin: bool) -> str:
    from mammotriage.api.security import MIN_PASSWORD_LENGTH

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise ConfigError("the two passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _issue_token(store: Store, username: str, label: str) -> None:
    from mammotriage.api.security import new_token

    token, sha = new_token()
    store.users.add_token(username, sha, label)
    console.print("bearer token (shown once; only its SHA-256 is stored):")
    typer.echo(token)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Username: 2-100 of a-z 0-9 . _ -")],
    role: Annotated[Role, typer.Option("--role", "-r", help="What the user may do.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a user. Radiologists and admins get a password (argon2-hashed); a service user
    gets a bearer token instead, printed once."""
    from mammotriage.api.security import hash_password

    try:
        store = _store(config)
        try:
            password_hash = None
            if role is not Role.SERVICE:
                password_hash = hash_password(_read_password(password_stdin))
            store.users.add(name, role, password_hash)
            console.print(f"added {role.value} {name}")
            if role is Role.SERVICE:
                _issue_token(store, name, "created with the user")
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="The user the token authenticates as.")],
    label: Annotated[str, typer.Option(help="What the token is for (RIS, monitoring).")] = "cli",
    config: ConfigOption = None,
) -> None:
    """Make a new bearer token for a user and print it once."""
    try:
        store = _store(config)
        try:
            if store.users.get(name) is None:
                raise ConfigError(f"no user {name!r}; add it with `mammotriage users add`")
            _issue_token(store, name, label)
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)


@users_app.command("list")
def users_list(config: ConfigOption = None) -> None:
    """List the users, their roles and whether they are active."""
    try:
        store = _store(config)
        try:
            users = store.users.all()
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
        return
    table = Table(title=f"{len(users)} users", title_justify="left")
    for column in ("user", "role", "active", "created"):
        table.add_column(column)
    for user in users:
        table.add_row(
            user.username,
            user.role.value,
            "yes" if user.active else "no",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console(width=120).print(table)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    config: ConfigOption = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key.")] = None,
    allow_insecure_bind: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-bind",
            help="Bind a non-loopback address without TLS (only behind a TLS-terminating proxy).",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (one per core). With more than one, a reader's own claim "
            "or decision may show in their queue up to queue_snapshot_seconds late.",
        ),
    ] = 1,
) -> None:
    """Run the reading service (API and page) with uvicorn."""
    tls = tls_cert is not None and tls_key is not None
    if (tls_cert is None) != (tls_key is None):
        fail(ConfigError("--tls-cert and --tls-key go together"))
    if not is_loopback(host) and not tls and not allow_insecure_bind:
        fail(
            ConfigError(
                f"refusing to serve on {host} without TLS: passwords and session cookies would "
                "cross the network in clear text. Give --tls-cert and --tls-key, or pass "
                "--allow-insecure-bind if a TLS-terminating proxy sits in front"
            )
        )
    import uvicorn

    from mammotriage.api.app import CONFIG_ENV
    from mammotriage.api.http_protocol import PROTOCOL

    overrides: dict[str, object] = {"secure_cookies": True} if tls else {}
    try:
        settings = _settings(config, **overrides)  # a bad config refused here, not per process
        _store(config).close()  # the schema migrated once, before the processes start
    except MammotriageError as exc:
        fail(exc)
        return
    resolved = (
        config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    )
    os.environ[CONFIG_ENV] = str(resolved.resolve()) if resolved is not None else ""
    if tls:
        os.environ["MAMMOTRIAGE_API_SECURE_COOKIES"] = "true"
    scheme = "https" if tls else "http"
    console.print(f"reading service on {scheme}://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(
        "mammotriage.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        proxy_headers=False,
        # Header fields bounded while they arrive (431), not after: api/http_protocol.py.
        http=PROTOCOL,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        server_header=False,
    )
