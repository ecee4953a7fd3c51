"""The base of every part of the Register: its database, first-use migration, transactions."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import RegisterError
from .database import Database, first_line, shown_url
from .migrate import ensure_migrated, upgrade

SYSTEM_ACTOR = "aftercare"
"""The actor of audit events the engine writes on its own."""


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Final = _Unset.UNSET
"""Marks an argument not given, where ``None`` means "clear the value"."""

Unset = _Unset


class Store:
    """A register database with read and write transactions; see :class:`Register`.

    Args:
        url: a SQLAlchemy URL; ``None`` means ``AFTERCARE_DATABASE_URL`` or the
            default SQLite file.
        migrate: run migrations on first use.
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self._db = Database(url)
        self._auto_migrate = migrate

    @property
    def url(self) -> str:
        """The resolved database URL."""
        return self._db.url

    def migrate(self) -> str:
        """Migrate the schema to the newest revision now; returns that revision."""
        with self._database_errors():
            return upgrade(self._db.url)

    def close(self) -> None:
        """Close pooled connections (before dropping a database, or at exit)."""
        self._db.dispose()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._database_errors():
            self._ready()
            with self._db.read() as session:
                yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._database_errors():
            self._ready()
            with self._db.write() as session:
                yield session

    def _ready(self) -> None:
        if self._auto_migrate:
            ensure_migrated(self._db)

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        # Callers see one error type for database failures; the cause stays attached.
        try:
            yield
        except SQLAlchemyError as error:
            raise RegisterError(f"the register at {shown_url(self._db.url)} failed: {first_line(error)}") from error
