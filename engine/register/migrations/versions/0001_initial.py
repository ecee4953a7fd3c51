"""The initial register: cases, key counters, step runs, approvals, outbox, audit.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("closed_at IS NULL")
_CLOSED = sa.text("closed_at IS NOT NULL")
_SLA_PENDING = sa.text("closed_at IS NULL AND escalated_at IS NULL")
_OVERDUE_CANDIDATE = sa.text("escalated_at IS NULL AND status IN ('active', 'waiting')")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create every table and index of the register."""
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("process", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition_hash", sa.String(length=128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=100), nullable=True),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("current_step", sa.String(length=100), nullable=True),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("closed_at", _ts(), nullable=True),
        sa.Column("due_at", _ts(), nullable=True),
        sa.Column("escalated_at", _ts(), nullable=True),
        sa.Column("parent_case_id", sa.Integer(), nullable=True),
        sa.Column("started_by_step", sa.String(length=100), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_case_id"], ["cases.id"], name="fk_cases_parent_case_id_cases"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("key", name="uq_cases_key"),
        sa.UniqueConstraint("flow_run_id", name="uq_cases_flow_run_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_cases_idempotency_key"),
    )
    op.create_index(
        "ix_cases_open_process_status",
        "cases",
        ["process", "status"],
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_index(
        "ix_cases_closed_process_times",
        "cases",
        ["process", "opened_at", "closed_at"],
        sqlite_where=_CLOSED,
        postgresql_where=_CLOSED,
    )
    op.create_index("ix_cases_status_process", "cases", ["status", "process"])
    op.create_index("ix_cases_process_status", "cases", ["process", "status"])
    op.create_index(
        "ix_cases_sla_due_at",
        "cases",
        ["due_at"],
        sqlite_where=_SLA_PENDING,
        postgresql_where=_SLA_PENDING,
    )
    op.create_index("ix_cases_parent_case_id", "cases", ["parent_case_id"])

    op.create_table(
        "key_counters",
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name="pk_key_counters"),
    )

    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("result", _json(), nullable=True),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("due_at", _ts(), nullable=True),
        sa.Column("escalated_at", _ts(), nullable=True),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_step_runs_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.UniqueConstraint(
            "case_id", "step_id", "visit", name="uq_step_runs_case_id_step_id_visit"
        ),
    )
    op.create_index("ix_step_runs_status_due_at", "step_runs", ["status", "due_at"])
    op.create_index(
        "ix_step_runs_overdue",
        "step_runs",
        ["due_at", "id"],
        sqlite_where=_OVERDUE_CANDIDATE,
        postgresql_where=_OVERDUE_CANDIDATE,
    )
    op.create_index("ix_step_runs_assignee_status", "step_runs", ["assignee", "status"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=40), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("answered_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_runs.id"],
            name="fk_approvals_step_run_id_step_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint("step_run_id", "person", name="uq_approvals_step_run_id_person"),
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("step_id", sa.String(length=100), nullable=True),
        sa.Column("visit", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=500), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _ts(), nullable=False),
        sa.Column("claimed_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("failed_at", _ts(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_notifications_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
    )
    op.create_index(
        "ix_notifications_status_next_attempt_at",
        "notifications",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_notifications_case_id", "notifications", ["case_id"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("before", _json(), nullable=True),
        sa.Column("after", _json(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_audit_events_case_id_cases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_case_id_at", "audit_events", ["case_id", "at"])


def downgrade() -> None:
    """Drop the register."""
    op.drop_table("audit_events")
    op.drop_table("notifications")
    op.drop_table("approvals")
    op.drop_table("step_runs")
    op.drop_table("key_counters")
    op.drop_table("cases")
