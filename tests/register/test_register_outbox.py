"""The outbox: one row per idempotency key, claims that never hand a message out twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from aftercare.engine.errors import NotFoundError
from aftercare.engine.register import CaseRecord, MessageRecord, Register

from .conftest import T0
from .test_register_cases import run_at_once

OpenCase = Callable[..., CaseRecord]


@pytest.fixture
def enqueue(register: Register, open_case: OpenCase) -> Callable[..., MessageRecord]:
    case = open_case()

    def _enqueue(key: str, **overrides: Any) -> MessageRecord:
        arguments: dict[str, Any] = {
            "case_key": case.key,
            "step_id": "tell-reporter",
            "visit": 1,
            "recipient": "li.na",
            "channel": "email",
            "subject": "ISS-0001 已解决",
            "body": "打印机已修好。",
            "html": "<p>打印机已修好。</p>",
            "idempotency_key": key,
            "at": T0,
        }
        arguments.update(overrides)
        return register.enqueue(**arguments)

    return _enqueue


def test_enqueue_twice_stores_once(register: Register, enqueue: Callable[..., MessageRecord]) -> None:
    first = enqueue("ISS-0001/tell-reporter/1/li.na")
    again = enqueue("ISS-0001/tell-reporter/1/li.na", subject="replayed", at=T0 + timedelta(hours=1))
    assert again == first
    assert (first.subject, first.body, first.status, first.attempts) == (
        "ISS-0001 已解决", "打印机已修好。", "pending", 0,
    )
    assert register.messages() == [first]


def test_messages_without_a_case(register: Register) -> None:
    message = register.enqueue(case_key=None, step_id=None, visit=None, recipient="ops",
                               channel="console", subject="digest", body="3 overdue",
                               idempotency_key="digest/2025-03-01", at=T0)
    assert message.case_key is None
    with pytest.raises(NotFoundError):
        register.enqueue(case_key="ISS-0404", step_id=None, visit=None, recipient="ops",
                         channel="console", subject="s", body="b", idempotency_key="x")


def test_a_claimed_message_is_not_handed_out_again(
    register: Register, enqueue: Callable[..., MessageRecord]
) -> None:
    enqueue("a")
    enqueue("b", at=T0 + timedelta(minutes=10))  # not due yet at T0 + 1 min
    claimed = register.due_messages(T0 + timedelta(minutes=1))
    assert [(m.idempotency_key, m.status, m.attempts) for m in claimed] == [("a", "sending", 1)]
    assert register.due_messages(T0 + timedelta(minutes=2)) == []
    later = register.due_messages(T0 + timedelta(minutes=11), lease=timedelta(hours=1))
    assert [m.idempotency_key for m in later] == ["b"]


def test_concurrent_deliverers_split_the_messages(
    register: Register, enqueue: Callable[..., MessageRecord]
) -> None:
    for n in range(30):
        enqueue(f"m{n}")
    results, errors = run_at_once(
        6, lambda i: [m.id for m in register.due_messages(T0 + timedelta(minutes=1), limit=10)]
    )
    assert errors == []
    claimed = [message_id for batch in results for message_id in batch]  # type: ignore[attr-defined]
    assert len(claimed) == len(set(claimed)) == 30
    assert all(m.attempts == 1 for m in register.messages())


def test_an_expired_claim_is_due_again(
    register: Register, enqueue: Callable[..., MessageRecord]
) -> None:
    enqueue("a")
    register.due_messages(T0, lease=timedelta(minutes=5))
    assert register.due_messages(T0 + timedelta(minutes=4), lease=timedelta(minutes=5)) == []
    again = register.due_messages(T0 + timedelta(minutes=6), lease=timedelta(minutes=5))
    assert [(m.idempotency_key, m.attempts) for m in again] == [("a", 2)]


def test_claim_one_message(register: Register, enqueue: Callable[..., MessageRecord]) -> None:
    message = enqueue("a")
    claimed = register.claim_message(message.id, T0)
    assert claimed is not None and claimed.status == "sending" and claimed.case_key == "ISS-0001"
    assert register.claim_message(message.id, T0) is None
    assert register.due_messages(T0 + timedelta(minutes=1)) == []


def test_delivery_is_recorded_once(register: Register, enqueue: Callable[..., MessageRecord]) -> None:
    message = enqueue("a")
    register.due_messages(T0)
    assert register.mark_delivered(message.id, T0 + timedelta(seconds=2)) is True
    assert register.mark_delivered(message.id, T0 + timedelta(seconds=3)) is False
    (stored,) = register.messages(status="delivered")
    assert (stored.delivered_at, stored.attempts) == (T0 + timedelta(seconds=2), 1)
    assert register.due_messages(T0 + timedelta(days=1), lease=timedelta(0)) == []


def test_failed_attempts_retry_then_give_up_then_reset(
    register: Register, enqueue: Callable[..., MessageRecord]
) -> None:
    message = enqueue("a")
    register.due_messages(T0)
    retry_at = T0 + timedelta(minutes=1)
    failed = register.mark_attempt_failed(message.id, "SMTP 451", retry_at, at=T0)
    assert (failed.status, failed.last_error, failed.next_attempt_at) == ("pending", "SMTP 451", retry_at)
    assert register.due_messages(T0 + timedelta(seconds=30)) == []
    (again,) = register.due_messages(retry_at)
    assert again.attempts == 2

    gave_up = register.mark_attempt_failed(message.id, "SMTP 550", retry_at, give_up=True, at=retry_at)
    assert (gave_up.status, gave_up.failed_at, gave_up.attempts) == ("failed", retry_at, 2)
    assert register.due_messages(T0 + timedelta(days=1)) == []
    assert [m.id for m in register.messages(status="failed")] == [message.id]

    assert register.retry_now(now=T0 + timedelta(days=1)) == (1, 0)
    (reset,) = register.messages(status="pending")
    assert (reset.attempts, reset.failed_at, reset.last_error) == (0, None, "SMTP 550")
    assert [m.id for m in register.due_messages(T0 + timedelta(days=1))] == [message.id]


def test_retry_now_makes_failed_and_backed_off_messages_due_now(
    register: Register, enqueue: Callable[..., MessageRecord]
) -> None:
    backed_off, failed, sending, later, due = (
        enqueue("backed-off"), enqueue("failed"), enqueue("sending"), enqueue("later", at=T0 + timedelta(hours=5)), enqueue("due"),
    )
    register.due_messages(T0, limit=4)  # claims all but "later" (queued for later)
    register.mark_attempt_failed(backed_off.id, "SMTP 451", T0 + timedelta(hours=1), at=T0)
    register.mark_attempt_failed(failed.id, "SMTP 550", T0, give_up=True, at=T0)
    register.mark_attempt_failed(due.id, "SMTP 451", T0 + timedelta(minutes=1), at=T0)
    now = T0 + timedelta(minutes=10)
    assert [m.idempotency_key for m in register.due_messages(now, lease=timedelta(hours=1))] == ["due"]

    assert register.retry_now(now) == (1, 1)

    by_key = {m.idempotency_key: m for m in register.messages()}
    assert (by_key["backed-off"].status, by_key["backed-off"].next_attempt_at, by_key["backed-off"].attempts) == (
        "pending", now, 1,
    )
    assert (by_key["failed"].status, by_key["failed"].attempts, by_key["failed"].next_attempt_at) == ("pending", 0, now)
    assert by_key["failed"].failed_at is None
    assert (by_key["sending"].status, by_key["sending"].next_attempt_at) == ("sending", sending.next_attempt_at)
    assert by_key["later"].next_attempt_at == later.next_attempt_at == T0 + timedelta(hours=5)  # queued for later, never tried
    assert by_key["due"].status == "sending"  # claimed just now: left to its deliverer
    claimed = register.due_messages(now, lease=timedelta(hours=1))
    assert sorted(m.idempotency_key for m in claimed) == ["backed-off", "failed"]
    assert register.retry_now(now) == (0, 0)


def test_unknown_message_is_not_found(register: Register) -> None:
    with pytest.raises(NotFoundError, match="no message 42"):
        register.mark_delivered(42, T0)
