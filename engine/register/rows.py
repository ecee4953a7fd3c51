"""Lookups of ORM rows by case key and their conversion into frozen records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Row, Select, bindparam, func, literal_column, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased

from ..errors import NotFoundError
from ..suggest import did_you_mean
from .models import Approval, AuditEvent, Case, Notification, StepRun
from .records import (
    OPEN_STEP_STATUSES,
    AnswerRecord,
    AuditRecord,
    CaseRecord,
    MessageRecord,
    StepRunRecord,
)
from .upserts import table_of

# Lists are read as plain rows rather than ORM objects: building records from rows
# costs a fraction of the ORM's identity-map bookkeeping (overdue steps, dashboards).

_Parent = aliased(Case)


def case_select() -> Select[Any]:
    """SELECT of case rows with their parent's key as ``parent_key``."""
    return select(*table_of(Case).c, _Parent.key.label("parent_key")).outerjoin(
        _Parent, Case.parent_case_id == _Parent.id
    )


def case_records(session: Session, statement: Select[Any]) -> list[CaseRecord]:
    """Run a :func:`case_select` statement and convert its rows."""
    return [to_case_record(row, row.parent_key) for row in session.execute(statement)]


def case_row(session: Session, key: str, *, lock: bool = False) -> Case:
    """The case ``key``, locked for update on PostgreSQL when ``lock``.

    Raises:
        NotFoundError: there is no such case.
    """
    statement = select(Case).where(Case.key == key)
    if lock:
        statement = statement.with_for_update()
    row = session.scalars(statement).one_or_none()
    if row is None:
        raise no_such_case(session, key)
    return row


NEAR_KEYS = 1000
"""How many of the newest case keys a "did you mean" compares a mistyped key with."""


def no_such_case(session: Session, key: str) -> NotFoundError:
    """The error for a key no case has, suggesting the nearest key among the newest cases."""
    prefix = key.split("-")[0].upper()
    near = session.scalars(
        select(Case.key).where(Case.key.like(f"{prefix}-%")).order_by(Case.id.desc()).limit(NEAR_KEYS)
    ).all()
    if not near:
        near = session.scalars(select(Case.key).order_by(Case.id.desc()).limit(NEAR_KEYS)).all()
    return NotFoundError(f"no case {key!r} in the register{did_you_mean(key, near)}")


def case_record(session: Session, row: Case) -> CaseRecord:
    """Convert a case row, looking up its parent's key when it has one."""
    return to_case_record(row, parent_key_of(session, row))


def parent_key_of(session: Session, row: Case | Row[Any]) -> str | None:
    """The key of the case that started ``row``'s case, if one did."""
    if row.parent_case_id is None:
        return None
    parent_key: str | None = session.scalar(select(Case.key).where(Case.id == row.parent_case_id))
    return parent_key


def to_case_record(row: Case | Row[Any], parent_key: str | None) -> CaseRecord:
    """Convert a case row whose parent's key is known."""
    return CaseRecord(
        id=row.id,
        key=row.key,
        process=row.process,
        version=row.version,
        definition_hash=row.definition_hash,
        title=row.title,
        status=row.status,
        outcome=row.outcome,
        inputs=dict(row.inputs),
        fields=dict(row.fields),
        current_step=row.current_step,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        due_at=row.due_at,
        escalated_at=row.escalated_at,
        parent_key=parent_key,
        started_by_step=row.started_by_step,
        flow_run_id=row.flow_run_id,
        idempotency_key=row.idempotency_key,
    )


CASE_STATE = ("status", "outcome", "current_step", "fields", "due_at", "closed_at")
"""The columns of a case that change as it moves (what its audit's before/after show)."""


def case_state(row: Case | Row[Any]) -> dict[str, Any]:
    """A case's :data:`CASE_STATE` columns, from an ORM row or a Core row."""
    return {name: getattr(row, name) for name in CASE_STATE}


# Built once (table columns, not ORM attributes): every step of every case runs it.
_CASE_STATE = select(
    table_of(Case).c.id, table_of(Case).c.key, *(table_of(Case).c[name] for name in CASE_STATE)
).where(table_of(Case).c.key == bindparam("key"))
_CASE_STATE_LOCKED = _CASE_STATE.with_for_update()


def case_state_row(session: Session, key: str, *, lock: bool = False) -> Row[Any]:
    """The case ``key``'s id, key and :data:`CASE_STATE` as a Core row (no ORM object), locked on PostgreSQL when ``lock``.

    Raises:
        NotFoundError: there is no such case.
    """
    row = session.execute(_CASE_STATE_LOCKED if lock else _CASE_STATE, {"key": key}).one_or_none()
    if row is None:
        raise no_such_case(session, key)
    return row


