"""The case runner: walks a case through its steps, asking an executor to do each step's side effects.

Routing is pure (:mod:`.router`), human steps' rules are :mod:`.answers`, results are built
by :mod:`.results`; side effects (people answering, messages, the register, timers, linked
cases) belong to the executor: the simulator in memory, the Prefect flow for real. A
replay asks the executor for the recorded result first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from . import expressions, kinds, router
from .answers import HumanPlan, plan_human_step
from .calendars import BusinessCalendar, calendar_of, case_due
from .case import CaseState
from .durations import WorkingTime, due_after
from .errors import StepError
from .results import call_error, decision_result, end_result
from .spec import (
    ApprovalStep,
    CallStep,
    DecisionStep,
    EndStep,
    HumanStep,
    JoinStep,
    NotifyStep,
    ParallelStep,
    ProcessSpec,
    RecordStep,
    StartStep,
    StepSpec,
    WaitStep,
    is_human,
    is_split,
    needed,
)
from .structure import Structure, analyse
from .team import TeamSpec
from .waiting import Event, Unit, Waiting, settle
from .values import parse_moment


class StepExecutor(Protocol):
    """Side effects of steps; implemented by the simulator and by the Prefect flow."""

    def now(self) -> datetime:
        """The executor's clock (simulated or real)."""

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        """The result recorded for this visit by an earlier execution, if any (replay)."""

    def rank(self, case: CaseState, step: StepSpec, visit: int) -> float:
        """The order earlier executions finished this recorded visit in (a replay takes waits in that order)."""

    def began(self, case: CaseState, step: StepSpec, visit: int) -> datetime | None:
        """When an earlier execution began this visit (a replay): its deadlines count from then."""

    def begin(self, case: CaseState, step: StepSpec, visit: int, plan: HumanPlan | None) -> None:
        """A step starts (called only when it was not recorded); ``plan`` for a human step."""

    def waits(self, case: CaseState, waiting: Waiting) -> None:
        """A step starts waiting (people, a timer, linked cases): tell people, set timers, offer forms."""

    def next_event(self, case: CaseState, waiting: Sequence[Waiting]) -> Event:
        """Wait until something happens to one of the waiting steps; say what (:mod:`.waiting`)."""

    def withdraw(self, case: CaseState, waiting: Waiting, unit: Unit | None, reason: str) -> None:
        """A waiting step (or one of its instances or linked cases) is no longer needed: close it, tell its people."""

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        """Send (enqueue) the step's message; return :func:`~aftercare.engine.results.notify_result`."""

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        """Write case fields; return :func:`~aftercare.engine.results.record_result`."""

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Open linked cases, one per inputs mapping; return :func:`~aftercare.engine.results.start_result`."""

    def call(self, case: CaseState, step: CallStep, visit: int, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run the step's kind with its rendered ``with:`` (the simulator: as scripted); return
        :func:`~aftercare.engine.results.call_result` or :func:`~aftercare.engine.results.call_error`."""

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        """Persist a finished step; returns the result as stored (the first one on a replay)."""

    def finish(self, case: CaseState, outcome: str) -> None:
        """The case ended with an outcome."""

    def paused(self, case: CaseState, step_ids: Sequence[str]) -> list[tuple[datetime, datetime]]:
        """When each finished visit of these steps began and ended (the spans the case's clock stood still)."""

    def move_due(self, case: CaseState, step: StepSpec, visit: int, due_at: datetime) -> None:
        """The case's due moved (``sla.pause_while``: its clock stood still while this visit waited); ``case.due_at`` is set."""


WITHDRAWN: dict[str, Any] = {"withdrawn": True}
"""The result of a step withdrawn while it waited."""


def run_case(spec: ProcessSpec, team: TeamSpec, executor: StepExecutor, case: CaseState, *, max_steps: int = 10_000) -> str:
    """Drive a case from its first step to its outcome.

    The case's position is a set of tokens. Tokens run depth first: a split's branches in
    its order, each until it waits or reaches the join; when every token waits, the
    executor says what happens next (an answer, a timer, a linked case ending), and the
    token that was waiting goes on.

    Args:
        spec: the process definition.
        team: the team, for assignees and recipients.
        executor: does each step's side effects.
        case: the case; its inputs and identity set, results empty.
        max_steps: a guard against a runaway loop of automatic steps.

    Returns:
        The case's outcome.
    """
    return _Run(spec, team, executor, case, max_steps).run()


@dataclass
class _Join:
    """A split's visit as its join sees it: branches started, arrived, and how many it waits for."""

    started: int
    needed: int
    arrived: int = 0


