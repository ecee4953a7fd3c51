"""Step runs: begin, update and complete a visit replay-safely; open and overdue steps, escalation and timeout marks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from ..clock import utc_now
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
    STEP_WITHDRAWN,
    WAIT_KINDS,
    WITHDRAWN_RESULT,
    MessageDraft,
    StepRunRecord,
)
from .rows import (
    case_row,
    case_state,
    case_state_row,
    eligible_includes,
    step_is_open,
    step_records,
    step_select,
    to_step_record,
)
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
        eligible: Sequence[str] = (),
        wait_kind: str | None = None,
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
            eligible: the ids of the people who may answer a human step (``li.na``).
            wait_kind: what the step waits for: :data:`WAIT_PERSON` (a human step),
                :data:`WAIT_TIMER` (a ``wait`` step) or ``None``.
            status: ``active`` or ``waiting``.

        Raises:
            NotFoundError: no such case.
            ValueError: a final status, an unknown wait kind, or a naive datetime.
            TypeError: ``eligible`` is a single string, not a sequence of ids.
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
            "eligible": _eligible_column(eligible),
            "wait_kind": _checked_wait_kind(wait_kind),
            "pause_attempt": 0,
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
        eligible: Sequence[str] | Unset = UNSET,
        wait_kind: str | None | Unset = UNSET,
    ) -> StepRunRecord:
        """Change an open step run: its status (active/waiting), deadline, eligible people or wait kind.

        A new deadline clears ``escalated_at``, so its breach is escalated again.
        A finished step is returned unchanged (a replay may call this late);
        finish steps with :meth:`complete_step`.

        Args:
            key: the case.
            step_id: the step's id.
            visit: the visit number.
            status: ``active`` or ``waiting``.
            due_at: a new deadline (``None`` clears it).
            eligible: the people who may answer now (an empty sequence clears them).
            wait_kind: what the step waits for now (``None`` clears it).

        Raises:
            NotFoundError: no such case or step run.
            ValueError: a final status, an unknown wait kind, or a naive datetime.
            TypeError: ``eligible`` is a single string, not a sequence of ids.
        """
        if status is not None and status not in OPEN_STEP_STATUSES:
            raise ValueError(f"use complete_step to finish a step, not status {status!r}")
        new_eligible = _eligible_column(eligible) if not isinstance(eligible, Unset) else UNSET
        new_wait_kind = _checked_wait_kind(wait_kind) if not isinstance(wait_kind, Unset) else UNSET
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
            if not isinstance(new_eligible, Unset):
                row.eligible = new_eligible
            if not isinstance(new_wait_kind, Unset):
                row.wait_kind = new_wait_kind
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
                    started_at=started, finished_at=finished, due_at=None, escalated_at=None,
                    eligible=(), wait_kind=None, timed_out_at=None, pause_attempt=0,
                )
            row = step_row(session, case.id, step_id, visit, lock=True)
            if row.status in OPEN_STEP_STATUSES:
                row.status, row.result, row.finished_at = status, dict(result), finished
                _finish_with(session, case, {}, step_id, visit, finished, messages, case_fields, case_status, actor)
            return to_step_record(row, case.key)

    def withdraw_step(
        self,
        key: str,
        step_id: str,
        visit: int,
        *,
        reason: str,
        at: datetime | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> StepRunRecord | None:
        """Withdraw a step visit the case no longer needs: status ``withdrawn``, result ``{"withdrawn": true}``.

        An open (active or waiting) run is withdrawn, with its finish time and the audit
        event ``step.withdrawn`` naming the reason; a visit never begun in the register is
        written withdrawn at once (the runner may withdraw a step it has not begun).
        Replay-safe: a visit already finished (done, withdrawn, failed) is left as it is.

        Args:
            key: the case.
            step_id: the step's id.
            visit: the visit number.
            reason: why, for the audit (``the join 'reviewed' fired``, a cancel's reason).
            at: when; now by default.
            actor: who, for the audit.

        Returns:
            The withdrawn run when this call withdrew it; ``None`` when it was not open.

        Raises:
            NotFoundError: no such case.
            ValueError: a naive datetime.
        """
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            case = case_state_row(session, key)
            new_id = insert_ignoring_conflict(
                session,
                StepRun,
                {
                    "case_id": case.id,
                    "step_id": step_id,
                    "visit": visit,
                    "status": STEP_WITHDRAWN,
                    "result": dict(WITHDRAWN_RESULT),
                    "started_at": when,
                    "finished_at": when,
                },
                ["case_id", "step_id", "visit"],
            )
            if new_id is not None:
                audit_withdrawn(session, case.id, step_id, visit, reason, when, actor)
                return StepRunRecord(
                    id=new_id, case_key=case.key, step_id=step_id, visit=visit, status=STEP_WITHDRAWN,
                    result=dict(WITHDRAWN_RESULT), started_at=when, finished_at=when, due_at=None, escalated_at=None,
                )
            row = step_row(session, case.id, step_id, visit, lock=True)
            if row.status not in OPEN_STEP_STATUSES:
                return None
            return withdraw_row(session, row, case.key, reason, when, actor)

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

    def open_steps(
        self, person: str | None = None, *, wait_kind: str | None = None, limit: int = 100
    ) -> list[StepRunRecord]:
        """Active and waiting step runs of open cases, oldest first.

        Args:
            person: only steps this person may answer (a person id such as ``li.na``).
            wait_kind: only steps waiting for this (:data:`WAIT_PERSON` or :data:`WAIT_TIMER`).
            limit: at most this many.

        Raises:
            ValueError: an unknown wait kind.
        """
        statement = step_select().where(step_is_open(), Case.closed_at.is_(None))
        if person is not None:
            statement = statement.where(eligible_includes(person, self._db.dialect))
        if wait_kind is not None:
            statement = statement.where(StepRun.wait_kind == _checked_wait_kind(wait_kind))
        statement = statement.order_by(StepRun.started_at, StepRun.id).limit(limit)
        with self._read() as session:
            return step_records(session, statement)

    def overdue_steps(
        self, now: datetime, *, wait_kind: str | None = None, limit: int = 1000
    ) -> list[StepRunRecord]:
        """Open step runs of open cases whose ``due_at`` passed and whose breach is not escalated yet.

        Args:
            now: the current time.
            wait_kind: only steps waiting for this (:data:`WAIT_PERSON` or :data:`WAIT_TIMER`).
            limit: at most this many, earliest deadline first.

        Raises:
            ValueError: an unknown wait kind, or a naive datetime.
        """
        now = require_utc(now, "now")
        # A step of a closed case is never due, even if a late replay began it after a cancel.
        statement = step_select().where(
            step_is_open(), StepRun.due_at <= now, StepRun.escalated_at.is_(None), Case.closed_at.is_(None)
        )
        if wait_kind is not None:
            statement = statement.where(StepRun.wait_kind == _checked_wait_kind(wait_kind))
        statement = statement.order_by(StepRun.due_at, StepRun.id).limit(limit)
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
        return self._mark_once(step_run_id, StepRun.escalated_at, at, actor, "step.escalated", " passed its due time")

    def mark_timed_out(
        self, step_run_id: int, at: datetime, *, actor: str = SYSTEM_ACTOR
    ) -> bool:
        """Mark that an open step's due passed (a step with ``on_timeout``); True only for the first caller.

        Sets ``timed_out_at``; False when the step was marked before or is no longer
        open. Writes the audit event ``step.timed_out``. The step stays open: the
        flow run that waits at it takes the ``on_timeout`` exit and completes it.

        Args:
            step_run_id: :attr:`StepRunRecord.id`.
            at: when.
            actor: who noticed, for the audit.
        """
        return self._mark_once(step_run_id, StepRun.timed_out_at, at, actor, "step.timed_out", ": due passed")

    def _mark_once(
        self, step_run_id: int, column: InstrumentedAttribute[datetime | None], at: datetime, actor: str, event: str, said: str
    ) -> bool:
        """Set a moment column of an open step run that is still NULL, and audit it (detail ``STEP #VISIT`` + ``said``); True for the first caller only."""
        at = require_utc(at, "at")
        with self._write() as session:
            marked = session.execute(
                update(StepRun)
                .where(StepRun.id == step_run_id, column.is_(None), StepRun.status.in_(OPEN_STEP_STATUSES))
                .values({column: at})
                .returning(StepRun.case_id, StepRun.step_id, StepRun.visit)
            ).one_or_none()
            if marked is None:
                return False
            case_id, step_id, visit = marked
            add_audit(session, case_id, event, actor, at, after={"step": step_id, "visit": visit}, detail=f"{step_id} #{visit}{said}")
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


def withdraw_row(session: Session, row: StepRun, case_key: str, reason: str, when: datetime, actor: str) -> StepRunRecord:
    """Withdraw an open, locked step run in the session's transaction and audit ``step.withdrawn``."""
    row.status, row.result, row.finished_at = STEP_WITHDRAWN, dict(WITHDRAWN_RESULT), when
    audit_withdrawn(session, row.case_id, row.step_id, row.visit, reason, when, actor)
    return to_step_record(row, case_key)


def audit_withdrawn(session: Session, case_id: int, step_id: str, visit: int, reason: str, when: datetime, actor: str) -> None:
    """The audit event of a withdrawn step visit, with the reason."""
    add_audit(session, case_id, "step.withdrawn", actor, when, after={"step": step_id, "visit": visit, "status": STEP_WITHDRAWN},
              detail=f"{step_id} #{visit} withdrawn: {reason}")


def _eligible_column(eligible: Sequence[str]) -> list[str] | None:
    """The ``eligible`` column's value: the ids in order without repeats, NULL when none."""
    if isinstance(eligible, str):
        raise TypeError(f"eligible must be a sequence of person ids, not the string {eligible!r}")
    ids = list(dict.fromkeys(str(person) for person in eligible))
    return ids or None


def _checked_wait_kind(wait_kind: str | None) -> str | None:
    if wait_kind is not None and wait_kind not in WAIT_KINDS:
        raise ValueError(f"a step waits for {' or '.join(map(repr, WAIT_KINDS))}, not {wait_kind!r}")
    return wait_kind


def pause_attempt_at_least(row: StepRun, pause_attempt: int | None) -> None:
    """Raise a locked step run's ``pause_attempt`` to ``pause_attempt`` (never lower it); None leaves it."""
    if pause_attempt is None:
        return
    if pause_attempt < 0:
        raise ValueError(f"pause_attempt counts waits, it cannot be {pause_attempt}")
    row.pause_attempt = max(row.pause_attempt, pause_attempt)


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