def case_snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """A case's state (:func:`case_state`) as JSON, for audit before/after."""
    return {
        "status": state["status"],
        "outcome": state["outcome"],
        "current_step": state["current_step"],
        "fields": dict(state["fields"]),
        "due_at": state["due_at"].isoformat() if state["due_at"] else None,
        "closed_at": state["closed_at"].isoformat() if state["closed_at"] else None,
    }


def step_select() -> Select[Any]:
    """SELECT of step run rows with their case's key as ``case_key``."""
    return select(*table_of(StepRun).c, Case.key.label("case_key")).join(
        Case, StepRun.case_id == Case.id
    )


def step_records(session: Session, statement: Select[Any]) -> list[StepRunRecord]:
    """Run a :func:`step_select` statement and convert its rows."""
    return [to_step_record(row, row.case_key) for row in session.execute(statement)]


def step_is_open() -> ColumnElement[bool]:
    """``status IN ('active', 'waiting')`` with the values inlined.

    Inlined rather than bound, so the planners can match the predicate of the
    partial index ``ix_step_runs_overdue`` (a bound parameter never matches).
    """
    statuses: BindParameter[list[str]] = bindparam(
        "open_step_statuses", list(OPEN_STEP_STATUSES), expanding=True, literal_execute=True
    )
    return StepRun.status.in_(statuses)


def eligible_includes(person: str, dialect: str) -> ColumnElement[bool]:
    """``step_runs.eligible`` (a JSON list) holds ``person``, as the backend can test it in SQL.

    PostgreSQL tests containment on the JSONB list (``eligible @> '["li.na"]'``); SQLite
    looks through the list's elements with ``json_each``. A NULL list holds nobody.

    Args:
        person: a person id (``li.na``).
        dialect: the database's dialect name (``sqlite`` or ``postgresql``).
    """
    if dialect == "postgresql":
        return type_coerce(StepRun.eligible, JSONB).contains([person])
    if dialect != "sqlite":
        raise NotImplementedError(f"the register supports SQLite and PostgreSQL, not {dialect!r}")
    element = func.json_each(StepRun.eligible).table_valued("value")
    return select(literal_column("1")).select_from(element).where(element.c.value == person).exists()


def to_step_record(row: StepRun | Row[Any], case_key: str) -> StepRunRecord:
    """Convert a step run row."""
    return StepRunRecord(
        id=row.id,
        case_key=case_key,
        step_id=row.step_id,
        visit=row.visit,
        status=row.status,
        result=dict(row.result) if row.result is not None else None,
        started_at=row.started_at,
        finished_at=row.finished_at,
        due_at=row.due_at,
        escalated_at=row.escalated_at,
        eligible=tuple(row.eligible or ()),
        wait_kind=row.wait_kind,
        timed_out_at=row.timed_out_at,
        pause_attempt=row.pause_attempt,
    )


def to_answer_record(row: Approval, step: StepRun, case_key: str) -> AnswerRecord:
    """Convert an approval row of ``step``."""
    return AnswerRecord(
        id=row.id,
        case_key=case_key,
        step_id=step.step_id,
        visit=step.visit,
        person=row.person,
        decision=row.decision,
        comment=row.comment,
        fields=dict(row.fields),
        answered_at=row.answered_at,
        operator=row.operator,
    )


def message_select() -> Select[Any]:
    """SELECT of outbox rows with their case's key as ``case_key`` (``None`` if case-less)."""
    return select(*table_of(Notification).c, Case.key.label("case_key")).outerjoin(
        Case, Notification.case_id == Case.id
    )


def message_records(session: Session, statement: Select[Any]) -> list[MessageRecord]:
    """Run a :func:`message_select` statement and convert its rows."""
    return [to_message_record(row, row.case_key) for row in session.execute(statement)]


def to_message_record(row: Notification | Row[Any], case_key: str | None) -> MessageRecord:
    """Convert an outbox row."""
    return MessageRecord(
        id=row.id,
        case_key=case_key,
        step_id=row.step_id,
        visit=row.visit,
        recipient=row.recipient,
        channel=row.channel,
        subject=row.subject,
        body=row.body,
        html=row.html,
        idempotency_key=row.idempotency_key,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        claimed_at=row.claimed_at,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
    )


def to_audit_record(row: AuditEvent, case_key: str | None) -> AuditRecord:
    """Convert an audit row."""
    return AuditRecord(
        id=row.id,
        case_key=case_key,
        event=row.event,
        actor=row.actor,
        at=row.at,
        before=dict(row.before) if row.before is not None else None,
        after=dict(row.after) if row.after is not None else None,
        detail=row.detail,
    )
