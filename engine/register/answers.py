"""Answers of people to human steps, decided under a row lock by the engine's rule; refused answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clock import utc_now
from ..errors import AnswerError
from .column_types import check_json, require_utc
from .codes import REFUSED_EVENT, void_stale_codes
from .history import add_audit
from .models import Approval, Case, StepRun
from .records import OPEN_STEP_STATUSES, STEP_DONE, AnswerOutcome, AnswerRecord
from .rows import case_row, to_answer_record, to_step_record
from .steps import pause_attempt_at_least, step_row
from .store import Store

OPERATOR_EVENT = "answer.operator"
"""The audit event of an answer given at the operator's shell: who the operating-system user was."""

Decide = Callable[[list[AnswerRecord]], Mapping[str, Any] | None]
"""Given every answer so far (oldest first): the step's whole result, a mapping holding
``decision`` (the engine builds it), or ``None`` to keep waiting."""


class AnswerStore(Store):
    """The answer part of :class:`Register`."""

    def answer(
        self,
        key: str,
        step_id: str,
        visit: int | None,
        *,
        person: str,
        decision: str,
        comment: str | None = None,
        fields: Mapping[str, Any] | None = None,
        answered_at: datetime | None = None,
        decide: Decide,
        pause_attempt: int | None = None,
        operator: str | None = None,
    ) -> AnswerOutcome:
        """Record a person's answer to a human step and decide the step if it can be.

        In one transaction, with the step run locked (``SELECT ... FOR UPDATE`` on
        PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): refuse a decided step or a
        second answer of the same person, insert the answer, call ``decide`` with
        every answer so far, and when it returns a result finish the step with it
        (the register stores the result as given; it builds none of its own).
        Two people answering a quorum-1 step at once get one decision; the other
        gets AnswerError. A refusal is written to the audit (``answer.refused``),
        with ``pause_attempt`` raised as for an answer recorded (the refused
        answer used up its wait as well).

        Args:
            key: the case.
            step_id: the human step.
            visit: the visit answered; ``None`` means the latest.
            person: who answers (the caller checks that the step names them).
            decision: ``approve``, ``reject`` or ``submit``.
            comment: their comment.
            fields: the form's values.
            answered_at: when; now by default.
            decide: the engine's quorum/veto rule: answers → the step's result
                (holding ``decision``), or ``None`` to keep waiting.
            pause_attempt: the waits for input the flow run has used on this visit,
                this answer's included; the step run keeps the highest count given
                (whether the answer is recorded or refused).
            operator: the operating-system user, for an answer given at the operator's
                shell (kept with the answer and audited as ``answer.operator``).

        Raises:
            AnswerError: the step is already decided, or the person already answered.
            NotFoundError: no such case, or the step has no run to answer.
            ValueError: ``decide`` returned a result without ``decision``, or one
                that is not JSON; nothing is recorded then.
        """
        when = require_utc(answered_at, "answered_at") if answered_at else utc_now()
        check_json(dict(fields or {}), f"{person}'s answer to step '{step_id}'")
        with self._write() as session:
            case = case_row(session, key)
            step = step_row(session, case.id, step_id, visit, lock=True)
            earlier = _approval_rows(session, step.id)
            if step.status not in OPEN_STEP_STATUSES:
                decided = (step.result or {}).get("decision", step.status)
                refusal = (
                    f"{person} cannot answer step '{step_id}' of {key}: "
                    f"it is already decided ({decided})"
                )
            elif any(a.person == person for a in earlier):
                refusal = f"{person} already answered step '{step_id}' of {key}"
            else:
                answer = Approval(
                    step_run_id=step.id,
                    person=person,
                    decision=decision,
                    comment=comment,
                    fields=dict(fields or {}),
                    answered_at=when,
                    operator=operator,
                )
                pause_attempt_at_least(step, pause_attempt)
                return _record(session, case, step, [*earlier, answer], decide)
            # The refusal is kept with the pause it used up, in this transaction.
            pause_attempt_at_least(step, pause_attempt)
            after = {"step": step_id, "visit": step.visit}
            add_audit(session, case.id, REFUSED_EVENT, person, when, after=after, detail=refusal)
        raise AnswerError(refusal)

    def refuse_answer(
        self,
        key: str,
        step_id: str,
        visit: int | None,
        *,
        person: str,
        reason: str,
        via: str | None = None,
        pause_attempt: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record that an answer to a human step was refused, in one transaction.

        Writes the audit event ``answer.refused`` (actor ``person``, after
        ``{"step", "visit"}`` and ``"via"`` when given, detail ``reason``) and, when
        ``pause_attempt`` is given, raises the step run's ``pause_attempt`` to it
        (the refused answer used up a wait for input).

        Args:
            key: the case.
            step_id: the human step.
            visit: the visit answered; ``None`` means the latest.
            person: who answered.
            reason: why the answer was refused, for people.
            via: where the answer came from (``cli``, ``ui``), if known.
            pause_attempt: the waits for input the flow run has used on this visit,
                this refused answer's included; the highest count given is kept.
            at: when; now by default.

        Raises:
            NotFoundError: no such case, or the step has no run.
        """
        when = require_utc(at, "at") if at else utc_now()
        with self._write() as session:
            case = case_row(session, key)
            step = step_row(session, case.id, step_id, visit, lock=pause_attempt is not None)
            pause_attempt_at_least(step, pause_attempt)
            after: dict[str, Any] = {"step": step.step_id, "visit": step.visit}
            if via is not None:
                after["via"] = via
            add_audit(session, case.id, REFUSED_EVENT, person, when, after=after, detail=reason)

    def answers(self, key: str, step_id: str, visit: int | None = None) -> list[AnswerRecord]:
        """The answers to a step visit (``None``: the latest visit), oldest first.

        Raises:
            NotFoundError: no such case or step run.
        """
        with self._read() as session:
            case = case_row(session, key)
            step = step_row(session, case.id, step_id, visit)
            return [to_answer_record(a, step, case.key) for a in _approval_rows(session, step.id)]


def _record(
    session: Session, case: Case, step: StepRun, approvals: list[Approval], decide: Decide
) -> AnswerOutcome:
    # The last approval is the new one; the step row is locked by the caller.
    answer = approvals[-1]
    session.add(answer)
    session.flush()
    if answer.operator:
        add_audit(
            session, case.id, OPERATOR_EVENT, answer.person, answer.answered_at,
            after={"step": step.step_id, "visit": step.visit, "os_user": answer.operator},
            detail=f"{answer.person} answered at the shell of the operating-system user {answer.operator}",
        )
    answers = [to_answer_record(a, step, case.key) for a in approvals]
    result = decide(list(answers))
    outcome: str | None = None
    if result is not None:
        if not isinstance(result, Mapping) or "decision" not in result:
            raise ValueError(
                f"deciding step '{step.step_id}' gave {result!r}; "
                "a decided step's result is a mapping holding 'decision'"
            )
        check_json(dict(result), f"result of step '{step.step_id}'")
        outcome = str(result["decision"])
        step.status, step.result, step.finished_at = STEP_DONE, dict(result), answer.answered_at
        add_audit(
            session,
            case.id,
            "step.decided",
            answer.person,
            answer.answered_at,
            after={"step": step.step_id, "visit": step.visit, "decision": outcome},
            detail=f"{step.step_id} #{step.visit}: {outcome}",
        )
        session.flush()
        void_stale_codes(session, case.id, step.step_id, step.visit, answer.answered_at)
    session.flush()
    return AnswerOutcome(
        answer=answers[-1],
        answers=tuple(answers),
        decision=outcome,
        step=to_step_record(step, case.key),
    )


def _approval_rows(session: Session, step_run_id: int) -> list[Approval]:
    return list(
        session.scalars(
            select(Approval)
            .where(Approval.step_run_id == step_run_id)
            .order_by(Approval.answered_at, Approval.id)
        )
    )
