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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import console, counted, fail
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


def _config_path(config: Path | None) -> Path | None:
    return config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)


def _settings(config: Path | None, **overrides: object) -> ApiSettings:
    from mammotriage.api.settings import load_api_settings

    return load_api_settings(_config_path(config), **overrides)


def _store(config: Path | None) -> Store:
    """The configured store, migrated. The ``users`` commands never sign a session cookie,
    so an unset session secret does not stop them (``serve`` refuses it)."""
    from mammotriage.api.app import open_store
    from mammotriage.api.settings import load_settings_for_store

    store = open_store(load_settings_for_store(_config_path(config)))
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


#: A token made without ``--expires-days`` ends after this many days.
DEFAULT_TOKEN_DAYS = 365
#: Who the audit log names for the ``users`` commands (the OS user goes in the detail).
CLI_ACTOR = "cli"


def _audit(store: Store, action: str, detail: dict[str, object]) -> None:
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        os_user = str(os.getuid())
    store.audit.record(CLI_ACTOR, action, None, {**detail, "os_user": os_user})


def _issue_token(store: Store, username: str, name: str, expires_days: int) -> None:
    from datetime import timedelta

    from mammotriage.api.security import new_token
    from mammotriage.worklist.models import utcnow

    token, sha = new_token()
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days > 0 else None
    store.users.add_token(username, sha, name, expires_at=expires_at)
    until = "never expires" if expires_at is None else f"expires {expires_at:%Y-%m-%d %H:%M} UTC"
    _audit(store, "token-issued", {"user": username, "token": name, "expires_days": expires_days})
    console.print(
        f"bearer token {name!r} for {username}, {until} (shown once; only its SHA-256 is stored):"
    )
    typer.echo(token)


TokenNameOption = Annotated[
    str,
    typer.Option("--name", "--label", help="The token's name: what it is for (ris, monitoring)."),
]
ExpiresOption = Annotated[
    int,
    typer.Option(
        "--expires-days",
        min=0,
        max=3650,
        help=f"Days until the token stops working (default {DEFAULT_TOKEN_DAYS}; 0: never).",
    ),
]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Username: 2-100 of a-z 0-9 . _ -")],
    role: Annotated[Role, typer.Option("--role", "-r", help="What the user may do.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
    ] = False,
    token_name: TokenNameOption = "created-with-the-user",
    expires_days: ExpiresOption = DEFAULT_TOKEN_DAYS,
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
            _audit(store, "user-added", {"user": name, "role": role.value})
            if role is Role.SERVICE:
                _issue_token(store, name, token_name, expires_days)
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="The user the token authenticates as.")],
    token_name: TokenNameOption = "cli",
    expires_days: ExpiresOption = DEFAULT_TOKEN_DAYS,
    config: ConfigOption = None,
) -> None:
    """Make a new bearer token for a user and print it once. It stops working after
    ``--expires-days``, when revoked (``users revoke-token``) or while the user is inactive."""
    try:
        store = _store(config)
        try:
            if store.users.get(name) is None:
                raise ConfigError(f"no user {name!r}; add it with `mammotriage users add`")
            _issue_token(store, name, token_name, expires_days)
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)


@users_app.command("list")
def users_list(config: ConfigOption = None) -> None:
    """List the users (role, whether active) and their tokens (name, dates; never the token)."""
    try:
        store = _store(config)
        try:
            users = store.users.all()
            tokens = store.users.tokens()
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
        return
    table = Table(title=counted(len(users), "user"), title_justify="left")
    for column in ("user", "role", "active", "created"):
        table.add_column(column)
    for user in users:
        table.add_row(
            user.username, user.role.value, "yes" if user.active else "no", _when(user.created_at)
        )
    out = Console(width=120)
    out.print(table)
    if not tokens:
        return
    table = Table(title=counted(len(tokens), "token"), title_justify="left")
    for column in ("user", "token", "created", "expires", "revoked", "last used"):
        table.add_column(column)
    for token in tokens:
        table.add_row(
            token.username,
            token.name,
            _when(token.created_at),
            _when(token.expires_at, "never"),
            _when(token.revoked_at, "-"),
            _when(token.last_used_at, "never"),
        )
    out.print(table)


def _when(moment: datetime | None, missing: str = "") -> str:
    return missing if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _change_user(config: Path | None, change: Callable[[Store], str]) -> None:
    """Run one lifecycle change on the configured store and print its confirmation."""
    try:
        store = _store(config)
        try:
            console.print(change(store))
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)


UserArgument = Annotated[str, typer.Argument(help="The user's name.")]


