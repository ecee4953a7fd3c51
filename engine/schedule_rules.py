"""The one rule for a cron expression and a timezone name, for definitions' schedules and the team's digest."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TIMEZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
_LONGEST_TIMEZONE = 64  # the longest IANA name, America/Argentina/ComodRivadavia, has 32
LONGEST_CRON = 200
FIVE_FIELDS = "five fields: minute hour day month weekday"


def quoted(text: str, limit: int = 60) -> str:
    """A value quoted for a message, cut to ``limit`` characters (a 5,000-character timezone stays one line)."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + f"... ({len(text):,} characters)"


def timezone_problem(name: str) -> str | None:
    """What is wrong with an IANA timezone name, None when it is one."""
    hint = "use an IANA name such as Asia/Shanghai or UTC"
    if len(name) > _LONGEST_TIMEZONE or not _TIMEZONE.match(name):  # before ZoneInfo opens a file by that name
        return f"{quoted(name)} is not a timezone; {hint}"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown timezone {name!r}; {hint}"
    return None


def cron_problem(text: str) -> str | None:
    """What is wrong with a five-field cron expression, None when it is one."""
    from cronsim import CronSim, CronSimError

    fields = text.split()
    if len(text) > LONGEST_CRON:
        return f"invalid cron {quoted(text)}: longer than {LONGEST_CRON} characters; {FIVE_FIELDS}"
    if len(fields) != 5:
        extra = " (no seconds, no year)" if len(fields) > 5 else ""
        return f"invalid cron {text!r}: {len(fields)} field(s); {FIVE_FIELDS}{extra}, such as '0 9 * * MON'"
    try:
        CronSim(text, datetime(2026, 1, 1))
    except (CronSimError, ValueError, KeyError, IndexError, OverflowError) as error:
        return f"invalid cron {text!r}: {error}; {FIVE_FIELDS}"
    return None
