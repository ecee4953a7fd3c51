"""Engines and sessions of the register: URL resolution, SQLite tuning, write transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ..settings import database_url
from ..errors import RegisterError
from .column_types import dumps_json

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Marks a connection whose transaction writes; on SQLite it then begins with
# BEGIN IMMEDIATE so concurrent writers queue on the busy timeout instead of
# failing with "database is locked" when a read lock cannot be upgraded.
_WRITE_OPTION = "aftercare_write"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def shown_url(url: str) -> str:
    """A register URL fit for a message: its password hidden, or only its scheme when it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return repr(url.split("://", 1)[0] + "://…") if "://" in url else repr(url[:40])


def first_line(error: BaseException) -> str:
    """An error's own message in one line (without SQLAlchemy's "Background on this error" link)."""
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


def default_url() -> str:
    """The register's URL as the settings give it (``AFTERCARE_DATABASE_URL`` or a SQLite file in the user data dir)."""
    return database_url()


def engine_for(url: str | None = None) -> Engine:
    """Return the process-wide engine for ``url`` (or the default URL), creating it once.

    Args:
        url: a SQLAlchemy URL; ``None`` means :func:`default_url`.
    """
    resolved = url or default_url()
    with _engines_lock:
        engine = _engines.get(resolved)
        if engine is None:
            engine = _create_engine(make_url(resolved))
            _engines[resolved] = engine
        return engine


def dispose(url: str | None = None) -> None:
    """Close the pooled connections of ``url``'s engine and forget it.

    Args:
        url: the URL given to :func:`engine_for`; ``None`` means the default URL.
    """
    resolved = url or default_url()
    with _engines_lock:
        engine = _engines.pop(resolved, None)
    if engine is not None:
        engine.dispose()


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, json_serializer=dumps_json, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    options: dict[str, Any] = {"json_serializer": dumps_json}
    if in_memory:
        # One shared connection, so every session sees the same in-memory database.
        # Only for single-threaded use (the simulator, quick tests).
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options.update(pool_size=10, max_overflow=20)
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the sqlite3 module; _on_sqlite_begin emits it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


class Database:
    """Sessions on one register database.

    Args:
        url: a SQLAlchemy URL; ``None`` means :func:`default_url`.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        try:
            self.engine = engine_for(self.url)
        except (ArgumentError, ValueError, ImportError) as error:
            raise RegisterError(
                f"the register URL {shown_url(self.url)} is not one Aftercare can use ({first_line(error)}); "
                "give AFTERCARE_DATABASE_URL as sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
            ) from error
        self._writer = self.engine.execution_options(**{_WRITE_OPTION: True})

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read-only transaction, rolled back at the end."""
        with Session(self.engine, expire_on_commit=False, autoflush=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction: committed on success, rolled back on error."""
        with Session(self._writer, expire_on_commit=False, autoflush=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction (migrations, bulk loads)."""
        with self._writer.begin() as connection:
            yield connection

    def dispose(self) -> None:
        """Close this database's pooled connections (see :func:`dispose`)."""
        dispose(self.url)
