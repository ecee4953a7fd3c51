"""What a case waits at, and the one rule that says when a waited-for step is done.

A case waits at one or more step visits at once (parallel branches): a person (a human
step, or each instance of a ``for_each`` human step), a timer (a ``wait`` step), or linked
cases (a ``start`` step with ``wait``). The executor reports what happens to them as
:class:`Event` values; :func:`settle` turns the events of a multi-instance step into its
result once enough have come in. The simulator and the Prefect flow both go through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .answers import HumanPlan
from .router import TIMEOUT
from .spec import ApprovalStep, ChecklistStep, HumanStep, StartStep, StepSpec, WaitStep, is_human

Kind = Literal["person", "timer", "cases"]


def unit_row(step_id: str, unit: int | None) -> str:
    """The register's step id of a waiting unit: the step's own, or ``step[2]`` for its second instance."""
    return step_id if unit is None else f"{step_id}[{unit + 1}]"


def parse_row(row: str) -> tuple[str, int | None]:
    """A register step id back as (step id, unit index): ``step[2]`` is (``step``, 1)."""
    found = re.fullmatch(r"(.+)\[(\d+)\]", row)
    return (found.group(1), int(found.group(2)) - 1) if found else (row, None)


@dataclass
class Unit:
    """One thing of a multi-instance step: a ``for_each`` instance (a person's form) or a linked case.

    ``result`` is set when it is decided or ended; ``withdrawn`` when the step no longer needs it.
    """

    index: int
    item: Any
    plan: HumanPlan | None = None
    case: str | None = None
    result: dict[str, Any] | None = None
    withdrawn: bool = False

    @property
    def is_open(self) -> bool:
        """Whether it still waits."""
        return self.result is None and not self.withdrawn


@dataclass
class Waiting:
    """A step visit the case waits at.

    Attributes:
        step: the step.
        visit: its visit number.
        order: when it began waiting among the steps waiting now (ties go to the earlier).
        started_at: when the visit began (deadlines count from it).
        plan: a human step's plan (a ``for_each`` step's: every instance's people together).
        units: a ``for_each`` step's instances, or a waited-for ``start`` step's cases.
        needed: how many units must finish (``wait: all | any | N``).
        until: a ``wait`` step's moment.
        opened: a waited-for ``start`` step's result as it opened its cases.
        recorded: the result an earlier execution finished the visit with (a replay).
        rank: the order earlier executions finished visits in (a replay keeps it).
    """

    step: StepSpec
    visit: int
    order: int
    started_at: datetime
    plan: HumanPlan | None = None
    units: list[Unit] | None = None
    needed: int = 1
    until: datetime | None = None
    opened: dict[str, Any] | None = None
    recorded: dict[str, Any] | None = None
    rank: float = 0.0
    escalated: bool = False

    @property
    def kind(self) -> Kind:
        """What it waits for."""
        if is_human(self.step):
            return "person"
        return "timer" if isinstance(self.step, WaitStep) else "cases"

    @property
    def due_at(self) -> datetime | None:
        """A human step's deadline."""
        return self.plan.due_at if self.plan is not None else None

    def open_units(self) -> list[Unit]:
        """The instances or cases still waited for."""
        return [unit for unit in self.units or () if unit.is_open]


@dataclass(frozen=True)
class Event:
    """Something that happened to a waiting step: decided, timed out, fired, or one unit finished.

    ``unit`` is the index of the instance or linked case that finished (None: the step as a
    whole, e.g. a human step decided or timed out, a timer fired); ``result`` is the step's
    result, or that unit's.
    """

    waiting: Waiting
    result: dict[str, Any]
    unit: int | None = None


@dataclass
class Settled:
    """A multi-unit step's result, and the units it no longer needs (to withdraw)."""

    result: dict[str, Any]
    withdraw: list[Unit] = field(default_factory=list)


def settle(waiting: Waiting, event: Event) -> Settled | None:
    """Apply an event to a waiting step: its result once done (the units to withdraw with it), else None.

    A human step without ``for_each``, a timer, and a step timing out are done with the
    event's result. A ``for_each`` approval is rejected by its first rejected instance (the
    veto, even under ``wait: all``); otherwise a multi-unit step is done when ``needed``
    units have finished.
    """
    step = waiting.step
    if waiting.units is None or event.unit is None:
        if waiting.units is not None:  # the step as a whole (a timeout): open units are left as they are
            return Settled(_gathered(waiting, event.result.get("decision")), [])
        return Settled(dict(event.result))
    unit = waiting.units[event.unit]
    unit.result = dict(event.result)
    finished = [u for u in waiting.units if u.result is not None]
    vetoed = isinstance(step, ApprovalStep) and unit.result.get("decision") == "reject"
    if not vetoed and len(finished) < waiting.needed:
        return None
    withdraw = waiting.open_units()
    for other in withdraw:
        other.withdrawn = True
    return Settled(_gathered(waiting, "reject" if vetoed else None), withdraw)


def _gathered(waiting: Waiting, decision: str | None) -> dict[str, Any]:
    """The result of a multi-unit step from its units (in item order)."""
    units = waiting.units or []
    if isinstance(waiting.step, StartStep):
        assert waiting.opened is not None
        outcomes = [u.result.get("outcome") if u.result else None for u in units]
        ended = [o for o in outcomes if o is not None]
        return {**waiting.opened, "outcomes": outcomes, "outcome": ended[0] if ended else None, "completed": len(ended)}
    step: HumanStep = waiting.step  # type: ignore[assignment]
    instances: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    for unit in units:
        if unit.result is None:
            instances.append({"item": unit.item, "withdrawn": True} if unit.withdrawn else {"item": unit.item, "timed_out": True})
            continue
        result = unit.result
        entry = {"item": unit.item, "by": result.get("by"), "decision": result.get("decision"), "comment": result.get("comment", "")}
        entry.update({name: result.get(name) for name in step.form})
        if isinstance(step, ChecklistStep):
            entry.update({name: result.get(name) for name in ("score", "passed", "failed", "items")})
        instances.append(entry)
        answers.extend(result.get("answers", []))
    done = [u.result for u in units if u.result is not None]
    if decision is None:
        decision = "approve" if isinstance(step, ApprovalStep) else "submit"
    out: dict[str, Any] = {
        "decision": decision,
        "instances": instances,
        "completed": len(done),
        "by": done[-1].get("by") if done else None,
        "comment": done[-1].get("comment", "") if done else "",
        "approved_by": [r.get("by") for r in done if r.get("decision") == "approve"],
        "rejected_by": [r.get("by") for r in done if r.get("decision") == "reject"],
        "answers": answers,
    }
    if isinstance(step, ChecklistStep):
        out["passed"] = decision != TIMEOUT and all(bool(r.get("passed")) for r in done)
    return out


__all__ = ["Event", "Kind", "Settled", "Unit", "Waiting", "parse_row", "settle", "unit_row"]
