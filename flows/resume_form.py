"""A waiting human step's answers from a Prefect run's resume form: one pause (foreground) or suspension (served) per wait.

Each wait is under a key replays find again: the step (or instance row), the visit, and the
register's ``pause_attempt`` of the visit, advanced in the same transaction that records or
refuses the answer the pause brought. A case's run uses it for a step that waits alone; a
form run (:mod:`.form_flow`) for a step that waits beside others.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pydantic
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run

from aftercare.engine.answers import Answer, HumanPlan, Submission, decide, from_rows, is_late
from aftercare.engine.case import CaseState
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AnswerError, CaseCancelled, StepError
from aftercare.engine.register import CASE_CANCELLED, CASE_FAILED, AnswerOutcome, Register, StepRunRecord
from aftercare.engine.spec import HumanStep
from aftercare.engine.team import TeamSpec

from . import events
from .run_input import PERSON_FIELD, answer_from_input, answer_model, code_from_input, describe
from .waiting_tags import sync_waiting_tags

#: How long a person may take before Prefect itself gives up on a suspended run.
PAUSE_TIMEOUT = int(timedelta(days=365).total_seconds())
POLL_SECONDS = 1.0
"""How often a foreground run looks for its answer (Prefect's own default is 10 s)."""


def pause_prefix(step_id: str, visit: int) -> str:
    """The start of every pause key of one visit of a step (Prefect keys take a-z, 0-9 and dashes)."""
    return f"{re.sub(r'[^a-z0-9-]', '-', step_id.lower())}-v{visit}-a"


def pause_key(step_id: str, visit: int, attempt: int) -> str:
    """The stable key of one wait for an answer: replays find the same key."""
    return f"{pause_prefix(step_id, visit)}{attempt}"


def stop_if_cancelled(register: Register, key: str) -> None:
    """A waiting run ends when its case was cancelled (``aftercare cancel``, the UI's Cancel).

    Raises:
        CaseCancelled: the register says the case is cancelled.
    """
    if register.case(key).status == CASE_CANCELLED:
        raise CaseCancelled(f"{key} is cancelled; its run stops here")


class ResumeForm:
    """A waiting human step's answers from the run's resume form (the engine's ``AnswerSource``).

    Each wait is one Prefect pause (a foreground run) or suspension (a served run, whose
    process then exits; the answer runs the flow again from the top, and the replay finds
    the answer under the same pause key).
    """

    def __init__(
        self, register: Register, team: TeamSpec, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan, *,
        suspend: bool, row: str | None = None, case_run: str | None = None, resend: Callable[[str, str], object] | None = None,
    ) -> None:
        """``suspend``: a served run (suspended while it waits) rather than a foreground one (paused).
        ``row``: the register's step id the answers go to (a ``for_each`` instance's, ``step[2]``); the step's own by default.
        ``case_run``: the case's flow run, for the events (a form run is another run).
        ``resend``: sends a person the waiting message again, under an outbox kind (with a new answer code)."""
        self.subject = events.Subject(case, case_run, team, case.parent)
        self.team = team
        self.suspend = suspend
        self.row = row or step.id
        self.register = register
        self.case = case
        self.step = step
        self.visit = visit
        self.plan = plan
        self.run: StepRunRecord | None = None
        self.answers: list[Answer] = []
        self.attempt = 0
        self.note = ""
        self.resend = resend
        self.operator: str | None = None
        """The operating-system user of the answer being taken, when an operator's token came with it."""

    def now(self) -> datetime:
        clock = utc_now()
        if self.run is not None and self.run.timed_out_at is not None:
            # The step was marked timed out (its timer run, or a scripted run's
            # `timeout: true`): its due counts as passed whatever this machine's clock says.
            return max(clock, self.run.timed_out_at, self.run.due_at or clock)
        return clock

    def recorded(self) -> list[Answer]:
        self.run = self.register.step_run(self.case.key, self.row, self.visit)
        self.answers = from_rows(self.register.answers(self.case.key, self.row, self.visit))
        return list(self.answers)

    def next(self) -> Submission | None:
        assert self.run is not None
        self.attempt = self.run.pause_attempt
        team = self.team
        model = answer_model(self.step, self.plan, team).with_initial_data(
            description=describe(self.case, self.step, self.plan, team, self.answers, self.note)
        )
        key = pause_key(self.row, self.visit, self.attempt)
        received: Any
        try:
            if self.suspend:
                received = suspend_flow_run(wait_for_input=model, timeout=PAUSE_TIMEOUT, key=key)
            else:
                received = pause_in_foreground(model, key, self._timed_out)
        except pydantic.ValidationError as error:
            self._misfit(error)
            return None  # refused: the answers are read again and the form offered as it is now, under the next key
        if received is None:
            if self.run.timed_out_at is None:
                self.register.mark_timed_out(self.run.id, utc_now())
            return None
        person, decision, comment, fields = answer_from_input(self.step, received)
        self.operator = None
        if self.team.answer_codes and not self._code_accepted(person, code_from_input(received)):
            return None  # refused: the answers are read again and the form offered under the next key
        return Submission(by=person, decision=decision, comment=comment, fields=fields)

    def _code_accepted(self, person: str, code: str | None) -> bool:
        """Whether the answer's code is the person's (or an operator's token); a refusal is audited, told in the form and as an event.

        The register checks it against the step row's people now (a person reassigned away
        holds a void code) and counts wrong codes; one too many voids the person's code and
        a new one goes out in a new waiting message.
        """
        when = utc_now()
        check = self.register.check_answer_code(
            self.case.key, self.row, self.visit, person, code or "", via="prefect", pause_attempt=self.attempt + 1, at=when
        )
        if check.accepted:
            self.operator = check.operator
            return True
        self.note = f"The last answer was refused: {check.reason}"
        self._refused(person, check.reason, when)
        if check.replaced and self.resend is not None:
            self.resend(person, f"waiting-code-a{self.attempt + 1}")
        return False

    def _timed_out(self) -> bool:
        """Whether a foreground pause should end without an answer: the step timed out.

        Raises:
            StepError: the case was failed from outside while it waited (``aftercare run``'s
                feeder refused its scripted answer); the run stops here rather than only by
                the feeder's interrupt, which was seen to be lost.
        """
        stop_if_cancelled(self.register, self.case.key)
        if self.register.case(self.case.key).status == CASE_FAILED:
            run = self.register.step_run(self.case.key, self.row, self.visit)
            reason = (run.result or {}).get("error") if run is not None else None
            raise StepError(str(reason or f"case {self.case.key} failed while {self.step.id!r} waited"))
        if not self.step.on_timeout or self.plan.due_at is None:
            return False  # a passed due never decides such a step: only an answer ends the wait
        run = self.register.step_run(self.case.key, self.row, self.visit)
        if run is not None:
            self.run = run
        return is_late(self.step, self.plan.due_at, self.now())

    def take(self, answer: Answer) -> None:
        step, visit = self.step, self.visit

        def decided(rows: list[Any]) -> dict[str, Any] | None:
            return decide(step, from_rows(rows), due_at=self.plan.due_at, now=answer.answered_at or utc_now())

        def write() -> AnswerOutcome:
            return self.register.answer(
                self.case.key, self.row, visit, person=answer.by, decision=answer.decision, comment=answer.comment,
                fields=dict(answer.fields), answered_at=answer.answered_at, decide=decided, pause_attempt=self.attempt + 1,
                operator=self.operator,
            )

        try:
            recorded: AnswerOutcome = task(
                name=step.id, task_run_name=f"{step.id} #{visit}: {answer.by} {answer.decision}", cache_policy=NO_CACHE, persist_result=False
            )(write)()
        except AnswerError as error:  # answered or decided meanwhile: the register audited the refusal
            self.note = f"The last answer was refused: {error}"
            self._refused(answer.by, str(error), answer.answered_at or utc_now())
            return
        self.note = ""
        given = recorded.answer
        events.emit(events.step_answered(
            self.subject, self.row, visit, person=given.person, decision=given.decision, comment=given.comment,
            fields=dict(given.fields), answered_at=given.answered_at, decided=recorded.decision,
        ))
        sync_waiting_tags(self.register, self.case.key)  # who answered is no longer waited for

    def refuse(self, submission: Submission, error: AnswerError) -> None:
        when = utc_now()
        self.register.refuse_answer(
            self.case.key, self.row, self.visit, person=submission.by, reason=str(error),
            via="prefect", pause_attempt=self.attempt + 1, at=when,
        )
        self.note = f"The last answer was refused: {error}"
        self._refused(submission.by, str(error), when)

    def _misfit(self, error: pydantic.ValidationError) -> None:
        """An answer given in a form the step has since changed (handed on, people gone): refused, audited, told in the form.

        A replay reads the answer with the form as it is now; the person the old form offered
        may no longer be in its choices. The run never fails for it.
        """
        person = next((str(e["input"]) for e in error.errors() if e["loc"] and e["loc"][0] == PERSON_FIELD), "someone")
        if self.team.answer_codes and person not in self.plan.eligible:
            self._code_accepted(person, None)  # handed on: the register refuses and audits it as it does a code of someone not named
            return
        fields = ", ".join(sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})) or "the form"
        reason = f"the answer of {person!r} no longer fits the form of {self.step.id!r} ({fields}); it names {', '.join(self.plan.eligible)} now"
        when = utc_now()
        self.register.refuse_answer(
            self.case.key, self.row, self.visit, person=person, reason=reason, via="prefect", pause_attempt=self.attempt + 1, at=when,
        )
        self.note = f"The last answer was refused: {reason}"
        self._refused(person, reason, when)

    def _refused(self, person: str, reason: str, at: datetime) -> None:
        events.emit(events.answer_refused(self.subject, self.row, self.visit, person=person, reason=reason, via="prefect", at=at))


