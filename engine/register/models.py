"""The register's tables as SQLAlchemy 2.0 typed models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .column_types import UTCDateTime, json_type

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_OPEN = text("closed_at IS NULL")
_CLOSED = text("closed_at IS NOT NULL")
_SLA_PENDING = text("closed_at IS NULL AND escalated_at IS NULL")
# Keep in step with OPEN_STEP_STATUSES; rows.step_is_open() writes the same predicate.
_OVERDUE_CANDIDATE = text("escalated_at IS NULL AND status IN ('active', 'waiting')")


class Base(DeclarativeBase):
    """Declarative base of the register; constraint names are stable across backends."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Case(Base):
    """One run of a process."""

    __tablename__ = "cases"
    __table_args__ = (
        # Dashboard: open cases counted by process and status.
        Index(
            "ix_cases_open_process_status",
            "process",
            "status",
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
        # Dashboard: cycle time per process, answered from the index alone.
        Index(
            "ix_cases_closed_process_times",
            "process",
            "opened_at",
            "closed_at",
            sqlite_where=_CLOSED,
            postgresql_where=_CLOSED,
        ),
        # `aftercare cases --status S --process P`.
        Index("ix_cases_status_process", "status", "process"),
        Index("ix_cases_process_status", "process", "status"),
        # The report: cases opened in a window, overall and per process (migration 0004).
        Index("ix_cases_opened_at", "opened_at"),
        Index("ix_cases_process_opened_at", "process", "opened_at"),
        # SLA breaches of whole cases not escalated yet.
        Index(
            "ix_cases_sla_due_at",
            "due_at",
            sqlite_where=_SLA_PENDING,
            postgresql_where=_SLA_PENDING,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    process: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    definition_hash: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(100))
    inputs: Mapped[dict[str, Any]] = mapped_column(json_type())
    fields: Mapped[dict[str, Any]] = mapped_column(json_type())
    current_step: Mapped[str | None] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    parent_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    started_by_step: Mapped[str | None] = mapped_column(String(100))
    flow_run_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)


class KeyCounter(Base):
    """The last case number handed out per key prefix (ISS → 42)."""

    __tablename__ = "key_counters"

    prefix: Mapped[str] = mapped_column(String(32), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class StepRun(Base):
    """One visit of a case to a step; loops make visits 2, 3, ..."""

    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("case_id", "step_id", "visit"),
        Index("ix_step_runs_status_due_at", "status", "due_at"),
        # Overdue steps: only open steps not escalated yet are indexed, in deadline
        # order, so the scan returns exactly the rows to escalate, already sorted.
        Index(
            "ix_step_runs_overdue",
            "due_at",
            "id",
            sqlite_where=_OVERDUE_CANDIDATE,
            postgresql_where=_OVERDUE_CANDIDATE,
        ),
        # Open steps by what they wait for (people or a timer).
        Index("ix_step_runs_wait_kind_status", "wait_kind", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(40))
    result: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Person ids who may answer (a JSON list); NULL for automatic steps.
    eligible: Mapped[list[str] | None] = mapped_column(json_type())
    # What an open step waits for: 'person', 'timer' or NULL (records.WAIT_KINDS).
    wait_kind: Mapped[str | None] = mapped_column(String(16))
    timed_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_attempt: Mapped[int] = mapped_column(Integer, server_default="0")


class Approval(Base):
    """A person's answer to a human step (approval or form)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("step_run_id", "person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_run_id: Mapped[int] = mapped_column(ForeignKey("step_runs.id", ondelete="CASCADE"))
    person: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(40))
    comment: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(json_type())
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    operator: Mapped[str | None] = mapped_column(String(200))
    """The operating-system user of an answer given at the operator's shell (``aftercare answer``, ``run --answers``)."""


class AnswerCode(Base):
    """A personal answer code of one person for one step visit, or an operator's one-time token: only its salted hash.

    ``kind`` is ``mail`` (sent in the waiting message; ``failures`` wrong tries) or
    ``operator`` (issued by the CLI for one answer; ``os_user`` is who ran it, ``used_at``
    and ``used_attempt`` the pause it answered). ``voided_at`` ends a code.
    """

    __tablename__ = "answer_codes"
    __table_args__ = (Index("ix_answer_codes_step", "case_id", "step_id", "visit", "person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer)
    person: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    salt: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(128))
    os_user: Mapped[str | None] = mapped_column(String(200))
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_attempt: Mapped[int | None] = mapped_column(Integer)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Notification(Base):
    """A message in the outbox, and its delivery log."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str | None] = mapped_column(String(100))
    visit: Mapped[int | None] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(500))
    channel: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """An append-only entry: who did what to which case, with before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_case_id_at", "case_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    before: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    after: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    detail: Mapped[str | None] = mapped_column(Text)


class Definition(Base):
    """A definition's text under its hash (written once, never changed)."""

    __tablename__ = "definitions"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    process: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime())
