"""The Prefect step executor: each step a Prefect task, people through pause/suspend, everything in the register.

Replay safety: a suspended run re-executes its flow from the top; ``recorded`` hands the
driver every step the register already finished, so nothing is done, recorded or sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from aftercare.engine.case import CaseState
from aftercare.engine.driver import HumanPlan
from aftercare.engine.errors import AnswerError
from aftercare.engine.loader import Library
from aftercare.engine.register import Register, StepRunRecord
from aftercare.engine.spec import DecisionStep, EndStep, HumanStep, NotifyStep, ProcessSpec, RecordStep, StartStep, StepSpec, WaitStep, is_human

from . import artifacts, human, ui_updates
from .clock import utc_now
from .messages import Messenger

T = TypeVar("T")


@dataclass
class PrefectExecutor:
    """Side effects of steps inside a Prefect flow run.

    Attributes:
        spec: the definition the case runs (the version it started with).
        library: the folder's definitions and team.
        register: the SQL register.
        messenger: builds and delivers outbox messages.
        suspend: suspend (served/deployed runs) rather than pause (foreground runs).
        fresh: the case has not begun a step yet (nothing to replay: no read of its steps).
        flow_run_id: the Prefect flow run, for its case artifact.
        links: the Prefect UI link of this run, for messages and the artifact.
    """

    spec: ProcessSpec
    library: Library
    register: Register
    messenger: Messenger
    suspend: bool
    fresh: bool = False
    flow_run_id: Any = None
    links: dict[str, str] = field(default_factory=dict)
    launch: Callable[[str, str, dict[str, Any]], str | None] | None = None
    _completed: dict[tuple[str, int], StepRunRecord] = field(default_factory=dict)
    _begins: dict[tuple[str, int], datetime] = field(default_factory=dict)
    _finished: dict[tuple[str, int], dict[str, Any]] | None = field(init=False)
    """Results of the visits earlier executions finished; read on the first ``recorded``."""

    def __post_init__(self) -> None:
        self._finished = {} if self.fresh else None

    # --- the executor protocol ----------------------------------------------------------

    def now(self) -> datetime:
        return utc_now()

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        # One read per execution: a step this execution has not reached yet can only be
        # finished by an earlier execution (people answer only the step a case waits at).
        if self._finished is None:
            self._finished = {
                (run.step_id, run.visit): dict(run.result)
                for run in self.register.step_runs(case.key)
                if not run.is_open and run.result is not None
            }
        return self._finished.get((step.id, visit))

    def begin(self, case: CaseState, step: StepSpec, visit: int, due_at: datetime | None, assignee: str | None) -> None:
        if is_human(step) or isinstance(step, WaitStep):
            self.register.begin_step(case.key, step.id, visit, started_at=self.now(), due_at=due_at, assignee=assignee)
        else:
            # An automatic step takes milliseconds: complete_step begins it with its result,
            # one transaction instead of two. begin_pending writes it if the step fails.
            self._begins[(step.id, visit)] = self.now()

    def human(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> dict[str, Any]:
        self.messenger.waiting(case, step, visit, plan, self.links)
        artifacts.publish(self.register, case, self.links, self.flow_run_id, waiting=f"{plan.title} — waiting for {', '.join(plan.eligible)}")
        ui_updates.release_run(self.flow_run_id)
        return human.wait_for_decision(self, case, step, visit, plan)

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        def send() -> StepRunRecord:
            drafts, result = self.messenger.for_notify_step(case, step, visit, recipients, scope, self.links)
            return self._store(case, step, visit, result, messages=drafts)

        return self._completed_in_task(step, visit, send)

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        status = values.get("status")
        fields = {name: value for name, value in values.items() if name != "status"}

        def write() -> StepRunRecord:
            return self._store(case, step, visit, values, case_fields=fields or None, case_status=str(status) if status else None)

        return self._completed_in_task(step, visit, write)

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        def open_cases() -> StepRunRecord:
            target = self.library.definitions.get(step.process)
            if target is None:
                raise AnswerError(f"step {step.id!r} starts {step.process!r}, which is not in {self.library.root}")
            from aftercare.engine.values import coerce_all

            keys = []
            for index, given in enumerate(inputs):
                values = coerce_all(target.spec.inputs, given, self.library.team.people)
                child = self.register.open_case(
                    process=target.spec.process,
                    version=target.spec.version,
                    definition_hash=target.digest,
                    key_prefix=target.spec.key,
                    title=str(values.get("title") or values.get("topic") or target.spec.title),
                    inputs=values,
                    parent_key=case.key,
                    started_by_step=step.id,
                    idempotency_key=f"{case.key}:{step.id}:{visit}:{index}",
                    status="queued",
                )
                keys.append(child.key)
                if child.flow_run_id is None and self.launch is not None:
                    self.launch(child.key, target.spec.process, values)
            return self._store(case, step, visit, {"process": step.process, "cases": keys, "case": keys[0] if keys else None})

        return self._completed_in_task(step, visit, open_cases)

    def wait(self, case: CaseState, step: WaitStep, visit: int, until: datetime) -> dict[str, Any]:
        self.register.update_step(case.key, step.id, visit, due_at=until, status="waiting")
        ui_updates.release_run(self.flow_run_id)
        human.sleep_until(self, case, step, visit, until)
        return {"until": until.isoformat(), "fired_at": self.now().isoformat()}

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        stored = self._completed.pop((step.id, visit), None)
        if stored is None:
            # Decisions, ends and timers do their work outside a task: their completion is the
            # step's task, so the run shows every step (DESIGN.md "Runtime semantics").
            def store() -> StepRunRecord:
                return self._store(case, step, visit, result)

            stored = self._as_task(step, visit, store) if isinstance(step, (DecisionStep, EndStep, WaitStep)) else store()
        if isinstance(step, NotifyStep):
            self.messenger.deliver(case.key)
        return dict(stored.result or result)

    def finish(self, case: CaseState, outcome: str) -> None:
        self.register.close_case(case.key, outcome)
        self.messenger.closed(case, outcome, self.links)
        self.messenger.deliver_unsent()
        artifacts.publish(self.register, case, self.links, self.flow_run_id)

    def begin_pending(self, case: CaseState) -> None:
        """Write the begin of automatic steps that never completed (the run failed in them)."""
        for (step_id, visit), started_at in list(self._begins.items()):
            self.register.begin_step(case.key, step_id, visit, started_at=started_at)
            del self._begins[(step_id, visit)]

    # --- helpers -----------------------------------------------------------------------

    def _store(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any], **changes: Any) -> StepRunRecord:
        """Complete the visit in the register: its result with its messages and case changes, one transaction."""
        started_at = self._begins.pop((step.id, visit), None)
        return self.register.complete_step(case.key, step.id, visit, result, self.now(), started_at=started_at, **changes)

    def _completed_in_task(self, step: StepSpec, visit: int, work: Callable[[], StepRunRecord]) -> dict[str, Any]:
        """Run an automatic step's work and its completion as its Prefect task; ``complete`` then returns it."""
        stored = self._as_task(step, visit, work)
        self._completed[(step.id, visit)] = stored
        return dict(stored.result or {})

    def _as_task(self, step: StepSpec, visit: int, work: Callable[[], T]) -> T:
        """Run a step's work as a Prefect task named after the step."""
        return step_task(step.id)(work, visit)


#: One Prefect task per step id, made once per process (making a Task hashes its code, ~1 ms).
_STEP_TASKS: dict[str, Task[..., Any]] = {}


def _step_work(work: Callable[[], T], visit: int) -> T:
    """The body of every step task: the step's own work (``visit`` is in the task run's name)."""
    return work()


def step_task(step_id: str) -> Task[..., Any]:
    """The Prefect task named after a step; its runs are named ``STEP #VISIT``."""
    cached = _STEP_TASKS.get(step_id)
    if cached is None:
        run_name = step_id.replace("{", "{{").replace("}", "}}") + " #{visit}"
        cached = task(name=step_id, task_run_name=run_name, cache_policy=NO_CACHE, persist_result=False, log_prints=False)(_step_work)
        _STEP_TASKS[step_id] = cached
    return cached


def sleep_seconds(until: datetime) -> float:
    """Seconds from now until a moment (0 when passed)."""
    return max(0.0, (until - utc_now()).total_seconds())


def wait_a_little(seconds: float) -> None:
    """Sleep in short slices (keeps a foreground run responsive to Ctrl-C)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))


__all__ = ["PrefectExecutor", "sleep_seconds", "utc_now", "wait_a_little"]
