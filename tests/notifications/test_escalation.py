"""Deadlines: a passed due escalates once per breach, reminders once per period, SLA breaches of cases."""

from __future__ import annotations

import threading
from datetime import timedelta

from aftercare.engine.loader import Library
from aftercare.engine.register import STEP_WAITING, WAIT_PERSON, WAIT_TIMER, CaseRecord, Register
from aftercare.notifications import ChannelRouter, deliver_pending, escalate_overdue, send_reminders, time_out_overdue
from aftercare.notifications.escalation import Definition
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.smtp import SmtpSink

from .conftest import FAST, T0, open_case

DUE = T0 + timedelta(hours=4)


def _waiting_triage(register: Register, library: Library, run: str = "0f6e2c1a-run", **case: object) -> CaseRecord:
    record = open_case(register, library, flow_run_id=run, **case)  # type: ignore[arg-type]
    register.complete_step(record.key, "acknowledge", 1, {"messages": 3}, T0)
    register.begin_step(record.key, "triage", 1, started_at=T0, due_at=DUE, eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON, status=STEP_WAITING)
    return record


def _kinds(register: Register, key: str) -> list[tuple[str, str]]:
    return [(m.recipient, m.idempotency_key.split("/")[3].split("@")[0]) for m in register.messages(case_key=key)]


def test_a_passed_due_escalates_once_per_breach(register: Register, library: Library) -> None:
    case = _waiting_triage(register, library)
    assert escalate_overdue(register, library, DUE - timedelta(minutes=1)).escalated == []

    report = escalate_overdue(register, library, DUE + timedelta(hours=1))
    assert report.escalated == ["SUP-0001/triage#1"] and report.messages == 3 and not report.errors
    assert _kinds(register, case.key) == [
        ("person:emma.clark", "escalation"), ("person:li.na", "overdue"), ("person:wang.wei", "overdue"),
    ]
    # the same breach again: nothing new, and the register refuses a second mark
    again = escalate_overdue(register, library, DUE + timedelta(hours=2))
    assert (again.escalated, again.messages) == ([], 0)
    run = register.step_run(case.key, "triage", 1)
    assert run is not None and run.escalated_at == DUE + timedelta(hours=1)
    assert register.mark_escalated(run.id, DUE + timedelta(hours=3)) is False
    assert len(register.messages(case_key=case.key)) == 3

    # a new deadline is a new breach
    register.update_step(case.key, "triage", 1, due_at=DUE + timedelta(hours=4))
    assert escalate_overdue(register, library, DUE + timedelta(hours=5)).escalated == ["SUP-0001/triage#1"]
    assert len(register.messages(case_key=case.key)) == 6

    # an answered step is not escalated
    register.update_step(case.key, "triage", 1, due_at=DUE + timedelta(hours=6))
    register.complete_step(case.key, "triage", 1, {"decision": "approve"}, DUE + timedelta(hours=5))
    assert escalate_overdue(register, library, DUE + timedelta(days=1)).escalated == []


