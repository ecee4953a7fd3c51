"""A definition's ``schedule:`` as a Prefect schedule, its ``inputs`` as that schedule's parameters."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron, Interval, RRule, Schedule

from aftercare.engine.durations import parse_duration
from aftercare.engine.spec import ProcessSpec

from .parameters import plain_value


def schedule_slug(spec: ProcessSpec) -> str:
    """The slug of a process's schedule on its deployment."""
    return f"{spec.process}-schedule"


def prefect_schedule(spec: ProcessSpec) -> Schedule | None:
    """The Prefect schedule of a recurring process, None for one that is started by hand."""
    schedule = spec.schedule
    if schedule is None:
        return None
    parameters: dict[str, Any] = plain_value(dict(schedule.inputs))
    common: dict[str, Any] = {
        "timezone": schedule.timezone,
        "active": schedule.active,
        "parameters": parameters,
        # A stable slug lets the server update this schedule in place (keeping its id and,
        # with serving.keep_schedule_state, whether people paused it) instead of replacing it.
        "slug": schedule_slug(spec),
    }
    if schedule.cron is not None:
        return Cron(schedule.cron, **common)
    if schedule.interval is not None:
        return Interval(parse_duration(schedule.interval), **common)
    assert schedule.rrule is not None
    return RRule(schedule.rrule, **common)
