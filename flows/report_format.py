"""How the report's numbers read to people: durations, moments, percentages and figures."""

from __future__ import annotations

from datetime import datetime, timezone

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MISSING = "—"


def human_duration(seconds: float | None) -> str:
    """A duration as people say it: ``45 s``, ``12 min``, ``2 h 30 min``, ``3.2 d``; ``—`` when unknown."""
    if seconds is None:
        return MISSING
    value = float(seconds)
    if value < MINUTE:
        return f"{value:.0f} s"
    if value < HOUR:
        return f"{round(value / MINUTE)} min"
    if value < DAY:
        hours, minutes = divmod(round(value / MINUTE), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{value / DAY:.1f} d"


def duration_unit(largest: float) -> tuple[str, float]:
    """The unit a chart of durations reads best in, for its largest value: (``"h"``, 3600) or (``"d"``, 86400)."""
    return ("d", DAY) if largest >= 3 * DAY else ("h", HOUR)


def human_moment(text: str | None) -> str:
    """An ISO 8601 moment as ``2026-11-03 14:20 UTC`` (the report's moments are in UTC)."""
    if not text:
        return MISSING
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def human_date(text: str | None) -> str:
    """The date part of an ISO 8601 moment."""
    return datetime.fromisoformat(text).date().isoformat() if text else MISSING


def percent(value: float | None) -> str:
    """``87.5 %``; ``—`` when there is nothing to divide."""
    return MISSING if value is None else f"{value:.1f} %".replace(".0 %", " %")


def figure(value: float | None, unit: str) -> str:
    """A practice's figure in its unit (``count``, ``score``, ``pct``, ``seconds``)."""
    if value is None:
        return MISSING
    if unit == "seconds":
        return human_duration(value)
    if unit == "pct":
        return percent(value)
    if unit == "score":
        return f"{value:.1f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")
