"""The worklist database: one engine, its transactions, the schema and the dialect's INSERT.

Every part of the store (jobs, exams, readings, users, audit) takes one :class:`Database`
and works through :meth:`Database.session`. SQLite is the one-site default; PostgreSQL
serves several workers.

Concurrency rests on the database, not on the code: on SQLite every transaction starts with
``BEGIN IMMEDIATE``, so writers are serialised; on PostgreSQL the parts lock rows
(``FOR UPDATE``, ``SKIP LOCKED``) and upsert on unique constraints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mammotriage.errors import ConfigError, StoreError
from mammotriage.worklist.models import Base

#: How long a SQLite writer waits for the lock before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: PostgreSQL advisory lock held while migrating ("mammotri" in ASCII): workers that start
#: together on an empty database would otherwise each create the schema at once.
MIGRATION_LOCK_KEY = 0x6D616D6D6F747269


class StoreDataError(StoreError):
    """The database refused a write for good: a constraint (unique, check, foreign key) or
    a value it cannot hold. Trying again gives the same answer, so the worker fails the job
    at once; every other :class:`StoreError` (locked, connection lost) may pass."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL or bare path; None for another database or memory.

    Raises
    ------
    ConfigError
        If ``url`` is not a database URL.
    """
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):
        return None  # a SQLite URI: its path is the driver's business
    return Path(parsed.database)


def database_url(url: str) -> URL:
    """A SQLAlchemy URL from a URL or a bare SQLite file path.

    Raises
    ------
    ConfigError
        If ``url`` is empty or not a database URL SQLAlchemy understands.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"worklist database URL must be a non-empty string, got {url!r}")
    if "://" not in url:
        return URL.create("sqlite", database=url)
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"worklist database URL {url!r} is not valid: {exc}") from exc


class Database:
    """The engine and its transactions (never a module-level engine).

    Parameters
    ----------
    url
        ``sqlite:///path``, a bare SQLite file path, or a PostgreSQL URL
        (``postgresql+psycopg://user@host/db``).
    pool_size
        PostgreSQL connections kept open (default SQLAlchemy's 5 + 10 overflow); a service
        with many threads sets it to their number.
    sqlite_busy_timeout
        How long a SQLite writer waits for another's lock before the call fails with a
        :class:`StoreError` ("database is locked").

    Raises
    ------
    ConfigError
        If the URL is not valid or names a driver that is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_busy_timeout: timedelta = timedelta(milliseconds=SQLITE_BUSY_TIMEOUT_MS),
        pool_size: int | None = None,
    ) -> None:
        self.url = database_url(url)
        try:
            options: dict[str, Any] = {}
            if pool_size is not None and self.url.get_backend_name() == "postgresql":
                # As many connections as the caller has threads: none is opened per request.
                options = {"pool_size": pool_size, "max_overflow": pool_size}
            self.engine: Engine = create_engine(self.url, **options)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"cannot open worklist database {self.url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine, int(sqlite_busy_timeout.total_seconds() * 1000))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; database errors leave as :class:`StoreError`, those that will
        not pass (a constraint, a value the column cannot hold) as :class:`StoreDataError`.

        The message is the driver's first line: never the SQL statement nor its parameters,
        which hold study UIDs."""
        try:
            with self._sessions.begin() as session:
                yield session
        except (IntegrityError, DataError) as exc:
            raise StoreDataError(f"worklist database refused the write: {_reason(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"worklist database error: {_reason(exc)}") from exc

    def insert(self, entity: type[Base]) -> Any:
        """The dialect's INSERT, which knows ``ON CONFLICT`` (both SQLite and PostgreSQL do)."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(entity)
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(entity)
        raise ConfigError(
            f"worklist database must be SQLite or PostgreSQL, got {self.engine.dialect.name!r}"
        )

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (``upgrade head``).

        Raises
        ------
        StoreError
            If the migration fails.
        """
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(files("mammotriage.worklist") / "migrations"))
        config.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Held until commit: the next worker waits, then finds the schema at head.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            where = self.url.render_as_string(hide_password=True)
            raise StoreError(
                f"cannot open or migrate the worklist database {where}: {_reason(exc)}"
            ) from exc


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's first line ("Connection refused ..."), without SQLAlchemy's SQL dump and
    background link: what an operator reads on one line."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for every transaction.

    ``BEGIN IMMEDIATE`` takes the write lock at the start, so that two transactions never
    both read and then fail to upgrade to writing (SQLITE_BUSY without waiting); with the
    busy timeout, writers queue instead. This is SQLAlchemy's documented pysqlite recipe.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


__all__ = [
    "MIGRATION_LOCK_KEY",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Database",
    "StoreDataError",
    "database_url",
    "sqlite_file",
]
