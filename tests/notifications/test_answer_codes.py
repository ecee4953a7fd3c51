"""A waiting message's personal answer code: a mark in the outbox, the code put in only as the message is sent."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from aftercare.engine.answers import HumanPlan
from aftercare.engine.loader import Library
from aftercare.engine.register import CaseRecord, Register
from aftercare.engine.team import TeamSpec
from aftercare.notifications import ChannelRouter, deliver_pending, enqueue, waiting_messages
from aftercare.notifications.answer_codes import VOID_TEXT
from tests.fixtures.smtp import SmtpSink

from .conftest import FAST, T0, open_case, scope_of

CODE = re.compile(r"(?:Your answer code|您的答复码)[:：]\s*([A-Z0-9]{4}-[A-Z0-9]{4})")
PLAN = HumanPlan(eligible=("li.na", "wang.wei"), title="Triage SUP-0001", description="", started_at=T0, due_at=None, escalate_to=())


def _waiting(register: Register, library: Library, team: TeamSpec | None = None) -> CaseRecord:
    case = open_case(register, library)
    register.begin_step(case.key, "triage", 1, started_at=T0, status="waiting", eligible=list(PLAN.eligible))
    step = library.get("notify-support-request").spec.step("triage")
    enqueue(register, waiting_messages(team or library.team, scope_of(case, T0), step, PLAN, visit=1), at=T0)
    return case


def _codes(sink: SmtpSink, address: str) -> list[str]:
    return [found.group(1) for mail in sink.messages if address in mail.rcpt_tos and (found := CODE.search(mail.text))]


def test_the_outbox_keeps_a_mark_and_the_mail_carries_a_code_that_answers(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    case = _waiting(register, library)
    stored = {m.recipient: m for m in register.messages(case_key=case.key)}
    assert "[[answer-code:li.na]]" in stored["person:li.na"].body and "[[answer-code:li.na]]" in str(stored["person:li.na"].html)
    assert "[[answer-code:wang.wei]]" in stored["person:wang.wei"].body
    report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
    assert len(report.delivered) == 2
    smtp_sink.wait_for(2)
    [li_na], [wang_wei] = _codes(smtp_sink, "li.na@example.com"), _codes(smtp_sink, "wang.wei@example.com")
    assert li_na != wang_wei
    mail = next(m for m in smtp_sink.messages if "li.na@example.com" in m.rcpt_tos)
    assert li_na in mail.html and "[[answer-code" not in mail.text + mail.html
    assert all("[[answer-code:" in m.body for m in register.messages(case_key=case.key))  # sent, and still only the mark
    assert register.check_answer_code(case.key, "triage", 1, "li.na", li_na, via="prefect", pause_attempt=1).accepted
    assert not register.check_answer_code(case.key, "triage", 1, "wang.wei", li_na, via="prefect", pause_attempt=2).accepted
    data = (tmp_path / "r.db").read_bytes() + (tmp_path / "r.db-wal").read_bytes() if (tmp_path / "r.db-wal").exists() else (tmp_path / "r.db").read_bytes()
    assert li_na.encode() not in data and li_na.replace("-", "").encode() not in data


def test_a_retried_send_carries_a_new_code_and_only_the_last_works(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink
) -> None:
    case = _waiting(register, library)
    with smtp_sink.outage():
        report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
    assert len(report.retrying) == 2
    report = deliver_pending(register, now=T0 + timedelta(seconds=10), sender=channels, policy=FAST)
    assert len(report.delivered) == 2
    smtp_sink.wait_for(2)
    [code] = _codes(smtp_sink, "li.na@example.com")
    issued = [e for e in register.audit_events(case.key) if e.event == "answer_code.issued" and (e.after or {}).get("person") == "li.na"]
    assert len(issued) == 2  # one per attempt; the first never reached anyone and is void
    assert register.check_answer_code(case.key, "triage", 1, "li.na", code, via="prefect", pause_attempt=1).accepted


def test_a_message_sent_after_its_step_was_decided_has_no_code(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink
) -> None:
    case = _waiting(register, library)
    register.withdraw_step(case.key, "triage", 1, reason="the case moved on")
    deliver_pending(register, now=T0, sender=channels, policy=FAST)
    mails = smtp_sink.wait_for(2)
    assert all(VOID_TEXT in mail.text for mail in mails)
    assert not [e for e in register.audit_events(case.key) if e.event == "answer_code.issued"]


def test_a_team_that_turns_codes_off_gets_no_mark(register: Register, library: Library) -> None:
    data = library.team.model_dump(exclude_none=True)
    data["team"]["answer_codes"] = False
    case = _waiting(register, library, TeamSpec.model_validate(data))
    assert all("answer-code" not in m.body and "answer code" not in m.body.lower() for m in register.messages(case_key=case.key))