@users_app.command("deactivate")
def users_deactivate(name: UserArgument, config: ConfigOption = None) -> None:
    """Deactivate a user: their sessions end and their tokens stop working (within the
    service's ``user_cache_seconds``) until ``users activate``."""
    from mammotriage.worklist.models import utcnow

    def change(store: Store) -> str:
        ended = store.users.set_active(name, active=False, now=utcnow())
        _audit(store, "user-deactivated", {"user": name, "sessions_ended": ended})
        return f"deactivated {name}; {ended} session(s) ended, tokens refused while inactive"

    _change_user(config, change)


@users_app.command("activate")
def users_activate(name: UserArgument, config: ConfigOption = None) -> None:
    """Activate a user again: they can log in, and their unrevoked, unexpired tokens work."""

    def change(store: Store) -> str:
        store.users.set_active(name, active=True)
        _audit(store, "user-activated", {"user": name})
        return f"activated {name}"

    _change_user(config, change)


@users_app.command("passwd")
def users_passwd(
    name: UserArgument,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set a user's password (a reset or a change); their sessions end."""
    from mammotriage.api.security import hash_password
    from mammotriage.worklist.models import utcnow

    def change(store: Store) -> str:
        store.users.require(name)
        password_hash = hash_password(_read_password(password_stdin))
        ended = store.users.set_password(name, password_hash, utcnow())
        _audit(store, "password-changed", {"user": name, "sessions_ended": ended})
        return f"password of {name} changed; {ended} session(s) ended"

    _change_user(config, change)


@users_app.command("revoke-token")
def users_revoke_token(
    name: UserArgument,
    token_name: Annotated[
        str | None, typer.Option("--name", help="Revoke the token(s) of this name.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Revoke all the user's tokens.")] = False,
    config: ConfigOption = None,
) -> None:
    """Revoke a user's tokens, by name or all of them: for good (make a new one to replace)."""
    from mammotriage.worklist.models import utcnow

    if (token_name is None) == (not every):
        fail(ConfigError("name the token with --name NAME, or revoke them all with --all"))

    def change(store: Store) -> str:
        revoked = store.users.revoke_tokens(name, utcnow(), token_name)
        _audit(store, "tokens-revoked", {"user": name, "token": token_name, "count": revoked})
        which = f"named {token_name!r}" if token_name is not None else "(all)"
        return f"revoked {revoked} token(s) of {name} {which}"

    _change_user(config, change)


@users_app.command("end-sessions")
def users_end_sessions(name: UserArgument, config: ConfigOption = None) -> None:
    """End all of a user's page sessions (they log in again)."""
    from mammotriage.worklist.models import utcnow
    from mammotriage.worklist.users import SessionEnd

    def change(store: Store) -> str:
        ended = store.sessions.end_all(name, utcnow(), SessionEnd.REVOKED)
        _audit(store, "sessions-ended", {"user": name, "count": ended})
        return f"ended {ended} session(s) of {name}"

    _change_user(config, change)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _print_openapi(config: Path | None) -> None:
    import json

    from mammotriage.api.app import create_app, open_store

    try:
        settings = _settings(config)
        store = open_store(settings)  # not migrated: the schema needs no table
        try:
            schema = create_app(settings, store=store).openapi()
        finally:
            store.close()
    except MammotriageError as exc:
        fail(exc)
        return
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")


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
    print_openapi: Annotated[
        bool,
        typer.Option(
            "--print-openapi",
            help="Print the API's OpenAPI schema (JSON) and exit, without serving.",
        ),
    ] = False,
) -> None:
    """Run the reading service (API and page) with uvicorn."""
    if print_openapi:
        _print_openapi(config)
        return
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
    resolved = _config_path(config)
    os.environ[CONFIG_ENV] = str(resolved.resolve()) if resolved is not None else ""
    if tls:
        os.environ["MAMMOTRIAGE_API_SECURE_COOKIES"] = "true"
    scheme = "https" if tls else "http"
    console.print(f"reading service on {scheme}://{host}:{port}/ (Ctrl-C stops it)")
    if settings.forwarded_allow_ips:
        proxies = ", ".join(settings.forwarded_allow_ips)
        console.print(f"client address and scheme as forwarded by the proxies at {proxies}")
    uvicorn.run(
        "mammotriage.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        # X-Forwarded-For/-Proto: believed by the app from forwarded_allow_ips only
        # (api/app.py); uvicorn's own would trust 127.0.0.1 by default.
        proxy_headers=False,
        # Header fields bounded while they arrive (431), not after: api/http_protocol.py.
        http=PROTOCOL,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        server_header=False,
    )
