"""Answers of people to human steps, decided under a row lock by the router's rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import AnswerError
from .column_types import check_json, require_utc
from .history import add_audit
from .models import Approval, Case, StepRun
from .records import OPEN_STEP_STATUSES, STEP_DONE, AnswerOutcome, AnswerRecord
from .rows import case_row, to_answer_record, to_step_record
from .steps import step_row
from .store import Store, utc_now

Decide = Callable[[list[AnswerRecord]], "str | Mapping[str, Any] | None"]
"""Given every answer so far (oldest first): the step's decision, or its whole result
(a mapping holding ``decision``, as the router's ``human_result`` builds it), or ``None``
to keep waiting."""


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
    ) -> AnswerOutcome:
        """Record a person's answer to a human step and decide the step if it can be.

        In one transaction, with the step run locked (``SELECT ... FOR UPDATE`` on
        PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): refuse a decided step or a
        second answer of the same person, insert the answer, call ``decide`` with
        every answer so far, and when it returns a decision finish the step with
        the result ``{**fields of every answer (in order), "decision": ...,
        "decided_by": person, "comment": ..., "answers": [...]}``.
        Two people answering a quorum-1 step at once get one decision; the other
        gets AnswerError. A refusal is written to the audit (``answer.refused``).

        Args:
            key: the case.
            step_id: the human step.
            visit: the visit answered; ``None`` means the latest.
            person: who answers (the caller checks that the step names them).
            decision: ``approve``, ``reject`` or ``submit``.
            comment: their comment.
            fields: the form's values.
            answered_at: when; now by default.
            decide: the router's quorum/veto rule: answers → decision or ``None``.

        Raises:
            AnswerError: the step is already decided, or the person already answered.
            NotFoundError: no such case, or the step has no run to answer.
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
                )
                return _record(session, case, step, [*earlier, answer], decide)
        with self._write() as session:
            case = case_row(session, key)
            add_audit(session, case.id, "answer.refused", person, when, detail=refusal)
        raise AnswerError(refusal)

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
    answers = [to_answer_record(a, step, case.key) for a in approvals]
    decided = decide(list(answers))
    if isinstance(decided, Mapping):
        outcome: str | None = str(decided["decision"])
        result = dict(decided)
    else:
        outcome = decided
        result = _decided_result(decided, answers) if decided is not None else {}
    if outcome is not None:
        step.status, step.result, step.finished_at = STEP_DONE, result, answer.answered_at
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


def _decided_result(decision: str, answers: list[AnswerRecord]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for answer in answers:
        merged.update(answer.fields)
    last = answers[-1]
    return {
        **merged,
        "decision": decision,
        "decided_by": last.person,
        "comment": last.comment,
        "answers": [
            {
                "person": a.person,
                "decision": a.decision,
                "comment": a.comment,
                "fields": a.fields,
                "answered_at": a.answered_at.isoformat(),
            }
            for a in answers
        ],
    }

