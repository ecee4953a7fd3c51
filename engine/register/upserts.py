"""Dialect-specific INSERT ... ON CONFLICT, the base of every replay-safe write."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import Base


def table_of(model: type[Base]) -> Table:
    """The Core table behind an ORM model."""
    return cast(Table, model.__table__)


def insert_for(session: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``model``'s table that knows ``ON CONFLICT`` for the session's backend.

    Args:
        session: the session the statement will run in.
        model: the ORM model whose table to insert into.

    Raises:
        NotImplementedError: the backend is neither SQLite nor PostgreSQL.
    """
    table = table_of(model)
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the register supports SQLite and PostgreSQL, not {name!r}")


def insert_ignoring_conflict(
    session: Session, model: type[Base], values: dict[str, Any], conflict_columns: list[str]
) -> int | None:
    """Insert a row unless one with the same ``conflict_columns`` exists.

    Args:
        session: the session to insert in.
        model: the ORM model whose table to insert into.
        values: the row's column values.
        conflict_columns: the columns of the unique constraint that decides "exists".

    Returns:
        The new row's id, or ``None`` when a row was already there.
    """
    # The values go as parameters, not into the statement: the statement then compiles once
    # per table and column set (SQLAlchemy's cache), not on every call.
    statement = (
        insert_for(session, model)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(table_of(model).c.id)
    )
    new_id: int | None = session.execute(statement, values).scalar_one_or_none()
    return new_id
