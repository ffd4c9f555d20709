"""The reading service's settings: one typed object, read from ``configs/api.yaml`` and the
environment (``MAMMOTRIAGE_API_<FIELD>`` wins over the file), passed to
:func:`mammotriage.api.app.create_app` — never a module-level global.

Outside ``environment: development`` the session secret must be a real one: the documented
placeholder, an empty value or a short one is refused with a hint how to make one.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mammotriage import defaults
from mammotriage.api.decision_categories import (
    DEFAULT_DECISION_CATEGORIES,
    DecisionCategory,
    check_categories,
)
from mammotriage.api.pacs_link import check_template
from mammotriage.settings import FileRelative, YamlSettings, is_url, load_settings

#: The placeholder written in configs/api.yaml and the docs: good for development only.
DEVELOPMENT_SESSION_SECRET = "change-me-development-only"
#: Shortest session secret accepted outside development (token_urlsafe(32) gives 43).
MIN_SECRET_LENGTH = 32
SECRET_HINT = (
    "set MAMMOTRIAGE_API_SESSION_SECRET (or session_secret in the config) to a random value, "
    'e.g. the output of: python -c "import secrets; print(secrets.token_urlsafe(32))"'
)


class ApiSettings(YamlSettings):
    """Everything the reading service needs."""

    model_config = SettingsConfigDict(env_prefix="MAMMOTRIAGE_API_", extra="forbid")

    #: SQLite file path or database URL: the worker's store.
    database: Annotated[str, FileRelative(unless=is_url)] = "var/mammotriage.sqlite"
    #: The triage policy the worker uses (queue order, bands); default: the packaged one.
    policy: Path = Field(default_factory=defaults.policy_path)
    #: Signs the session cookie. Keep it secret; changing it logs everyone out.
    session_secret: SecretStr = SecretStr(DEVELOPMENT_SESSION_SECRET)
    #: "development" allows the placeholder secret; anything real runs as "production".
    environment: Literal["development", "production"] = "production"
    #: A claimed exam nobody decided goes back to the queue after this long.
    claim_timeout_minutes: float = Field(default=20, gt=0, le=24 * 60)
    #: One ordered snapshot of the queue serves every reader for this long (seconds); this
    #: service's own claims and decisions drop it at once, the worker's new exams show
    #: within it. 0: order the queue on every request.
    queue_snapshot_seconds: float = Field(default=2.0, ge=0, le=60)
    #: A user looked up for a request serves that user's next requests for this long
    #: (seconds): deactivating a user or changing a role takes effect within it. 0: look
    #: the user up on every request.
    user_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    #: PostgreSQL connections held open: as many as request threads (FastAPI runs sync
    #: routes on a pool of 40).
    database_pool_size: int = Field(default=40, ge=1, le=500)
    #: Worklist rows per page when the caller does not ask for a limit.
    page_size: int = Field(default=50, ge=1, le=500)
    #: Largest request body (bytes) of the API's JSON, refused with 413 before it is read or
    #: the caller authenticated (api/limits.py). A decision's 4,000-character note, every
    #: character a JSON escape pair, is 48,000 bytes.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Largest form body (bytes): the login, the page's decision (its note percent-encoded
    #: is at most 48,000 bytes).
    max_form_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Most header fields in one request; more are refused with 431.
    max_headers: int = Field(default=100, ge=16, le=1000)
    #: Most bytes of header fields (and, in ``serve``, the request line) in one request;
    #: more are refused with 431 (browsers send 1-4 KiB).
    max_header_bytes: int = Field(default=16 * 1024, ge=4 * 1024, le=1024 * 1024)
    #: A page session's absolute lifetime (and its cookie's): log in again after it.
    session_max_age_hours: float = Field(default=12, gt=0, le=24 * 30)
    #: A page session without a request for this long ends (minutes). A screening reader
    #: reads continuously, so a short pause does not log them out.
    session_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)
    #: Send the session cookie over HTTPS only. ``serve`` sets it when it terminates TLS;
    #: set it yourself behind a TLS-terminating proxy.
    secure_cookies: bool = False
    #: The reverse proxies (addresses or CIDR networks, e.g. ``10.0.0.5``, ``10.0.0.0/24``)
    #: whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed: a request from one
    #: of them has the client address and scheme the proxy says. Empty: believe nobody. A
    #: proxy on the same host is listed too (``127.0.0.1``, ``::1``): nothing is trusted
    #: implicitly.
    forwarded_allow_ips: list[str] = Field(default_factory=list, max_length=100)
    #: Failed logins a username may make before each further one blocks it (429 with
    #: Retry-After), for 1 s, then twice as long each time up to ``login_max_block_seconds``.
    login_free_attempts: int = Field(default=5, ge=1, le=1000)
    #: The same per client address (``request.client.host``: a listed proxy's client).
    #: Higher than per username: behind NAT, or a proxy not in ``forwarded_allow_ips``, every
    #: client has one address, and one address trying many usernames is caught by it.
    login_address_free_attempts: int = Field(default=20, ge=1, le=100_000)
    #: The longest block (seconds).
    login_max_block_seconds: float = Field(default=15 * 60, ge=1, le=24 * 3600)
    #: A username's or address's failures are forgotten after this long (seconds) without
    #: a failure and without a block.
    login_failure_window_seconds: float = Field(default=15 * 60, ge=1, le=7 * 24 * 3600)
    #: Password verifications (argon2id: ~64 MiB and 4 threads each) run at once per server
    #: process; the others wait for one to finish...
    login_verifications: int = Field(default=1, ge=1, le=64)
    #: ...and at most this many wait. A login beyond them is answered 503 with Retry-After
    #: at once, so that a flood of logins holds a few of the request threads, never all.
    login_queue: int = Field(default=8, ge=0, le=1000)
    #: Niceness added to the threads that check passwords (Linux), so that requests get the
    #: CPU before them: 0 (none) to 19 (only when the CPU is otherwise idle).
    login_check_nice: int = Field(default=10, ge=0, le=19)
    #: ``/openapi.json``: for signed-in users (any role), or ``off``. No docs pages either way.
    openapi: Literal["authenticated", "off"] = "authenticated"
    #: The site's PACS viewer, as a URL template: the exam page links radiologists to the
    #: study there ("Open in PACS viewer"). It names ``{accession_number}``,
    #: ``{study_instance_uid}`` or ``{patient_id}``; each value is percent-encoded when
    #: substituted. E.g. Orthanc's Stone viewer
    #: ``http://127.0.0.1:8042/stone-webviewer/index.html?study={study_instance_uid}``,
    #: OHIF ``https://pacs.example/viewer?StudyInstanceUIDs={study_instance_uid}``. A
    #: template with ``{patient_id}`` puts the patient's id in the PACS's URL (the site's
    #: choice, its browser history and the PACS's logs); this service's own URLs never
    #: carry an identifier. None: no link.
    pacs_viewer_url: str | None = None
    #: The screening decisions the form offers and the API accepts, in the form's order:
    #: each a ``code``, a ``label``, its ``outcome`` (``no-recall``, ``recall`` or
    #: ``technical-recall``: what two readers' agreement is decided on, recall or not) and
    #: optional ``reasons`` (each a ``code`` and ``label``; ``reason_required: true`` makes
    #: one mandatory). Codes: lower-case letters, digits and ``-``. Needs at least one
    #: no-recall and one recall category. Default: no recall; recall for assessment (mass,
    #: calcifications, architectural distortion, asymmetry, other; a reason required);
    #: technical recall (positioning, motion, exposure). See configs/api.yaml.
    decision_categories: tuple[DecisionCategory, ...] = Field(
        default=DEFAULT_DECISION_CATEGORIES, min_length=2, max_length=20
    )
    #: The monitor's settings file (``configs/monitor.yaml``: its model, policy, window,
    #: refresh and alert rules; its ``database`` is not used: the service monitors its own
    #: store). None: the built-in rules, the packaged model and policy. Shown on the admin
    #: page's monitoring view and in ``/metrics``.
    monitor: Path | None = None

    @field_validator("decision_categories")
    @classmethod
    def _check_decision_categories(
        cls, value: tuple[DecisionCategory, ...]
    ) -> tuple[DecisionCategory, ...]:
        return check_categories(value)

    @field_validator("pacs_viewer_url")
    @classmethod
    def _check_pacs_viewer_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_template(value.strip())

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, values: list[str]) -> list[str]:
        return [_address_or_network(value) for value in values]

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> ApiSettings:
        if self.environment == "development":
            return self
        secret = self.session_secret.get_secret_value()
        if secret in ("", DEVELOPMENT_SESSION_SECRET):
            raise ValueError(
                f"session_secret is the documented default or empty: refused outside "
                f"environment 'development'; {SECRET_HINT}"
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"session_secret must be at least {MIN_SECRET_LENGTH} characters, got "
                f"{len(secret)}; {SECRET_HINT}"
            )
        return self


class _SettingsForStore(ApiSettings):
    """:class:`ApiSettings` less the session secret's check (:func:`load_settings_for_store`)."""

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> _SettingsForStore:  # replaces ApiSettings' check
        return self