def test_two_escalators_at_once_write_each_message_once(any_register: Register, library: Library) -> None:
    register = any_register
    cases = [_waiting_triage(register, library, run=f"run-{i}", title=f"case {i}") for i in range(3)]
    start = threading.Barrier(2)
    reports = []

    def escalator() -> None:
        start.wait()
        reports.append(escalate_overdue(register, library, DUE + timedelta(minutes=5)))

    threads = [threading.Thread(target=escalator) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    escalated = sorted(label for report in reports for label in report.escalated)
    assert escalated == [f"{c.key}/triage#1" for c in cases]
    assert not any(report.errors for report in reports)
    for case in cases:
        assert len(register.messages(case_key=case.key)) == 3


def test_a_wait_step_timer_is_not_a_breach(register: Register, library: Library) -> None:
    case = open_case(register, library)
    register.begin_step(case.key, "cool-down", 1, started_at=T0, due_at=T0 + timedelta(hours=1), wait_kind=WAIT_TIMER, status=STEP_WAITING)
    report = escalate_overdue(register, library, T0 + timedelta(hours=2))
    assert report.skipped == [] and report.escalated == []
    run = register.step_run(case.key, "cool-down", 1)
    assert run is not None and run.escalated_at is None
    assert register.messages(case_key=case.key) == []


def test_reminders_once_per_period(register: Register, library: Library) -> None:
    case = _waiting_triage(register, library)
    assert send_reminders(register, library, T0 + timedelta(minutes=59)).reminded == []
    report = send_reminders(register, library, T0 + timedelta(hours=1))
    assert report.reminded == ["SUP-0001/triage#1:1"] and report.messages == 2
    assert send_reminders(register, library, T0 + timedelta(hours=1, minutes=30)).reminded == []
    assert send_reminders(register, library, T0 + timedelta(hours=3, minutes=10)).reminded == ["SUP-0001/triage#1:3"]
    assert _kinds(register, case.key) == [
        ("person:li.na", "reminder-1"), ("person:wang.wei", "reminder-1"),
        ("person:li.na", "reminder-3"), ("person:wang.wei", "reminder-3"),
    ]
    reminder = register.messages(case_key=case.key)[1]
    assert reminder.subject == "[SUP-0001] Reminder: Triage SUP-0001: 打印机离线 Printer offline"
    assert "has been waiting for you" in reminder.body and "--as wang.wei" in reminder.body


def test_a_case_past_its_sla_is_escalated_once(register: Register, library: Library) -> None:
    case = open_case(register, library)
    late = T0 + timedelta(days=2, hours=1)
    report = escalate_overdue(register, library, late)
    assert report.cases == [case.key]
    [breach] = report.case_breaches  # for the flows' aftercare.case.overdue event
    assert (breach.case_key, breach.due_at, breach.escalate_to) == (case.key, register.case(case.key).due_at, ("role:manager",))
    [message] = register.messages(case_key=case.key)
    assert message.recipient == "person:emma.clark" and message.subject == "[SUP-0001] Past its deadline: 打印机离线 Printer offline"
    assert "1h late" in message.body
    assert escalate_overdue(register, library, late + timedelta(hours=1)).cases == []
    assert len(register.messages(case_key=case.key)) == 1


def test_a_lookup_instead_of_a_library_and_a_vanished_definition(register: Register, library: Library) -> None:
    _waiting_triage(register, library)
    assert escalate_overdue(register, lambda case: None, DUE + timedelta(hours=1)).skipped == ["SUP-0001/triage#1"]
    spec = library.get("notify-support-request").spec
    lookup = lambda case: Definition(spec, library.team)  # noqa: E731
    assert escalate_overdue(register, lookup, DUE + timedelta(hours=1)).escalated == ["SUP-0001/triage#1"]


def test_escalations_are_delivered_for_real(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink, http_listener: HttpListener
) -> None:
    _waiting_triage(register, library)
    now = DUE + timedelta(minutes=90)
    escalate_overdue(register, library, now, api_url="http://prefect.example/api")
    report = deliver_pending(register, now=now, sender=channels, policy=FAST)
    assert len(report.delivered) == 3
    mails = {m.rcpt_tos[0]: m for m in smtp_sink.wait_for(2)}
    zh = mails["li.na@example.com"]
    assert zh.subject == "[SUP-0001] 已逾期：Triage SUP-0001: 打印机离线 Printer offline"
    assert "已超时 1h 30m" in zh.text and "已升级给：manager" in zh.text
    assert "http://prefect.example/runs/flow-run/0f6e2c1a-run" in zh.text and "已超时 1h 30m" in zh.html
    [post] = http_listener.wait_for(1)
    assert post.path == "/people/emma" and post.json["title"] == '[SUP-0001] Escalation: "Triage SUP-0001: 打印机离线 Printer offline" is overdue'
    assert "Waiting for: 李娜 Li Na, Wang Wei" in post.json["message"]


def test_a_passed_due_times_out_a_step_with_on_timeout_once(register: Register, library: Library) -> None:
    case = _waiting_triage(register, library)
    spec = library.get("notify-support-request").spec
    triage = spec.step("triage").model_copy(update={"on_timeout": "done"})
    timing_out = spec.model_copy(update={"steps": tuple(triage if step.id == "triage" else step for step in spec.steps)})
    assert time_out_overdue(register, lambda case: Definition(spec, library.team), DUE + timedelta(hours=1)) == []
    lookup = lambda case: Definition(timing_out, library.team)  # noqa: E731
    assert time_out_overdue(register, lookup, DUE - timedelta(minutes=1)) == []
    [marked] = time_out_overdue(register, lookup, DUE + timedelta(hours=1))
    assert (marked.case_key, marked.step_id, marked.visit) == (case.key, "triage", 1)
    run = register.step_run(case.key, "triage", 1)
    assert run is not None and run.timed_out_at == DUE + timedelta(hours=1)
    assert time_out_overdue(register, lookup, DUE + timedelta(hours=2)) == []
    assert [e.event for e in register.audit_events(case.key)].count("step.timed_out") == 1
