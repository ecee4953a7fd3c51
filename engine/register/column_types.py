"""Column types the register needs on both backends: UTC datetimes and JSON documents."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from ..clock import UTC


def require_utc(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` in UTC, refusing naive datetimes.

    Args:
        value: a timezone-aware datetime.
        name: what the value is, for the error message.

    Raises:
        ValueError: the datetime has no timezone.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the zone (``timestamptz``); SQLite drops it, so values are
    converted to UTC before they are written and marked UTC when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = require_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL; Python ``None`` is stored as SQL NULL."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _json_default(value: object) -> object:
    # Dates and datetimes in inputs (date/datetime fields) are kept as ISO strings.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def check_json(value: object, what: str) -> None:
    """Raise ValueError naming ``what`` when ``value`` cannot be stored as JSON.

    Args:
        value: the value for a JSON column.
        what: what it is, for the message (``result of step 'tell'``).
    """
    try:
        dumps_json(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} cannot be stored as JSON: {error}") from error


def dumps_json(value: object) -> str:
    """Serialize a JSON column value; keeps non-ASCII text readable in the database."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)