def load_settings_for_store(path: Path | None) -> ApiSettings:
    """The settings as :func:`load_api_settings` reads them, for a command that only opens
    the service's store (``mammotriage users ...``): it signs no session cookie, so the
    session secret is not checked. Never build a service from them.

    Raises
    ------
    ConfigError
        If the file is not YAML or a value other than the session secret is wrong.
    """
    return load_settings(_SettingsForStore, path, "api")


def _address_or_network(value: str) -> str:
    """``value`` as an IP address or network in canonical form (host bits of a network
    dropped), or a ValueError naming it: a proxy is named by address, never by host name
    or ``*``."""
    text = value.strip()
    try:
        return str(
            ipaddress.ip_network(text, strict=False) if "/" in text else ipaddress.ip_address(text)
        )
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/24)"
        ) from None


def load_api_settings(path: Path | None, **overrides: Any) -> ApiSettings:
    """Read the service's settings from a YAML file (optional) and the environment.

    Raises
    ------
    ConfigError
        If the file is not YAML or a value is wrong (the message names it), including the
        default session secret outside development.
    """
    return load_settings(ApiSettings, path, "api", **overrides)


__all__ = [
    "DEVELOPMENT_SESSION_SECRET",
    "ApiSettings",
    "load_api_settings",
    "load_settings_for_store",
]
