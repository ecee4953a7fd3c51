"""Step runs: begin, update and complete a visit replay-safely; overdue steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from ..errors import NotFoundError
from .column_types import check_json, require_utc
from .cases import UPDATE_CASE, audit_case_change, case_changes
from .history import add_audit
from .models import Case, StepRun
from .outbox import insert_message
from .records import (
    OPEN_STEP_STATUSES,
    STEP_ACTIVE,
    STEP_DONE,
    MessageDraft,
    StepRunRecord,
)
from .rows import case_row, case_state, case_state_row, step_is_open, step_records, step_select, to_step_record
from .store import SYSTEM_ACTOR, UNSET, Store, Unset
from .upserts import insert_ignoring_conflict


class StepStore(Store):
    """The step-run part of :class:`Register`."""

    def begin_step(
        self,
        key: str,
        step_id: str,
        visit: int,
        *,
        started_at: datetime,
        due_at: datetime | None = None,
        assignee: str | None = None,
        status: str = STEP_ACTIVE,
    ) -> StepRunRecord:
        """Record that a case entered a step; returns the existing run on a replay.

        A new run also becomes the case's ``current_step``.

        Args:
            key: the case.
            step_id: the step's id.
            visit: 1 the first time, 2 when a loop comes back, ...
            started_at: when.
            due_at: when the step's ``due`` passes (escalation), or a ``wait`` ends.
            assignee: who must act (``person:li.na``, ``role:support-lead``).
            status: ``active`` or ``waiting`` (for people or a timer).

        Raises:
            NotFoundError: no such case.
            ValueError: a final status, or a naive datetime.
        """
        if status not in OPEN_STEP_STATUSES:
            raise ValueError(f"a step begins {' or '.join(OPEN_STEP_STATUSES)}, not {status!r}")
        values = {
            "step_id": step_id,
            "visit": visit,
            "status": status,
            "result": None,
            "started_at": require_utc(started_at, "started_at"),
            "due_at": require_utc(due_at, "due_at") if due_at else None,
            "assignee": assignee,
        }
        with self._write() as session:
            case = case_row(session, key)
            new_id = insert_ignoring_conflict(
                session, StepRun, {**values, "case_id": case.id}, ["case_id", "step_id", "visit"]
            )
            if new_id is not None:
                case.current_step = step_id
            return to_step_record(step_row(session, case.id, step_id, visit), case.key)

    def update_step(
        self,
        key: str,
        step_id: str,
        visit: int,
        *,
        status: str | None = None,
        due_at: datetime | None | Unset = UNSET,
        assignee: str | None | Unset = UNSET,
    ) -> StepRunRecord:
        """Change an open step run: its status (active/waiting), deadline or assignee.

        A new deadline clears ``escalated_at``, so its breach is escalated again.
        A finished step is returned unchanged (a replay may call this late);
        finish steps with :meth:`complete_step`.

        Args:
            key: the case.
            step_id: the step's id.
            visit: the visit number.
            status: ``active`` or ``waiting``.
            due_at: a new deadline (``None`` clears it).
            assignee: a new assignee (``None`` clears it).

        Raises:
            NotFoundError: no such case or step run.
            ValueError: a final status, or a naive datetime.
        """
        if status is not None and status not in OPEN_STEP_STATUSES:
            raise ValueError(f"use complete_step to finish a step, not status {status!r}")
        with self._write() as session:
            case = case_row(session, key)
            row = step_row(session, case.id, step_id, visit, lock=True)
            if row.status not in OPEN_STEP_STATUSES:
                return to_step_record(row, case.key)
            if status is not None:
                row.status = status
            if not isinstance(due_at, Unset):
                new_due = require_utc(due_at, "due_at") if due_at else None
                if new_due != row.due_at:
                    row.due_at, row.escalated_at = new_due, None
            if not isinstance(assignee, Unset):
                row.assignee = assignee
            return to_step_record(row, case.key)

    def complete_step(
        self,
        key: str,
        step_id: str,
        visit: int,
        result: Mapping[str, Any],
        finished_at: datetime,
        *,
        started_at: datetime | None = None,
        status: str = STEP_DONE,
        messages: Sequence[MessageDraft] = (),
        case_fields: Mapping[str, Any] | None = None,
        case_status: str | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> StepRunRecord:
        """Record a step's result, its outbox messages and its case changes, in one transaction.

        Replay-safe: when the visit is already finished (completed, or decided by
        :meth:`answer`), the FIRST record is returned and nothing is written, so a
        replay takes the recorded result instead of doing the step again. A step
        never begun is begun here (``started_at``, default ``finished_at``).

        Args:
            key: the case.
            step_id: the step's id.
            visit: the visit number.
            result: the step's answers/outputs (JSON), what later expressions see.
            finished_at: when.
            started_at: when it began, if :meth:`begin_step` was not called.
            status: the final status (``done``, or e.g. ``timed_out``, ``skipped``).
            messages: outbox messages written atomically with the result.
            case_fields: values merged into the case's fields (a ``record`` step).
            case_status: the case's new status (a ``record`` step).
            actor: who, for the audit of the case change.

        Raises:
            NotFoundError: no such case.
            ValueError: an open status, or a naive datetime.
        """
        if status in OPEN_STEP_STATUSES:
            raise ValueError(f"a completed step cannot be {status!r}")
        check_json(dict(result), f"result of step '{step_id}'")
        check_json(dict(case_fields or {}), f"fields set by step '{step_id}'")
        finished = require_utc(finished_at, "finished_at")
        started = require_utc(started_at, "started_at") if started_at else finished
        changes_case = bool(case_fields) or case_status is not None
        # Core statements on the case's columns, no ORM objects: this runs for every step
        # of every case, and the ORM's loading and flushing cost three times as much here.
        with self._write() as session:
            case = case_state_row(session, key, lock=changes_case)
            # A step never begun (an automatic one) is inserted finished: one statement.
            new_id = insert_ignoring_conflict(
                session,
                StepRun,
                {
                    "case_id": case.id,
                    "step_id": step_id,
                    "visit": visit,
                    "status": status,
                    "result": dict(result),
                    "started_at": started,
                    "finished_at": finished,
                },
                ["case_id", "step_id", "visit"],
            )
            if new_id is not None:
                _finish_with(session, case, {"current_step": step_id}, step_id, visit, finished, messages, case_fields, case_status, actor)
                return StepRunRecord(
                    id=new_id, case_key=case.key, step_id=step_id, visit=visit, status=status, result=dict(result),
                    started_at=started, finished_at=finished, due_at=None, escalated_at=None, assignee=None,
                )
            row = step_row(session, case.id, step_id, visit, lock=True)
            if row.status in OPEN_STEP_STATUSES:
                row.status, row.result, row.finished_at = status, dict(result), finished
                _finish_with(session, case, {}, step_id, visit, finished, messages, case_fields, case_status, actor)
            return to_step_record(row, case.key)

    def step_run(self, key: str, step_id: str, visit: int) -> StepRunRecord | None:
        """The run of ``step_id``'s visit, or ``None`` if the case never got there.

        Raises:
            NotFoundError: no such case.
        """
        with self._read() as session:
            case = case_row(session, key)
            row = session.scalars(
                select(StepRun).where(
                    StepRun.case_id == case.id, StepRun.step_id == step_id, StepRun.visit == visit
                )
            ).one_or_none()
            return to_step_record(row, case.key) if row else None

    def step_runs(self, key: str) -> list[StepRunRecord]:
        """Every step run of a case, in the order they started.

        Raises:
            NotFoundError: no such case.
        """
        with self._read() as session:
            case = case_row(session, key)
            rows = session.scalars(
                select(StepRun)
                .where(StepRun.case_id == case.id)
                .order_by(StepRun.started_at, StepRun.id)
            )
            return [to_step_record(row, case.key) for row in rows]

    def open_steps(self, assignee: str | None = None, *, limit: int = 100) -> list[StepRunRecord]:
        """Active and waiting step runs, oldest first, optionally of one assignee.

        Args:
            assignee: only steps assigned to this (``person:li.na``, ``role:...``).
            limit: at most this many.
        """
        statement = step_select().where(step_is_open())
        if assignee is not None:
            statement = statement.where(StepRun.assignee == assignee)
        statement = statement.order_by(StepRun.started_at, StepRun.id).limit(limit)
        with self._read() as session:
            return step_records(session, statement)

    def overdue_steps(self, now: datetime, *, limit: int = 1000) -> list[StepRunRecord]:
        """Open step runs whose ``due_at`` passed and whose breach is not escalated yet.

        Args:
            now: the current time.
            limit: at most this many, earliest deadline first.
        """
        now = require_utc(now, "now")
        statement = (
            step_select()
            .where(step_is_open(), StepRun.due_at <= now, StepRun.escalated_at.is_(None))
            .order_by(StepRun.due_at, StepRun.id)
            .limit(limit)
        )
        with self._read() as session:
            return step_records(session, statement)

    def mark_escalated(
        self, step_run_id: int, at: datetime, *, actor: str = SYSTEM_ACTOR
    ) -> bool:
        """Mark a step run's breach escalated; True only for the first caller.

        False when it was escalated already, or is no longer open. Writes the
        audit event ``step.escalated``.

        Args:
            step_run_id: :attr:`StepRunRecord.id`.
            at: when.
            actor: who escalated, for the audit.
        """
        at = require_utc(at, "at")
        with self._write() as session:
            marked = session.execute(
                update(StepRun)
                .where(
                    StepRun.id == step_run_id,
                    StepRun.escalated_at.is_(None),
                    StepRun.status.in_(OPEN_STEP_STATUSES),
                )
                .values(escalated_at=at)
                .returning(StepRun.case_id, StepRun.step_id, StepRun.visit)
            ).one_or_none()
            if marked is None:
                return False
            case_id, step_id, visit = marked
            add_audit(
                session,
                case_id,
                "step.escalated",
                actor,
                at,
                after={"step": step_id, "visit": visit},
                detail=f"{step_id} #{visit} passed its due time",
            )
            return True


def _finish_with(
    session: Session,
    case: Row[Any],
    columns: Mapping[str, Any],
    step_id: str,
    visit: int,
    finished: datetime,
    messages: Sequence[MessageDraft],
    case_fields: Mapping[str, Any] | None,
    case_status: str | None,
    actor: str,
) -> None:
    """What lands with a step's result: its outbox messages, ``columns`` of its case, and the case changes of a ``record`` step (audited).

    ``case`` is the row of :func:`case_state_row`; ``columns`` go with the result, they
    are not a change of the case to audit (the step the case is at).
    """
    for draft in messages:
        insert_message(session, case.id, step_id, visit, draft, finished)
    state = {**case_state(case), **columns}
    changes = case_changes(state, status=case_status, fields=case_fields)
    if columns or changes:
        session.execute(UPDATE_CASE, {"case_id": case.id, **columns, **changes})
    audit_case_change(session, case.id, state, changes, actor, finished)
    session.flush()


def step_row(
    session: Session, case_id: int, step_id: str, visit: int | None, *, lock: bool = False
) -> StepRun:
    """The run of a step visit (``None``: the latest visit), locked when ``lock``.

    Raises:
        NotFoundError: the case never reached that step visit.
    """
    statement = select(StepRun).where(StepRun.case_id == case_id, StepRun.step_id == step_id)
    if visit is None:
        statement = statement.order_by(StepRun.visit.desc()).limit(1)
    else:
        statement = statement.where(StepRun.visit == visit)
    if lock:
        statement = statement.with_for_update()
    row = session.scalars(statement.execution_options(populate_existing=True)).first()
    if row is None:
        key = session.scalar(select(Case.key).where(Case.id == case_id))
        which = "any visit" if visit is None else f"visit {visit}"
        raise NotFoundError(f"case {key} has no run of step '{step_id}' ({which})")
    return row

