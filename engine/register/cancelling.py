"""Cancelling a case: its waiting steps withdrawn, the linked cases it waits for cancelled too, in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clock import utc_now
from ..errors import AnswerError
from .cases import close_in
from .column_types import require_utc
from .models import Case, StepRun
from .records import CASE_CANCELLED, OPEN_STEP_STATUSES, CancelOutcome
from .rows import case_state_row
from .steps import withdraw_row
from .store import Store


class CancelStore(Store):
    """The cancelling part of :class:`Register`."""

    def cancel_case(self, key: str, *, by: str, reason: str, at: datetime | None = None) -> CancelOutcome:
        """Cancel an open case: status and outcome ``cancelled``, nothing of it left waiting.

        In one transaction: every open step run of the case is withdrawn (``step.withdrawn``,
        with the reason), the case closes with status and outcome ``cancelled`` (the audit
        event ``case.cancelled`` names ``by`` and keeps ``reason``), and each open linked case
        it waits for (opened by one of the steps withdrawn now) is cancelled the same way by
        the same person, with the reason ``"KEY was cancelled: REASON"``, recursively.

        Nothing else knows about cancelling: escalations, reminders, timeouts and recovery
        look only at open cases and open steps, so a cancelled case is left alone.

        Args:
            key: the case.
            by: who cancels (a person id, or ``prefect-ui``), for the audit.
            reason: why, in their words.
            at: when; now by default.

        Raises:
            NotFoundError: no such case.
            AnswerError: the case is closed already (done, failed or cancelled): a second
                cancel is refused, never done twice.
        """
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            return _cancel(session, key, by, reason, when)


def _cancel(session: Session, key: str, by: str, reason: str, when: datetime) -> CancelOutcome:
    state = case_state_row(session, key, lock=True)
    if state.closed_at is not None:
        already = "already " if state.status == CASE_CANCELLED else ""
        raise AnswerError(f"{key} is {already}{state.status} (outcome {state.outcome}); nothing to cancel")
    open_runs = session.scalars(
        select(StepRun)
        .where(StepRun.case_id == state.id, StepRun.status.in_(OPEN_STEP_STATUSES))
        .order_by(StepRun.started_at, StepRun.id)
        .with_for_update()
    ).all()
    withdrawn = tuple(withdraw_row(session, run, key, reason, when, by) for run in open_runs)
    session.flush()
    record = close_in(session, key, CASE_CANCELLED, CASE_CANCELLED, when, by, "case.cancelled", detail=reason)
    waited_for = {run.step_id for run in withdrawn}
    children: list[CancelOutcome] = []
    if waited_for:
        child_keys = session.scalars(
            select(Case.key)
            .where(Case.parent_case_id == state.id, Case.started_by_step.in_(sorted(waited_for)), Case.closed_at.is_(None))
            .order_by(Case.id)
        ).all()
        children = [_cancel(session, child, by, f"{key} was cancelled: {reason}", when) for child in child_keys]
    return CancelOutcome(case=record, withdrawn=withdrawn, children=tuple(children))