def pause_in_foreground(model: Any, key: str, woken: Callable[[], bool]) -> Any | None:
    """Pause this (foreground) run for input until it is resumed, or ``woken()`` says to stop waiting.

    Prefect's ``pause_flow_run`` (prefect/flow_runs.py) with its own polling loop, every
    :data:`POLL_SECONDS`, that also asks ``woken()``: a step that times out ends the pause
    (its due passed, or a scripted run marked it timed out in the register), the run is
    put back to Running and None returned. A replayed key returns its answer.
    """
    from prefect import get_client
    from prefect.context import FlowRunContext
    from prefect.input.run_input import keyset_from_paused_state, run_input_subclass_from_type
    from prefect.states import Paused, Running
    from prefect.utilities.engine import propose_state_sync

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("a human step must wait inside a Prefect flow run")
    flow_run_id: UUID = context.flow_run.id
    proposed: Any = Paused(timeout_seconds=PAUSE_TIMEOUT, reschedule=False, pause_key=key)
    input_type: Any = run_input_subclass_from_type(model)
    keyset: Any = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = keyset
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client=client, state=proposed, flow_run_id=flow_run_id)
        if state.is_running():  # this pause happened before and was answered: a replay
            return input_type.load(keyset)
        if not state.is_paused():
            raise RuntimeError(f"the run could not pause for input: {state}")
        input_type.save(keyset)
        while True:
            time.sleep(POLL_SECONDS)
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_running():
                return input_type.load(keyset)
            if woken():
                client.set_flow_run_state(flow_run_id, Running(), force=True)
                return None


__all__ = ["PAUSE_TIMEOUT", "POLL_SECONDS", "ResumeForm", "pause_in_foreground", "pause_key", "pause_prefix", "stop_if_cancelled"]
