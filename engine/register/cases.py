"""Cases: opening under a fresh key, lookups, updates, closing and SLA breaches."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..clock import utc_now
from ..errors import RegisterError
from .column_types import check_json, require_utc
from .history import add_audit
from .keys import allocate_key
from .models import Case, StepRun
from .records import CASE_CANCELLED, CASE_CLOSED, CASE_FAILED, CASE_OPEN, CASE_QUEUED, OPEN_STEP_STATUSES, STEP_FAILED, CaseRecord
from .rows import (
    case_record,
    case_records,
    case_row,
    case_select,
    case_snapshot,
    case_state,
    case_state_row,
    eligible_includes,
    parent_key_of,
    step_is_open,
    to_case_record,
)
from .store import SYSTEM_ACTOR, UNSET, Store, Unset
from .upserts import table_of


_INSERT_CASE = insert(table_of(Case)).returning(table_of(Case).c.id)
UPDATE_CASE = update(table_of(Case)).where(table_of(Case).c.id == bindparam("case_id"))
"""A Core UPDATE of one case (``case_id``); the columns to set are the other parameters."""
_CLOSE_CASE = UPDATE_CASE.returning(*table_of(Case).c)


class CaseStore(Store):
    """The case part of :class:`Register`."""

    def open_case(
        self,
        *,
        process: str,
        version: int,
        definition_hash: str,
        key_prefix: str,
        title: str,
        inputs: Mapping[str, Any],
        due_at: datetime | None = None,
        parent_key: str | None = None,
        started_by_step: str | None = None,
        flow_run_id: str | None = None,
        idempotency_key: str | None = None,
        opened_at: datetime | None = None,
        status: str = CASE_OPEN,
        actor: str = SYSTEM_ACTOR,
    ) -> CaseRecord:
        """Open a case under the next key for ``key_prefix`` (ISS-0001, ISS-0002, ...).

        Replay-safe: when a case with ``idempotency_key`` (checked first) or
        ``flow_run_id`` exists, that case is returned and nothing is written.
        Writes the audit event ``case.opened``.

        Args:
            process: the process id.
            version: the definition's version.
            definition_hash: hash of the definition the case runs.
            key_prefix: the process's ``key``, such as ``ISS``.
            title: the case title.
            inputs: the start form's values (JSON).
            due_at: the whole-case deadline (``sla.due``).
            parent_key: the case whose ``start`` step opened this one.
            started_by_step: that ``start`` step's id.
            flow_run_id: the Prefect flow run driving the case.
            idempotency_key: makes a replayed ``start`` step find its case again.
            opened_at: when; now by default.
            status: the first status.
            actor: who opened it, for the audit.

        Raises:
            NotFoundError: ``parent_key`` names no case.
            ValueError: a bad key prefix or a naive datetime.
        """
        opened = require_utc(opened_at, "opened_at") if opened_at else utc_now()
        check_json(dict(inputs), f"inputs of a {process} case")
        due = require_utc(due_at, "due_at") if due_at else None
        try:
            # A replay finds its case inside the write transaction; a new case is written
            # with Core statements (it is opened for every run: no ORM object to flush).
            with self._write() as session:
                found = _find_case(session, idempotency_key, flow_run_id)
                if found is not None:
                    return case_record(session, found)
                parent = case_state_row(session, parent_key) if parent_key else None
                values: dict[str, Any] = {
                    "key": allocate_key(session, key_prefix),
                    "process": process,
                    "version": version,
                    "definition_hash": definition_hash,
                    "title": title,
                    "status": status,
                    "outcome": None,
                    "inputs": dict(inputs),
                    "fields": {},
                    "current_step": None,
                    "opened_at": opened,
                    "closed_at": None,
                    "due_at": due,
                    "escalated_at": None,
                    "parent_case_id": parent.id if parent else None,
                    "started_by_step": started_by_step,
                    "flow_run_id": flow_run_id,
                    "idempotency_key": idempotency_key,
                }
                case_id: int = session.execute(_INSERT_CASE, values).scalar_one()
                add_audit(session, case_id, "case.opened", actor, opened, after=case_snapshot(values))
                recorded = {name: value for name, value in values.items() if name != "parent_case_id"}
                return CaseRecord(id=case_id, parent_key=parent.key if parent else None, **recorded)
        except RegisterError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
            # A concurrent open with the same idempotency key or flow run committed first.
            existing = self._existing_case(idempotency_key, flow_run_id)
            if existing is None:
                raise
            return existing

    def case(self, key: str) -> CaseRecord:
        """The case ``key``.

        Raises:
            NotFoundError: no such case.
        """
        with self._read() as session:
            return case_record(session, case_row(session, key))

    def case_for_run(self, flow_run_id: str) -> CaseRecord | None:
        """The case a Prefect flow run drives, or ``None``."""
        with self._read() as session:
            row = session.scalars(select(Case).where(Case.flow_run_id == flow_run_id)).first()
            return case_record(session, row) if row else None

    def cases(
        self,
        status: str | None = None,
        process: str | None = None,
        *,
        person: str | None = None,
        open_only: bool = False,
        limit: int = 100,
    ) -> list[CaseRecord]:
        """Cases, newest first (``aftercare cases``).

        Args:
            status: only cases in this status.
            process: only cases of this process.
            person: only cases with an open step this person may answer (a person id
                such as ``li.na``).
            open_only: only cases not closed.
            limit: at most this many.
        """
        statement = case_select()
        if status is not None:
            statement = statement.where(Case.status == status)
        if process is not None:
            statement = statement.where(Case.process == process)
        if open_only:
            statement = statement.where(Case.closed_at.is_(None))
        if person is not None:
            statement = statement.where(
                select(StepRun.id)
                .where(
                    StepRun.case_id == Case.id,
                    step_is_open(),
                    eligible_includes(person, self._db.dialect),
                )
                .exists()
            )
        statement = statement.order_by(Case.id.desc()).limit(limit)
        with self._read() as session:
            return case_records(session, statement)

    def open_case_runs(self, *, limit: int = 10_000) -> dict[str, str]:
        """The flow runs of open cases: flow run id -> case key, oldest case first.

        What a sweep compares with Prefect's run states (a run cancelled in the Prefect
        UI while its case is open in the register).
        """
        statement = (
            select(Case.flow_run_id, Case.key)
            .where(Case.closed_at.is_(None), Case.flow_run_id.is_not(None))
            .order_by(Case.id)
            .limit(limit)
        )
        with self._read() as session:
            return {str(run_id): key for run_id, key in session.execute(statement)}

    def cancelled_case_runs(self, since: datetime, *, limit: int = 1000) -> dict[str, str]:
        """The flow runs of cases cancelled since a moment: flow run id -> case key.

        What a sweep checks are over in Prefect too (a cancel whose Prefect part failed).
        """
        since = require_utc(since, "since")
        statement = (
            select(Case.flow_run_id, Case.key)
            .where(Case.status == CASE_CANCELLED, Case.closed_at >= since, Case.flow_run_id.is_not(None))
            .order_by(Case.id)
            .limit(limit)
        )
        with self._read() as session:
            return {str(run_id): key for run_id, key in session.execute(statement)}

    def processes(self) -> list[str]:
        """The processes the register has cases of, sorted."""
        with self._read() as session:
            return sorted(session.scalars(select(Case.process).distinct()))

    def statuses(self) -> list[str]:
        """The statuses cases have in the register, with the engine's own (open, closed, queued, failed, cancelled), sorted."""
        with self._read() as session:
            found = set(session.scalars(select(Case.status).distinct()))
        return sorted(found | {CASE_OPEN, CASE_CLOSED, CASE_QUEUED, CASE_FAILED, CASE_CANCELLED})

    def update_case(
        self,
        key: str,
        *,
        status: str | None = None,
        current_step: str | None | Unset = UNSET,
        fields: Mapping[str, Any] | None = None,
        due_at: datetime | None | Unset = UNSET,
        actor: str = SYSTEM_ACTOR,
        at: datetime | None = None,
    ) -> CaseRecord:
        """Change a case; writes ``case.updated`` with before/after when anything changed.

        Args:
            key: the case.
            status: the new status.
            current_step: the step the case is at (``None`` clears it).
            fields: values merged into the case's fields (``record`` steps).
            due_at: a new deadline (``None`` clears it); a new deadline may be escalated again.
            actor: who, for the audit.
            at: when; now by default.

        Raises:
            NotFoundError: no such case.
        """
        when = require_utc(at, "at") if at else utc_now()
        check_json(dict(fields or {}), f"fields of {key}")
        with self._write() as session:
            row = case_row(session, key, lock=True)
            change_case(session, row, status=status, current_step=current_step, fields=fields, due_at=due_at, actor=actor, at=when)
            return case_record(session, row)

    def close_case(
        self,
        key: str,
        outcome: str,
        status: str = CASE_CLOSED,
        *,
        at: datetime | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> CaseRecord:
        """Close a case with its outcome; closing a closed case returns it unchanged.

        Args:
            key: the case.
            outcome: the ``end`` step's outcome (``resolved``, ``rejected``, ...).
            status: the final status.
            at: when; now by default.
            actor: who, for the audit.

        Raises:
            NotFoundError: no such case.
        """
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            return close_in(session, key, status, outcome, when, actor, "case.closed")

    def fail_case(self, key: str, reason: str, *, at: datetime | None = None, actor: str = SYSTEM_ACTOR) -> CaseRecord:
        """Close a case whose run failed and will not go on: status and outcome ``failed``, the reason audited.

        In one transaction its open step runs end ``failed`` with ``{"error": reason}`` as
        their result (nothing of it looks alive: no escalation, reminder or timer takes it
        up), the case closes and the audit event ``case.failed`` keeps the reason, which
        ``aftercare show`` prints. A closed case is returned unchanged.

        Raises:
            NotFoundError: no such case.
        """
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            state_row = case_state_row(session, key, lock=True)
            if state_row.closed_at is None:
                session.execute(
                    update(StepRun)
                    .where(StepRun.case_id == state_row.id, StepRun.status.in_(OPEN_STEP_STATUSES))
                    .values(status=STEP_FAILED, finished_at=when, result={"error": reason})
                )
            return close_in(session, key, CASE_FAILED, CASE_FAILED, when, actor, "case.failed", detail=reason)

    def overdue_cases(self, now: datetime, *, limit: int = 1000) -> list[CaseRecord]:
        """Open cases whose SLA ``due_at`` passed and whose breach is not escalated yet."""
        now = require_utc(now, "now")
        statement = (
            case_select()
            .where(Case.closed_at.is_(None), Case.due_at <= now, Case.escalated_at.is_(None))
            .order_by(Case.due_at, Case.id)
            .limit(limit)
        )
        with self._read() as session:
            return case_records(session, statement)

    def mark_case_escalated(self, key: str, at: datetime, *, actor: str = SYSTEM_ACTOR) -> bool:
        """Mark a case's SLA breach escalated; True only for the first caller.

        Raises:
            NotFoundError: no such case.
        """
        at = require_utc(at, "at")
        with self._write() as session:
            case = case_row(session, key)
            marked = session.execute(
                update(Case)
                .where(Case.id == case.id, Case.escalated_at.is_(None), Case.closed_at.is_(None))
                .values(escalated_at=at)
                .returning(Case.id)
            ).scalar_one_or_none()
            if marked is None:
                return False
            detail = "the case passed its SLA due time"
            add_audit(session, case.id, "case.escalated", actor, at, detail=detail)
            return True

    def _existing_case(
        self, idempotency_key: str | None, flow_run_id: str | None
    ) -> CaseRecord | None:
        if idempotency_key is None and flow_run_id is None:
            return None
        with self._read() as session:
            row = _find_case(session, idempotency_key, flow_run_id)
            return case_record(session, row) if row else None


def _find_case(
    session: Session, idempotency_key: str | None, flow_run_id: str | None
) -> Case | None:
    if idempotency_key is not None:
        row = session.scalars(select(Case).where(Case.idempotency_key == idempotency_key)).first()
        if row is not None:
            return row
    if flow_run_id is not None:
        return session.scalars(select(Case).where(Case.flow_run_id == flow_run_id)).first()
    return None


def change_case(
    session: Session,
    row: Case,
    *,
    status: str | None = None,
    current_step: str | None | Unset = UNSET,
    fields: Mapping[str, Any] | None = None,
    due_at: datetime | None | Unset = UNSET,
    actor: str,
    at: datetime,
) -> None:
    """Change a locked case row (ORM) in the session's transaction; audit ``case.updated`` when anything changed."""
    state = case_state(row)
    changes = case_changes(state, status=status, current_step=current_step, fields=fields, due_at=due_at)
    for name, value in changes.items():
        setattr(row, name, value)
    audit_case_change(session, row.id, state, changes, actor, at)


def case_changes(
    state: Mapping[str, Any],
    *,
    status: str | None = None,
    current_step: str | None | Unset = UNSET,
    fields: Mapping[str, Any] | None = None,
    due_at: datetime | None | Unset = UNSET,
) -> dict[str, Any]:
    """The columns a change sets on a case in ``state`` (:func:`case_state`).

    ``fields`` are merged into the case's fields; a new deadline clears ``escalated_at``,
    so its breach is escalated again.
    """
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = status
    if not isinstance(current_step, Unset):
        changes["current_step"] = current_step
    if fields:
        changes["fields"] = {**state["fields"], **fields}
    if not isinstance(due_at, Unset):
        new_due = require_utc(due_at, "due_at") if due_at else None
        if new_due != state["due_at"]:
            changes.update(due_at=new_due, escalated_at=None)
    return changes


def audit_case_change(
    session: Session, case_id: int, state: Mapping[str, Any], changes: Mapping[str, Any], actor: str, at: datetime
) -> None:
    """Audit ``case.updated`` with the state columns that ``changes`` really change, if any.

    Shared by :meth:`CaseStore.update_case` and :meth:`StepStore.complete_step` (a
    ``record`` step's fields land with its result, in one transaction).
    """
    before = case_snapshot(state)
    after = case_snapshot({**state, **changes})
    changed = [name for name in after if after[name] != before[name]]
    if changed:
        add_audit(session, case_id, "case.updated", actor, at, before={k: before[k] for k in changed}, after={k: after[k] for k in changed})


def close_in(
    session: Session, key: str, status: str, outcome: str, when: datetime, actor: str, event: str, detail: str | None = None
) -> CaseRecord:
    """Close a case in the session's transaction (unless it is closed already) with its status and outcome, audited as ``event``."""
    state_row = case_state_row(session, key, lock=True)
    if state_row.closed_at is not None:
        return case_records(session, case_select().where(Case.id == state_row.id))[0]
    state = case_state(state_row)
    closing = {"status": status, "outcome": outcome, "closed_at": when, "current_step": None}
    row = session.execute(_CLOSE_CASE, {"case_id": state_row.id, **closing}).one()
    add_audit(session, row.id, event, actor, when, before=case_snapshot(state), after=case_snapshot({**state, **closing}), detail=detail)
    return to_case_record(row, parent_key_of(session, row))
