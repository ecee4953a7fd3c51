"""Typed values of inputs and form fields: checking and coercing what people and files give."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timezone
from typing import Any

from .spec import FieldSpec
from .suggest import did_you_mean

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_LONGEST_MOMENT = 64


def parse_date(value: Any) -> date:
    """A date from a date, a datetime (its day) or ISO text such as ``2026-01-31``.

    Raises:
        ValueError: the value is no date; an impossible one (``2026-02-30``) says why.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) > _LONGEST_MOMENT:
            raise ValueError("too long")
        return date.fromisoformat(text)
    except ValueError as error:
        raise ValueError(_no_moment(value, error, "a date like 2026-01-31")) from None


def parse_moment(value: Any) -> datetime:
    """A date or datetime as a datetime (a date at midnight); without an offset the result is naive.

    ``2026-01-31``, ``2026-01-31T09:00``, ``2026-01-31 09:00:00+08:00``, or a date or datetime.

    Raises:
        ValueError: the value is neither; an impossible one (``2026-02-30``) says why.
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(0))
    text = str(value).strip()
    try:
        if len(text) > _LONGEST_MOMENT:
            raise ValueError("too long")
        if "T" in text or " " in text:
            return datetime.fromisoformat(text)
        return datetime.combine(date.fromisoformat(text), time(0))
    except ValueError as error:
        raise ValueError(_no_moment(value, error, "a date like 2026-01-31 or a date and time like 2026-01-31T09:00:00+08:00")) from None


def _no_moment(value: Any, error: ValueError, wanted: str) -> str:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if isinstance(value, str) and _DATE_SHAPE.match(value.strip()) and "isoformat" not in str(error) and "too long" not in str(error):
        return f"{shown} is not a date: {error}"  # the right shape, an impossible day: 2026-02-30
    return f"expected {wanted}, got {shown}"


def coerce(field: FieldSpec, value: Any, people: Iterable[str] = ()) -> Any:
    """Check and convert one value for a field.

    Args:
        field: the field's spec.
        value: the value given (from YAML, JSON, a form, or ``FIELD=VALUE`` text).
        people: the team's person ids, for ``person`` fields (empty: not checked).

    Raises:
        ValueError: the value does not fit; the message says what would.
    """
    kind = field.type
    if kind in ("string", "text"):
        if isinstance(value, (dict, list)):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return str(value)
    if kind == "integer":
        if isinstance(value, bool) or not _is_integral(value):
            raise ValueError(f"expected a whole number, got {value!r}")
        result = int(value)
        _check_range(field, result)
        return result
    if kind == "number":
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number):  # nan and inf fit no form, no JSON column
            raise ValueError(f"expected a number, got {value!r}")
        _check_range(field, number)
        return int(number) if isinstance(value, int) else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind == "date":
        return parse_date(value).isoformat()
    if kind == "datetime":
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                if len(str(value)) > _LONGEST_MOMENT:
                    raise ValueError("too long")
                parsed = datetime.fromisoformat(str(value))
            except ValueError as error:
                raise ValueError(_no_moment(value, error, "a date and time like 2026-01-31T09:00:00+08:00")) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.isoformat()
    if kind == "choice":
        text = str(value)
        assert field.choices is not None
        if text not in field.choices:
            raise ValueError(f"{value!r} is not one of {list(field.choices)}")
        return text
    if kind == "person":
        text = str(value).removeprefix("person:")
        known = list(people)
        if known and text not in known:
            raise ValueError(f"unknown person {text!r}{did_you_mean(text, known)}")
        return text
    if kind == "list":
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] if value.strip() else []
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError(f"expected a list, got {value!r}")
    raise ValueError(f"unknown field type {kind!r}")


def _is_integral(value: Any) -> bool:
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    try:
        int(str(value))
    except ValueError:
        return False
    return True


def _check_range(field: FieldSpec, number: float) -> None:
    if field.minimum is not None and number < field.minimum:
        raise ValueError(f"{number} is below the minimum {field.minimum:g}")
    if field.maximum is not None and number > field.maximum:
        raise ValueError(f"{number} is above the maximum {field.maximum:g}")


def coerce_all(
    fields: Mapping[str, FieldSpec], given: Mapping[str, Any], people: Iterable[str] = (), *, what: str = "input"
) -> dict[str, Any]:
    """Check a whole form: unknown names, missing required values, each value's type.

    Returns the values with defaults filled in. Raises ValueError listing every problem.
    """
    people = list(people)
    problems: list[str] = []
    result: dict[str, Any] = {}
    for name in given:
        if name not in fields:
            problems.append(f"unknown {what} {name!r}{did_you_mean(name, fields)}")
    for name, field in fields.items():
        value = given.get(name)
        if value is None or value == "":
            if field.default is not None:
                result[name] = field.default
            elif field.required:
                problems.append(f"{what} {name!r} is required")
            else:
                result[name] = None
            continue
        try:
            result[name] = coerce(field, value, people)
        except ValueError as error:
            problems.append(f"{what} {name!r}: {error}")
    if problems:
        raise ValueError("; ".join(problems))
    return result
