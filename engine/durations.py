"""Durations ("3d", "4h30m", "1w") and their parsing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DURATION = re.compile(r"^\s*(?:(\d+)w)?\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``3d``, ``4h``, ``1d12h`` or ``90s``.

    Raises:
        ValueError: the text is not a positive duration of weeks, days, hours,
            minutes and seconds.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(
            f"{text!r} is not a duration; write a number with a unit w, d, h, m or s, such as 3d, 4h or 1d12h"
        )
    parts = {unit: int(value) for unit, value in zip(_UNITS.values(), match.groups()) if value}
    delta = timedelta(**parts)
    if delta <= timedelta(0):
        raise ValueError(f"{text!r} is not a positive duration")
    return delta


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
