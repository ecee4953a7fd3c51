"""Delivering the outbox to a real SMTP server and a real HTTP listener: once each, retried, never raising."""

from __future__ import annotations

import io
import threading
from collections import Counter
from datetime import timedelta

import pytest

from aftercare.engine.loader import Library
from aftercare.engine.register import MESSAGE_DELIVERED, MESSAGE_FAILED, MESSAGE_PENDING, Register
from aftercare.notifications import (
    ChannelRouter,
    OutboxMessage,
    SmtpSettings,
    deliver_pending,
    enqueue,
    expand,
    idempotency_key,
    notify_messages,
)
from aftercare.notifications.channels import ChannelError, message_id
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.smtp import SmtpSink

from .conftest import FAST, T0, open_case, scope_of


def _message(case: str, to: str, channel: str, n: int = 1, subject: str = "问题 {case} 已解决 #{n}") -> OutboxMessage:
    return OutboxMessage(
        recipient=to,
        channel=channel,
        subject=subject.format(case=case, n=n),
        body=f"您好，\n{case} 的问题已解决 ({n})。\n",
        html=f"<p>{case} 的问题<b>已解决</b> ({n})</p>" if channel.startswith("email:") else None,
        idempotency_key=idempotency_key(case, "tell", 1, f"test-{n}", to, channel),
        case_key=case,
        step_id="tell",
        visit=1,
    )


def _cases(register: Register, library: Library, count: int) -> list[str]:
    return [open_case(register, library, title=f"case {i}").key for i in range(count)]


class TestMail:
    def test_a_real_mail_with_chinese_subject_text_and_html(
        self, register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink
    ) -> None:
        case = open_case(register, library, reporter="li.na")
        step = library.get("notify-support-request").spec.step("acknowledge")
        messages = [m for m in notify_messages(library.team, scope_of(case, T0), step, ["person:li.na"], visit=1)]
        enqueue(register, messages, at=T0)
        report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
        assert report.delivered and not report.retrying and not report.failed
        [mail] = smtp_sink.wait_for(1)
        assert mail.rcpt_tos == ["li.na@example.com"]
        assert mail.subject == "SUP-0001 已收到: 打印机离线 Printer offline"
        assert mail.message.get_content_type() == "multipart/alternative"
        assert b"=?utf-8?" in mail.raw.split(b"\r\n\r\n")[0].lower(), "the subject header is RFC 2047-encoded"
        assert mail.text.startswith('SUP-0001 "打印机离线 Printer offline" is registered.\n详情: 第一行\nsecond <line>\n')
        assert "second &lt;line&gt;" in mail.html and "<!DOCTYPE html>" in mail.html
        assert mail.message["Message-ID"] == message_id(messages[0].idempotency_key)
        assert mail.message["From"] == "Aftercare <aftercare@localhost>"
        [record] = register.messages(case_key=case.key)
        assert (record.status, record.attempts, record.delivered_at) == (MESSAGE_DELIVERED, 1, T0)

    def test_smtp_url_options(self) -> None:
        settings = SmtpSettings.from_url("smtps://bot%40x.cn:p%40ss@mail.x.cn?from=Ops%20%3Cops@x.cn%3E")
        assert (settings.host, settings.port, settings.implicit_tls, settings.starttls) == ("mail.x.cn", 465, True, False)
        assert (settings.username, settings.password, settings.sender) == ("bot@x.cn", "p@ss", "Ops <ops@x.cn>")
        plain = SmtpSettings.from_url("smtp://relay:2525?starttls=true")
        assert (plain.port, plain.starttls, plain.username, plain.sender) == (2525, True, None, "aftercare@localhost")
        with pytest.raises(ChannelError, match="unknown option"):
            SmtpSettings.from_url("smtp://relay?tls=1")

    def test_a_temporary_refusal_is_retried_a_permanent_one_is_not(
        self, register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink
    ) -> None:
        case = open_case(register, library)
        enqueue(register, [_message(case.key, "a", "email:a@example.com", 1)], at=T0)
        smtp_sink.reply = "451 4.3.0 try again later"
        report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
        assert report.retrying and "451" in report.errors[report.retrying[0]]
        smtp_sink.reply = "554 5.7.1 rejected"
        report = deliver_pending(register, now=T0 + timedelta(seconds=10), sender=channels, policy=FAST)
        assert report.failed and "554" in report.errors[report.failed[0]]
        [message] = register.messages(case_key=case.key)
        assert (message.status, message.attempts) == (MESSAGE_FAILED, 2)
        assert smtp_sink.messages == [] and smtp_sink.refused == 2

    def test_without_a_smtp_url_mail_goes_to_the_console(self, register: Register, library: Library) -> None:
        console = io.StringIO()
        case = open_case(register, library)
        enqueue(register, [_message(case.key, "person:li.na", "email:li.na@example.com")], at=T0)
        report = deliver_pending(register, now=T0, sender=ChannelRouter(environ={}, console=console))
        assert len(report.delivered) == 1
        assert "--- message for mail to li.na@example.com" in console.getvalue()
        assert "Subject: 问题 SUP-0001 已解决 #1" in console.getvalue()


