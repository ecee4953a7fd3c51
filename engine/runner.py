"""The case runner: walks a case through its steps, asking an executor to do each step's side effects.

Routing is pure (:mod:`.router`), human steps' rules are :mod:`.answers`, results are built
by :mod:`.results`; side effects (people answering, messages, the register, timers, linked
cases) belong to the executor: the simulator in memory, the Prefect flow for real. A
replay asks the executor for the recorded result first.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol

from . import expressions, router
from .answers import HumanPlan, plan_human_step
from .case import CaseState
from .durations import due_after
from .errors import StepError
from .results import decision_result, end_result
from .spec import (
    DecisionStep,
    EndStep,
    HumanStep,
    NotifyStep,
    ProcessSpec,
    RecordStep,
    StartStep,
    StepSpec,
    WaitStep,
    is_human,
)
from .team import TeamSpec
from .values import parse_moment


class StepExecutor(Protocol):
    """Side effects of steps; implemented by the simulator and by the Prefect flow."""

    def now(self) -> datetime:
        """The executor's clock (simulated or real)."""

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        """The result recorded for this visit by an earlier execution, if any (replay)."""

    def began(self, case: CaseState, step: StepSpec, visit: int) -> datetime | None:
        """When an earlier execution began this visit (a replay): its deadlines count from then."""

    def begin(self, case: CaseState, step: StepSpec, visit: int, plan: HumanPlan | None) -> None:
        """A step starts (called only when it was not recorded); ``plan`` for a human step."""

    def human(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> dict[str, Any]:
        """Wait for people (:func:`aftercare.engine.answers.collect`); return the step's result."""

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        """Send (enqueue) the step's message; return :func:`~aftercare.engine.results.notify_result`."""

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        """Write case fields; return :func:`~aftercare.engine.results.record_result`."""

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Open linked cases, one per inputs mapping; return :func:`~aftercare.engine.results.start_result`."""

    def wait(self, case: CaseState, step: WaitStep, visit: int, until: datetime) -> dict[str, Any]:
        """Wait durably until a time; return :func:`~aftercare.engine.results.wait_result`."""

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        """Persist a finished step; returns the result as stored (the first one on a replay)."""

    def finish(self, case: CaseState, outcome: str) -> None:
        """The case ended with an outcome."""


def run_case(spec: ProcessSpec, team: TeamSpec, executor: StepExecutor, case: CaseState, *, max_steps: int = 10_000) -> str:
    """Drive a case from its first step to its outcome.

    Args:
        spec: the process definition.
        team: the team, for assignees and recipients.
        executor: does each step's side effects.
        case: the case; its inputs and identity set, results empty.
        max_steps: a guard against a runaway loop of automatic steps.

    Returns:
        The case's outcome.
    """
    case.active = router.start(spec)
    for _ in range(max_steps):
        step = spec.step(router.next_active(spec, case.active))
        visit = case.next_visit(step.id)
        case.visits[step.id] = visit
        case.path.append(step.id)
        result = executor.recorded(case, step, visit)
        if result is None:
            result = _perform(spec, team, executor, case, step, visit)
            result = executor.complete(case, step, visit, result)
        case.results[step.id] = result
        if isinstance(step, RecordStep):
            _apply_record(case, result)
        move = router.route(spec, step, result)
        case.exits.append((step.id, move.label))
        case.active = router.advance(case.active, step, move)
        if isinstance(move, router.Finish):
            case.outcome = move.outcome
            case.status = "closed"
            executor.finish(case, move.outcome)
            return move.outcome
    raise StepError(f"case {case.key} ran {max_steps} steps without ending; a loop of automatic steps?")


def _apply_record(case: CaseState, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name == "status":
            case.status = str(value)
        elif not name.startswith("_"):
            case.fields[name] = value


def _perform(
    spec: ProcessSpec, team: TeamSpec, executor: StepExecutor, case: CaseState, step: StepSpec, visit: int
) -> dict[str, Any]:
    now = executor.now()
    scope = case.scope(now)
    start = executor.began(case, step, visit) or now  # a replay keeps the first execution's deadlines
    if is_human(step):
        human: HumanStep = step  # type: ignore[assignment]
        plan = plan_human_step(human, team, scope, started_at=start)
        executor.begin(case, step, visit, plan)
        return executor.human(case, human, visit, plan)
    executor.begin(case, step, visit, None)
    if isinstance(step, DecisionStep):
        return decision_result(router.choose_branch(step, scope))
    if isinstance(step, EndStep):
        return end_result(step)
    if isinstance(step, NotifyStep):
        recipients = router.resolve_recipients(step.to, team, scope)
        return executor.notify(case, step, visit, recipients, scope)
    if isinstance(step, RecordStep):
        values = {name: expressions.resolve_value(value, scope) for name, value in step.set.items()}
        return executor.record(case, step, visit, values)
    if isinstance(step, StartStep):
        return executor.start(case, step, visit, start_inputs(step, scope))
    if isinstance(step, WaitStep):
        return executor.wait(case, step, visit, wait_until(step, scope, start))
    raise StepError(f"step {step.id!r}: unknown step type")


def start_inputs(step: StartStep, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """The inputs of each case a start step opens: one, or one per item of ``for_each``."""
    if step.for_each is None:
        return [expressions.resolve_value(dict(step.inputs), scope)]
    items = expressions.resolve_value(step.for_each, scope)
    if items is None or items == "":
        items = []
    if isinstance(items, str):
        items = [line.strip() for line in items.splitlines() if line.strip()]
    if not isinstance(items, (list, tuple)):
        raise StepError(f"step {step.id!r}: for_each gave {type(items).__name__}, not a list")
    return [expressions.resolve_value(dict(step.inputs), {**scope, "item": item}) for item in items]


def wait_until(step: WaitStep, scope: dict[str, Any], now: datetime) -> datetime:
    """The moment a wait step ends."""
    if step.duration:
        return due_after(now, step.duration)
    assert step.until is not None
    value = expressions.resolve_value(step.until, scope)
    try:
        moment = parse_moment(value)
    except ValueError as error:
        raise StepError(f"step {step.id!r}: until gave {value!r}, not a date or datetime") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo or timezone.utc)
    return moment

