"""Business calendars: working hours per weekday, a time zone, a country's holidays and adjusted working days.

A :class:`BusinessCalendar` is pure: built from a team's ``calendars:`` entry (:class:`CalendarSpec`),
it says which moments are working time and adds working hours and working days to a moment.
Holiday data comes from the ``holidays`` package (offline); a year it has no data for is
refused when the team file loads (:func:`.holiday_data.holiday_problem`), never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .clock import UTC
from .durations import MAX_DURATION, due_after, is_business
from .holiday_data import country_year
from .spec import ProcessSpec
from .team import WEEKDAYS, CalendarSpec, TeamSpec, hour_range, weekdays_of

Span = tuple[int, int]
"""Working minutes of a day: from, to (``24 * 60`` is midnight at its end)."""
_SCAN_DAYS = MAX_DURATION.days * 2
"""How far a count of working time looks ahead before it gives up (a calendar almost always closed)."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working time: hours per weekday in a time zone, less holidays and closed days, plus open days.

    Attributes:
        name: the calendar's name in the team file.
        zone: its time zone; working hours are wall-clock times there.
        week: the working spans of Monday to Sunday.
        country: the country whose public holidays close a day and whose adjusted working days open one.
        closed: extra days off.
        opened: extra working days.
    """

    name: str
    zone: ZoneInfo
    week: tuple[tuple[Span, ...], ...]
    country: str | None = None
    closed: frozenset[date] = frozenset()
    opened: frozenset[date] = frozenset()

    @property
    def standard(self) -> tuple[Span, ...]:
        """The hours of an open or adjusted working day: those of the first weekday that works."""
        return next((spans for spans in self.week if spans), ())

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The working spans of one day (empty: closed)."""
        if day in self.opened:
            return self.standard
        if day in self.closed:
            return ()
        if self.country is not None:
            holidays, workdays = country_year(self.country, day.year)
            if day in workdays:
                return self.standard
            if day in holidays:
                return ()
        return self.week[day.weekday()]

    def is_working_day(self, day: date) -> bool:
        """Whether anyone works on this day."""
        return bool(self.spans_on(day))

    def local(self, moment: datetime) -> datetime:
        """A moment on this calendar's wall clock."""
        return moment.astimezone(self.zone)

    def _intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (in UTC, so spans are elapsed time even across a DST change) that end after ``start``, in order."""
        day = self.local(start).date()
        for _ in range(_SCAN_DAYS):
            midnight = datetime.combine(day, time(0), tzinfo=self.zone)
            for begin, end in self.spans_on(day):
                opens, closes = _at(midnight, begin).astimezone(UTC), _at(midnight, end).astimezone(UTC)
                if closes > start:
                    yield max(opens, start), closes
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name!r} has no working time within {_SCAN_DAYS} days of {start.isoformat()}")

    def opening(self, start: datetime) -> datetime:
        """``start`` itself during working hours, else the next moment work begins."""
        begin, _ = next(self._intervals(start))
        return begin.astimezone(start.tzinfo)

    def add_hours(self, start: datetime, hours: float | timedelta) -> datetime:
        """The moment ``hours`` of working time after ``start`` (outside hours: counted from the next opening)."""
        left = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
        if left <= timedelta(0):
            return start
        for begin, end in self._intervals(start):
            span = end - begin
            if left <= span:
                return (begin + left).astimezone(start.tzinfo)
            left -= span
        raise AssertionError("unreachable: _intervals raises first")  # pragma: no cover

    def add_days(self, start: datetime, days: int) -> datetime:
        """The same working time ``days`` working days later (outside hours: from the next opening).

        When that day closes before that time, its closing; when the time falls in its break, the
        end of the break.
        """
        if days <= 0:
            return start
        begun = self.local(self.opening(start))
        wall = begun - datetime.combine(begun.date(), time(0), tzinfo=self.zone)
        day, counted = begun.date(), 0
        for _ in range(_SCAN_DAYS):
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
                if counted == days:
                    return self._same_time(day, wall).astimezone(start.tzinfo)
        raise ValueError(f"calendar {self.name!r} has no {days} working days within {_SCAN_DAYS} days of {start.isoformat()}")

    def _same_time(self, day: date, wall: timedelta) -> datetime:
        midnight = datetime.combine(day, time(0), tzinfo=self.zone)
        spans = self.spans_on(day)
        minute = wall.total_seconds() / 60
        for begin, end in spans:
            if minute < end:
                return midnight + wall if minute >= begin else _at(midnight, begin)
        return _at(midnight, spans[-1][1])

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """The working time between two moments."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, closes in self._intervals(start):
            if begin >= end:
                break
            total += min(closes, end) - begin
        return total