class _Run:
    def __init__(self, spec: ProcessSpec, team: TeamSpec, executor: StepExecutor, case: CaseState, max_steps: int) -> None:
        self.spec = spec
        self.team = team
        self.executor = executor
        self.case = case
        self.max_steps = max_steps
        self.structure = structure_of(spec)
        self.calendar = calendar_of(spec, team)
        self.ready: list[str] = []  # a stack: the token run next is last
        self.waiting: dict[str, Waiting] = {}
        self.joins: dict[str, _Join] = {}
        self.order = 0

    def run(self) -> str:
        case = self.case
        self.ready = [router.first_step(self.spec)]
        case.active = set(self.ready)
        for _ in range(self.max_steps):
            if self.ready:
                outcome = self._enter(self.ready.pop())
            else:
                if not self.waiting:
                    raise StepError(f"case {case.key} has no active step but has not ended")
                outcome = self._happen(self._next_event())
            if outcome is not None:
                return outcome
        raise StepError(f"case {case.key} ran {self.max_steps} steps without ending; a loop of automatic steps?")

    # --- tokens ---------------------------------------------------------------------

    def _enter(self, step_id: str) -> str | None:
        spec, case, executor = self.spec, self.case, self.executor
        step = spec.step(step_id)
        if isinstance(step, JoinStep) and not self._arrive(step):
            case.active.discard(step.id)
            return None
        visit = case.next_visit(step.id)
        case.visits[step.id] = visit
        case.path.append(step.id)
        result = executor.recorded(case, step, visit)
        if _waits(step):
            return self._wait(step, visit, result)
        if result is None:
            result = _perform(spec, self.team, executor, case, step, visit, self._split_result(step))
            result = executor.complete(case, step, visit, result)
        return self._leave(step, result)

    def _leave(self, step: StepSpec, result: dict[str, Any]) -> str | None:
        """A step finished: keep its result and move its token (or end the case)."""
        case = self.case
        case.results[step.id] = result
        case.active.discard(step.id)
        if isinstance(step, RecordStep):
            _apply_record(case, result)
        if is_split(step):
            return self._split(step, result)
        move = router.route(self.spec, step, result)
        case.exits.append((step.id, move.label))
        if isinstance(move, router.Finish):
            return self._finish(move.outcome)
        self._push(move.step)
        return None

    def _push(self, step_id: str) -> None:
        self.ready.append(step_id)
        self.case.active.add(step_id)

    def _split_result(self, step: StepSpec) -> dict[str, Any] | None:
        """The branches a split starts now (its result), None for any other step."""
        if isinstance(step, ParallelStep):
            return {"branches": list(step.branches)}
        if isinstance(step, DecisionStep) and step.splits:
            scope = self.case.scope(self.executor.now())
            held = [(index, branch.next) for index, branch in enumerate(step.branches) if expressions.evaluate(branch.when, scope)]
            if held:
                labels = [f"when[{index}]" for index, _ in held]
                return {"exit": ",".join(labels), "next": held[0][1], "branches": list(dict.fromkeys(t for _, t in held))}
            return {"exit": "otherwise", "next": step.otherwise, "branches": [step.otherwise]}
        return None

    def _split(self, step: StepSpec, result: dict[str, Any]) -> str | None:
        region = self.structure.regions[step.id]
        starts = [target for target in result.get("branches", []) if target != region.join]
        for label in str(result.get("exit", "")).split(",") if isinstance(step, DecisionStep) else []:
            self.case.exits.append((step.id, label))
        if isinstance(step, ParallelStep):
            self.case.exits.extend((step.id, f"branch[{i}]") for i in range(len(step.branches)))
        if region.join is not None:
            join: JoinStep = self.spec.step(region.join)  # type: ignore[assignment]
            self.joins[region.join] = _Join(started=len(starts), needed=needed(join.wait, len(starts)))
            if not starts:  # a mode: all decision none of whose branches holds, whose otherwise is the join
                self._push(region.join)
        for target in reversed(starts):
            self._push(target)
        return None

    def _arrive(self, step: JoinStep) -> bool:
        """A token reaches a join: whether the join fires now (it is entered once, when it fires)."""
        state = self.joins.get(step.id)
        if state is None:
            return True
        if state.started:
            state.arrived += 1
        if state.arrived < state.needed:
            return False
        del self.joins[step.id]
        split = self.structure.split_of.get(step.id)
        if split is not None:
            region = self.structure.regions[split]
            self._withdraw_where(lambda step_id: step_id in region.members, f"join {step.id!r} went on without this branch")
        return True

    def _finish(self, outcome: str) -> str:
        self._withdraw_where(lambda step_id: True, "the case ended")
        case = self.case
        case.outcome = outcome
        case.status = "closed"
        case.active = set()
        self.executor.finish(case, outcome)
        return outcome

    def _withdraw_where(self, inside: Any, reason: str) -> None:
        """Withdraw the waiting steps (and drop the tokens not yet run) for which ``inside(step_id)`` holds."""
        for step_id in [s for s in self.ready if inside(s)]:
            self.ready.remove(step_id)
            self.case.active.discard(step_id)
        for step_id, waiting in list(self.waiting.items()):
            if not inside(step_id):
                continue
            del self.waiting[step_id]
            self.case.active.discard(step_id)
            for unit in waiting.open_units():
                unit.withdrawn = True
            self.executor.withdraw(self.case, waiting, None, reason)
            self.case.results[step_id] = dict(WITHDRAWN)
            if step_id not in self.case.withdrawn:
                self.case.withdrawn.append(step_id)

    # --- waiting ------------------------------------------------------------------------

    def _wait(self, step: StepSpec, visit: int, recorded: dict[str, Any] | None) -> str | None:
        """A token reaches a step that waits (people, a timer, linked cases)."""
        case, executor = self.case, self.executor
        self.order += 1
        if recorded is not None:  # finished (or withdrawn) by an earlier execution: taken in its order
            self.waiting[step.id] = Waiting(step, visit, self.order, executor.now(), recorded=recorded, rank=executor.rank(case, step, visit))
            return None
        now = executor.now()
        scope = case.scope(now)
        start = executor.began(case, step, visit) or now  # a replay keeps the first execution's deadlines
        waiting = Waiting(step, visit, self.order, start)
        if is_human(step):
            human: HumanStep = step  # type: ignore[assignment]
            if human.for_each is None:
                waiting.plan = plan_human_step(human, self.team, scope, started_at=start, calendar=self.calendar)
            else:
                items = for_each_items(human, scope)
                waiting.units = [
                    Unit(index, item, plan=plan_human_step(human, self.team, {**scope, "item": item}, started_at=start, calendar=self.calendar))
                    for index, item in enumerate(items)
                ]
                waiting.needed = needed(human.wait, len(items))
                waiting.plan = _together(human, waiting.units, self.team, scope, start, self.calendar)
            executor.begin(case, step, visit, waiting.plan)
        elif isinstance(step, WaitStep):
            executor.begin(case, step, visit, None)
            waiting.until = wait_until(step, scope, start, self.calendar)
        else:
            assert isinstance(step, StartStep)
            executor.begin(case, step, visit, None)
            waiting.opened = executor.start(case, step, visit, start_inputs(step, scope))
            keys = list(waiting.opened.get("cases", []))
            waiting.units = [Unit(index, key, case=key) for index, key in enumerate(keys)]
            waiting.needed = needed(step.wait, len(keys))
        if waiting.units is not None and not waiting.units:  # no items: nothing to wait for, done at once
            return self._leave(step, executor.complete(case, step, visit, _gathered_now(waiting)))
        self.waiting[step.id] = waiting
        executor.waits(case, waiting)
        return None

    def _next_event(self) -> Event:
        replayed = [w for w in self.waiting.values() if w.recorded is not None and not w.recorded.get("withdrawn")]
        if replayed:
            first = min(replayed, key=lambda w: (w.rank, w.order))
            assert first.recorded is not None
            return Event(first, first.recorded)
        live = [w for w in self.waiting.values() if w.recorded is None]
        if not live:
            raise StepError(f"case {self.case.key} waits only at steps an earlier run withdrew: {', '.join(self.waiting)}")
        return self.executor.next_event(self.case, live)

    def _happen(self, event: Event) -> str | None:
        waiting = event.waiting
        step, visit = waiting.step, waiting.visit
        if waiting.recorded is not None:
            del self.waiting[step.id]
            self._resume_clock(waiting)  # decided while this run was away (a served answer): the due may not have moved yet
            return self._leave(step, waiting.recorded)
        settled = settle(waiting, event)
        if settled is None:
            return None
        for unit in settled.withdraw:
            self.executor.withdraw(self.case, waiting, unit, f"{step.id!r} has the answers it waits for")
        del self.waiting[step.id]
        result = self.executor.complete(self.case, step, visit, settled.result)
        self._resume_clock(waiting)
        return self._leave(step, result)

    def _resume_clock(self, waiting: Waiting) -> None:
        """A step of ``sla.pause_while`` stopped waiting: the case's due is its SLA moved by every span it waited there."""
        sla, case = self.spec.sla, self.case
        if sla is None or case.due_at is None or waiting.step.id not in sla.pause_while:
            return
        due_at = case_due(case.opened_at, sla.due, self.executor.paused(case, sla.pause_while), self.calendar)
        if abs(due_at - case.due_at) >= timedelta(seconds=1):  # a replay finds it moved already
            case.due_at = due_at
            self.executor.move_due(case, waiting.step, waiting.visit, due_at)


