"""Delivering the outbox: claim due messages, send each on its channel, retry with exponential backoff.

Nothing is sent twice: a message is sent only by the deliverer whose
``Register.due_messages`` claim holds it (PostgreSQL skips rows another claimer
locked, SQLite serializes claimers), and it is marked delivered right after the send.
The one window left is a deliverer that dies after a send and before the mark: its
claim expires after the lease and the message is sent again; mail carries a
Message-ID derived from the idempotency key, so mail clients show such a copy once.
Keep channel timeouts well under the lease (the SMTP timeout is 30 s, the lease 5 min).

Nothing is lost: a failed attempt leaves the message pending with ``next_attempt_at``
pushed back exponentially; after ``max_attempts`` it is ``failed`` and
``aftercare outbox retry`` (``Register.reset_failed``) brings it back. A channel's
failure never reaches the caller: a case never fails or blocks on a channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aftercare.engine.clock import UTC, utc_now
from aftercare.engine.register import MessageRecord

from .answer_codes import has_mark, with_codes
from .channels import ChannelError, ChannelRouter, Deliverable, PermanentChannelError

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Sends one message or raises :class:`ChannelError` (``ChannelRouter`` is the real one)."""

    def send(self, message: Deliverable) -> str: ...


class OutboxRegister(Protocol):
    """The part of ``Register`` delivery uses."""

    def due_messages(self, now: datetime, limit: int = 100, *, lease: timedelta = ...) -> list[MessageRecord]: ...

    def mark_delivered(self, message_id: int, at: datetime) -> bool: ...

    def mark_attempt_failed(
        self, message_id: int, error: str, next_attempt_at: datetime, give_up: bool = False, *, at: datetime | None = None
    ) -> MessageRecord: ...

    def issue_answer_code(self, key: str, step_id: str, visit: int, person: str) -> str | None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failing message is tried.

    Attempt ``n`` that fails is retried after ``first_delay * factor ** (n - 1)``,
    at most ``max_delay``; attempt ``max_attempts`` that fails gives up.
    The defaults try 8 times over about 2 hours.
    """

    max_attempts: int = 8
    first_delay: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        seconds = self.first_delay.total_seconds() * self.factor ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.max_delay.total_seconds()))


DEFAULT_POLICY = RetryPolicy()
DEFAULT_LEASE = timedelta(minutes=5)


@dataclass
class DeliveryReport:
    """What one delivery round did (message ids)."""

    claimed: int = 0
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.claimed} claimed: {len(self.delivered)} delivered, "
            f"{len(self.retrying)} to retry, {len(self.failed)} failed"
        )


def deliver_pending(
    register: OutboxRegister,
    now: datetime | None = None,
    limit: int = 100,
    *,
    sender: Sender | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    lease: timedelta = DEFAULT_LEASE,
) -> DeliveryReport:
    """Claim up to ``limit`` due messages and send each on its channel; never raises for a channel.

    Args:
        register: the register (its outbox).
        now: the current time (injectable for tests); now by default. Deliveries,
            failures and the next attempt are dated from it.
        limit: at most this many messages this round.
        sender: the channels (a :class:`ChannelRouter` reading the environment by default).
        policy: retries and backoff.
        lease: how long a claim lasts before another deliverer may take it over.

    Returns:
        Which messages were delivered, will be retried, or failed for good.
    """
    when = (now or utc_now()).astimezone(UTC)
    channels = sender or ChannelRouter()
    report = DeliveryReport()
    claimed = register.due_messages(when, limit, lease=lease)
    report.claimed = len(claimed)
    issued: dict[tuple[str, str, int, str], str | None] = {}
    for message in claimed:
        _deliver_one(register, message, when, channels, policy, report, issued)
    if claimed:
        log.info("outbox: %s", report)
    return report


def _deliver_one(
    register: OutboxRegister, message: MessageRecord, now: datetime, channels: Sender, policy: RetryPolicy, report: DeliveryReport,
    issued: dict[tuple[str, str, int, str], str | None],
) -> None:
    try:
        # A waiting message's answer code is issued now and only put in the copy sent (answer_codes.py).
        how = channels.send(with_codes(message, register.issue_answer_code, issued) if has_mark(message) else message)
    except Exception as error:  # a channel must never fail the caller, whatever it raises
        permanent = isinstance(error, PermanentChannelError)
        text = str(error) if isinstance(error, ChannelError) else f"{error.__class__.__name__}: {error}"
        give_up = permanent or message.attempts >= policy.max_attempts
        next_at = now + policy.delay(message.attempts)
        report.errors[message.id] = text
        (report.failed if give_up else report.retrying).append(message.id)
        log.warning(
            "outbox: message %s (%s on %s) attempt %s failed%s: %s",
            message.id, message.recipient, message.channel.split("://")[0], message.attempts,
            " for good" if give_up else f", next at {next_at:%Y-%m-%d %H:%M:%S}", text,
        )
        try:
            register.mark_attempt_failed(message.id, text[:2000], next_at, give_up, at=now)
        except Exception:  # the claim's lease brings the message back
            log.exception("outbox: could not record the failure of message %s", message.id)
        return
    try:
        register.mark_delivered(message.id, now)
    except Exception:
        # Sent but not marked: it will be sent again after the lease (see the module docstring).
        log.exception("outbox: message %s was sent (%s) but could not be marked delivered", message.id, how)
        report.errors[message.id] = "sent, but not marked delivered"
        return
    report.delivered.append(message.id)
    log.debug("outbox: message %s delivered by %s", message.id, how)
