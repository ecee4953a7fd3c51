"""The outbox: messages queued once per idempotency key, claimed, delivered or retried."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..clock import utc_now
from ..errors import NotFoundError
from .column_types import require_utc
from .models import Case, Notification
from .records import (
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_PENDING,
    MESSAGE_SENDING,
    MessageDraft,
    MessageRecord,
)
from .rows import case_row, message_records, message_select, to_message_record
from .store import Store
from .upserts import insert_ignoring_conflict

DEFAULT_LEASE = timedelta(minutes=5)
"""How long a claimed message stays with its deliverer before it is due again."""


class Outbox(Store):
    """The outbox part of :class:`Register`."""

    def enqueue(
        self,
        *,
        case_key: str | None,
        step_id: str | None,
        visit: int | None,
        recipient: str,
        channel: str,
        subject: str,
        body: str,
        idempotency_key: str,
        html: str | None = None,
        at: datetime | None = None,
    ) -> MessageRecord:
        """Put a message in the outbox unless ``idempotency_key`` is there already.

        A replay never adds a second row: the first message is returned as stored.
        To queue messages atomically with a step's result use
        :meth:`complete_step` with ``messages=``.

        Args:
            case_key: the case it is about, or ``None`` (system messages).
            step_id: the step that sends it.
            visit: that step's visit.
            recipient: the person or role it is for.
            channel: ``email``, ``console`` or an Apprise URL.
            subject: subject line.
            body: plain-text body.
            idempotency_key: one per case, step, visit and recipient.
            html: an HTML body.
            at: when queued (and first due); now by default.

        Raises:
            NotFoundError: ``case_key`` names no case.
        """
        draft = MessageDraft(recipient, channel, subject, body, idempotency_key, html)
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            case_id = case_row(session, case_key).id if case_key else None
            row = insert_message(session, case_id, step_id, visit, draft, when)
            return to_message_record(row, case_key)

    def due_messages(
        self, now: datetime, limit: int = 100, *, lease: timedelta = DEFAULT_LEASE
    ) -> list[MessageRecord]:
        """Claim up to ``limit`` messages due for delivery, oldest first.

        Claiming sets each to ``sending`` (``claimed_at`` = ``now``, ``attempts`` + 1),
        so two deliverers never get the same message; PostgreSQL skips rows another
        claimer holds, SQLite serializes claimers. A claim not settled by
        :meth:`mark_delivered` or :meth:`mark_attempt_failed` within ``lease`` (the
        deliverer died) is due again.

        Args:
            now: the current time.
            limit: at most this many.
            lease: how long a claim lasts.
        """
        now = require_utc(now, "now")
        due = or_(
            and_(Notification.status == MESSAGE_PENDING, Notification.next_attempt_at <= now),
            and_(Notification.status == MESSAGE_SENDING, Notification.claimed_at <= now - lease),
        )
        statement = (
            select(Notification).where(due).order_by(Notification.next_attempt_at, Notification.id)
        )
        statement = statement.limit(limit).with_for_update(skip_locked=True)
        with self._write() as session:
            rows = list(session.scalars(statement))
            for row in rows:
                row.status, row.claimed_at, row.attempts = MESSAGE_SENDING, now, row.attempts + 1
            session.flush()
            return _message_records(session, rows)

    def next_message_at(self, now: datetime) -> datetime | None:
        """When the earliest message waiting out a backoff (or queued for later) is due; None when none waits."""
        now = require_utc(now, "now")
        statement = select(func.min(Notification.next_attempt_at)).where(
            Notification.status == MESSAGE_PENDING, Notification.next_attempt_at > now
        )
        with self._read() as session:
            return session.scalar(statement)

    def claim_message(self, message_id: int, now: datetime) -> MessageRecord | None:
        """Claim one pending message (to send it right away); ``None`` if not pending.

        Args:
            message_id: the message.
            now: the current time.
        """
        now = require_utc(now, "now")
        with self._write() as session:
            claimed = session.execute(
                update(Notification)
                .where(Notification.id == message_id, Notification.status == MESSAGE_PENDING)
                .values(
                    status=MESSAGE_SENDING, claimed_at=now, attempts=Notification.attempts + 1
                )
                .returning(Notification.id)
            ).scalar_one_or_none()
            if claimed is None:
                return None
            row = session.get_one(Notification, message_id, populate_existing=True)
            return _message_records(session, [row])[0]

    def mark_delivered(self, message_id: int, at: datetime) -> bool:
        """Record a delivery; False when the message was delivered before.

        Args:
            message_id: the message.
            at: when it was delivered.

        Raises:
            NotFoundError: no such message.
        """
        at = require_utc(at, "at")
        with self._write() as session:
            row = _message_row(session, message_id)
            if row.status == MESSAGE_DELIVERED:
                return False
            if row.status != MESSAGE_SENDING:
                row.attempts += 1  # delivered without a claim: still an attempt
            row.status, row.delivered_at, row.claimed_at = MESSAGE_DELIVERED, at, None
            return True

    def mark_attempt_failed(
        self,
        message_id: int,
        error: str,
        next_attempt_at: datetime,
        give_up: bool = False,
        *,
        at: datetime | None = None,
    ) -> MessageRecord:
        """Record a failed delivery: retry at ``next_attempt_at``, or give up.

        Args:
            message_id: the message.
            error: what went wrong (kept as ``last_error``).
            next_attempt_at: when to try again.
            give_up: mark it ``failed`` (``aftercare outbox retry`` brings it back).
            at: when it failed; now by default.

        Raises:
            NotFoundError: no such message.
        """
        next_at = require_utc(next_attempt_at, "next_attempt_at")
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            row = _message_row(session, message_id)
            if row.status != MESSAGE_DELIVERED:
                if row.status == MESSAGE_PENDING:
                    row.attempts += 1  # failed without a claim: still an attempt
                row.last_error, row.next_attempt_at, row.claimed_at = error, next_at, None
                if give_up:
                    row.status, row.failed_at = MESSAGE_FAILED, when
                else:
                    row.status = MESSAGE_PENDING
                session.flush()
            return _message_records(session, [row])[0]

    def messages(
        self, status: str | None = None, *, case_key: str | None = None, limit: int = 1000
    ) -> list[MessageRecord]:
        """Outbox messages, oldest first (``aftercare outbox``).

        Args:
            status: only ``pending``, ``sending``, ``delivered`` or ``failed`` ones.
            case_key: only one case's.
            limit: at most this many.
        """
        statement = message_select()
        if status is not None:
            statement = statement.where(Notification.status == status)
        if case_key is not None:
            statement = statement.where(Case.key == case_key)
        statement = statement.order_by(Notification.created_at, Notification.id).limit(limit)
        with self._read() as session:
            return message_records(session, statement)

    def retry_now(self, now: datetime | None = None) -> tuple[int, int]:
        """Make every message that waits due now (``aftercare outbox retry``).

        Failed messages become pending again with fresh attempts; pending messages
        waiting out a backoff after a failed attempt (``next_attempt_at`` after
        ``now``) are brought forward. Messages being sent (claimed) are left to their
        deliverer, and messages queued to go out later (no attempt yet) keep their
        time. One transaction.

        Args:
            now: when they become due; now by default.

        Returns:
            How many failed messages were made pending, and how many pending ones
            were brought forward.
        """
        when = require_utc(now, "now") if now else utc_now()
        with self._write() as session:
            revived = session.execute(
                update(Notification)
                .where(Notification.status == MESSAGE_FAILED)
                .values(status=MESSAGE_PENDING, attempts=0, next_attempt_at=when, failed_at=None)
                .returning(Notification.id)
            ).all()
            # A backoff follows a failed attempt (attempts > 0); a message queued to go out
            # later has none and keeps its time. Revived messages are due at ``when`` already.
            brought = session.execute(
                update(Notification)
                .where(
                    Notification.status == MESSAGE_PENDING,
                    Notification.next_attempt_at > when,
                    Notification.attempts > 0,
                )
                .values(next_attempt_at=when)
                .returning(Notification.id)
            ).all()
            return len(revived), len(brought)


def insert_message(
    session: Session,
    case_id: int | None,
    step_id: str | None,
    visit: int | None,
    draft: MessageDraft,
    at: datetime,
) -> Notification:
    """Insert a message unless its idempotency key is queued already; return the stored one."""
    insert_ignoring_conflict(
        session,
        Notification,
        {
            "case_id": case_id,
            "step_id": step_id,
            "visit": visit,
            "recipient": draft.recipient,
            "channel": draft.channel,
            "subject": draft.subject,
            "body": draft.body,
            "html": draft.html,
            "idempotency_key": draft.idempotency_key,
            "status": MESSAGE_PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
        ["idempotency_key"],
    )
    return session.scalars(
        select(Notification).where(Notification.idempotency_key == draft.idempotency_key)
    ).one()


def _message_records(session: Session, rows: list[Notification]) -> list[MessageRecord]:
    case_ids = {row.case_id for row in rows if row.case_id is not None}
    keys: dict[int, str] = {}
    if case_ids:
        found = session.execute(select(Case.id, Case.key).where(Case.id.in_(case_ids)))
        keys = {case_id: key for case_id, key in found}
    return [to_message_record(row, keys.get(row.case_id) if row.case_id else None) for row in rows]


def _message_row(session: Session, message_id: int) -> Notification:
    row = session.scalars(
        select(Notification).where(Notification.id == message_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no message {message_id} in the outbox")
    return row