def structure_of(spec: ProcessSpec) -> Structure:
    """The definition's regions (found once per definition object)."""
    cached = _STRUCTURES.get(id(spec))
    if cached is None or cached[0] is not spec:
        cached = (spec, analyse(spec)[0])
        _STRUCTURES[id(spec)] = cached
    return cached[1]


_STRUCTURES: dict[int, tuple[ProcessSpec, Structure]] = {}


def _waits(step: StepSpec) -> bool:
    """Whether a step waits (people, a timer, linked cases it waits for) rather than finishing at once."""
    return is_human(step) or isinstance(step, WaitStep) or (isinstance(step, StartStep) and step.wait is not None)


def _gathered_now(waiting: Waiting) -> dict[str, Any]:
    """The result of a multi-unit step with nothing to wait for (an empty for_each)."""
    settled = settle(waiting, Event(waiting, {"decision": None}))
    assert settled is not None
    result = settled.result
    if result.get("decision") is None:
        result["decision"] = "approve" if isinstance(waiting.step, ApprovalStep) else "submit"
    return result


def _together(
    step: HumanStep, units: list[Unit], team: TeamSpec, scope: dict[str, Any], start: datetime, calendar: BusinessCalendar | None
) -> HumanPlan:
    """A ``for_each`` step's plan as a whole: every instance's people, its due."""
    people = list(dict.fromkeys(person for unit in units if unit.plan for person in unit.plan.eligible))
    return plan_human_step(step, team, {**scope, "item": None}, started_at=start, eligible=people, calendar=calendar) if units else HumanPlan(
        (), step.id, "", start, None, (), calendar
    )


