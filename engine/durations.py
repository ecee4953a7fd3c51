"""Durations ("3d", "4h30m", "1w") and business durations ("4bh", "2bd"); the moment a duration after a start ends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^\s*(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")
_WORDS = re.compile(
    r"^\s*(\d+)\s*(weeks?|wks?|days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)\s*$", re.IGNORECASE
)
_LONGEST = 40

MAX_DURATION = timedelta(days=3650)
"""The longest due, reminder, interval or wait: 3650 days, about ten years.

Every duration becomes a moment (``now + duration``) stored in the register and handed to
Prefect; ten years is longer than any after-care contract, far inside what datetimes and
the databases hold (``99999999999d`` overflows Python's datetime), and a duration beyond it
is a typo (``3000d`` meant as ``30d``) far more often than a plan."""


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``3d``, ``4h``, ``1d12h`` or ``90s``.

    Raises:
        ValueError: the text is not a positive duration of weeks, days, hours, minutes and
            seconds, or it is longer than :data:`MAX_DURATION`; the message says what would do.
    """
    if isinstance(text, str) and len(text) > _LONGEST and text.strip().isalnum() and text.strip()[-1] in _UNITS:
        raise ValueError(_too_long(text))  # the pattern's optional spaces would backtrack on a long text
    match = _DURATION.match(text) if isinstance(text, str) and len(text) <= _LONGEST else None
    if not match or not any(match.groups()):
        raise ValueError(_not_a_duration(text))
    if any(len(digits) > 12 for digits in match.groups() if digits):  # int() of 5,000 digits raises itself
        raise ValueError(_too_long(text))
    seconds = sum(int(value) * _SECONDS[unit] for unit, value in zip(_UNITS, match.groups()) if value)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration; write at least 1s, such as 1h or 1d")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(_too_long(text))
    return timedelta(seconds=seconds)


def _not_a_duration(text: object) -> str:
    shown = repr(text) if len(repr(text)) <= 60 else repr(text)[:57] + "..."
    message = f"{shown} is not a duration; write a number with a unit w, d, h, m or s, such as 3d, 4h or 1d12h"
    if isinstance(text, str) and len(text) <= _LONGEST and _MIXED.match(text):
        return f"{shown} mixes working time (bd, bh) with wall-clock time; write one kind, such as 2bd4bh or 2d4h"
    if isinstance(text, str):
        if text.strip().startswith("-") and _DURATION.match(text.strip()[1:]):
            return f"{message} (a duration counts forward: no sign)"
        words = _WORDS.match(text)
        if words:
            return f"{message}; did you mean '{words.group(1)}{words.group(2)[0].lower()}'?"
    return message


def _too_long(text: str) -> str:
    shown = repr(text) if len(text) <= 40 else repr(text)[:37] + "..."
    return f"{shown} is longer than the maximum {MAX_DURATION.days}d (about ten years)"


def format_duration(delta: timedelta) -> str:
    """Render a timedelta in the same notation ``parse_duration`` reads."""
    seconds = int(delta.total_seconds())
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


_BUSINESS = re.compile(r"^\s*(?:(\d{1,6})bd)?\s*(?:(\d{1,6})bh)?\s*$")
_MIXED = re.compile(r"^\s*(?=.*\d+b[dh])(?=.*\d+[wdhms](?![a-z]))[\dbwdhms\s]+$")


class WorkingTime(Protocol):
    """What counts working time (``calendars.BusinessCalendar``)."""

    def add_days(self, start: datetime, days: int) -> datetime:
        """The same working time ``days`` working days later."""

    def add_hours(self, start: datetime, hours: float | timedelta) -> datetime:
        """The moment ``hours`` of working time later."""


@dataclass(frozen=True)
class BusinessDuration:
    """Working time on a calendar: ``days`` working days (same working time, later days), then ``hours`` working hours."""

    days: int = 0
    hours: int = 0

    def times(self, count: int) -> BusinessDuration:
        """This duration ``count`` times over (the ``count``-th reminder)."""
        return BusinessDuration(self.days * count, self.hours * count)


def is_business(text: str) -> bool:
    """Whether a duration counts working time (``4bh``, ``2bd``, ``1bd4bh``)."""
    match = _BUSINESS.match(text) if isinstance(text, str) and len(text) <= _LONGEST else None
    return bool(match and any(match.groups()))


def parse_business(text: str) -> BusinessDuration:
    """Parse a business duration such as ``4bh``, ``2bd`` or ``1bd4bh``.

    Raises:
        ValueError: not a positive business duration, or longer than :data:`MAX_DURATION`.
    """
    match = _BUSINESS.match(text) if isinstance(text, str) and len(text) <= _LONGEST else None
    if not match or not any(match.groups()):
        raise ValueError(_not_a_duration(text))
    days, hours = (int(value or 0) for value in match.groups())
    if days + hours <= 0:
        raise ValueError(f"{text!r} is not a positive duration; write at least 1bh, such as 4bh or 2bd")
    if days + hours / 24 > MAX_DURATION.days:
        raise ValueError(_too_long(text))
    return BusinessDuration(days, hours)


def check_duration(text: str) -> timedelta | BusinessDuration:
    """A duration of either kind, as written in ``due``, ``sla.due``, ``remind_every`` and ``wait.duration``.

    Raises:
        ValueError: neither a duration nor a business duration; the message says what would do.
    """
    return parse_business(text) if is_business(text) else parse_duration(text)


def due_after(start: datetime, text: str, calendar: WorkingTime | None = None, *, times: int = 1) -> datetime:
    """The moment a duration after ``start`` ends (a step's ``due``, a case's ``sla.due``, a ``wait``, a reminder).

    A business duration (``4bh``, ``2bd``) counts working time on ``calendar``; ``times``
    repeats the duration (the ``times``-th reminder falls ``times`` periods after ``start``).

    Raises:
        ValueError: a business duration without a calendar (the loader refuses such a definition).
    """
    if is_business(text):
        if calendar is None:
            raise ValueError(f"{text!r} counts working time, but the process has no calendar")
        business = parse_business(text).times(times)
        return calendar.add_hours(calendar.add_days(start, business.days), business.hours)
    return start + parse_duration(text) * times


def periods_passed(start: datetime, now: datetime, text: str, calendar: WorkingTime | None = None) -> int:
    """How many whole periods of ``text`` (a ``remind_every``) passed between ``start`` and ``now``."""
    if not is_business(text):
        every = parse_duration(text)
        return max(0, int((now - start) / every))
    count = 0
    while due_after(start, text, calendar, times=count + 1) <= now:
        count += 1
    return count
