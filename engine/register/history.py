"""The audit trail and a case's timeline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..clock import utc_now
from .column_types import check_json, require_utc
from .models import Approval, AuditEvent, Case, Notification, StepRun
from .records import AuditRecord, Timeline
from .rows import (
    case_record,
    case_row,
    to_answer_record,
    to_audit_record,
    to_case_record,
    to_message_record,
    to_step_record,
)
from .store import Store
from .timeline import build_timeline
from .upserts import table_of


class History(Store):
    """The audit and timeline part of :class:`Register`."""

    def audit(
        self,
        key: str | None,
        event: str,
        actor: str,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        detail: str | None = None,
        *,
        at: datetime | None = None,
    ) -> AuditRecord:
        """Append an audit event (append-only; nothing updates or deletes them).

        Args:
            key: the case, or ``None`` for an event about no case.
            event: what happened, dotted (``answer.refused``, ``case.cancelled``).
            actor: who did it.
            before: state before (JSON).
            after: state after (JSON).
            detail: a sentence for people.
            at: when; now by default.

        Raises:
            NotFoundError: ``key`` names no case.
        """
        when = require_utc(at, "at") if at else utc_now()
        check_json([dict(before or {}), dict(after or {})], f"audit event {event!r}")
        with self._write() as session:
            case_id = case_row(session, key).id if key else None
            event_id = add_audit(session, case_id, event, actor, when, before, after, detail)
        return AuditRecord(
            id=event_id,
            case_key=key,
            event=event,
            actor=actor,
            at=when,
            before=dict(before) if before is not None else None,
            after=dict(after) if after is not None else None,
            detail=detail,
        )

    def audit_events(self, key: str) -> list[AuditRecord]:
        """A case's audit events in time order.

        Raises:
            NotFoundError: no such case.
        """
        with self._read() as session:
            case = case_row(session, key)
            return audit_records(session, case)

    def timeline(self, key: str) -> Timeline:
        """A case with its steps, answers, messages, audit events and child cases.

        The data of ``aftercare show CASE``; ``Timeline.entries`` merges all of
        them in time order (see :func:`render_timeline`).

        Raises:
            NotFoundError: no such case.
        """
        with self._read() as session:
            case = case_row(session, key)
            steps = list(
                session.scalars(
                    select(StepRun)
                    .where(StepRun.case_id == case.id)
                    .order_by(StepRun.started_at, StepRun.id)
                )
            )
            by_id = {step.id: step for step in steps}
            approvals = session.scalars(
                select(Approval)
                .join(StepRun, Approval.step_run_id == StepRun.id)
                .where(StepRun.case_id == case.id)
                .order_by(Approval.answered_at, Approval.id)
            )
            messages = session.scalars(
                select(Notification)
                .where(Notification.case_id == case.id)
                .order_by(Notification.created_at, Notification.id)
            )
            children = session.scalars(
                select(Case).where(Case.parent_case_id == case.id).order_by(Case.id)
            )
            return build_timeline(
                case=case_record(session, case),
                steps=[to_step_record(step, case.key) for step in steps],
                answers=[to_answer_record(a, by_id[a.step_run_id], case.key) for a in approvals],
                messages=[to_message_record(m, case.key) for m in messages],
                events=audit_records(session, case),
                children=[to_case_record(child, case.key) for child in children],
            )


_INSERT_AUDIT = insert(table_of(AuditEvent)).returning(table_of(AuditEvent).c.id)


def add_audit(
    session: Session,
    case_id: int | None,
    event: str,
    actor: str,
    at: datetime,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    detail: str | None = None,
) -> int:
    """Add an audit event to the session's transaction (a Core INSERT, no ORM flush); returns its id."""
    values = {
        "case_id": case_id,
        "event": event,
        "actor": actor,
        "at": at,
        "before": dict(before) if before is not None else None,
        "after": dict(after) if after is not None else None,
        "detail": detail,
    }
    new_id: int = session.execute(_INSERT_AUDIT, values).scalar_one()
    return new_id


def audit_records(session: Session, case: Case) -> list[AuditRecord]:
    """A case's audit events in time order."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.case_id == case.id)
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return [to_audit_record(row, case.key) for row in rows]
