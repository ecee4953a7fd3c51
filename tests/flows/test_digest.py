"""flows/digest.py without Prefect: the plan the team file gives (and its defaults), the week a run covers, the messages."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftercare.engine.clock import UTC
from aftercare.engine.library import load_library
from aftercare.flows.digest import digest_markdown, digest_plan, week_before
from aftercare.notifications import digest_messages

SHIPPED = Path(__file__).resolve().parents[2] / "processes"

PEOPLE = """\
team:
  people:
    ann: {name: Ann, email: ann@example.com}
    bo: {name: 薄 Bo, email: bo@example.com, locale: zh}
"""


def _folder(tmp_path: Path, team_extra: str, schedule_tz: str | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "team.yaml").write_text(PEOPLE + team_extra, encoding="utf-8")
    schedule = f"schedule: {{cron: '0 8 1 * *', timezone: {schedule_tz}}}\n" if schedule_tz else ""
    for name in ("zz-last", "aa-first"):
        (tmp_path / f"{name}.yaml").write_text(
            f"process: {name}\ntitle: T\nversion: 1\nkey: K{name[:2].upper()}\n{schedule if name == 'aa-first' else ''}"
            "steps:\n  - {id: done, type: end, outcome: ok}\n",
            encoding="utf-8",
        )
    return tmp_path


def test_the_shipped_team_names_its_digest() -> None:
    plan = digest_plan(load_library(SHIPPED))
    assert (plan.cron, plan.timezone, plan.to) == ("0 9 * * MON", "Asia/Shanghai", ("role:management", "role:quality-lead"))


def test_defaults_monday_nine_in_the_first_scheduled_definitions_timezone_to_management(tmp_path: Path) -> None:
    roles = "  roles:\n    project-manager: [ann]\n    management: [ann, bo]\n"
    plan = digest_plan(load_library(_folder(tmp_path / "a", roles, "Europe/Berlin")))
    assert (plan.cron, plan.timezone, plan.to) == ("0 9 * * MON", "Europe/Berlin", ("role:management",))
    only_pm = digest_plan(load_library(_folder(tmp_path / "b", "  roles:\n    project-manager: [ann]\n")))
    assert (only_pm.timezone, only_pm.to) == ("UTC", ("role:project-manager",))
    assert digest_plan(load_library(_folder(tmp_path / "c", ""))).to == ()


def test_the_team_file_says_when_and_to_whom(tmp_path: Path) -> None:
    extra = "  roles:\n    management: [ann]\n  digest:\n    schedule: '30 17 * * FRI'\n    to: [person:bo]\n"
    plan = digest_plan(load_library(_folder(tmp_path, extra, "Asia/Shanghai")))
    assert (plan.cron, plan.timezone, plan.to) == ("30 17 * * FRI", "Asia/Shanghai", ("person:bo",))


@pytest.mark.parametrize(
    ("moment", "timezone", "since", "label"),
    [
        # Monday 09:00 in Shanghai: the week Monday to Monday before, midnight to midnight there.
        (datetime(2026, 12, 7, 1, 0, tzinfo=UTC), "Asia/Shanghai", datetime(2026, 11, 30, tzinfo=ZoneInfo("Asia/Shanghai")), "2026-W49"),
        # Late Sunday in UTC is Monday already in Shanghai.
        (datetime(2026, 12, 6, 23, 0, tzinfo=UTC), "Asia/Shanghai", datetime(2026, 11, 30, tzinfo=ZoneInfo("Asia/Shanghai")), "2026-W49"),
        (datetime(2026, 12, 6, 23, 0, tzinfo=UTC), "UTC", datetime(2026, 11, 29, tzinfo=UTC), "2026-W48"),
        # Across the end of summer time in Berlin: still midnight to midnight there (7 days and an hour).
        (datetime(2026, 10, 26, 8, 0, tzinfo=UTC), "Europe/Berlin", datetime(2026, 10, 19, tzinfo=ZoneInfo("Europe/Berlin")), "2026-W43"),
    ],
)
def test_a_run_covers_the_seven_days_before_its_day(moment: datetime, timezone: str, since: datetime, label: str) -> None:
    week = week_before(moment, timezone)
    zone = ZoneInfo(timezone)
    assert week.since == since
    assert week.until.astimezone(zone).replace(tzinfo=None) == (since.replace(tzinfo=None) + timedelta(days=7))
    assert week.until.astimezone(zone).time().isoformat() == "00:00:00"
    assert (week.label, week.key) == (label, since.date().isoformat())
    assert week_before(week.until + timedelta(hours=23), timezone) == week  # a rerun later that day: the same week


def test_one_message_per_person_and_week_each_in_their_language(tmp_path: Path) -> None:
    library = load_library(_folder(tmp_path, "  roles:\n    management: [ann, bo]\n"))
    digest = {
        "period": "2026-W49", "since": "2026-11-29T16:00:00+00:00", "until": "2026-12-06T16:00:00+00:00",
        "summary": ["Aftercare 2026-11-29 – 2026-12-06: 3 cases opened, 1 closed (0 cancelled), 2 still open."],
        "opened": 3, "closed": 1, "open": 2,
        "processes": [{"process": "aa-first", "opened": 3, "closed": 1, "open": 2, "cycle_time": "2.0 h", "sla_met": None}],
        "attention": [{"case": "KAA-0002", "title": "Pump <2>", "reason": "oldest", "detail": "open 6.0 days", "link": "http://ui/runs/flow-run/1"}],
        "link": "http://ui/artifacts/key/aftercare-weekly-digest",
    }
    now = datetime(2026, 12, 7, 1, tzinfo=UTC)
    messages = digest_messages(library.team, ["role:management"], digest, period="2026-11-30", now=now)
    assert [(m.recipient, m.channel) for m in messages] == [("person:ann", "email:ann@example.com"), ("person:bo", "email:bo@example.com")]
    ann, bo = messages
    assert ann.subject == "Aftercare weekly digest 2026-W49: 3 opened, 1 closed, 2 open"
    assert bo.subject == "Aftercare 周报 2026-W49：新开 3，关闭 1，未结 2"
    assert "3 cases opened, 1 closed" in ann.body and "aa-first: 3 / 1 / 2; 2.0 h; -" in ann.body
    assert "KAA-0002 Pump <2> (oldest: open 6.0 days) http://ui/runs/flow-run/1" in ann.body
    assert ann.html is not None and "Pump &lt;2&gt;" in ann.html and "http://ui/artifacts/key/aftercare-weekly-digest" in ann.html
    assert "您好" in bo.body
    again = digest_messages(library.team, ["role:management"], digest, period="2026-11-30", now=now + timedelta(hours=3))
    assert [m.idempotency_key for m in again] == [m.idempotency_key for m in messages]  # a rerun adds nothing
    next_week = digest_messages(library.team, ["role:management"], digest, period="2026-12-07", now=now)
    assert not {m.idempotency_key for m in next_week} & {m.idempotency_key for m in messages}


def test_the_markdown_artifact_lists_the_summary_and_the_cases_needing_attention() -> None:
    week = week_before(datetime(2026, 12, 7, 1, tzinfo=UTC), "Asia/Shanghai")
    report = {"attention": [{"case": "ISS-0003", "title": "Printer | offline", "process": "issue-resolution", "reason": "overdue",
                             "detail": "triage due 2026-12-01", "age_days": 6.25, "link": "http://ui/runs/flow-run/3"}]}
    text = digest_markdown(week, report, ["Aftercare ...: 1 case opened."])
    assert text.startswith("# Aftercare weekly digest 2026-W49\n")
    assert "- Aftercare ...: 1 case opened." in text
    assert "| [ISS-0003](http://ui/runs/flow-run/3) Printer \\| offline | issue-resolution | overdue | triage due 2026-12-01 | 6.2 |" in text
    assert "Nothing overdue" in digest_markdown(week, {"attention": []}, [])
