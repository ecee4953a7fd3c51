"""Building outbox rows: who gets what on which channel, in which format, under which key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aftercare.engine import router
from aftercare.engine.answers import HumanPlan
from aftercare.engine.errors import StepError
from aftercare.engine.loader import Library
from aftercare.engine.register import Register
from aftercare.notifications import (
    MessageTemplates,
    answer_command,
    case_closed_messages,
    case_opened_messages,
    enqueue,
    escalation_messages,
    idempotency_key,
    message_format,
    notify_messages,
    notify_result,
    targets,
    waiting_messages,
)

from .conftest import T0, open_case, scope_of


class TestAddressing:
    def test_people_get_their_own_channels_and_mail_goes_to_their_address(self, library: Library) -> None:
        found = [(t.recipient, t.channel, t.locale) for t in targets(library.team, ["person:chen.jie", "person:emma.clark"])]
        assert found == [
            ("person:chen.jie", "email:chen.jie@example.com", "zh"),
            ("person:chen.jie", "console", "zh"),
            ("person:emma.clark", "json://${HOOK_HOST}/people/emma", "en"),
        ]

    def test_a_role_channel_hears_once_for_the_role_in_addition_to_its_members(self, library: Library) -> None:
        found = [(t.recipient, t.channel) for t in targets(library.team, ["role:on-call", "person:wang.wei", "role:support"])]
        assert found == [
            ("role:on-call", "json://${HOOK_HOST}/rooms/on-call"),  # the role's `email` entry adds nothing
            ("person:chen.jie", "email:chen.jie@example.com"),
            ("person:chen.jie", "console"),
            ("person:wang.wei", "email:wang.wei@example.com"),  # once, though named three times
            ("person:li.na", "email:li.na@example.com"),
        ]

    def test_channels_named_directly_and_people_without_an_address(self, library: Library) -> None:
        found = [(t.recipient, t.channel) for t in targets(library.team, ["console", "slack://a/b/c", "email", "person:no.mail"])]
        assert found == [("console", "console"), ("slack://a/b/c", "slack://a/b/c"), ("person:no.mail", "console")]

    def test_an_unknown_person_is_a_step_error(self, library: Library) -> None:
        with pytest.raises(StepError, match="'person:nobody' names no person or role"):
            targets(library.team, ["person:nobody"])

    @pytest.mark.parametrize(
        ("channel", "fmt"),
        [("email:a@b.c", "email"), ("console", "text"), ("json://h/x", "text"), ("jsons://h/x", "text"),
         ("slack://T/B/C", "markdown"), ("dingtalk://token", "markdown"), ("wecombot://key", "markdown"),
         ("feishu://token", "markdown"), ("lark://token", "markdown"), ("workflows://host/wf/sig", "markdown")],
    )
    def test_each_channel_gets_its_format(self, channel: str, fmt: str) -> None:
        assert message_format(channel) == fmt


class TestNotifyStep:
    def test_an_inline_message_in_every_format(self, register: Register, library: Library) -> None:
        case = open_case(register, library, reporter="emma.clark")
        spec = library.get("notify-support-request").spec
        step = spec.step("acknowledge")
        scope = scope_of(case, T0)
        recipients = router.resolve_recipients(step.to, library.team, scope)
        messages = notify_messages(library.team, scope, step, recipients, visit=1)
        by = {(m.recipient, m.channel): m for m in messages}
        assert list(by) == [
            ("person:emma.clark", "json://${HOOK_HOST}/people/emma"),
            ("role:on-call", "json://${HOOK_HOST}/rooms/on-call"),
            ("person:chen.jie", "email:chen.jie@example.com"),
            ("person:chen.jie", "console"),
            ("person:wang.wei", "email:wang.wei@example.com"),
        ]
        assert {m.subject for m in messages} == {"SUP-0001 已收到: 打印机离线 Printer offline"}
        mail = by[("person:chen.jie", "email:chen.jie@example.com")]
        assert mail.body.startswith('SUP-0001 "打印机离线 Printer offline" is registered.\n详情: 第一行\nsecond <line>\n')
        assert "Aftercare 自动发送 · SUP-0001" in mail.body
        assert mail.html is not None and "second &lt;line&gt;" in mail.html
        assert by[("person:wang.wei", "email:wang.wei@example.com")].body.rstrip().endswith("Sent by Aftercare · SUP-0001")
        assert all(m.html is None for m in messages if not m.channel.startswith("email:"))
        assert {m.kind for m in messages} == {"notify"} and {m.step_id for m in messages} == {"acknowledge"}
        assert len({m.idempotency_key for m in messages}) == len(messages)
        result = notify_result(messages, T0)
        assert result == {"recipients": ["emma.clark", "role:on-call", "chen.jie", "wang.wei"],
                          "subject": "SUP-0001 已收到: 打印机离线 Printer offline", "sent_at": T0.isoformat(), "messages": 5}

    def test_a_named_template_with_the_definition_templates(self, register: Register, library: Library, templates: MessageTemplates) -> None:
        case = open_case(register, library, reporter="li.na")
        step = library.get("notify-support-request").spec.step("tell")
        scope = scope_of(case, T0, {"triage": {"priority": "P2", "by": "wang.wei"}})
        [message] = notify_messages(library.team, scope, step, ["person:li.na"], visit=1, templates=templates)
        assert message.subject == "SUP-0001: triaged as P2"
        assert message.body.startswith("李娜 Li Na，您的请求「打印机离线 Printer offline」已分级为 P2。")

    def test_the_keys_are_stable_and_a_replay_writes_nothing(self, register: Register, library: Library) -> None:
        case = open_case(register, library)
        step = library.get("notify-support-request").spec.step("acknowledge")
        scope = scope_of(case, T0)
        first = notify_messages(library.team, scope, step, ["role:on-call"], visit=1)
        again = notify_messages(library.team, scope_of(case, T0 + timedelta(minutes=5)), step, ["role:on-call"], visit=1)
        assert [m.idempotency_key for m in first] == [m.idempotency_key for m in again]
        assert first[0].idempotency_key == idempotency_key("SUP-0001", "acknowledge", 1, "notify", "role:on-call", first[0].channel)
        register.complete_step("SUP-0001", "acknowledge", 1, {"messages": 4}, T0, messages=[m.draft() for m in first])
        register.complete_step("SUP-0001", "acknowledge", 1, {"messages": 4}, T0, messages=[m.draft() for m in again])
        enqueue(register, again, at=T0)
        assert len(register.messages(case_key="SUP-0001")) == len(first) == 4
        later_visit = notify_messages(library.team, scope, step, ["role:on-call"], visit=2)
        assert not {m.idempotency_key for m in later_visit} & {m.idempotency_key for m in first}

    def test_a_failing_template_fails_the_step(self, register: Register, library: Library, tmp_path: object) -> None:
        case = open_case(register, library)
        step = library.get("notify-support-request").spec.step("tell").model_copy(update={"template": "no-such-template"})
        with pytest.raises(StepError, match="unknown message template 'no-such-template'"):
            notify_messages(library.team, scope_of(case, T0), step, ["person:li.na"], visit=1)


class TestSystemMessages:
    def _plan(self) -> HumanPlan:
        return HumanPlan(eligible=("li.na", "wang.wei"), title="Triage SUP-0001", description="Reported by li.na",
                         started_at=T0, due_at=T0 + timedelta(hours=4), escalate_to=("role:manager",))

    def test_waiting_messages_reach_the_assignee_role(self, register: Register, library: Library) -> None:
        case = open_case(register, library)
        step = library.get("notify-support-request").spec.step("triage")
        messages = waiting_messages(library.team, scope_of(case, T0), step, self._plan(), visit=1)
        assert [(m.recipient, m.kind) for m in messages] == [("person:li.na", "waiting"), ("person:wang.wei", "waiting")]
        assert all(m.idempotency_key.startswith("SUP-0001/triage/1/waiting/") for m in messages)

    def test_escalation_tells_escalate_to_and_reminds_the_assignees(self, register: Register, library: Library) -> None:
        case = open_case(register, library)
        step = library.get("notify-support-request").spec.step("triage")
        messages = escalation_messages(library.team, scope_of(case, T0 + timedelta(hours=5, minutes=30)), step, self._plan(), visit=1)
        kinds = [(m.recipient, m.kind.split("@")[0]) for m in messages]
        assert kinds == [("person:emma.clark", "escalation"), ("person:li.na", "overdue"), ("person:wang.wei", "overdue")]
        escalation = messages[0]
        assert escalation.subject == '[SUP-0001] Escalation: "Triage SUP-0001" is overdue'
        assert "1h 30m late" in escalation.body and "Waiting for: 李娜 Li Na, Wang Wei" in escalation.body
        assert "--as li.na|wang.wei" in escalation.body
        assert messages[1].subject == "[SUP-0001] 已逾期：Triage SUP-0001" and "已升级给：manager" in messages[1].body
        assert messages[0].kind == f"escalation@{(T0 + timedelta(hours=4)).isoformat()}"

    def test_case_opened_and_closed(self, register: Register, library: Library) -> None:
        case = open_case(register, library)
        scope = scope_of(case, T0 + timedelta(days=1), url="http://ui/runs/flow-run/9")
        opened = case_opened_messages(library.team, scope, ["person:li.na", "person:wang.wei"])
        assert [m.subject for m in opened] == ["[SUP-0001] 已创建：打印机离线 Printer offline", "[SUP-0001] Opened: 打印机离线 Printer offline"]
        assert "http://ui/runs/flow-run/9" in opened[1].body
        closed = case_closed_messages(library.team, scope, ["person:wang.wei"], outcome="triaged")
        assert closed[0].subject == "[SUP-0001] Closed (triaged): 打印机离线 Printer offline"
        assert "is closed with the outcome: triaged." in closed[0].body
        assert closed[0].step_id is None and closed[0].kind == "case-closed"


def test_answer_command_lines(library: Library) -> None:
    step = library.get("notify-support-request").spec.step("triage")
    assert answer_command("SUP-0001", step, ["li.na"]) == (
        'aftercare answer SUP-0001 triage --as li.na --approve|--reject --comment "..." priority=P1|P2|P3'
    )
