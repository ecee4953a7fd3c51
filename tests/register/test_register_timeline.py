"""A case's timeline in time order, its plain-text rendering, and the dashboard aggregates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from aftercare.engine.register import (
    WAIT_PERSON,
    WAIT_TIMER,
    CaseRecord,
    CycleTime,
    MessageDraft,
    Register,
    StatusCount,
    render_timeline,
)

from .conftest import T0

OpenCase = Callable[..., CaseRecord]


def run_issue(register: Register, case: CaseRecord) -> None:
    """Walk a case through triage, a notification and closing, with explicit times."""
    key = case.key
    hour = timedelta(hours=1)
    register.begin_step(key, "triage", 1, started_at=T0 + hour, due_at=T0 + 4 * hour,
                        eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON, status="waiting")
    register.audit(key, "answer.refused", "zhang.san", detail="not eligible", at=T0 + 2 * hour)
    register.answer(key, "triage", 1, person="li.na", decision="approve", comment="修滚轮",
                    fields={"priority": "P2"}, answered_at=T0 + 3 * hour,
                    decide=lambda answers: {"decision": "approve", "decided_by": answers[-1].person})
    register.complete_step(
        key, "tell-reporter", 1, {"sent": 1}, T0 + 5 * hour,
        messages=[MessageDraft("wang.wei", "email", "已解决", "body", f"{key}/tell/1/wang.wei")],
    )
    register.close_case(key, "resolved", at=T0 + 6 * hour)


def test_the_timeline_is_in_time_order(register: Register, open_case: OpenCase) -> None:
    case = open_case()
    run_issue(register, case)
    timeline = register.timeline(case.key)

    assert timeline.case.key == case.key
    assert [s.step_id for s in timeline.steps] == ["triage", "tell-reporter"]
    assert [(a.person, a.comment) for a in timeline.answers] == [("li.na", "修滚轮")]
    assert [m.recipient for m in timeline.messages] == ["wang.wei"]
    assert [e.event for e in timeline.events] == [
        "case.opened", "answer.refused", "step.decided", "case.closed",
    ]
    times = [entry.at for entry in timeline.entries]
    assert times == sorted(times)
    assert [entry.kind for entry in timeline.entries] == [
        "case.opened",
        "step.started",
        "answer.refused",
        "answer",
        "step.finished",
        "step.decided",
        "step.started",
        "step.finished",
        "message.queued",
        "case.closed",
    ]


def test_render_timeline_reads_like_a_history(register: Register, open_case: OpenCase) -> None:
    case = open_case(title="打印机卡纸")
    run_issue(register, case)
    text = render_timeline(register.timeline(case.key))
    lines = text.splitlines()
    assert lines[0] == "ISS-0001  打印机卡纸"
    assert "  status    closed (resolved)" in lines
    assert "2025-03-01 10:00:00Z  step triage #1 started, waiting for li.na, wang.wei, due 2025-03-01 13:00:00Z" in lines
    assert "2025-03-01 12:00:00Z  li.na answered triage #1: approve — '修滚轮' {\"priority\": \"P2\"}" in lines
    assert any(line.startswith("2025-03-01 14:00:00Z  message to wang.wei via email") for line in lines)
    assert lines[-1] == "2025-03-01 15:00:00Z  case.closed by aftercare"


def test_a_timer_wait_reads_as_waiting_for_the_timer(register: Register, open_case: OpenCase) -> None:
    case = open_case()
    register.begin_step(case.key, "cool-down", 1, started_at=T0, due_at=T0 + timedelta(days=7),
                        wait_kind=WAIT_TIMER, status="waiting")
    register.complete_step(case.key, "log", 1, {}, T0 + timedelta(minutes=1))
    lines = render_timeline(register.timeline(case.key)).splitlines()
    assert "2025-03-01 09:00:00Z  step cool-down #1 started, waiting for the timer, due 2025-03-08 09:00:00Z" in lines
    assert "2025-03-01 09:01:00Z  step log #1 started" in lines


def test_dashboard_aggregates(register: Register, open_case: OpenCase) -> None:
    a = open_case()
    b = open_case()
    open_case(process="risk-management", key_prefix="RSK")
    waiting = open_case()
    register.update_case(waiting.key, status="waiting")
    register.close_case(a.key, "resolved", at=T0 + timedelta(hours=2))
    register.close_case(b.key, "resolved", at=T0 + timedelta(hours=4))

    assert register.open_cases_by_status_and_process() == [
        StatusCount("issue-resolution", "waiting", 1),
        StatusCount("risk-management", "open", 1),
    ]
    assert register.cycle_time_by_process() == [
        CycleTime("issue-resolution", closed=2, average=timedelta(hours=3)),
    ]
