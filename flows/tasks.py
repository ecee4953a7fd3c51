"""Steps waiting on people: the one reading of who a case waits for, and ``aftercare tasks``' list.

A waiting unit is an open human step visit, or one ``for_each`` instance of it (the
instances stand on their own; their step's own row is not listed beside them); it waits for
the people of its ``eligible`` who have not answered it yet (a quorum's first approver is
no longer waited for). :func:`waiting_units` is the one reading: the task list and the
runs' ``waiting:`` tags (:mod:`.waiting_tags`) both come from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aftercare.engine.answers import plan_human_step
from aftercare.engine.calendars import BusinessCalendar, calendar_of, shown_in
from aftercare.engine.errors import AftercareError, NotFoundError
from aftercare.engine.library import definition_of_case
from aftercare.engine.loader import Library
from aftercare.engine.register import WAIT_PERSON, CaseRecord, Register, StepRunRecord
from aftercare.engine.runner import for_each_items
from aftercare.engine.spec import HumanStep, is_human
from aftercare.engine.suggest import did_you_mean
from aftercare.engine.team import TeamSpec
from aftercare.engine.waiting import parse_row
from aftercare.notifications.escalation import case_scope
from aftercare.notifications.outbox import duration_text

ALL_OPEN = 100_000
"""How many open step runs the task list reads at most."""


@dataclass(frozen=True)
class WaitingUnit:
    """An open human step visit (or ``for_each`` instance) and the people it still waits for."""

    run: StepRunRecord
    people: tuple[str, ...]


def waiting_units(register: Register, runs: Iterable[StepRunRecord]) -> list[WaitingUnit]:
    """The units among some step runs that wait on people, each with who has not answered yet (oldest first)."""
    open_runs = [run for run in runs if run.is_open and run.wait_kind == WAIT_PERSON]
    instances = {(run.case_key, parse_row(run.step_id)[0], run.visit) for run in open_runs if parse_row(run.step_id)[1] is not None}
    units = []
    for run in open_runs:
        if parse_row(run.step_id)[1] is None and (run.case_key, run.step_id, run.visit) in instances:
            continue  # a for_each step's own row: its instances wait, each on its own
        answered = {answer.person for answer in register.answers(run.case_key, run.step_id, run.visit)}
        units.append(WaitingUnit(run, tuple(person for person in run.eligible if person not in answered)))
    return units


def case_waiting(register: Register, case_key: str) -> list[WaitingUnit]:
    """What an open case waits for now (nothing once it is closed)."""
    if not register.case(case_key).is_open:
        return []
    return waiting_units(register, register.step_runs(case_key))


def check_filters(team: TeamSpec, person: str | None, role: str | None) -> None:
    """``--for`` names a person of the team, ``--role`` a role.

    Raises:
        NotFoundError: an unknown person or role, with the near name.
    """
    if person is not None and person not in team.people:
        raise NotFoundError(f"no person {person!r} in the team{did_you_mean(person, list(team.people))}")
    if role is not None and role not in team.roles:
        raise NotFoundError(f"no role {role!r} in the team{did_you_mean(role, list(team.roles))}")


def task_list(
    register: Register,
    library: Library,
    *,
    now: datetime,
    person: str | None = None,
    role: str | None = None,
    overdue: bool = False,
    link: Any = None,
) -> list[dict[str, Any]]:
    """Every unit waiting on people (of ``person``, of a member of ``role``), overdue first, then oldest first.

    ``link(case, unit)`` gives the Prefect UI page of the run that holds the unit's form (None: no link).

    Raises:
        NotFoundError: an unknown person or role.
    """
    team = library.team
    check_filters(team, person, role)
    wanted: set[str] | None = None
    if person is not None:
        wanted = {person}
    if role is not None:
        members = set(team.roles[role].members)
        wanted = members if wanted is None else wanted & members
    units = waiting_units(register, register.open_steps(wait_kind=WAIT_PERSON, limit=ALL_OPEN))
    cases: dict[str, CaseRecord] = {}
    tasks = []
    for unit in units:
        if wanted is not None and not wanted & set(unit.people):
            continue
        run = unit.run
        late = run.due_at is not None and run.due_at <= now
        if overdue and not late:
            continue
        case = cases.get(run.case_key) or cases.setdefault(run.case_key, register.case(run.case_key))
        title, calendar = _title(register, library, case, run, now)
        tasks.append({
            "case": case.key,
            "process": case.process,
            "case_title": case.title,
            "step": run.step_id,
            "visit": run.visit,
            "title": title,
            "who": list(unit.people),
            "due": run.due_at.isoformat() if run.due_at else None,
            "due_text": shown_in(run.due_at, calendar) if run.due_at else None,
            "overdue": late,
            "waiting_since": run.started_at.isoformat(),
            "age_seconds": int((now - run.started_at).total_seconds()),
            "age": duration_text(now - run.started_at),
            "link": link(case, run) if link is not None else None,
        })
    tasks.sort(key=lambda task: (not task["overdue"], task["waiting_since"], task["case"], task["step"]))
    return tasks


def _title(register: Register, library: Library, case: CaseRecord, run: StepRunRecord, now: datetime) -> tuple[str, BusinessCalendar | None]:
    """The step's title rendered in the case's scope (an instance's with its item), and its process's calendar.

    The title falls back to the step's id, the calendar to None (UTC), when the definition cannot be read.
    """
    step_id, unit = parse_row(run.step_id)
    try:
        spec = definition_of_case(library, case.process, case.definition_hash, register.stored_definition).spec
        calendar = calendar_of(spec, library.team)
        step = spec.step(step_id)
        if not is_human(step):
            return run.step_id, calendar
        human: HumanStep = step  # type: ignore[assignment]
        scope = case_scope(register, case, now)
        if unit is not None:
            items = for_each_items(human, scope)
            scope["item"] = items[unit] if unit < len(items) else None
        plan = plan_human_step(human, library.team, scope, started_at=run.started_at, due_at=run.due_at, eligible=run.eligible, calendar=calendar)
        return plan.title, calendar
    except (AftercareError, KeyError, IndexError):
        return run.step_id, None


def render_tasks(tasks: Sequence[dict[str, Any]]) -> str:
    """The plain-text list of ``aftercare tasks``: one line a task, then its link."""
    if not tasks:
        return "nothing is waiting on people\n"
    lines = []
    for task in tasks:
        flag = "OVERDUE " if task["overdue"] else ""
        due = f"due {task['due_text']}" if task["due_text"] else "no due"
        lines.append(f"{flag}{task['case']}  {task['step']}  {task['title']}  — {', '.join(task['who'])}; {due}; waiting {task['age']}")
        if task["link"]:
            lines.append(f"    {task['link']}")
    return "\n".join(lines) + "\n"


__all__ = ["WaitingUnit", "case_waiting", "check_filters", "render_tasks", "task_list", "waiting_units"]
