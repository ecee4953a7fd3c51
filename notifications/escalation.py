"""Deadlines of waiting people: escalations when ``due`` or ``sla.due`` passes, reminders every ``remind_every``.

The recurring system flow (in ``flows/``) calls :func:`escalate_overdue` and
:func:`send_reminders` with the register, the definitions and the time; both write
outbox messages and return a report, and neither sends anything itself
(:func:`~aftercare.notifications.delivery.deliver_pending` does).

Once per breach: the messages of a breach are written first, under keys that carry the
deadline, then the breach is marked (``Register.mark_escalated``, True only for the
first caller). A crash between the two leaves the breach unmarked and the next round
writes the same keys again, which the outbox ignores; two escalators racing write
each key once and one of them marks the breach. A new deadline is a new breach.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftercare.engine import router
from aftercare.engine.clock import UTC, utc_now
from aftercare.engine.answers import HumanPlan, plan_human_step
from aftercare.engine.case import CaseState
from aftercare.engine.calendars import BusinessCalendar, calendar_of
from aftercare.engine.durations import due_after, periods_passed
from aftercare.engine.errors import AftercareError
from aftercare.engine.library import definition_of_case
from aftercare.engine.loader import Library
from aftercare.engine.register import WAIT_PERSON, CaseRecord, Register, StepRunRecord
from aftercare.engine.spec import HumanStep, ProcessSpec, is_human
from aftercare.engine.waiting import parse_row
from aftercare.engine.team import TeamSpec

from .links import run_url
from .outbox import (
    OutboxMessage,
    assignee_references,
    case_escalation_messages,
    enqueue,
    escalation_messages,
    reminder_messages,
)
from .rendering import MessageTemplates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Definition:
    """What deadlines need of a case's definition: its spec, its team and its templates."""

    spec: ProcessSpec
    team: TeamSpec
    templates: MessageTemplates | None = None

    @property
    def calendar(self) -> BusinessCalendar | None:
        """The business calendar its ``4bh`` and ``2bd`` count on."""
        return calendar_of(self.spec, self.team)


DefinitionLookup = Callable[[CaseRecord], "Definition | None"]
"""Finds the definition a case runs (None when it is gone)."""


def definition_lookup(register: Register, source: Library | DefinitionLookup) -> DefinitionLookup:
    """A lookup from a loaded library, or the lookup itself.

    From a library, a case gets the definition it runs (:func:`~aftercare.engine.library.definition_of_case`:
    the version it started with), the library's team and its templates folder.
    """
    if not isinstance(source, Library):
        return source
    library = source
    templates = MessageTemplates.for_library(library)

    def find(case: CaseRecord) -> Definition | None:
        try:
            found = definition_of_case(library, case.process, case.definition_hash, register.stored_definition)
        except AftercareError as error:
            log.warning("case %s: %s", case.key, error)
            return None
        if found.note:
            log.warning("case %s: %s", case.key, found.note)
        return Definition(found.spec, library.team, templates)

    return find


def case_scope(register: Register, case: CaseRecord, now: datetime, *, api_url: str | None = None) -> dict[str, Any]:
    """The scope a case's templates see, rebuilt from the register (inputs, fields, every step's latest result)."""
    state = CaseState.from_record(case, url=run_url(case.flow_run_id, api_url=api_url))
    for run in register.step_runs(case.key):
        if run.result is not None and run.visit >= state.visits.get(run.step_id, 0):
            state.results[run.step_id] = dict(run.result)
            state.visits[run.step_id] = run.visit
    scope = state.scope(now)
    scope["case"]["current_step"] = case.current_step
    scope["case"]["comments"] = case_comments(register, case.key)
    return scope


def case_comments(register: Register, key: str) -> list[dict[str, str]]:
    """A case's comments as messages show them (``case.comments``): ``{by, at, text}``, oldest first."""
    return [{"by": c.actor, "at": f"{c.at:%Y-%m-%d %H:%M} UTC", "text": c.detail or ""} for c in register.comments(key)]


def human_plan(
    team: TeamSpec,
    scope: Mapping[str, Any],
    step: HumanStep,
    run: StepRunRecord,
    register: Register | None = None,
    calendar: BusinessCalendar | None = None,
) -> HumanPlan:
    """The plan of a waiting step run: the people and deadline the register recorded, the rest rendered now.

    A ``for_each`` step's people are those of its instances still open (``register`` given):
    who answered is not reminded.
    """
    eligible: list[str] | None = list(run.eligible) or None
    if register is not None and step.for_each is not None:
        instances = [
            row for row in register.step_runs(run.case_key)
            if row.visit == run.visit and row.is_open and row.step_id != step.id and parse_row(row.step_id)[0] == step.id
        ]
        eligible = list(dict.fromkeys(person for row in instances for person in row.eligible))
    return plan_human_step(step, team, scope, started_at=run.started_at, due_at=run.due_at, eligible=eligible, calendar=calendar)


