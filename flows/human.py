"""Human steps and timers inside a flow run: waiting through Prefect's pause/suspend, answers into the register."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run

from aftercare.engine import router
from aftercare.engine.case import CaseState
from aftercare.engine.driver import HumanPlan
from aftercare.engine.errors import AnswerError
from aftercare.engine.register import AnswerRecord
from aftercare.engine.spec import HumanStep, WaitStep

from .run_input import answer_from_input, answer_model, describe

if TYPE_CHECKING:
    from .executor import PrefectExecutor

#: How long a person may take before Prefect itself gives up on a paused run.
PAUSE_TIMEOUT = int(timedelta(days=365).total_seconds())
POLL_SECONDS = 1
TIMED_OUT_EVENT = "step.timed_out"
REFUSED_EVENT = "answer.refused"


def pause_prefix(step_id: str, visit: int) -> str:
    """The start of every pause key of one visit of a step (Prefect keys take a-z, 0-9 and dashes)."""
    return f"{step_id.replace('_', '-')}-v{visit}-a"


def pause_key(step_id: str, visit: int, attempt: int) -> str:
    """The stable key of one wait for an answer: replays find the same key."""
    return f"{pause_prefix(step_id, visit)}{attempt}"


def as_answers(records: list[AnswerRecord]) -> list[router.Answer]:
    """Register answers as the router's answers."""
    return [
        router.Answer(by=r.person, decision=r.decision, comment=r.comment or "", fields=dict(r.fields), answered_at=r.answered_at)  # type: ignore[arg-type]
        for r in records
    ]


def wait_for_decision(executor: PrefectExecutor, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> dict[str, Any]:
    """Collect answers through pause/suspend until the router says the step is decided."""
    register = executor.register
    team = executor.library.team
    note = ""
    while True:
        answers = as_answers(register.answers(case.key, step.id, visit))
        decision = router.tally(step, answers)
        if decision is not None:
            return router.human_result(step, answers, decision)
        events = [e for e in register.audit_events(case.key) if (e.after or {}).get("step") == step.id and (e.after or {}).get("visit") == visit]
        if any(e.event == TIMED_OUT_EVENT for e in events) and step.on_timeout:
            return router.human_result(step, answers, "timeout")
        # Each wait used one pause key: one per answer taken, one per answer the flow refused.
        attempt = len(answers) + sum(e.event == REFUSED_EVENT and "key" in (e.after or {}) for e in events)
        model = answer_model(step, plan, team).with_initial_data(description=describe(case, step, plan, team, answers, note))
        key = pause_key(step.id, visit, attempt)
        received = _wait(executor, step, plan, model, key)
        if received is None:
            register.audit(case.key, TIMED_OUT_EVENT, "aftercare", after={"step": step.id, "visit": visit}, detail=f"{step.id} #{visit}: due passed")
            continue
        person, given_decision, comment, fields = answer_from_input(step, received)
        try:
            answer = router.accept_answer(
                step, by=person, decision=given_decision, comment=comment, fields=fields,
                eligible=plan.eligible, earlier=answers, people=list(team.people), answered_at=executor.now(),
            )
            _record_answer(executor, case, step, visit, answer, answers)
            note = ""
        except AnswerError as error:
            register.audit(case.key, REFUSED_EVENT, person, after={"step": step.id, "visit": visit, "key": key}, detail=str(error))
            note = f"The last answer was refused: {error}"


def _wait(executor: PrefectExecutor, step: HumanStep, plan: HumanPlan, model: Any, key: str) -> Any | None:
    """One wait for input: suspend (served runs) or pause (foreground); None when the due passed first."""
    if executor.suspend:
        return suspend_flow_run(wait_for_input=model, timeout=PAUSE_TIMEOUT, key=key)
    timeout = PAUSE_TIMEOUT
    if step.on_timeout and plan.due_at is not None:
        timeout = max(1, int((plan.due_at - executor.now()).total_seconds()))
    try:
        return pause_flow_run(wait_for_input=model, timeout=timeout, poll_interval=POLL_SECONDS, key=key)
    except FlowPauseTimeout:
        _resume_self()
        return None


def _resume_self() -> None:
    """After a pause timed out in the foreground, put the run back to Running."""
    from prefect import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    context = FlowRunContext.get()
    if context and context.flow_run:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(context.flow_run.id, Running(), force=True)


def _record_answer(
    executor: PrefectExecutor, case: CaseState, step: HumanStep, visit: int, answer: router.Answer, earlier: list[router.Answer]
) -> None:
    """Write one answer as a task named after the step; the register decides with the router's tally."""

    def decide(records: list[AnswerRecord]) -> dict[str, Any] | None:
        answers = as_answers(records)
        decision = router.tally(step, answers)
        return router.human_result(step, answers, decision) if decision else None

    def write() -> None:
        executor.register.answer(
            case.key, step.id, visit, person=answer.by, decision=answer.decision, comment=answer.comment,
            fields=dict(answer.fields), answered_at=answer.answered_at, decide=decide,
        )

    task(name=step.id, task_run_name=f"{step.id} #{visit}: {answer.by} {answer.decision}", cache_policy=NO_CACHE, persist_result=False)(write)()


def sleep_until(executor: PrefectExecutor, case: CaseState, step: WaitStep, visit: int, until: datetime) -> None:
    """A durable timer: a served run suspends (the timers flow resumes it when due); a foreground run sleeps."""
    from .executor import sleep_seconds, wait_a_little

    if sleep_seconds(until) <= 0:
        return
    if executor.suspend:
        suspend_flow_run(timeout=PAUSE_TIMEOUT, key=f"wait-{step.id.replace('_', '-')}-v{visit}")
    wait_a_little(sleep_seconds(until))
