"""Messages of a cancelled case and of a withdrawn step: to the people it waited on, once each, in their language."""

from __future__ import annotations

from datetime import timedelta

from aftercare.engine.case import CaseState
from aftercare.engine.loader import Library
from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.notifications import ChannelRouter, Messenger, deliver_pending
from tests.fixtures.smtp import SmtpSink

from .conftest import T0, open_case


def _messenger(register: Register, library: Library) -> Messenger:
    return Messenger(register, library, library.get("notify-support-request").spec)


def test_a_cancel_tells_each_person_it_waited_on_once(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink
) -> None:
    case = open_case(register, library, flow_run_id="run-7")
    register.begin_step(case.key, "triage", 1, started_at=T0, eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON, status="waiting")
    # a second step waiting for li.na (a parallel branch) is one more title, not one more message
    register.begin_step(case.key, "cool-down", 1, started_at=T0, eligible=["li.na"], status="waiting")
    outcome = register.cancel_case(case.key, by="emma.clark", reason="客户撤回 the customer withdrew", at=T0 + timedelta(hours=1))
    messenger = _messenger(register, library)
    links = {"run": "http://127.0.0.1:4200/runs/flow-run/run-7"}

    stored = messenger.cancelled(outcome.case, outcome.withdrawn, "emma.clark", "客户撤回 the customer withdrew", links, deliver=False)
    assert sorted((m.recipient, m.channel) for m in stored) == [
        ("person:li.na", "email:li.na@example.com"), ("person:wang.wei", "email:wang.wei@example.com"),
    ]
    assert all(m.idempotency_key.startswith(f"{case.key}/-/0/cancelled/person:") for m in stored)
    # the run's hook and the housekeeping run notice the same cancel: nothing more is queued
    again = messenger.cancelled(outcome.case, outcome.withdrawn, "emma.clark", "another reason", links, deliver=False)
    assert [m.id for m in again] == [m.id for m in stored]
    assert len(register.messages(case_key=case.key)) == 2

    report = deliver_pending(register, sender=channels)
    assert len(report.delivered) == 2
    mails = {tuple(mail.rcpt_tos): mail for mail in smtp_sink.wait_for(2)}
    zh, en = mails[("li.na@example.com",)], mails[("wang.wei@example.com",)]
    assert zh.subject == f"[{case.key}] 已取消：打印机离线 Printer offline"
    assert "已由 Emma Clark 取消" in zh.text and "原因：客户撤回 the customer withdrew" in zh.text
    assert f"Triage {case.key}: 打印机离线 Printer offline" in zh.text and "cool-down" in zh.text
    assert en.subject == f"[{case.key}] Cancelled: 打印机离线 Printer offline"
    assert "was cancelled by Emma Clark." in en.text and "Reason: 客户撤回 the customer withdrew" in en.text
    assert "cool-down" not in en.text and links["run"] in en.text and links["run"] in en.html


def test_people_no_longer_in_the_team_and_steps_without_people_are_left_out(register: Register, library: Library) -> None:
    case = open_case(register, library)
    register.begin_step(case.key, "triage", 1, started_at=T0, eligible=["left.company"], status="waiting")
    register.begin_step(case.key, "cool-down", 1, started_at=T0, status="waiting")
    outcome = register.cancel_case(case.key, by="prefect-ui", reason="cancelled in the Prefect UI")
    assert _messenger(register, library).cancelled(outcome.case, outcome.withdrawn, "prefect-ui", "x", deliver=False) == []


def test_a_withdrawn_step_tells_its_people_once_per_visit(register: Register, library: Library) -> None:
    case = open_case(register, library)
    state = CaseState.from_record(case)
    messenger = _messenger(register, library)
    first = messenger.withdrawn(state, "triage", 1, ["chen.jie", "li.na", "left.company"], "the join 'reviewed' fired", deliver=False)
    assert sorted((m.recipient, m.channel) for m in first) == [
        ("person:chen.jie", "console"), ("person:chen.jie", "email:chen.jie@example.com"), ("person:li.na", "email:li.na@example.com"),
    ]
    assert {m.idempotency_key.rsplit("/", 1)[0] for m in first} == {
        f"{case.key}/triage/1/withdrawn/person:chen.jie", f"{case.key}/triage/1/withdrawn/person:li.na",
    }
    [mail] = [m for m in first if m.recipient == "person:li.na"]
    assert mail.subject == f"[{case.key}] 无需再处理：Triage {case.key}: 打印机离线 Printer offline"
    assert "原因：the join 'reviewed' fired" in mail.body
    assert messenger.withdrawn(state, "triage", 1, ["li.na"], "replayed", deliver=False)[0].id == mail.id
    second_visit = messenger.withdrawn(case, "triage", 2, ["li.na"], "the join fired again", deliver=False)
    assert [m.idempotency_key.split("/")[2] for m in second_visit] == ["2"]
    assert len(register.messages(case_key=case.key)) == 4