def _assignees(team: TeamSpec, scope: Mapping[str, Any], step: HumanStep, plan: HumanPlan) -> list[str]:
    try:
        return assignee_references(team, scope, step)
    except AftercareError:
        return [f"person:{p}" for p in plan.eligible]


@dataclass(frozen=True)
class Breach:
    """A step's breach escalated by this round (the first to mark it): the step run and the references told."""

    run: StepRunRecord
    escalate_to: tuple[str, ...]


@dataclass(frozen=True)
class CaseBreach:
    """A case's ``sla.due`` breach escalated by this round (the first to mark it): the case, its due, the references told."""

    case_key: str
    due_at: datetime
    escalate_to: tuple[str, ...]


@dataclass
class EscalationReport:
    """What one deadline round did; steps as ``CASE/STEP#VISIT``."""

    escalated: list[str] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    """The step breaches of ``escalated``, for whoever reports them further (the flows' Prefect events)."""
    case_breaches: list[CaseBreach] = field(default_factory=list)
    """The case breaches of ``cases`` (their ``sla.due`` passed), likewise."""
    already: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    messages: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class ReminderReport:
    """What one reminder round did; reminders as ``CASE/STEP#VISIT:N``."""

    reminded: list[str] = field(default_factory=list)
    messages: int = 0
    errors: list[str] = field(default_factory=list)


def _now(now: datetime | None) -> datetime:
    return (now or utc_now()).astimezone(UTC)


def _human_step(lookup: DefinitionLookup, case: CaseRecord, step_id: str) -> tuple[Definition, HumanStep] | None:
    definition = lookup(case)
    if definition is None:
        return None
    try:
        step = definition.spec.step(step_id)
    except KeyError:
        return None
    if not is_human(step):
        return None
    return definition, step  # type: ignore[return-value]


def _clock_stopped(register: Register, case: CaseRecord, spec: ProcessSpec) -> bool:
    """Whether the case waits at a step of ``sla.pause_while`` (its SLA clock stands still)."""
    paused = spec.sla.pause_while if spec.sla is not None else ()
    return bool(paused) and any(run.is_open and parse_row(run.step_id)[0] in paused for run in register.step_runs(case.key))


def escalate_overdue(
    register: Register,
    definitions: Library | DefinitionLookup,
    now: datetime | None = None,
    *,
    api_url: str | None = None,
    limit: int = 1000,
) -> EscalationReport:
    """Escalate every breach not escalated yet: human steps past ``due``, cases past ``sla.due``.

    A step's breach tells ``escalate_to`` (``step-escalation``) and reminds the
    assignees (``step-reminder`` with reason ``overdue``); a case's tells
    ``sla.escalate_to`` (``case-escalation``). Each breach once. Step runs that are
    not human steps (a ``wait`` step's timer) are left to the timer flow, unmarked.

    Args:
        register: the register.
        definitions: a loaded library, or a lookup case -> :class:`Definition`.
        now: the current time (injectable); now by default.
        api_url: the Prefect API the caller talks to, for the links (:func:`.links.run_url`).
        limit: at most this many breaches of each kind this round.

    Never raises for a single breach: problems are logged and listed in ``errors``.
    """
    when = _now(now)
    lookup = definition_lookup(register, definitions)
    report = EscalationReport()
    for run in register.overdue_steps(when, wait_kind=WAIT_PERSON, limit=limit):
        label = f"{run.case_key}/{run.step_id}#{run.visit}"
        try:
            case = register.case(run.case_key)
            found = _human_step(lookup, case, run.step_id)
            if found is None:
                report.skipped.append(label)
                continue
            definition, step = found
            scope = case_scope(register, case, when, api_url=api_url)
            plan = human_plan(definition.team, scope, step, run, register, definition.calendar)
            messages: list[OutboxMessage] = escalation_messages(
                definition.team, scope, step, plan, visit=run.visit,
                recipients=_assignees(definition.team, scope, step, plan), templates=definition.templates,
            )
            enqueue(register, messages, at=when)
            if register.mark_escalated(run.id, when):
                report.escalated.append(label)
                report.breaches.append(Breach(run, tuple(plan.escalate_to)))
                report.messages += len(messages)
            else:
                report.already.append(label)
        except Exception as error:  # one bad case must not stop the others' escalations
            log.exception("escalating %s failed", label)
            report.errors.append(f"{label}: {error}")
    for case in register.overdue_cases(when, limit=limit):
        try:
            found_definition = lookup(case)
            if found_definition is not None and _clock_stopped(register, case, found_definition.spec):
                continue  # waiting at a step of sla.pause_while: its due moves when that wait ends
            messages = []
            references: tuple[str, ...] = ()
            if found_definition is not None and found_definition.spec.sla is not None and case.due_at is not None:
                scope = case_scope(register, case, when, api_url=api_url)
                escalate = found_definition.spec.sla.escalate_to
                references = (escalate,) if isinstance(escalate, str) else tuple(escalate or ())
                recipients = router.resolve_recipients(references, found_definition.team, scope)
                messages = case_escalation_messages(found_definition.team, scope, recipients, due_at=case.due_at, templates=found_definition.templates)
                enqueue(register, messages, at=when)
            if register.mark_case_escalated(case.key, when):
                report.cases.append(case.key)
                if case.due_at is not None:
                    report.case_breaches.append(CaseBreach(case.key, case.due_at, references))
                report.messages += len(messages)
            else:
                report.already.append(case.key)
        except Exception as error:
            log.exception("escalating case %s failed", case.key)
            report.errors.append(f"{case.key}: {error}")
    return report


