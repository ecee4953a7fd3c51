"""Durations: the notation of due, remind_every, interval and wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aftercare.engine.durations import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3d", timedelta(days=3)),
        ("4h", timedelta(hours=4)),
        ("4h30m", timedelta(hours=4, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
        (" 2w 1d ", timedelta(days=15)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["3 days", "", "d", "3", "1.5d", "-1d", "3h4d", "P3D", "1y"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration; write a number with a unit w, d, h, m or s"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0d", "0h0m"])
def test_zero_is_not_positive(text: str) -> None:
    with pytest.raises(ValueError, match="is not a positive duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [5, None, 1.5])
def test_non_text_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["3d", "4h30m", "1d12h", "90s", "2w"])
def test_format_reads_back(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_format() -> None:
    assert format_duration(timedelta(days=1, hours=2, seconds=5)) == "1d2h5s"
    assert format_duration(timedelta(0)) == "0s"


@pytest.mark.parametrize("text", ["3650d", "521w", "87600h", "315360000s"])
def test_up_to_ten_years(text: str) -> None:
    assert parse_duration(text) <= MAX_DURATION


@pytest.mark.parametrize("text", ["99999999999d", "3651d", "522w", "9" * 30 + "s", "9" * 5000 + "s", "1w" + "9" * 13 + "d"])
def test_longer_than_the_maximum(text: str) -> None:
    with pytest.raises(ValueError, match=r"is longer than the maximum 3650d \(about ten years\)$"):
        parse_duration(text)


def test_negative_and_words_say_what_would_do() -> None:
    with pytest.raises(ValueError, match=r"^'-1d' is not a duration; .* \(a duration counts forward: no sign\)$"):
        parse_duration("-1d")
    with pytest.raises(ValueError, match=r"^'3 days' is not a duration; .*; did you mean '3d'\?$"):
        parse_duration("3 days")
    with pytest.raises(ValueError, match=r"^'90 Minutes' is not a duration; .*; did you mean '90m'\?$"):
        parse_duration("90 Minutes")


def test_a_long_text_is_refused_without_backtracking() -> None:
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(" " * 100_000 + "x")
    assert time.perf_counter() - started < 0.1