def for_each_items(step: HumanStep | StartStep, scope: dict[str, Any]) -> list[Any]:
    """The items of a ``for_each``: a list, or the lines of a text."""
    assert step.for_each is not None
    items = expressions.resolve_value(step.for_each, scope)
    if items is None or items == "":
        items = []
    if isinstance(items, str):
        items = [line.strip() for line in items.splitlines() if line.strip()]
    if not isinstance(items, (list, tuple)):
        raise StepError(f"step {step.id!r}: for_each gave {type(items).__name__}, not a list")
    return list(items)


def _apply_record(case: CaseState, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name == "status":
            case.status = str(value)
        elif not name.startswith("_"):
            case.fields[name] = value


def _perform(
    spec: ProcessSpec, team: TeamSpec, executor: StepExecutor, case: CaseState, step: StepSpec, visit: int,
    split: dict[str, Any] | None,
) -> dict[str, Any]:
    """Do an automatic step (one that does not wait) and return its result."""
    now = executor.now()
    scope = case.scope(now)
    executor.begin(case, step, visit, None)
    if split is not None:
        return split
    if isinstance(step, DecisionStep):
        return decision_result(router.choose_branch(step, scope))
    if isinstance(step, JoinStep):
        return {"arrived": True}
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
    if isinstance(step, CallStep):
        given = expressions.resolve_value(dict(step.with_), scope)
        smuggled = kinds.smuggled_secret(dict(step.with_), given)
        if smuggled is not None:  # never called: the value would read the environment
            return call_error(f"{smuggled}: a template gave ${{...}}, which reads the environment; only the definition's own text may")
        return executor.call(case, step, visit, given)
    raise StepError(f"step {step.id!r}: unknown step type")


def start_inputs(step: StartStep, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """The inputs of each case a start step opens: one, or one per item of ``for_each``."""
    if step.for_each is None:
        return [expressions.resolve_value(dict(step.inputs), scope)]
    return [expressions.resolve_value(dict(step.inputs), {**scope, "item": item}) for item in for_each_items(step, scope)]


def wait_until(step: WaitStep, scope: dict[str, Any], now: datetime, calendar: WorkingTime | None = None) -> datetime:
    """The moment a wait step ends (a ``duration`` such as ``2bd`` counts on ``calendar``)."""
    if step.duration:
        return due_after(now, step.duration, calendar)
    assert step.until is not None
    value = expressions.resolve_value(step.until, scope)
    try:
        moment = parse_moment(value)
    except ValueError as error:
        raise StepError(f"step {step.id!r}: until gave {value!r}, not a date or datetime") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo or timezone.utc)
    return moment