class TestWebhook:
    def test_a_real_json_post_with_title_and_body(
        self, register: Register, library: Library, channels: ChannelRouter, http_listener: HttpListener
    ) -> None:
        case = open_case(register, library, reporter="emma.clark")
        step = library.get("notify-support-request").spec.step("acknowledge")
        messages = notify_messages(library.team, scope_of(case, T0), step, ["person:emma.clark"], visit=1)
        assert [m.channel for m in messages] == ["json://${HOOK_HOST}/people/emma"]
        enqueue(register, messages, at=T0)
        report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
        assert len(report.delivered) == 1
        [request] = http_listener.wait_for(1)
        assert (request.method, request.path) == ("POST", "/people/emma")
        assert request.json["title"] == "SUP-0001 已收到: 打印机离线 Printer offline"
        assert request.json["message"].startswith('SUP-0001 "打印机离线 Printer offline" is registered.\n详情: 第一行')
        assert "${HOOK_HOST}" in register.messages(case_key=case.key)[0].channel, "the secret is not stored"

    def test_http_500_leaves_the_message_pending_with_a_backoff(
        self, register: Register, library: Library, channels: ChannelRouter, http_listener: HttpListener
    ) -> None:
        case = open_case(register, library)
        enqueue(register, [_message(case.key, "role:on-call", "json://${HOOK_HOST}/rooms/on-call")], at=T0)
        http_listener.status = 500
        report = deliver_pending(register, now=T0, sender=channels, policy=FAST)  # does not raise
        assert report.retrying and not report.delivered and "500" in next(iter(report.errors.values()))
        [pending] = register.messages(case_key=case.key)
        assert (pending.status, pending.attempts) == (MESSAGE_PENDING, 1)
        assert pending.next_attempt_at == T0 + timedelta(seconds=10) and "500" in (pending.last_error or "")

        assert deliver_pending(register, now=T0 + timedelta(seconds=9), sender=channels, policy=FAST).claimed == 0
        report = deliver_pending(register, now=T0 + timedelta(seconds=10), sender=channels, policy=FAST)
        assert report.retrying
        assert register.messages(case_key=case.key)[0].next_attempt_at == T0 + timedelta(seconds=30)  # 10 s, then 20 s

        http_listener.status = 200
        report = deliver_pending(register, now=T0 + timedelta(seconds=30), sender=channels, policy=FAST)
        assert len(report.delivered) == 1
        assert [r.status for r in http_listener.requests] == [500, 500, 200]
        [done] = register.messages(case_key=case.key)
        assert (done.status, done.attempts) == (MESSAGE_DELIVERED, 3)

    def test_gives_up_after_max_attempts_and_outbox_retry_brings_it_back(
        self, register: Register, library: Library, channels: ChannelRouter, http_listener: HttpListener
    ) -> None:
        case = open_case(register, library)
        enqueue(register, [_message(case.key, "role:on-call", "json://${HOOK_HOST}/rooms/on-call")], at=T0)
        http_listener.status = 503
        now = T0
        for _ in range(FAST.max_attempts):
            deliver_pending(register, now=now, sender=channels, policy=FAST)
            now += timedelta(minutes=10)
        [failed] = register.messages(case_key=case.key)
        assert (failed.status, failed.attempts) == (MESSAGE_FAILED, 3)
        assert deliver_pending(register, now=now, sender=channels, policy=FAST).claimed == 0
        http_listener.status = 200
        assert register.retry_now(now) == (1, 0)
        assert len(deliver_pending(register, now=now, sender=channels, policy=FAST).delivered) == 1
        assert len(http_listener.requests) == 4

    def test_an_unset_variable_is_retried_and_a_bad_url_gives_up_at_once(
        self, register: Register, library: Library, http_listener: HttpListener, console: io.StringIO
    ) -> None:
        case = open_case(register, library)
        enqueue(register, [_message(case.key, "x", "json://${LATER}/late"), _message(case.key, "y", "nosuchscheme://x", 2)], at=T0)
        environ: dict[str, str] = {}
        sender = ChannelRouter(environ=environ, console=console)
        report = deliver_pending(register, now=T0, sender=sender, policy=FAST)
        assert len(report.retrying) == 1 and len(report.failed) == 1
        assert any("environment variable LATER is not set" in e for e in report.errors.values())
        statuses = {m.recipient: m.status for m in register.messages(case_key=case.key)}
        assert statuses == {"x": MESSAGE_PENDING, "y": MESSAGE_FAILED}
        environ["LATER"] = f"127.0.0.1:{http_listener.port}"
        assert len(deliver_pending(register, now=T0 + timedelta(minutes=1), sender=sender, policy=FAST).delivered) == 1
        assert http_listener.wait_for(1)[0].path == "/late"


