"""Typed values: coercing what people and files give to the type of an input or form field."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from aftercare.engine.spec import FieldSpec
from aftercare.engine.values import coerce, coerce_all, parse_moment

PEOPLE = ["li.na", "wang.wei"]


def field(**spec: Any) -> FieldSpec:
    return FieldSpec(**spec)


@pytest.mark.parametrize(
    ("spec", "given", "expected"),
    [
        ({"type": "string"}, "x", "x"),
        ({"type": "string"}, 5, "5"),
        ({"type": "text"}, "line\nline", "line\nline"),
        ({"type": "integer"}, "42", 42),
        ({"type": "integer"}, 3.0, 3),
        ({"type": "integer", "minimum": 1, "maximum": 5}, 5, 5),
        ({"type": "number"}, "2.5", 2.5),
        ({"type": "number"}, 2, 2),
        ({"type": "boolean"}, "yes", True),
        ({"type": "boolean"}, "Off", False),
        ({"type": "boolean"}, False, False),
        ({"type": "date"}, "2026-01-31", "2026-01-31"),
        ({"type": "date"}, date(2026, 1, 31), "2026-01-31"),
        ({"type": "date"}, datetime(2026, 1, 31, 9, 0), "2026-01-31"),
        ({"type": "datetime"}, "2026-01-31T09:00:00+08:00", "2026-01-31T09:00:00+08:00"),
        ({"type": "datetime"}, "2026-01-31T09:00:00", "2026-01-31T09:00:00+00:00"),
        ({"type": "datetime"}, datetime(2026, 1, 31, 9, tzinfo=timezone.utc), "2026-01-31T09:00:00+00:00"),
        ({"type": "choice", "choices": ["P1", "P2"]}, "P2", "P2"),
        ({"type": "person"}, "li.na", "li.na"),
        ({"type": "person"}, "person:wang.wei", "wang.wei"),
        ({"type": "list"}, "a, b,,c ", ["a", "b", "c"]),
        ({"type": "list"}, "", []),
        ({"type": "list"}, ("a", 1), ["a", 1]),
    ],
)
def test_coerce(spec: dict[str, Any], given: Any, expected: Any) -> None:
    value = coerce(field(**spec), given, PEOPLE)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("spec", "given", "message"),
    [
        ({"type": "string"}, {"a": 1}, "expected text, got dict"),
        ({"type": "integer"}, "many", "expected a whole number, got 'many'"),
        ({"type": "integer"}, 2.5, "expected a whole number, got 2.5"),
        ({"type": "integer"}, True, "expected a whole number, got True"),
        ({"type": "integer", "minimum": 1}, 0, "0 is below the minimum 1"),
        ({"type": "number", "maximum": 10}, 10.5, "10.5 is above the maximum 10"),
        ({"type": "number"}, "lots", "expected a number, got 'lots'"),
        ({"type": "number"}, True, "expected a number, got True"),
        ({"type": "number"}, "nan", "expected a number, got 'nan'"),
        ({"type": "number"}, float("inf"), "expected a number, got inf"),
        ({"type": "integer"}, float("nan"), "expected a whole number, got nan"),
        ({"type": "boolean"}, "perhaps", "expected true or false, got 'perhaps'"),
        ({"type": "date"}, "31/01/2026", "expected a date like 2026-01-31, got '31/01/2026'"),
        ({"type": "datetime"}, "soon", "expected a date and time like 2026-01-31T09:00:00+08:00, got 'soon'"),
        ({"type": "choice", "choices": ["P1", "P2"]}, "P3", "'P3' is not one of ['P1', 'P2']"),
        ({"type": "person"}, "li.nna", "unknown person 'li.nna'; did you mean 'li.na'?"),
        ({"type": "list"}, 5, "expected a list, got 5"),
    ],
)
def test_coerce_refuses(spec: dict[str, Any], given: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        coerce(field(**spec), given, PEOPLE)
    assert str(caught.value) == message


def test_person_is_not_checked_without_a_team() -> None:
    assert coerce(field(type="person"), "anyone") == "anyone"


def test_coerce_all_fills_defaults_and_reports_every_problem() -> None:
    fields = {
        "title": field(type="string"),
        "severity": field(type="choice", choices=["low", "high"], default="low"),
        "details": field(type="text", required=False),
        "count": field(type="integer"),
    }
    assert coerce_all(fields, {"title": "x", "count": "2"}) == {"title": "x", "severity": "low", "details": None, "count": 2}
    with pytest.raises(ValueError) as caught:
        coerce_all(fields, {"titel": "x", "count": "two"})
    assert str(caught.value) == "unknown input 'titel'; did you mean 'title'?; input 'title' is required; input 'count': expected a whole number, got 'two'"


def test_coerce_all_names_what_it_checks() -> None:
    with pytest.raises(ValueError, match="field 'count' is required"):
        coerce_all({"count": field(type="integer")}, {}, what="field")


@pytest.mark.parametrize(
    ("kind", "given", "message"),
    [
        ("date", "2026-02-30", "'2026-02-30' is not a date: day is out of range for month"),
        ("date", "2026-13-01", "'2026-13-01' is not a date: month must be in 1..12"),
        ("datetime", "2026-02-30T09:00:00", "'2026-02-30T09:00:00' is not a date: day is out of range for month"),
        ("date", "2026-01-01" + "x" * 5000, "expected a date like 2026-01-31, got '2026-01-01xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."),
    ],
)
def test_an_impossible_date_says_why(kind: str, given: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        coerce(field(type=kind), given, PEOPLE)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31)),
        ("2026-01-31T09:00:00+08:00", datetime.fromisoformat("2026-01-31T09:00:00+08:00")),
        ("2026-01-31 09:00", datetime(2026, 1, 31, 9)),
        (date(2026, 1, 31), datetime(2026, 1, 31)),
    ],
)
def test_parse_moment(given: Any, expected: datetime) -> None:
    assert parse_moment(given) == expected


@pytest.mark.parametrize("given", ["not-a-date", "2026-02-30", "2026-01-31T25:00", "", "31/01/2026"])
def test_parse_moment_refuses(given: str) -> None:
    with pytest.raises(ValueError):
        parse_moment(given)
