"""Business calendars: working hours, China's 2026 holidays and adjusted working days, breaks, closed and open days, DST.

Every expected moment was counted by hand on the real 2026 calendar: the ``holidays``
package 0.109 lists National Day 10-01..10-07 (10-04 a Sunday) with 09-20 and 10-10 as
adjusted working days, the Mid-Autumn Festival on Friday 09-25, and the Spring Festival
02-16..02-23 with 02-14 and 02-28 worked.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftercare.engine import clock
from aftercare.engine.calendars import BusinessCalendar, build_calendar, calendar_of, case_due, moved_due, shown_in
from aftercare.engine.durations import BusinessDuration, check_duration, due_after, is_business, parse_business, periods_passed
from aftercare.engine.errors import DefinitionError
from aftercare.engine.holiday_data import country_year, holiday_problem
from aftercare.engine.loader import load_team
from aftercare.engine.spec import ProcessSpec
from aftercare.engine.team import CalendarSpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
ROOT = Path(__file__).resolve().parents[2]


def office(**extra: object) -> BusinessCalendar:
    """DESIGN.md's example: Shanghai, 09:00-12:00 and 13:30-18:00 on weekdays, China's holidays."""
    return build_calendar("office", CalendarSpec.model_validate({
        "timezone": "Asia/Shanghai", "hours": {"mon-fri": ["09:00-12:00", "13:30-18:00"]}, "holidays": "CN", **extra,
    }))


def sh(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


class TestTheHolidayData:
    def test_china_2026_as_the_package_has_it(self) -> None:
        holidays, workdays = country_year("CN", 2026)
        assert sorted(workdays) == [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20), date(2026, 10, 10)]
        assert sorted(day for day in holidays if day.month == 10) == [date(2026, 10, d) for d in (1, 2, 3, 5, 6, 7)]
        assert date(2026, 9, 25) in holidays  # Mid-Autumn Festival, a Friday

    def test_a_year_the_package_has_no_schedule_for_is_refused(self) -> None:
        assert holiday_problem("CN", 2026) is None
        assert holiday_problem("CN", 2027) == (
            "the holidays package 0.109 has no CN schedule of adjusted working days for 2027 yet;"
            " upgrade it (pip install -U holidays), or list that year's adjusted working days under the calendar's"
            " open: (and its extra days off under closed:) once they are published"
        )
        assert holiday_problem("DE", 2027) is None  # rule-based holidays, no adjusted days to wait for
        assert holiday_problem("CNN", 2026) == "unknown country 'CNN' for holidays; did you mean 'CN'?; write a code such as CN, DE or US"

    def test_the_team_file_is_refused_at_load_in_such_a_year(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        team = tmp_path / "team.yaml"
        team.write_text(
            "team:\n  people:\n    ann: {name: Ann, email: ann@example.com}\n  calendars:\n    office:\n"
            "      timezone: Asia/Shanghai\n      hours: {mon-fri: ['09:00-18:00']}\n      holidays: CN\n",
            encoding="utf-8",
        )
        assert load_team(team).team.calendars["office"].holidays == "CN"  # in 2026
        monkeypatch.setattr(clock, "utc_now", lambda: datetime(2027, 1, 4, 1, 0, tzinfo=clock.UTC))
        with pytest.raises(DefinitionError) as refused:
            load_team(team)
        [problem] = refused.value.problems
        assert (problem.line, problem.column, problem.path) == (8, 17, "team.calendars.office.holidays")
        assert problem.message.startswith("the holidays package 0.109 has no CN schedule of adjusted working days for 2027 yet")

    def test_the_team_may_enter_the_years_working_days_itself(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        team = tmp_path / "team.yaml"
        team.write_text(
            "team:\n  people:\n    ann: {name: Ann, email: ann@example.com}\n  calendars:\n    office:\n"
            "      timezone: Asia/Shanghai\n      hours: {mon-fri: ['09:00-18:00']}\n      holidays: CN\n"
            "      open: [2027-02-20]\n      closed: [2027-02-11]\n",
            encoding="utf-8",
        )
        monkeypatch.setattr(clock, "utc_now", lambda: datetime(2027, 1, 4, 1, 0, tzinfo=clock.UTC))
        office = build_calendar("office", load_team(team).team.calendars["office"])
        assert office.is_working_day(date(2027, 2, 20)) and not office.is_working_day(date(2027, 2, 11))  # a Saturday worked, a Thursday off


class TestChina2026:
    def test_a_4bh_triage_opened_on_the_mid_autumn_friday_evening(self) -> None:
        assert due_after(sh(2026, 9, 25, 17, 0), "4bh", office()) == sh(2026, 9, 28, 14, 30)  # Mon: 09-12, then 13:30-14:30

    def test_3bd_across_national_day(self) -> None:
        assert due_after(sh(2026, 9, 25, 17, 0), "3bd", office()) == sh(2026, 10, 8, 9, 0)  # from Mon 09:00: Tue, Wed, (10-01..07 off) Thu

    def test_4bh_on_the_eve_of_national_day(self) -> None:
        assert due_after(sh(2026, 9, 30, 17, 0), "4bh", office()) == sh(2026, 10, 8, 12, 0)  # 1h on 09-30, 3h on 10-08

    def test_the_adjusted_working_days_are_worked(self) -> None:
        assert due_after(sh(2026, 9, 18, 17, 0), "1bd", office()) == sh(2026, 9, 20, 17, 0)  # Sunday 09-20 is worked
        assert due_after(sh(2026, 9, 30, 17, 0), "3bd", office()) == sh(2026, 10, 10, 17, 0)  # Thu 10-08, Fri 10-09, Sat 10-10

    def test_spring_festival(self) -> None:
        assert due_after(sh(2026, 2, 13, 17, 0), "4bh", office()) == sh(2026, 2, 14, 12, 0)  # Saturday 02-14 is worked
        assert due_after(sh(2026, 2, 13, 17, 0), "2bd", office()) == sh(2026, 2, 24, 17, 0)  # 02-15..02-23 off

    def test_the_lunch_break_is_not_counted(self) -> None:
        assert due_after(sh(2026, 3, 2, 11, 0), "2bh", office()) == sh(2026, 3, 2, 14, 30)
        assert due_after(sh(2026, 3, 2, 12, 30), "1bh", office()) == sh(2026, 3, 2, 14, 30)  # in the break: from 13:30
        assert due_after(sh(2026, 3, 2, 10, 0), "1bd4bh", office()) == sh(2026, 3, 3, 15, 30)

    def test_a_closed_day(self) -> None:
        assert due_after(sh(2026, 11, 19, 10, 0), "1bd", office(closed=["2026-11-20"])) == sh(2026, 11, 23, 10, 0)

    def test_an_open_day_works_the_usual_hours(self) -> None:
        calendar = office(open=["2026-11-21"])
        assert due_after(sh(2026, 11, 20, 10, 0), "1bd", calendar) == sh(2026, 11, 21, 10, 0)
        assert due_after(sh(2026, 11, 20, 17, 0), "2bh", calendar) == sh(2026, 11, 21, 10, 0)

    def test_a_day_that_closes_earlier_ends_the_day_at_its_close(self) -> None:
        calendar = build_calendar("short-friday", CalendarSpec.model_validate(
            {"timezone": "Asia/Shanghai", "hours": {"mon-thu": ["09:00-18:00"], "fri": ["09:00-16:00"]}}
        ))
        assert due_after(sh(2026, 3, 5, 17, 0), "1bd", calendar) == sh(2026, 3, 6, 16, 0)

    def test_working_time_between_two_moments(self) -> None:
        assert office().working_time(sh(2026, 9, 30, 17, 0), sh(2026, 10, 8, 10, 0)) == timedelta(hours=2)

    def test_shown_in_the_calendar_zone(self) -> None:
        assert shown_in(sh(2026, 9, 28, 14, 30), office()) == "2026-09-28 14:30 Asia/Shanghai"
        assert shown_in(sh(2026, 9, 28, 14, 30), None) == "2026-09-28 06:30 UTC"


class TestBerlin:
    def test_2bd_across_the_change_to_summer_time(self) -> None:
        calendar = build_calendar("berlin", CalendarSpec.model_validate({"timezone": "Europe/Berlin", "hours": {"mon-fri": ["09:00-17:00"]}, "holidays": "DE"}))
        start = datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN)  # Friday, CET (+01:00)
        due = due_after(start, "2bd", calendar)
        assert due == datetime(2026, 3, 31, 16, 0, tzinfo=BERLIN)  # Tuesday, CEST (+02:00)
        assert due.utcoffset() == timedelta(hours=2) and due.astimezone(clock.UTC) - start.astimezone(clock.UTC) == timedelta(days=4, hours=-1)
        assert due_after(datetime(2026, 3, 27, 13, 0, tzinfo=BERLIN), "8bh", calendar) == datetime(2026, 3, 30, 13, 0, tzinfo=BERLIN)
        assert due_after(datetime(2026, 4, 2, 10, 0, tzinfo=BERLIN), "1bd", calendar) == datetime(2026, 4, 7, 10, 0, tzinfo=BERLIN)  # Easter


class TestDurations:
    @pytest.mark.parametrize(("text", "expected"), [("4bh", BusinessDuration(0, 4)), ("2bd", BusinessDuration(2, 0)), ("1bd4bh", BusinessDuration(1, 4))])
    def test_business_durations(self, text: str, expected: BusinessDuration) -> None:
        assert is_business(text) and parse_business(text) == expected == check_duration(text)

    def test_wall_clock_durations_stay_wall_clock(self) -> None:
        assert not is_business("4h") and check_duration("4h") == timedelta(hours=4)
        assert due_after(sh(2026, 9, 25, 17, 0), "4h", office()) == sh(2026, 9, 25, 21, 0)

    @pytest.mark.parametrize(("text", "message"), [
        ("1d4bh", "'1d4bh' mixes working time (bd, bh) with wall-clock time; write one kind, such as 2bd4bh or 2d4h"),
        ("0bh", "'0bh' is not a positive duration; write at least 1bh, such as 4bh or 2bd"),
        ("4000bd", "'4000bd' is longer than the maximum 3650d (about ten years)"),
    ])
    def test_refused(self, text: str, message: str) -> None:
        with pytest.raises(ValueError) as refused:
            check_duration(text)
        assert str(refused.value) == message

    def test_a_business_duration_needs_a_calendar(self) -> None:
        with pytest.raises(ValueError, match="'4bh' counts working time, but the process has no calendar"):
            due_after(sh(2026, 3, 2, 9, 0), "4bh")

    def test_reminders_count_working_periods(self) -> None:
        start = sh(2026, 9, 30, 9, 0)
        assert periods_passed(start, sh(2026, 10, 8, 10, 0), "4bh", office()) == 2  # 7.5h on 09-30, 1h on 10-08
        assert due_after(start, "4bh", office(), times=3) == sh(2026, 10, 8, 15, 0)  # the third reminder: 7.5h + 4.5h
        assert periods_passed(start, sh(2026, 10, 8, 10, 0), "4h", office()) == 48  # 8 days and 1 hour of wall-clock time


class TestPauseWhile:
    def test_a_business_sla_moves_by_the_working_time_paused(self) -> None:
        # paused Mon 17:00 to Tue 10:00: 1h + 1h of working time; the due moves from Fri 12:00 past lunch
        assert moved_due(sh(2026, 3, 6, 12, 0), sh(2026, 3, 2, 17, 0), sh(2026, 3, 3, 10, 0), "5bd", office()) == sh(2026, 3, 6, 15, 30)

    def test_the_case_due_is_computed_from_facts_so_a_replay_gets_the_same(self) -> None:
        pauses = [(sh(2026, 3, 4, 9, 0), sh(2026, 3, 4, 10, 0)), (sh(2026, 3, 2, 17, 0), sh(2026, 3, 3, 10, 0))]
        assert case_due(sh(2026, 3, 2, 9, 0), "5bd", [], office()) == sh(2026, 3, 9, 9, 0)
        assert case_due(sh(2026, 3, 2, 9, 0), "5bd", pauses, office()) == sh(2026, 3, 9, 12, 0)  # 2h, then 1h more
        assert case_due(sh(2026, 3, 2, 9, 0), "5bd", pauses[::-1], office()) == sh(2026, 3, 9, 12, 0)

    def test_a_wall_clock_sla_moves_by_the_span(self) -> None:
        assert moved_due(sh(2026, 3, 6, 12, 0), sh(2026, 3, 2, 17, 0), sh(2026, 3, 3, 10, 0), "5d", office()) == sh(2026, 3, 7, 5, 0)


def test_a_process_takes_its_own_calendar_or_the_team_default() -> None:
    team = load_team(ROOT / "processes" / "team.yaml")
    spec = ProcessSpec.model_validate({"process": "p", "title": "P", "version": 1, "key": "PP", "steps": [{"id": "e", "type": "end", "outcome": "done"}]})
    found = calendar_of(spec, team)
    assert found is not None and found.name == "office" and found.zone.key == "Asia/Shanghai"
    assert not found.is_working_day(date(2026, 12, 31))  # the team's closed day
