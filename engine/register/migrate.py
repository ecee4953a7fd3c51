"""Alembic migrations of the register, run from code with the package's own scripts."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Not alembic's default name: the register may share a PostgreSQL database with
# Prefect's server, which keeps its own alembic_version table.
VERSION_TABLE = "aftercare_register_version"

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def alembic_config(url: str) -> Config:
    """An Alembic config for the register at ``url``, needing no alembic.ini.

    Args:
        url: the register's SQLAlchemy URL.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    return config


def head_revision() -> str:
    """The newest migration shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str | None = None) -> str | None:
    """The revision the register at ``url`` is at, ``None`` before the first migration.

    Args:
        url: a SQLAlchemy URL; ``None`` means the default register.
    """
    database = Database(url)
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(url: str | None = None) -> str:
    """Migrate the register at ``url`` to the newest schema (``aftercare db upgrade``).

    Safe to run from several processes at once: on SQLite the migration holds the
    write lock (BEGIN IMMEDIATE), on PostgreSQL an advisory lock.

    Args:
        url: a SQLAlchemy URL; ``None`` means ``AFTERCARE_DATABASE_URL`` or the default file.

    Returns:
        The revision the register is at afterwards.
    """
    database = Database(url)
    with _migrate_lock:
        _upgrade(database)
    return head_revision()


def ensure_migrated(url: str) -> None:
    """Run :func:`upgrade` once per process and URL (the register's first use).

    Args:
        url: the register's resolved SQLAlchemy URL.
    """
    if url in _migrated:
        return
    with _migrate_lock:
        if url not in _migrated:
            _upgrade(Database(url))


def _upgrade(database: Database) -> None:
    config = alembic_config(database.url)
    with database.write_connection() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    _migrated.add(database.url)
