"""The driver: walks a case through its steps, asking an executor to do each step's side effects.

Routing is pure (``router``); side effects (people answering, messages, the register,
timers, linked cases) belong to the executor: the simulator in memory, the Prefect
flow for real. A replay asks the executor for the recorded result first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from . import expressions, router
from .case import CaseState
from .durations import parse_duration
from .errors import StepError
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


@dataclass(frozen=True)
class HumanPlan:
    """What a human step asks: who may answer, its title, and when it is due."""

    eligible: tuple[str, ...]
    title: str
    description: str
    started_at: datetime
    due_at: datetime | None
    escalate_to: tuple[str, ...]


class StepExecutor(Protocol):
    """Side effects of steps; implemented by the simulator and by the Prefect flow."""

    def now(self) -> datetime:
        """The executor's clock (simulated or real)."""

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        """The result recorded for this visit by an earlier execution, if any (replay)."""

    def begin(self, case: CaseState, step: StepSpec, visit: int, due_at: datetime | None, assignee: str | None) -> None:
        """A step starts (called only when it was not recorded)."""

    def human(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> dict[str, Any]:
        """Wait for people; return ``router.human_result(...)``."""

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        """Send (enqueue) the step's message; return what was sent."""

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        """Write case fields."""

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Open linked cases, one per inputs mapping; return their keys."""

    def wait(self, case: CaseState, step: WaitStep, visit: int, until: datetime) -> dict[str, Any]:
        """Wait durably until a time."""

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
    step_id: str | None = router.first_step(spec)
    for _ in range(max_steps):
        assert step_id is not None
        step = spec.step(step_id)
        visit = case.next_visit(step_id)
        case.visits[step_id] = visit
        case.active = {step_id}
        case.path.append(step_id)
        result = executor.recorded(case, step, visit)
        if result is None:
            result = _perform(spec, team, executor, case, step, visit)
            result = executor.complete(case, step, visit, result)
        case.results[step_id] = result
        if isinstance(step, RecordStep):
            _apply_record(case, result)
        outcome = router.route(spec, step, result)
        case.exits.append((step_id, router.exit_label(spec, step, result)))
        if isinstance(outcome, router.Finish):
            case.active = set()
            case.outcome = outcome.outcome
            case.status = "closed"
            executor.finish(case, outcome.outcome)
            return outcome.outcome
        step_id = outcome.step
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
    if is_human(step):
        human: HumanStep = step  # type: ignore[assignment]
        eligible = router.eligible_people(human, team, scope)
        due_at = now + parse_duration(human.due) if human.due else None
        escalate = human.escalate_to
        plan = HumanPlan(
            eligible=eligible,
            title=expressions.render(human.title, scope) if human.title else human.id,
            description=expressions.render(human.description, scope) if human.description else "",
            started_at=now,
            due_at=due_at,
            escalate_to=tuple(router.resolve_recipients((escalate,) if isinstance(escalate, str) else escalate or (), team, scope)),
        )
        executor.begin(case, step, visit, due_at, ",".join(eligible))
        return executor.human(case, human, visit, plan)
    executor.begin(case, step, visit, None, None)
    if isinstance(step, DecisionStep):
        chosen = router.choose_branch(step, scope)
        return {"exit": chosen.label, "next": chosen.target}
    if isinstance(step, EndStep):
        return {"outcome": step.outcome}
    if isinstance(step, NotifyStep):
        recipients = router.resolve_recipients(step.to, team, scope)
        return executor.notify(case, step, visit, recipients, scope)
    if isinstance(step, RecordStep):
        values = {name: expressions.resolve_value(value, scope) for name, value in step.set.items()}
        return executor.record(case, step, visit, values)
    if isinstance(step, StartStep):
        return executor.start(case, step, visit, start_inputs(step, scope))
    if isinstance(step, WaitStep):
        return executor.wait(case, step, visit, wait_until(step, scope, now))
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
        return now + parse_duration(step.duration)
    assert step.until is not None
    value = expressions.resolve_value(step.until, scope)
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime.combine(value, time(0, 0))
        else:
            text = str(value).strip()
            moment = datetime.fromisoformat(text) if "T" in text or " " in text else datetime.combine(date.fromisoformat(text), time(0))
    except ValueError:
        raise StepError(f"step {step.id!r}: until gave {value!r}, not a date or datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo or timezone.utc)
    return moment


def case_timezone(spec: ProcessSpec) -> ZoneInfo:
    """The process's own timezone (its schedule's), UTC when it has none."""
    return ZoneInfo(spec.schedule.timezone if spec.schedule else "UTC")
