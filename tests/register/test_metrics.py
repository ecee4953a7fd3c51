"""Every figure of the report on a register of known timings, exactly, on SQLite and PostgreSQL.

The cases are written through the Register API with explicit moments (a simulated clock),
so each duration, due and answer is known; the expected numbers below are worked out by
hand from them (nearest rank: the median is the ceil(n/2)-th value, p90 the ceil(0.9 n)-th).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.errors import NotFoundError
from aftercare.engine.library import load_library
from aftercare.engine.loader import Library
from aftercare.engine.register import Register
from aftercare.flows.reporting import build_report, report_summary

UTC = timezone.utc
H = timedelta(hours=1)
D = timedelta(days=1)
T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
SINCE = datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def library() -> Library:
    return load_library(ROOT / "processes")


def _open(register: Register, process: str, prefix: str, at: datetime, due: datetime | None = None) -> str:
    return register.open_case(
        process=process, version=1, definition_hash="sha256:test", key_prefix=prefix, title=f"{process} at {at:%m-%d}",
        inputs={}, opened_at=at, due_at=due, actor="test",
    ).key


def _step(
    register: Register, key: str, step: str, visit: int, start: datetime, end: datetime | None = None, *,
    due: datetime | None = None, by: str | None = None, decision: str = "submit", result: dict[str, Any] | None = None,
    people: tuple[str, ...] = (),
) -> None:
    register.begin_step(key, step, visit, started_at=start, due_at=due, eligible=people or ((by,) if by else ()))
    fields = dict(result or {})
    if by is not None and end is not None:
        register.answer(
            key, step, visit, person=by, decision=decision, fields=fields, answered_at=end,
            decide=lambda rows: {"decision": decision, "by": by, **fields},
        )
    elif end is not None:
        register.complete_step(key, step, visit, fields, end)


def fill(register: Register) -> None:
    """The cases of the module docstring; see each test for what they add up to."""
    # ISS-0001: verified on the second try (rework, a reopen); 8 h.
    a = _open(register, "issue-resolution", "ISS", T, T + 5 * D)
    _step(register, a, "triage", 1, T, T + H, due=T + 4 * H, by="li.na", decision="approve")
    _step(register, a, "resolve", 1, T + H, T + 3 * H, due=T + H + 2 * D, by="liu.yang")
    _step(register, a, "verify", 1, T + 3 * H, T + 5 * H, due=T + 3 * H + 3 * D, by="huang.lei", decision="reject")
    _step(register, a, "reopen", 1, T + 5 * H, T + 5 * H)
    _step(register, a, "resolve", 2, T + 5 * H, T + 6 * H, due=T + 5 * H + 2 * D, by="liu.yang")
    _step(register, a, "verify", 2, T + 6 * H, T + 8 * H, due=T + 6 * H + 3 * D, by="huang.lei", decision="approve")
    register.close_case(a, "resolved", at=T + 8 * H)
    # ISS-0002: triage two hours late; 10 h.
    b0 = T + D
    b = _open(register, "issue-resolution", "ISS", b0, b0 + 5 * D)
    _step(register, b, "triage", 1, b0, b0 + 6 * H, due=b0 + 4 * H, by="li.na", decision="approve")
    _step(register, b, "resolve", 1, b0 + 6 * H, b0 + 8 * H, due=b0 + 6 * H + 2 * D, by="sarah.jones")
    _step(register, b, "tell-reporter", 1, b0 + 8 * H, b0 + 8 * H + timedelta(minutes=10))
    _step(register, b, "verify", 1, b0 + 8 * H + timedelta(minutes=10), b0 + 10 * H, due=b0 + 11 * H + 3 * D, by="huang.lei", decision="approve")
    register.close_case(b, "resolved", at=b0 + 10 * H)
    # ISS-0003: opened in October, stuck at resolve since (overdue, stale, past its case due).
    c0 = datetime(2026, 10, 15, 9, tzinfo=UTC)
    c = _open(register, "issue-resolution", "ISS", c0, c0 + 5 * D)
    _step(register, c, "triage", 1, c0, c0 + H, due=c0 + 4 * H, by="li.na", decision="approve")
    _step(register, c, "resolve", 1, c0 + H, due=c0 + H + 2 * D, people=("liu.yang",))
    # ISS-0004: cancelled while waiting at triage.
    d0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
    d = _open(register, "issue-resolution", "ISS", d0, d0 + 5 * D)
    _step(register, d, "triage", 1, d0, due=d0 + 4 * H, people=("li.na",))
    register.cancel_case(d, by="li.na", reason="duplicate of ISS-0002", at=d0 + D)
    # Two open risks; the second one reassessed (its latest rating counts).
    e0 = datetime(2026, 11, 10, 9, tzinfo=UTC)
    e = _open(register, "risk-response", "RSK", e0)
    _step(register, e, "assess", 1, e0, e0 + H, by="zhang.wei", result={"likelihood": 4, "impact": 5})
    f0 = datetime(2026, 11, 12, 9, tzinfo=UTC)
    f = _open(register, "risk-response", "RSK", f0)
    _step(register, f, "assess", 1, f0, f0 + H, by="zhang.wei", result={"likelihood": 2, "impact": 3})
    _step(register, f, "assess", 2, f0 + D, f0 + D + 2 * H, by="zhang.wei", result={"likelihood": 3, "impact": 3})
    register.audit(f, "case.commented", "li.na", detail="vendor answered", at=datetime(2026, 11, 28, 9, tzinfo=UTC))
    # Satisfaction: a survey in October (6), one in November (9), a visit in November (7).
    for opened, score, outcome in ((datetime(2026, 10, 1, 10, tzinfo=UTC), 6, "low-score"), (datetime(2026, 11, 3, 10, tzinfo=UTC), 9, "satisfied")):
        s = _open(register, "satisfaction-survey", "SAT", opened)
        _step(register, s, "answer", 1, opened, opened + D, by="olivia.brown", result={"overall": score})
        register.close_case(s, outcome, at=opened + D)
    v0 = datetime(2026, 11, 5, 10, tzinfo=UTC)
    v = _open(register, "follow-up-visit", "FUV", v0)
    _step(register, v, "report", 1, v0, v0 + D, by="emma.clark", result={"satisfaction": 7})
    register.close_case(v, "visited", at=v0 + D)
    # Quality: failed at 70, passed at 90 after improvement.
    q0 = datetime(2026, 10, 10, 10, tzinfo=UTC)
    q = _open(register, "quality-improvement", "QI", q0)
    _step(register, q, "inspect", 1, q0, q0 + D, by="wang.fang", result={"score": 70.0})
    _step(register, q, "inspect", 2, q0 + 10 * D, q0 + 11 * D, by="wang.fang", result={"score": 90.0})
    register.close_case(q, "improved", at=q0 + 11 * D)
    # Improvements: one re-planned then adopted, one not achieved.
    i0 = datetime(2026, 11, 4, 9, tzinfo=UTC)
    i = _open(register, "improvement-cycle", "IMP", i0)
    _step(register, i, "plan", 1, i0, i0 + H, by="zhang.wei")
    _step(register, i, "replan", 1, i0 + D, i0 + D)
    _step(register, i, "plan", 2, i0 + D, i0 + D + H, by="zhang.wei")
    register.close_case(i, "adopted", at=datetime(2026, 11, 20, 9, tzinfo=UTC))
    j = _open(register, "improvement-cycle", "IMP", datetime(2026, 11, 6, 9, tzinfo=UTC))
    register.close_case(j, "not-achieved", at=datetime(2026, 11, 30, 9, tzinfo=UTC))


@pytest.fixture
def report(register: Register, library: Library) -> dict[str, Any]:
    fill(register)
    return build_report(register, library, since=SINCE, until=UNTIL, process=None, now=UNTIL + 5 * D)


def test_window_and_periods(report: dict[str, Any]) -> None:
    assert json.loads(json.dumps(report)) == report  # plain JSON types only, on both backends
    assert report["since"] == "2026-10-01T00:00:00+00:00"
    assert report["until"] == "2026-12-01T00:00:00+00:00"
    assert report["generated_at"] == "2026-12-06T00:00:00+00:00"
    assert report["period"] == "month"
    assert report["periods"] == ["2026-10", "2026-11"]
    assert sorted(report["processes"]) == [
        "follow-up-visit", "improvement-cycle", "issue-resolution", "quality-improvement", "risk-response", "satisfaction-survey",
    ]


def test_case_figures_of_a_process(report: dict[str, Any]) -> None:
    issues = report["processes"]["issue-resolution"]
    assert issues["title"] == "Issue resolution 问题管理"
    assert (issues["opened"], issues["closed"], issues["open"], issues["cancelled"]) == (4, 3, 1, 1)
    assert issues["outcomes"] == {"cancelled": 1, "resolved": 2}
    assert issues["cycle_time"] == {"median": 28800, "p90": 36000}  # 8 h and 10 h; the cancelled case left out
    assert issues["sla"] == {"met": 2, "breached": 1, "met_pct": 66.7}  # ISS-0003 open past its due
    assert issues["rework"] == 1
    assert issues["reopen_rate"] == 33.3  # ISS-0001's verify rejected, of 3 closed
    assert issues["first_answer"] == {"median": 3600, "p90": 21600}  # 1 h, 1 h, 6 h
    assert issues["people_time"] == 28800 + 21600 + 7200 + 6600
    assert issues["automatic_time"] == 600  # tell-reporter; the reopen notice took no time
    assert issues["by_period"] == {
        "2026-10": {"opened": 1, "closed": 0, "cycle_time_median": None},
        "2026-11": {"opened": 3, "closed": 3, "cycle_time_median": 28800},
    }
    assert issues["backlog_aging"] == {"<1d": 0, "1-3d": 0, "3-7d": 0, "7-30d": 0, ">30d": 1}
    risks = report["processes"]["risk-response"]
    assert (risks["opened"], risks["closed"], risks["open"], risks["rework"]) == (2, 0, 2, 1)
    assert risks["cycle_time"] == {"median": None, "p90": None}
    assert risks["sla"] == {"met": 0, "breached": 0, "met_pct": None}
    assert risks["reopen_rate"] is None  # no verification step named for it
    assert risks["backlog_aging"] == {"<1d": 0, "1-3d": 0, "3-7d": 0, "7-30d": 2, ">30d": 0}


def test_step_figures(report: dict[str, Any]) -> None:
    steps = report["processes"]["issue-resolution"]["steps"]
    assert list(steps) == ["triage", "resolve", "tell-reporter", "verify", "reopen"]  # definition order
    assert steps["triage"] == {"visits": 4, "median": 3600, "p90": 21600, "overdue": 1, "sla": {"met": 2, "breached": 1, "met_pct": 66.7}}
    assert steps["resolve"] == {"visits": 4, "median": 7200, "p90": 7200, "overdue": 1, "sla": {"met": 3, "breached": 1, "met_pct": 75.0}}
    assert steps["verify"] == {"visits": 3, "median": 7200, "p90": 7200, "overdue": 0, "sla": {"met": 3, "breached": 0, "met_pct": 100.0}}
    assert steps["tell-reporter"] == {"visits": 1, "median": 600, "p90": 600, "overdue": 0, "sla": {"met": 0, "breached": 0, "met_pct": None}}
    assessed = report["processes"]["risk-response"]["steps"]["assess"]
    assert (assessed["visits"], assessed["median"], assessed["p90"]) == (3, 3600, 7200)


def test_approval_turnaround(report: dict[str, Any]) -> None:
    people = report["approvals"]["people"]
    assert people["li.na"] == {"answers": 3, "median": 3600, "p90": 21600}
    assert people["liu.yang"] == {"answers": 2, "median": 3600, "p90": 7200}
    assert people["huang.lei"] == {"answers": 3, "median": 7200, "p90": 7200}
    assert people["zhang.wei"] == {"answers": 5, "median": 3600, "p90": 7200}
    roles = report["approvals"]["roles"]
    assert roles["support-lead"] == people["li.na"]
    assert roles["support"] == {"answers": 6, "median": 3600, "p90": 21600}  # li.na, liu.yang, sarah.jones
    assert roles["customer-contact"] == {"answers": 5, "median": 7200, "p90": 86400}  # huang.lei 3, olivia.brown 2
    assert "trainer" not in roles  # nobody of it answered


def test_stale_and_attention(report: dict[str, Any]) -> None:
    assert [(s["case"], s["last_touched"], s["idle_days"]) for s in report["stale"]] == [
        ("ISS-0003", "2026-10-15T10:00:00+00:00", 46.58),
        ("RSK-0001", "2026-11-10T10:00:00+00:00", 20.58),
    ]  # RSK-0002 was commented on 11-28: touched 2.6 days before the end
    attention = report["attention"]
    assert [(a["case"], a["reason"]) for a in attention] == [("ISS-0003", "overdue"), ("RSK-0001", "risk"), ("RSK-0002", "risk")]
    assert attention[0]["due"] == "2026-10-17T10:00:00+00:00"  # resolve's due, before the case's (10-20)
    assert attention[0]["age_days"] == 46.62
    assert attention[0]["detail"] == "overdue by 44.6 days"  # 10-17 10:00 → 12-01 00:00
    assert attention[1]["detail"] == "risk score 20 (likelihood 4 × impact 5)"
    assert attention[0]["link"] is None  # no flow run


def test_satisfaction_risks_improvements_quality_cancellations(report: dict[str, Any]) -> None:
    assert report["satisfaction"]["by_period"] == {"2026-10": {"mean": 6.0, "count": 1}, "2026-11": {"mean": 8.0, "count": 2}}
    assert report["satisfaction"]["sources"] == ["satisfaction-survey", "follow-up-visit"]
    assert report["risks"]["heatmap"] == [{"likelihood": 4, "impact": 5, "count": 1}, {"likelihood": 3, "impact": 3, "count": 1}]
    assert report["risks"]["open"] == [
        {"case": "RSK-0001", "title": "risk-response at 11-10", "likelihood": 4, "impact": 5, "score": 20},
        {"case": "RSK-0002", "title": "risk-response at 11-12", "likelihood": 3, "impact": 3, "score": 9},
    ]
    assert report["improvements"] == {
        "adopted": 1, "replanned": 1, "other": 1,
        "by_period": {"2026-10": {"adopted": 0, "replanned": 0}, "2026-11": {"adopted": 1, "replanned": 1}},
    }
    assert report["quality"]["by_period"] == {"2026-10": {"mean": 80.0, "count": 2}, "2026-11": {"mean": None, "count": 0}}
    assert report["cancellations"] == {"total": 1, "by_process": {"issue-resolution": 1}}


def test_practice_figures(report: dict[str, Any]) -> None:
    figures = {(p["number"], f["label"]): f for p in report["practices"] for f in p["figures"]}
    assert [p["number"] for p in report["practices"]] == list(range(1, 18))
    resolved = figures[(5, "Issues resolved")]
    assert (resolved["unit"], resolved["by_period"], resolved["total"]) == ("count", {"2026-10": 0, "2026-11": 2}, 2)
    assert figures[(5, "Issues reopened after a failed verification")]["total"] == 1
    cycle = figures[(5, "Issue cycle time (median)")]
    assert (cycle["unit"], cycle["by_period"], cycle["total"]) == ("seconds", {"2026-10": None, "2026-11": 28800}, 28800)
    survey = figures[(8, "Mean survey score (overall, 1–10)")]
    assert (survey["unit"], survey["by_period"], survey["total"]) == ("score", {"2026-10": 6.0, "2026-11": 9.0}, 7.5)
    assert figures[(11, "Mean inspection score (0–100)")]["total"] == 80.0
    assert figures[(7, "Improvements re-planned")]["total"] == 1
    assert figures[(9, "Risks identified")]["by_period"] == {"2026-10": 0, "2026-11": 2}
    assert figures[(13, "Support requests solved by support")]["total"] is None  # no support request closed


def test_weeks_and_a_window_that_ends_before_the_cases_close(register: Register, library: Library) -> None:
    fill(register)
    weeks = build_report(register, library, since=T, until=T + 13 * D, process=None, now=UNTIL)
    assert weeks["period"] == "week"
    assert weeks["periods"] == ["2026-W45", "2026-W46"]
    assert weeks["processes"]["issue-resolution"]["by_period"] == {
        "2026-W45": {"opened": 2, "closed": 2, "cycle_time_median": 28800},
        "2026-W46": {"opened": 0, "closed": 0, "cycle_time_median": None},
    }
    early = build_report(register, library, since=T - 9 * H, until=T + 3 * H, process="issue-resolution", now=UNTIL)
    assert list(early["processes"]) == ["issue-resolution"]
    issues = early["processes"]["issue-resolution"]
    assert (issues["opened"], issues["closed"], issues["open"]) == (1, 0, 1)  # ISS-0001 closed after the window
    assert issues["sla"] == {"met": 0, "breached": 0, "met_pct": None}
    assert issues["steps"] == {
        "triage": {"visits": 1, "median": 3600, "p90": 3600, "overdue": 0, "sla": {"met": 1, "breached": 0, "met_pct": 100.0}},
        "resolve": {"visits": 1, "median": None, "p90": None, "overdue": 0, "sla": {"met": 0, "breached": 0, "met_pct": None}},
    }
    assert early["satisfaction"]["by_period"] == {"2026-W45": {"mean": None, "count": 0}}


def test_summary_lines(report: dict[str, Any]) -> None:
    lines = report_summary(report)
    assert lines[0] == "Aftercare 2026-10-01 – 2026-12-01: 12 cases opened, 9 closed (1 cancelled), 3 still open."
    assert lines[1] == "SLA met 66.7 % (2 met, 1 breached)."
    assert "Overdue: 1 — ISS-0003." in lines
    assert "Satisfaction 2026-11: 8.0 on average (2 scores)." in lines


def test_definitions_cover_every_key(report: dict[str, Any]) -> None:
    per_process = set(report["processes"]["issue-resolution"]) - {"title"}
    top = {"approvals", "stale", "attention", "satisfaction", "risks", "improvements", "quality", "cancellations", "practices"}
    assert per_process | top <= set(report["definitions"])
    docs = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    for key, sentence in report["definitions"].items():
        assert sentence in docs, key


def test_a_process_by_file_and_a_misspelt_one(register: Register, library: Library) -> None:
    fill(register)
    by_file = build_report(register, library, since=SINCE, until=UNTIL, process="issue-resolution.yaml", now=UNTIL)
    assert list(by_file["processes"]) == ["issue-resolution"] and by_file["processes"]["issue-resolution"]["opened"] == 4
    assert by_file["approvals"]["people"]["li.na"]["answers"] == 3 and "zhang.wei" not in by_file["approvals"]["people"]
    with pytest.raises(NotFoundError, match="did you mean 'issue-resolution'"):
        build_report(register, library, since=SINCE, until=UNTIL, process="issue-resolutoin", now=UNTIL)


def test_parallel_steps_waiting_on_people_count_their_overlap_once(register: Register, library: Library) -> None:
    """change-request: both approvals wait side by side (2 h and 5 h, overlapping 2 h): people 1 h + 5 h, not 1 + 2 + 5."""
    key = _open(register, "change-request", "CHG", T)
    _step(register, key, "assess", 1, T, T + H, by="wang.fang")
    _step(register, key, "approvals", 1, T + H, T + H)
    _step(register, key, "pm-approval", 1, T + H, T + 3 * H, by="zhang.wei", decision="approve")
    _step(register, key, "customer-approval", 1, T + H, T + 6 * H, by="huang.lei", decision="approve")
    _step(register, key, "approved", 1, T + 6 * H, T + 6 * H)
    _step(register, key, "tell-done", 1, T + 7 * H, T + 7 * H + 60 * timedelta(seconds=1))
    register.close_case(key, "implemented", at=T + 8 * H)

    figures = build_report(register, library, since=SINCE, until=UNTIL, process="change-request", now=UNTIL)["processes"]["change-request"]

    assert figures["cycle_time"] == {"median": 28800, "p90": 28800}
    assert figures["people_time"] == 6 * 3600  # 09–10 assess, 10–15 both approvals (merged)
    assert figures["automatic_time"] == 2 * 3600  # the rest of the 8 h
