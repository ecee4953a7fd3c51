"""The Prefect step executor: each step a Prefect task, people through pause/suspend, timers, everything in the register.

Replay safety: a suspended run re-executes its flow from the top; ``recorded`` hands the
runner every step the register already finished, so nothing is done, recorded or sent twice.

Human steps wait with the engine's one rule (:func:`aftercare.engine.answers.collect`). A
step that waits alone waits in this run's resume form (:mod:`.resume_form`); steps that wait
side by side (parallel branches, ``for_each`` instances) each get a form run of their own
(:mod:`.forms`), and this run waits for any of them: suspended when served, polling the
register in the foreground (:meth:`PrefectExecutor.next_event`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run

from aftercare.engine import kinds
from aftercare.engine.answers import HumanPlan, collect, from_rows, human_result
from aftercare.engine.case import CaseState, opening
from aftercare.engine.clock import utc_now
from aftercare.engine.calendars import calendar_of
from aftercare.engine.durations import due_after, is_business, parse_duration
from aftercare.engine.errors import AnswerError, NotFoundError, StepError
from aftercare.engine.loader import Library
from aftercare.engine.register import CASE_QUEUED, WAIT_PERSON, WAIT_TIMER, Register, StepRunRecord
from aftercare.engine.results import record_result, start_result, wait_result
from aftercare.engine.router import TIMEOUT
from aftercare.engine.runner import structure_of
from aftercare.engine.spec import CallStep, DecisionStep, EndStep, HumanStep, NotifyStep, ProcessSpec, RecordStep, StartStep, StepSpec, WaitStep, is_human
from aftercare.engine.waiting import Event, Unit, Waiting
from aftercare.notifications import Messenger, run_url

from . import artifacts, events, ui_updates
from .waiting_tags import sync_waiting_tags
from .resume_form import PAUSE_TIMEOUT, POLL_SECONDS, ResumeForm, stop_if_cancelled
from .forms import close_form, find_form, open_form, parse_row, unit_row, wake
from .timers import Timer, drop_timers, schedule

T = TypeVar("T")

SLEEP_WAITS_UP_TO = timedelta(seconds=20)
"""A served ``wait`` this short sleeps in its process; a longer one hands its run back to
Prefect, Scheduled at the moment. More than a runner's prefetch (10 s), which may start
the run that much early."""
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
        launch: creates the flow run of a linked case (None: it stays queued).
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
    run_form: Callable[..., Any] | None = None
    """Runs a foreground form run in a thread (``form_flow.answer_form``); served form runs come from their deployment."""
    _completed: dict[tuple[str, int], StepRunRecord] = field(default_factory=dict)
    _ranks: dict[tuple[str, int], float] = field(default_factory=dict)
    _begins: dict[tuple[str, int], datetime] = field(default_factory=dict)
    _finished: dict[tuple[str, int], dict[str, Any]] | None = field(init=False)
    """Results of the visits earlier executions finished; read on the first ``recorded``."""
    _new_waits: set[tuple[str, int]] = field(default_factory=set)
    """Visits this execution begins (none of an earlier one): their ``step.waiting`` event is sent now, once."""

    def __post_init__(self) -> None:
        self._finished = {} if self.fresh else None

    # --- the executor protocol ----------------------------------------------------------

    def now(self) -> datetime:
        return utc_now()

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        # One read per execution: a step this execution has not reached yet can only be
        # finished by an earlier execution (people answer only the step a case waits at).
        if self._finished is None:
            finished = [run for run in self.register.step_runs(case.key) if not run.is_open and run.result is not None]
            self._finished = {(run.step_id, run.visit): dict(run.result or {}) for run in finished}
            ordered = sorted(finished, key=lambda run: (run.finished_at or run.started_at, run.id))
            self._ranks = {(run.step_id, run.visit): float(rank) for rank, run in enumerate(ordered)}
        return self._finished.get((step.id, visit))

    def began(self, case: CaseState, step: StepSpec, visit: int) -> datetime | None:
        if self.fresh:  # nothing began before this execution
            self._new_waits.add((step.id, visit))
            return None
        run = self.register.step_run(case.key, step.id, visit)
        if run is None:
            self._new_waits.add((step.id, visit))
        return run.started_at if run is not None else None

    def subject(self, case: CaseState) -> events.Subject:
        """The case as the subject of its Prefect events (with this run and the team)."""
        return events.Subject(case, str(self.flow_run_id) if self.flow_run_id else None, self.library.team, case.parent)

    def begin(self, case: CaseState, step: StepSpec, visit: int, plan: HumanPlan | None) -> None:
        if plan is not None:
            self.register.begin_step(
                case.key, step.id, visit, started_at=plan.started_at, due_at=plan.due_at, eligible=plan.eligible, wait_kind=WAIT_PERSON
            )
        elif isinstance(step, WaitStep) or (isinstance(step, StartStep) and step.wait is not None):
            self.register.begin_step(case.key, step.id, visit, started_at=self.now())
        else:
            # An automatic step takes milliseconds: complete_step begins it with its result,
            # one transaction instead of two. begin_pending writes it if the step fails.
            self._begins[(step.id, visit)] = self.now()

    def rank(self, case: CaseState, step: StepSpec, visit: int) -> float:
        self.recorded(case, step, visit)
        return self._ranks.get((step.id, visit), 0.0)

    def waits(self, case: CaseState, waiting: Waiting) -> None:
        step, visit = waiting.step, waiting.visit
        if waiting.kind == "timer":
            assert waiting.until is not None
            self.register.update_step(case.key, step.id, visit, due_at=waiting.until, status="waiting", wait_kind=WAIT_TIMER)
            return
        if waiting.kind != "person":
            return  # linked cases: launched by ``start``; each wakes this run when it closes
        human: HumanStep = step  # type: ignore[assignment]
        plan = waiting.plan
        assert plan is not None
        self._set_timers(case, human, visit, plan)
        new = (step.id, visit) in self._new_waits
        self._new_waits.discard((step.id, visit))
        if not self._concurrent(waiting):
            plan = self._recorded_plan(case, step.id, visit, plan)
            self.messenger.waiting(case, human, visit, plan, self.links)
            if new:
                self._emit_waiting(case, human, step.id, visit, plan)
            sync_waiting_tags(self.register, case.key)
            artifacts.publish(self.register, case, self.links, self.flow_run_id, waiting=f"{plan.title} — waiting for {', '.join(plan.eligible)}")
            return
        for unit, unit_plan in _units(waiting):
            row = unit_row(step.id, unit.index if unit else None)
            if unit is not None:
                self.register.begin_step(
                    case.key, row, visit, started_at=unit_plan.started_at, eligible=unit_plan.eligible, wait_kind=WAIT_PERSON, status="waiting"
                )
            links = dict(self.links)
            form_run = self._open_form(case, row, visit, unit_plan.title, unit.item if unit else None)
            if form_run is not None and (url := run_url(form_run, api_url=ui_updates.current_api_url())):
                links["run"] = url
            self.messenger.waiting(case, human, visit, unit_plan, links)
            if new:
                self._emit_waiting(case, human, row, visit, unit_plan)
        sync_waiting_tags(self.register, case.key)
        waiting_on = sorted({person for _, p in _units(waiting) for person in p.eligible})
        artifacts.publish(self.register, case, self.links, self.flow_run_id, waiting=f"{plan.title} — waiting for {', '.join(waiting_on)}")

    def _emit_waiting(self, case: CaseState, step: HumanStep, row: str, visit: int, plan: HumanPlan) -> None:
        events.emit(events.step_waiting(
            self.subject(case), row, visit, title=plan.title, kind=step.type, eligible=plan.eligible, started_at=plan.started_at, due_at=plan.due_at
        ))

    def next_event(self, case: CaseState, waiting: Sequence[Waiting]) -> Event:
        ui_updates.release_run(self.flow_run_id)
        if len(waiting) == 1 and not self._concurrent(waiting[0]):
            only = waiting[0]
            if only.kind == "person":
                human: HumanStep = only.step  # type: ignore[assignment]
                assert only.plan is not None
                plan, visit = self._recorded_plan(case, human.id, only.visit, only.plan), only.visit
                form = ResumeForm(
                    self.register, self.library.team, case, human, visit, plan, suspend=self.suspend,
                    case_run=self.subject(case).flow_run_id, resend=self.messenger.resender(case, human, visit, plan, self.links),
                )
                result = collect(human, plan, form, people=list(self.library.team.people))
                return Event(only, result)
            if only.kind == "timer":
                assert only.until is not None and isinstance(only.step, WaitStep)
                return Event(only, self._wait(only.step, only.visit, only.until))
        if not self.suspend:
            _settled(self.flow_run_id)  # every step of this moment waits with its form: a scripted feeder may answer now
        while True:
            event = self._happened(case, waiting)
            if event is not None:
                return event
            if self.suspend:
                self._await(waiting)
            else:
                time.sleep(POLL_SECONDS)
                stop_if_cancelled(self.register, case.key)

    def withdraw(self, case: CaseState, waiting: Waiting, unit: Unit | None, reason: str) -> None:
        step, visit = waiting.step, waiting.visit
        rows = [unit_row(step.id, unit.index)] if unit is not None else [
            unit_row(step.id, u.index) for u in waiting.units or () if u.withdrawn or u.result is None
        ]
        if unit is None:
            rows.append(step.id)
        for row in rows:
            withdrawn = self.register.withdraw_step(case.key, row, visit, reason=reason)
            if withdrawn is not None and withdrawn.eligible:
                self.messenger.withdrawn(case, row, visit, withdrawn.eligible, reason, self.links)
            if withdrawn is not None and (withdrawn.eligible or row == step.id):  # an instance never begun is no fact of its own
                events.emit(events.step_withdrawn(
                    self.subject(case), row, visit, reason=reason, at=withdrawn.finished_at or self.now(), eligible=withdrawn.eligible
                ))
            if self._concurrent(waiting):
                self._close_form(row, visit, reason)
        sync_waiting_tags(self.register, case.key)
        if unit is None and self.suspend and is_human(step) and _has_deadlines(step):
            drop_timers(case.key, step.id, visit)

    def _recorded_plan(self, case: CaseState, row: str, visit: int, plan: HumanPlan) -> HumanPlan:
        """The plan with the people the register names now (a step handed on with ``aftercare reassign`` since it began)."""
        run = self.register.step_run(case.key, row, visit)
        if run is None or not run.eligible or tuple(run.eligible) == plan.eligible:
            return plan
        return replace(plan, eligible=tuple(run.eligible))

    def _concurrent(self, waiting: Waiting) -> bool:
        """Whether a waiting step may wait beside others (inside a split, or a multi-unit step): it has form runs."""
        return waiting.units is not None or structure_of(self.spec).in_region(waiting.step.id)

    def _open_form(self, case: CaseState, row: str, visit: int, title: str, item: Any) -> str | None:
        """The form run of a waiting unit: a served one from the form deployment, a foreground one in a thread."""
        if self.suspend:
            found = find_form(str(self.flow_run_id), row, visit)
            return str(found.id) if found is not None else open_form(case.key, str(self.flow_run_id), title, row, visit, item)
        key = (str(self.flow_run_id), row, visit)
        if key not in _FORM_THREADS and self.run_form is not None:
            step_id, unit = parse_row(row)
            thread = threading.Thread(target=self.run_form, args=(case.key, step_id, visit, unit, item), name=f"form {row}", daemon=True)
            _FORM_THREADS[key] = thread
            thread.start()
        return None

    def _close_form(self, row: str, visit: int, reason: str) -> None:
        close_form(str(self.flow_run_id), row, visit, reason)
        _FORM_THREADS.pop((str(self.flow_run_id), row, visit), None)

    def _happened(self, case: CaseState, waiting: Sequence[Waiting]) -> Event | None:
        """The earliest thing that has happened to the waiting steps, by the register and the clock; None while nothing has."""
        now = self.now()
        found: list[tuple[datetime, int, Event]] = []
        for w in waiting:
            step = w.step
            if w.kind == "timer":
                assert w.until is not None
                if now >= w.until:
                    found.append((w.until, w.order, Event(w, wait_result(w.until, now))))
                continue
            if w.kind == "cases":
                for linked in w.open_units():
                    child = self.register.case(str(linked.case))
                    if not child.is_open and child.closed_at is not None:
                        found.append((child.closed_at, w.order, Event(w, {"case": child.key, "outcome": child.outcome}, linked.index)))
                continue
            units: list[Unit | None] = list(w.open_units()) if w.units is not None else [None]
            for unit in units:
                row = self.register.step_run(case.key, unit_row(step.id, unit.index if unit else None), w.visit)
                if row is not None and row.status == "done" and row.result is not None:
                    found.append((row.finished_at or now, w.order, Event(w, dict(row.result), unit.index if unit else None)))
            marked = self.register.step_run(case.key, step.id, w.visit)
            timed_out = marked is not None and marked.timed_out_at is not None
            if getattr(step, "on_timeout", None) and w.due_at is not None and (now >= w.due_at or timed_out):
                answers = from_rows(self.register.answers(case.key, step.id, w.visit))
                found.append((w.due_at, w.order, Event(w, human_result(step, answers, TIMEOUT))))  # type: ignore[arg-type]
        if not found:
            return None
        _, _, event = min(found, key=lambda f: (f[0], f[1]))
        if event.result.get("decision") == TIMEOUT:
            for open_unit, _ in _units(event.waiting):
                row_id = unit_row(event.waiting.step.id, open_unit.index if open_unit else None)
                self._close_form(row_id, event.waiting.visit, "timed out")
        return event

    def _await(self, waiting: Sequence[Waiting]) -> None:
        """Suspend this served run until a form run decides a step, a linked case closes, or the next timer or due."""
        moments = [w.until for w in waiting if w.until is not None]
        moments += [w.due_at for w in waiting if w.due_at is not None and getattr(w.step, "on_timeout", None)]
        key = _fresh_await_key(self.flow_run_id)
        if moments:
            _suspend_until(self.flow_run_id, min(m for m in moments if m is not None), key=key)
        suspend_flow_run(timeout=PAUSE_TIMEOUT, key=key)

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        def send() -> StepRunRecord:
            drafts, result = self.messenger.for_notify_step(case, step, visit, recipients, scope, self.links)
            return self._store(case, step, visit, result, messages=drafts)

        return self._completed_in_task(step, visit, send)

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        status = values.get("status")
        fields = {name: value for name, value in values.items() if name != "status"}

        def write() -> StepRunRecord:
            return self._store(
                case, step, visit, record_result(values), case_fields=fields or None, case_status=str(status) if status else None
            )

        return self._completed_in_task(step, visit, write)

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        def open_cases() -> StepRunRecord | dict[str, Any]:
            target = self.library.definitions.get(step.process)
            if target is None:
                raise StepError(f"step {step.id!r} starts {step.process!r}, which is not in {self.library.root}")
            keys = []
            for index, given in enumerate(inputs):
                try:
                    opened = opening(target.spec, given, self.library.team.people, self.now(), calendar_of(target.spec, self.library.team))
                except AnswerError as error:
                    raise StepError(f"step {step.id!r} starts {step.process!r}: {error}") from None
                child = self.register.open_case(
                    process=target.spec.process,
                    version=target.spec.version,
                    definition_hash=target.digest,
                    key_prefix=target.spec.key,
                    title=opened.title,
                    inputs=opened.inputs,
                    parent_key=case.key,
                    started_by_step=step.id,
                    idempotency_key=f"{case.key}:{step.id}:{visit}:{index}",
                    status=CASE_QUEUED,
                )
                keys.append(child.key)
                if child.flow_run_id is None and self.launch is not None:
                    self.launch(child.key, target.spec.process, opened.inputs)
            if step.wait is not None:  # the step waits for its cases: it completes when enough have ended
                return start_result(step.process, keys)
            return self._store(case, step, visit, start_result(step.process, keys))

        if step.wait is not None:
            opened: dict[str, Any] = self._as_task(step, visit, open_cases)  # type: ignore[arg-type]
            return opened
        return self._completed_in_task(step, visit, open_cases)  # type: ignore[arg-type]

    def call(self, case: CaseState, step: CallStep, visit: int, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run the step's kind in its Prefect task, retries included, and record its result there: a replay
        reads the record and never calls again; a run that dies mid-call calls again with the same idempotency key."""

        def run_kind() -> StepRunRecord:
            from prefect import get_run_logger

            try:
                kind = kinds.installed().get(step.call)
            except NotFoundError as error:
                raise StepError(f"step {step.id!r}: {error}") from None
            result = kinds.run_call(kind, inputs, case_key=case.key, step_id=step.id, visit=visit, retry=step.retry, logger=get_run_logger())
            return self._store(case, step, visit, result)

        return self._completed_in_task(step, visit, run_kind)

    def _wait(self, step: WaitStep, visit: int, until: datetime) -> dict[str, Any]:
        """A timer: a short one sleeps here, a longer one of a served run hands the run back to Prefect until then."""
        if self.suspend and until - self.now() > SLEEP_WAITS_UP_TO:
            _suspend_until(self.flow_run_id, until, key=f"wait-{step.id.replace('_', '-')}-v{visit}")
        _sleep_until(until)
        return wait_result(until, self.now())

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        stored = self._completed.pop((step.id, visit), None)
        if stored is None:
            # Decisions, ends and timers do their work outside a task: their completion is the
            # step's task, so the run shows every step (DESIGN.md "Runtime semantics").
            def store() -> StepRunRecord:
                return self._store(case, step, visit, result)

            stored = self._as_task(step, visit, store) if isinstance(step, (DecisionStep, EndStep, WaitStep, CallStep)) else store()
        if isinstance(step, NotifyStep):
            self.messenger.deliver()
        if is_human(step):
            sync_waiting_tags(self.register, case.key)  # decided (or timed out): nobody waits there any more
        if self.suspend and is_human(step) and _has_deadlines(step):
            drop_timers(case.key, step.id, visit)  # decided: its due and reminders are moot
        return dict(stored.result or result)

    def paused(self, case: CaseState, step_ids: Sequence[str]) -> list[tuple[datetime, datetime]]:
        return [
            (run.started_at, run.finished_at)
            for run in self.register.step_runs(case.key)
            if run.step_id in step_ids and not run.is_open and run.finished_at is not None
        ]

    def move_due(self, case: CaseState, step: StepSpec, visit: int, due_at: datetime) -> None:
        """``sla.pause_while``: the case's new due in the register (audited), and its SLA timer at the new moment."""
        self.register.update_case(case.key, due_at=due_at, at=self.now())
        if self.suspend:
            schedule(Timer("sla", due_at, case.key))

    def finish(self, case: CaseState, outcome: str) -> None:
        now = self.now()
        closed = self.register.close_case(case.key, outcome, at=now)
        if closed.closed_at == now:  # closed by this call (closing a closed case changes nothing)
            events.emit(events.case_closed(self.subject(case), outcome=outcome, closed_at=now))
        if case.parent and self.suspend:
            parent = self.register.case(case.parent)
            if parent.is_open:
                wake(parent.flow_run_id, patience=10.0)  # it may wait for this case (a start step with wait)
        sync_waiting_tags(self.register, case.key)
        self.messenger.closed(case, outcome, self.links)
        self.messenger.deliver_unsent()
        artifacts.publish(self.register, case, self.links, self.flow_run_id)
        if self.suspend and (self.spec.sla is not None or any(_has_deadlines(step) for step in self.spec.steps if is_human(step))):
            drop_timers(case.key)  # closed: its SLA and any deadline left are moot

    def begin_pending(self, case: CaseState) -> None:
        """Write the begin of automatic steps that never completed (the run failed in them)."""
        for (step_id, visit), started_at in list(self._begins.items()):
            self.register.begin_step(case.key, step_id, visit, started_at=started_at)
            del self._begins[(step_id, visit)]

    # --- helpers -----------------------------------------------------------------------

    def _set_timers(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> None:
        """Prefect runs for this wait's deadlines: its ``due`` and its first reminder (each sets the next).

        Only a served or deployed run sets them; a foreground run watches its own due.
        """
        if not self.suspend:
            return
        if plan.due_at is not None and plan.due_at > self.now():
            schedule(Timer("due", plan.due_at, case.key, step.id, visit))
        if step.remind_every:
            calendar = calendar_of(self.spec, self.library.team)
            every = 1.0 if is_business(step.remind_every) else parse_duration(step.remind_every).total_seconds()  # > 0: the next is set
            schedule(Timer("reminder", due_after(plan.started_at, step.remind_every, calendar), case.key, step.id, visit, every))

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
        return step_task(step.id)(work, visit)  # type: ignore[return-value]


_FORM_THREADS: dict[tuple[str, str, int], threading.Thread] = {}
"""The foreground form runs of this process, by (the case's flow run, register step id, visit)."""

_WAIT_ROUNDS: dict[str, int] = {}
"""How many times each foreground case run of this process has settled to wait on several steps at once."""
_ROUNDS = threading.Condition()


def _settled(flow_run_id: Any) -> None:
    """A foreground case run waits on steps side by side, every branch of this moment begun and its form open."""
    with _ROUNDS:
        _WAIT_ROUNDS[str(flow_run_id)] = _WAIT_ROUNDS.get(str(flow_run_id), 0) + 1
        _ROUNDS.notify_all()


def waiting_round(flow_run_id: str) -> int:
    """How many times the foreground case run ``flow_run_id`` of this process has settled to wait (0: not yet).

    ``aftercare run --answers`` answers steps that wait side by side only in a round: before
    it, a branch that starts at the same moment may not have begun yet, and the answer
    scripted first for it would be taken after a later one.
    """
    with _ROUNDS:
        return _WAIT_ROUNDS.get(str(flow_run_id), 0)


def await_round(flow_run_id: str, after: int, timeout: float) -> bool:
    """Wait until the foreground case run settles to wait again (a round past ``after``); False after ``timeout`` seconds."""
    with _ROUNDS:
        return _ROUNDS.wait_for(lambda: _WAIT_ROUNDS.get(str(flow_run_id), 0) > after, timeout)


def _units(waiting: Waiting) -> list[tuple[Unit | None, HumanPlan]]:
    """A waiting human step's units with their plans: its instances, or the step itself."""
    if waiting.units is not None:
        return [(unit, unit.plan) for unit in waiting.open_units() if unit.plan is not None]
    assert waiting.plan is not None
    return [(None, waiting.plan)]


def _fresh_await_key(flow_run_id: Any) -> str:
    """A suspension key this run has not used: each wait for its steps is a new one (a replay then waits again)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(str(flow_run_id)))
    used = set(run.empirical_policy.pause_keys or ())
    number = sum(1 for key in used if key.startswith("await-"))
    while f"await-{number}" in used:
        number += 1
    return f"await-{number}"


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


def _has_deadlines(step: StepSpec) -> bool:
    """Whether a human step sets timers (a ``due`` or reminders)."""
    return bool(getattr(step, "due", None) or getattr(step, "remind_every", None))


def _suspend_until(flow_run_id: Any, until: datetime, key: str) -> None:
    """Hand the run back to Prefect until a moment: suspended, then Scheduled at ``until``.

    Prefect's runner (``serve`` or a worker) starts it again then, on whichever machine
    takes it first, through restarts of all of them; the replay finds the same suspension
    key and goes on. A run stopped between the two states stays suspended until the
    housekeeping run wakes it.
    """
    from prefect import get_client
    from prefect.exceptions import Pause
    from prefect.states import Scheduled

    try:
        suspend_flow_run(timeout=PAUSE_TIMEOUT, key=key)
    except Pause:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(str(flow_run_id)), Scheduled(scheduled_time=until), force=True)
        raise


def _sleep_until(until: datetime) -> None:
    """Sleep in short slices until a moment (keeps a foreground run responsive to Ctrl-C)."""
    while (left := (until - utc_now()).total_seconds()) > 0:
        time.sleep(min(left, 1.0))


__all__ = ["PrefectExecutor", "step_task"]
