"""A register filled with the shipped library's scenarios on the simulated clock, for the report's tests.

Every scenario of ``processes/`` runs through the simulator, one case starting every
:data:`SPACING` from :data:`START` (so the cases spread over three months), and is written
to the register as a served run writes it (``tests/reporting/recording.py``). A few more cases stay open: they stop at a human step that waits (overdue by
the end of the window, and for the risk, rated), and one is cancelled, so the report has
backlog, attention, stale cases, open risks and cancellations to show.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aftercare.engine.calendars import calendar_of
from aftercare.engine.durations import due_after
from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.engine.scenarios import load_scenarios, run_scenario, scenario_file_for
from aftercare.engine.simulator import SimulationResult
from aftercare.notifications import Composer, load_checked_library
from tests.reporting.recording import record

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
START = datetime(2026, 8, 3, 9, 0, tzinfo=timezone.utc)  # a Monday
UNTIL = datetime(2026, 11, 2, tzinfo=timezone.utc)
SPACING = timedelta(hours=31)
# (process, scenario index, the step it waits at, days after START it opens)
LEFT_OPEN = (
    ("issue-resolution", 0, "triage", 84),
    ("risk-response", 0, "respond", 70),
    ("improvement-cycle", 0, None, 30),
    ("support-request", 0, None, 88),
)
CANCELLED = ("issue-resolution", 1, "triage", 40)
ELIGIBLE = ("li.na",)


@dataclass
class FilledRegister:
    """What was written: the closed cases' keys (and when each closed), the open and cancelled ones'."""

    closed: list[str] = field(default_factory=list)
    closed_at: dict[str, datetime] = field(default_factory=dict)
    open: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    processes: set[str] = field(default_factory=set)


def fill_from_scenarios(register: Register, folder: Path = PROCESSES) -> FilledRegister:
    """Write every scenario of the folder as a simulated case, plus the open and cancelled ones."""
    library = load_checked_library(folder)
    simulate = _Simulate(library)
    filled = FilledRegister()
    moment = START
    for name in sorted(library.definitions):
        loaded = library.definitions[name]
        for index in range(simulate.count(name)):
            result = simulate(name, index, moment)
            key = record(register, loaded, result)
            filled.closed.append(key)
            filled.closed_at[key] = result.visits[-1][4] if result.visits else result.case.opened_at
            filled.processes.add(name)
            moment += SPACING
    for name, index, waiting, days in LEFT_OPEN:
        filled.open.append(_left_open(register, library, simulate(name, index, START + timedelta(days=days)), waiting))
    name, index, waiting, days = CANCELLED
    key = _left_open(register, library, simulate(name, index, START + timedelta(days=days)), waiting)
    register.cancel_case(key, by="li.na", reason="Duplicate of an earlier issue", at=START + timedelta(days=days, hours=3))
    filled.cancelled.append(key)
    return filled


class _Simulate:
    """A scenario of the library run through the simulator (``run_scenario``) from a chosen moment."""

    def __init__(self, library: Any) -> None:
        self.library = library
        self.composer = Composer.for_library(library)
        self.catalog = {name: item.spec for name, item in library.definitions.items()}
        self.files: dict[str, Any] = {}

    def _file(self, name: str) -> Any:
        if name not in self.files:
            path = scenario_file_for(self.library.definitions[name].path)
            self.files[name] = load_scenarios(path) if path.is_file() else None
        return self.files[name]

    def count(self, name: str) -> int:
        scenarios = self._file(name)
        return len(scenarios.spec.scenarios) if scenarios is not None else 0

    def __call__(self, name: str, index: int, start: datetime) -> SimulationResult:
        scenarios = self._file(name)
        moved = list(scenarios.spec.scenarios)
        moved[index] = moved[index].model_copy(update={"start": start})
        at_start = dataclasses.replace(scenarios, spec=scenarios.spec.model_copy(update={"scenarios": tuple(moved)}))
        outcome = run_scenario(at_start, index, self.library.definitions[name].spec, self.library.team, self.catalog, self.composer)
        assert outcome.result is not None and outcome.passed, f"{name}: {outcome.failures}"
        return outcome.result


def _left_open(register: Register, library: Any, result: SimulationResult, waiting: str | None) -> str:
    """Record a simulated case up to the first visit of ``waiting`` (default: its first human step), left waiting there."""
    loaded = library.definitions[result.case.process]
    spec = loaded.spec
    waiting = waiting or next(step_id for step_id, *_ in result.visits if getattr(spec.step(step_id), "assignee", None))
    cut = next(i for i, (step_id, *_rest) in enumerate(result.visits) if step_id == waiting)
    partial = copy.copy(result)
    partial.case = copy.copy(result.case)
    partial.case.outcome = None
    partial.visits = result.visits[:cut]
    key = record(register, loaded, partial)
    step_id, visit, _result, started_at, _finished = result.visits[cut]
    step = spec.step(step_id)
    due = due_after(started_at, step.due, calendar_of(spec, library.team)) if getattr(step, "due", None) else started_at + timedelta(hours=8)
    register.begin_step(key, step_id, visit, started_at=started_at, due_at=due, eligible=ELIGIBLE, wait_kind=WAIT_PERSON)
    return key