def test_smtp_down_then_up_every_message_arrives_exactly_once(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink
) -> None:
    keys = _cases(register, library, 3)
    messages = [_message(key, f"person:p{n}", f"email:p{n}@example.com", n) for key in keys for n in range(2)]
    enqueue(register, messages, at=T0)
    with smtp_sink.outage():
        report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
        assert (report.claimed, len(report.retrying), len(report.delivered)) == (6, 6, 0)
        assert all("ConnectionRefused" in error for error in report.errors.values())
    pending = register.messages(status=MESSAGE_PENDING)
    assert len(pending) == 6 and {m.next_attempt_at for m in pending} == {T0 + timedelta(seconds=10)}
    assert deliver_pending(register, now=T0 + timedelta(seconds=5), sender=channels, policy=FAST).claimed == 0
    report = deliver_pending(register, now=T0 + timedelta(seconds=10), sender=channels, policy=FAST)
    assert len(report.delivered) == 6
    assert deliver_pending(register, now=T0 + timedelta(hours=1), sender=channels, policy=FAST).claimed == 0
    mails = smtp_sink.wait_for(6)
    assert sorted(m.subject for m in mails) == sorted(m.subject for m in messages)
    assert Counter(m.message["Message-ID"] for m in mails) == Counter({message_id(m.idempotency_key): 1 for m in messages})
    assert {m.status for m in register.messages()} == {MESSAGE_DELIVERED}


def test_two_deliverers_at_once_send_each_message_once(
    any_register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink, http_listener: HttpListener
) -> None:
    register = any_register
    keys = _cases(register, library, 4)
    messages = [
        _message(key, f"person:p{n}", f"email:p{n}@example.com" if n % 2 else "json://${HOOK_HOST}/hook", n)
        for key in keys for n in range(6)
    ]
    enqueue(register, messages, at=T0)
    start = threading.Barrier(2)
    delivered: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def deliverer(index: int) -> None:
        try:
            start.wait()
            while True:
                report = deliver_pending(register, now=T0, limit=3, sender=channels, policy=FAST)
                delivered[index].extend(report.delivered)
                if report.claimed == 0:
                    return
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=deliverer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert delivered[0] and delivered[1], "both deliverers took part"
    assert sorted(delivered[0] + delivered[1]) == sorted(m.id for m in register.messages())
    mails = smtp_sink.wait_for(12)
    posts = http_listener.wait_for(12)
    assert len(mails) == 12 and len(posts) == 12
    assert len({m.message["Message-ID"] for m in mails}) == 12
    assert Counter(p.json["title"] for p in posts) == Counter({m.subject: 1 for m in messages if m.channel.startswith("json")})


def test_a_failing_channel_does_not_hold_up_the_others(
    register: Register, library: Library, channels: ChannelRouter, smtp_sink: SmtpSink, http_listener: HttpListener
) -> None:
    case = open_case(register, library)
    http_listener.status = 500
    enqueue(register, [_message(case.key, "a", "json://${HOOK_HOST}/x", 1), _message(case.key, "b", "email:b@example.com", 2),
                       _message(case.key, "c", "console", 3)], at=T0)
    report = deliver_pending(register, now=T0, sender=channels, policy=FAST)
    assert len(report.delivered) == 2 and len(report.retrying) == 1
    assert smtp_sink.wait_for(1)[0].subject == "问题 SUP-0001 已解决 #2"


def test_variable_placeholders() -> None:
    assert expand("dingtalk://${TOKEN}?x=${X}", environ={"TOKEN": "t0k", "X": "1"}) == "dingtalk://t0k?x=1"
    with pytest.raises(ChannelError, match="environment variable Y is not set"):
        expand("json://${Y}", environ={})


def test_secret_placeholders_are_read_once_per_message() -> None:
    read: list[str] = []

    def secrets(name: str) -> str:
        read.append(name)
        return {"dingtalk-token": "s3cr3t"}[name]

    assert expand("dingtalk://${prefect-secret:dingtalk-token}/${prefect-secret:dingtalk-token}", environ={}, secrets=secrets) == (
        "dingtalk://s3cr3t/s3cr3t"
    )
    assert read == ["dingtalk-token"]


@pytest.mark.prefect_server
def test_a_prefect_secret_block_reaches_the_channel(
    prefect_server: object, register: Register, library: Library, http_listener: HttpListener
) -> None:
    from prefect.blocks.system import Secret

    Secret(value=f"127.0.0.1:{http_listener.port}").save("aftercare-test-hook", overwrite=True)
    case = open_case(register, library)
    enqueue(register, [_message(case.key, "room", "json://${prefect-secret:aftercare-test-hook}/room")], at=T0)
    assert len(deliver_pending(register, now=T0, sender=ChannelRouter(environ={})).delivered) == 1
    assert http_listener.wait_for(1)[0].path == "/room"
    stored = register.messages(case_key=case.key)[0]
    assert stored.channel == "json://${prefect-secret:aftercare-test-hook}/room"
    enqueue(register, [_message(case.key, "room", "json://${prefect-secret:no-such-block}/room", 2)], at=T0)
    report = deliver_pending(register, now=T0, sender=ChannelRouter(environ={}), policy=FAST)
    assert report.retrying and "cannot read Prefect Secret block 'no-such-block'" in next(iter(report.errors.values()))
