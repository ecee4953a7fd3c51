"""INSERT ... ON CONFLICT on SQLite and PostgreSQL, compiled once: the base of every replay-safe write.

SQLAlchemy 2.0 does not cache its dialect ``insert()`` constructs (they carry
``inherit_cache = False``), so every call compiled the statement again: about a tenth of
a millisecond per step, more inside a flow run. Each statement here is built with the
dialect's construct once per table and column set, and kept as a ``text()`` statement
with typed parameters, which SQLAlchemy does cache.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import BindParameter, String, Table, TextClause, bindparam, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from .models import Base, KeyCounter


def table_of(model: type[Base]) -> Table:
    """The Core table behind an ORM model."""
    return cast(Table, model.__table__)


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
    statement = _ignoring_conflict(_dialect_name(session), table_of(model).name, tuple(values), tuple(conflict_columns))
    new_id: int | None = session.execute(statement, values).scalar_one_or_none()
    return new_id


def increment_counter(session: Session, prefix: str) -> int:
    """Add one to ``prefix``'s key counter (created at 1) in one statement; returns the new value."""
    number: int = session.execute(_counter_increment(_dialect_name(session)), {"prefix": prefix}).scalar_one()
    return number


@cache
def _ignoring_conflict(dialect_name: str, table_name: str, columns: tuple[str, ...], conflict: tuple[str, ...]) -> TextualSelect:
    table = Base.metadata.tables[table_name]
    statement = (
        _insert(dialect_name, table)
        .values({name: _untyped(name) for name in columns})
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(table.c.id)
    )
    return _compiled_once(dialect_name, statement, table, columns).columns(table.c.id)


@cache
def _counter_increment(dialect_name: str) -> TextualSelect:
    table = table_of(KeyCounter)
    statement = (
        _insert(dialect_name, table)
        .values(prefix=_untyped("prefix"), last=literal_column("1"))
        .on_conflict_do_update(index_elements=[table.c.prefix], set_={"last": table.c.last + literal_column("1")})
        .returning(table.c.last)
    )
    return _compiled_once(dialect_name, statement, table, ("prefix",)).columns(table.c.last)


def _untyped(name: str) -> BindParameter[Any]:
    # Compiled without its column's type: PostgreSQL would render a JSONB column's
    # parameter as ":name::JSONB", which text() cannot read back as a parameter.
    return bindparam(name, type_=String())


def _compiled_once(dialect_name: str, statement: Any, table: Table, columns: tuple[str, ...]) -> TextClause:
    # Named parameters (":name") are what text() reads; each keeps its column's type, so
    # JSON and UTC datetimes are converted exactly as the ORM converts them.
    sql = str(statement.compile(dialect=_named_dialect(dialect_name)))
    return text(sql).bindparams(*(bindparam(name, type_=table.c[name].type) for name in columns))


def _named_dialect(name: str) -> Dialect:
    if name == "postgresql":
        return postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
    return sqlite.dialect(paramstyle="named")


def _insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(table) if dialect_name == "postgresql" else sqlite.insert(table)


def _dialect_name(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"the register supports SQLite and PostgreSQL, not {name!r}")
    return name
