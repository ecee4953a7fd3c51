"""Typed step facts: who may answer, what a step waits for, its timeout mark, its waits used.

Replaces ``step_runs.assignee`` (a comma-joined list of people) with ``eligible`` (a JSON
list), and adds ``wait_kind``, ``timed_out_at`` and ``pause_attempt``, filled from what
the register held before: the assignee, the step's status, the ``step.timed_out`` and
``answer.refused`` audit events and the answers. Cases waiting right now keep waiting.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables as this revision sees them (never the models, which move on).
_step_runs = sa.table(
    "step_runs",
    sa.column("id", sa.Integer()),
    sa.column("case_id", sa.Integer()),
    sa.column("step_id", sa.String()),
    sa.column("visit", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("assignee", sa.String()),
    sa.column("eligible", sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")),
    sa.column("wait_kind", sa.String()),
    sa.column("timed_out_at", sa.DateTime(timezone=True)),
    sa.column("pause_attempt", sa.Integer()),
)
_approvals = sa.table("approvals", sa.column("id", sa.Integer()), sa.column("step_run_id", sa.Integer()))
_audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()),
    sa.column("case_id", sa.Integer()),
    sa.column("event", sa.String()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("after", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)

_TIMED_OUT = "step.timed_out"
_REFUSED = "answer.refused"

StepVisit = tuple[int, str, int]
"""(case id, step id, visit): how an audit event's ``after`` names a step run."""


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add the typed columns, fill them from the old facts, drop ``assignee``."""
    _require_drop_column()
    with op.batch_alter_table("step_runs", recreate="never") as batch:
        batch.add_column(sa.Column("eligible", _json(), nullable=True))
        batch.add_column(sa.Column("wait_kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("timed_out_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("pause_attempt", sa.Integer(), nullable=False, server_default="0"))
    connection = op.get_bind()
    _fill_eligible_and_wait_kind(connection)
    _fill_from_audit(connection)
    # Dropping a column in place (SQLite 3.35+ has ALTER TABLE DROP COLUMN): copying the
    # table instead would drop the old one, and on SQLite, whose foreign keys are on and
    # cannot be switched off inside the migration's transaction, that DROP cascades to
    # every answer in ``approvals``.
    with op.batch_alter_table("step_runs", recreate="never") as batch:
        batch.drop_index("ix_step_runs_assignee_status")
        batch.drop_column("assignee")
        batch.create_index("ix_step_runs_wait_kind_status", ["wait_kind", "status"])


def downgrade() -> None:
    """Bring ``assignee`` back (the eligible people joined by commas); drop the typed columns."""
    _require_drop_column()
    with op.batch_alter_table("step_runs", recreate="never") as batch:
        batch.add_column(sa.Column("assignee", sa.String(length=200), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_step_runs.c.id, _step_runs.c.eligible, _step_runs.c.wait_kind)
    ).all()
    updates = [
        {"row_id": row.id, "assignee": ",".join(row.eligible or ())}
        for row in rows
        if row.eligible or row.wait_kind == "person"
    ]
    if updates:
        connection.execute(
            _step_runs.update().where(_step_runs.c.id == sa.bindparam("row_id")).values(assignee=sa.bindparam("assignee")),
            updates,
        )
    with op.batch_alter_table("step_runs", recreate="never") as batch:
        batch.drop_index("ix_step_runs_wait_kind_status")
        batch.drop_column("pause_attempt")
        batch.drop_column("timed_out_at")
        batch.drop_column("wait_kind")
        batch.drop_column("eligible")
        batch.create_index("ix_step_runs_assignee_status", ["assignee", "status"])


def _require_drop_column() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    version = connection.exec_driver_sql("SELECT sqlite_version()").scalar_one()
    if tuple(int(part) for part in str(version).split(".")[:2]) < (3, 35):
        raise RuntimeError(
            f"migrating the register to revision {revision} needs SQLite 3.35 or newer "
            f"(ALTER TABLE ... DROP COLUMN); this Python has SQLite {version}"
        )


def _people(assignee: str) -> list[str]:
    """``person:li.na, wang.wei`` → ``["li.na", "wang.wei"]``: split, stripped, without repeats."""
    people: list[str] = []
    for item in assignee.split(","):
        item = item.strip()
        if item.startswith("person:"):
            item = item[len("person:"):].strip()
        if item and item not in people:
            people.append(item)
    return people


def _fill_eligible_and_wait_kind(connection: sa.Connection) -> None:
    # A human step was begun with its assignee (possibly empty); a wait step waits for
    # its timer with no assignee; every other step waits for nothing.
    connection.execute(
        _step_runs.update()
        .where(_step_runs.c.assignee.is_not(None))
        .values(wait_kind="person")
    )
    connection.execute(
        _step_runs.update()
        .where(_step_runs.c.assignee.is_(None), _step_runs.c.status == "waiting")
        .values(wait_kind="timer")
    )
    rows = connection.execute(
        sa.select(_step_runs.c.id, _step_runs.c.assignee).where(_step_runs.c.assignee.is_not(None))
    ).all()
    updates = [
        {"row_id": row.id, "eligible": people}
        for row in rows
        if (people := _people(row.assignee))
    ]
    if updates:
        connection.execute(
            _step_runs.update().where(_step_runs.c.id == sa.bindparam("row_id")).values(eligible=sa.bindparam("eligible")),
            updates,
        )


def _named_step(case_id: int | None, after: Any) -> StepVisit | None:
    """The step run an audit event's ``after`` names (``{"step": ..., "visit": ...}``), if any."""
    if case_id is None or not isinstance(after, dict):
        return None
    step, visit = after.get("step"), after.get("visit")
    if not isinstance(step, str) or not isinstance(visit, (int, str)) or isinstance(visit, bool):
        return None
    try:
        return case_id, step, int(visit)
    except (TypeError, ValueError):
        return None