def _at(midnight: datetime, minutes: int) -> datetime:
    """A wall-clock time of the day that starts at ``midnight`` (``24 * 60``: the next midnight)."""
    return midnight + timedelta(minutes=minutes)


def build_calendar(name: str, spec: CalendarSpec) -> BusinessCalendar:
    """A team file's calendar as a :class:`BusinessCalendar` (built once per content)."""
    return _built(name, spec.model_dump_json())


@lru_cache(maxsize=64)
def _built(name: str, text: str) -> BusinessCalendar:
    spec = CalendarSpec.model_validate_json(text)
    week: list[tuple[Span, ...]] = [() for _ in WEEKDAYS]
    for key, ranges in spec.hours.items():
        spans = tuple(sorted(hour_range(text) for text in ranges))
        for index in weekdays_of(key):
            week[index] = spans
    return BusinessCalendar(name, ZoneInfo(spec.timezone), tuple(week), spec.holidays, frozenset(spec.closed), frozenset(spec.open))


def calendar_name(process: ProcessSpec, team: TeamSpec) -> str | None:
    """The calendar a process counts working time on: its own ``calendar:``, else the team's default."""
    return process.calendar or team.team.calendar


def calendar_of(process: ProcessSpec, team: TeamSpec) -> BusinessCalendar | None:
    """The business calendar of a process, None when it has none (an unknown name: None, the loader refuses it)."""
    name = calendar_name(process, team)
    spec = team.team.calendars.get(name) if name else None
    return build_calendar(name, spec) if name and spec else None


def moved_due(due_at: datetime, paused_from: datetime, paused_to: datetime, text: str, calendar: BusinessCalendar | None) -> datetime:
    """A case's due after its clock stood still from ``paused_from`` to ``paused_to`` (``sla.pause_while``).

    The paused span is added as the SLA counts: its working time for a business ``sla.due``,
    its wall-clock length otherwise.
    """
    if paused_to <= paused_from:
        return due_at
    if is_business(text) and calendar is not None:
        return calendar.add_hours(due_at, calendar.working_time(paused_from, paused_to))
    return due_at + (paused_to - paused_from)


def case_due(
    opened_at: datetime, text: str, pauses: Iterable[tuple[datetime, datetime]], calendar: BusinessCalendar | None
) -> datetime:
    """A case's due: ``sla.due`` after it opened, moved by every span it waited at a step of ``sla.pause_while``.

    Computed from facts (when the case opened, when each paused visit began and ended), never
    accumulated, so a replay that computes it again gets the same moment.
    """
    due = due_after(opened_at, text, calendar)
    for paused_from, paused_to in sorted(pauses):
        due = moved_due(due, paused_from, paused_to, text, calendar)
    return due


def shown_in(moment: datetime, calendar: BusinessCalendar | None) -> str:
    """A moment as people read it: in the calendar's time zone (``2026-09-28 14:30 Asia/Shanghai``), else UTC."""
    if calendar is None:
        return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M UTC")
    return f"{calendar.local(moment).strftime('%Y-%m-%d %H:%M')} {calendar.zone.key}"

