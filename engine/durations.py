"""Durations ("3d", "4h30m", "1w") and their parsing, within a sane maximum."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

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


def due_after(start: datetime, text: str) -> datetime:
    """The moment a duration after ``start`` ends (a step's ``due``, a case's ``sla.due``, a ``wait``)."""
    return start + parse_duration(text)