def send_reminders(
    register: Register,
    definitions: Library | DefinitionLookup,
    now: datetime | None = None,
    *,
    api_url: str | None = None,
    limit: int = 10_000,
) -> ReminderReport:
    """Remind the assignees of waiting steps with ``remind_every``: reminder ``n`` once ``n`` periods passed.

    Only the latest due reminder is written (a deliverer that was down for three
    periods sends one reminder, not three); its key carries ``n``, so each is written once.
    """
    when = _now(now)
    lookup = definition_lookup(register, definitions)
    report = ReminderReport()
    known: dict[str, set[str]] = {}
    for run in register.open_steps(wait_kind=WAIT_PERSON, limit=limit):
        label = f"{run.case_key}/{run.step_id}#{run.visit}"
        try:
            case = register.case(run.case_key)
            found = _human_step(lookup, case, run.step_id)
            if found is None or not found[1].remind_every:
                continue
            definition, step = found
            assert step.remind_every is not None
            number = periods_passed(run.started_at, when, step.remind_every, definition.calendar)
            if number < 1:
                continue
            scope = case_scope(register, case, when, api_url=api_url)
            plan = human_plan(definition.team, scope, step, run, register, definition.calendar)
            messages = reminder_messages(
                definition.team, scope, step, plan, visit=run.visit, reminder=number,
                recipients=_assignees(definition.team, scope, step, plan), templates=definition.templates,
            )
            if case.key not in known:
                known[case.key] = {m.idempotency_key for m in register.messages(case_key=case.key, limit=100_000)}
            fresh = [m for m in messages if m.idempotency_key not in known[case.key]]
            if fresh:
                enqueue(register, fresh, at=when)
                known[case.key].update(m.idempotency_key for m in fresh)
                report.reminded.append(f"{label}:{number}")
                report.messages += len(fresh)
        except Exception as error:
            log.exception("reminding %s failed", label)
            report.errors.append(f"{label}: {error}")
    return report


def next_reminder(
    register: Register, definitions: Library | DefinitionLookup, case_key: str, step_id: str, visit: int, now: datetime | None = None
) -> datetime | None:
    """When a waiting step's next reminder falls: reminder ``n`` is ``n`` periods of ``remind_every`` after the step
    began (working time on the process's calendar for ``4bh``, ``1bd``); None once the step stopped waiting."""
    when = _now(now)
    run = register.step_run(case_key, step_id, visit)
    if run is None or not run.is_open:
        return None
    found = _human_step(definition_lookup(register, definitions), register.case(case_key), step_id)
    if found is None or not found[1].remind_every:
        return None
    definition, step = found
    assert step.remind_every is not None
    passed = periods_passed(run.started_at, when, step.remind_every, definition.calendar)
    return due_after(run.started_at, step.remind_every, definition.calendar, times=passed + 1)


def time_out_overdue(
    register: Register,
    definitions: Library | DefinitionLookup,
    now: datetime | None = None,
    *,
    limit: int = 1000,
) -> list[StepRunRecord]:
    """Mark the waiting human steps whose due passed and that take ``on_timeout`` as timed out.

    Each is marked once (``Register.mark_timed_out``, True for the first caller only);
    the caller wakes the runs of the steps returned, which then take ``on_timeout``
    (:func:`aftercare.engine.answers.decide`).

    Returns:
        The step runs this call marked.
    """
    when = _now(now)
    lookup = definition_lookup(register, definitions)
    marked: list[StepRunRecord] = []
    for run in register.open_steps(wait_kind=WAIT_PERSON, limit=limit):
        if run.due_at is None or run.due_at > when or run.timed_out_at is not None:
            continue
        try:
            found = _human_step(lookup, register.case(run.case_key), run.step_id)
        except AftercareError as error:
            log.warning("timing out %s/%s: %s", run.case_key, run.step_id, error)
            continue
        if found is not None and found[1].on_timeout and register.mark_timed_out(run.id, when):
            marked.append(run)
    return marked