def _fill_from_audit(connection: sa.Connection) -> None:
    # The timeout mark: the first step.timed_out event of the step visit. The waits used:
    # one per answer taken, one per answer.refused event the flow wrote for a pause key.
    timed_out: dict[StepVisit, Any] = {}
    refused: Counter[StepVisit] = Counter()
    events = connection.execute(
        sa.select(_audit_events.c.case_id, _audit_events.c.event, _audit_events.c.at, _audit_events.c.after)
        .where(_audit_events.c.event.in_([_TIMED_OUT, _REFUSED]))
        .order_by(_audit_events.c.at, _audit_events.c.id)
    ).all()
    for event in events:
        named = _named_step(event.case_id, event.after)
        if named is None:
            continue
        if event.event == _TIMED_OUT:
            timed_out.setdefault(named, event.at)
        elif "key" in event.after:
            refused[named] += 1
    answered: dict[int, int] = {
        step_run_id: count
        for step_run_id, count in connection.execute(
            sa.select(_approvals.c.step_run_id, sa.func.count()).group_by(_approvals.c.step_run_id)
        )
    }
    # Only runs that were answered, or of a case with such events, can get a value.
    runs = connection.execute(
        sa.select(_step_runs.c.id, _step_runs.c.case_id, _step_runs.c.step_id, _step_runs.c.visit).where(
            sa.or_(
                _step_runs.c.id.in_(sa.select(_approvals.c.step_run_id)),
                _step_runs.c.case_id.in_(
                    sa.select(_audit_events.c.case_id).where(_audit_events.c.event.in_([_TIMED_OUT, _REFUSED]))
                ),
            )
        )
    ).all()
    updates = []
    for run in runs:
        named = (run.case_id, run.step_id, run.visit)
        attempts = answered.get(run.id, 0) + refused.get(named, 0)
        mark = timed_out.get(named)
        if attempts or mark is not None:
            updates.append({"row_id": run.id, "pause_attempt": attempts, "timed_out_at": mark})
    if updates:
        connection.execute(
            _step_runs.update()
            .where(_step_runs.c.id == sa.bindparam("row_id"))
            .values(pause_attempt=sa.bindparam("pause_attempt"), timed_out_at=sa.bindparam("timed_out_at")),
            updates,
        )
