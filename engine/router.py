"""The one step router: pure functions saying who a step addresses and where a case goes next.

The case runner (:mod:`.runner`) moves a set of tokens with these; the simulator and the
Prefect flow both go through it, and neither has routing of its own. Human steps' answers,
tallies and timeouts are in :mod:`.answers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from . import expressions
from .errors import StepError
from .spec import (
    ApprovalStep,
    CallStep,
    ChecklistStep,
    DecisionStep,
    EndStep,
    FormStep,
    HumanStep,
    JoinStep,
    ParallelStep,
    ProcessSpec,
    StepSpec,
)
from .team import TeamSpec

IMPLICIT_OUTCOME = "completed"
FAILED_OUTCOME = "failed"
"""The outcome of a case whose call step failed and has no ``on_error``."""
TIMEOUT: Final = "timeout"
"""The decision of a human step whose due passed and that takes ``on_timeout``."""


@dataclass(frozen=True)
class Exit:
    """One way out of a step: a label (``approve``, ``when[0]``, ...) and its target (None ends the case)."""

    label: str
    target: str | None


@dataclass(frozen=True)
class Edge:
    """An exit that goes to a step, with the field of the step that says so (``("next",)``; ``("id",)`` falling through)."""

    target: str
    field: tuple[str | int, ...]
    label: str


@dataclass(frozen=True)
class Finish:
    """The case ends with this outcome, leaving its last step by the exit of this label."""

    outcome: str
    label: str


@dataclass(frozen=True)
class Goto:
    """The case moves on to this step, leaving by the exit of this label."""

    step: str
    label: str


# --- the graph -----------------------------------------------------------------


def following(spec: ProcessSpec, step: StepSpec) -> str | None:
    """Where a step goes when it just finishes: its ``next``, else the step below, else the end."""
    if step.next:
        return step.next
    position = spec.index(step.id)
    return spec.steps[position + 1].id if position + 1 < len(spec.steps) else None


def exits(spec: ProcessSpec, step: StepSpec) -> list[Exit]:
    """Every way out of a step, labelled; coverage and the static checks read this."""
    if isinstance(step, EndStep):
        return [Exit("end", None)]
    if isinstance(step, DecisionStep):
        out = [Exit(f"when[{index}]", branch.next) for index, branch in enumerate(step.branches)]
        return [*out, Exit("otherwise", step.otherwise)]
    if isinstance(step, ParallelStep):
        return [Exit(f"branch[{index}]", target) for index, target in enumerate(step.branches)]
    after = following(spec, step)
    out = []
    if isinstance(step, ApprovalStep):
        out = [Exit("approve", after), Exit("reject", step.on_reject)]
    elif isinstance(step, ChecklistStep):
        out = [Exit("pass", after), Exit("fail", step.on_fail or after)]
    elif isinstance(step, CallStep):
        out = [Exit("next", after), Exit("error", step.on_error)]
    else:
        out = [Exit("next", after)]
    if isinstance(step, (ApprovalStep, FormStep, ChecklistStep)) and step.on_timeout:
        out.append(Exit("timeout", step.on_timeout))
    return out


def edges(spec: ProcessSpec, step: StepSpec) -> list[Edge]:
    """The exits of a step that go to a step, each with the field that names it (for file:line problems)."""
    out = []
    for exit_ in exits(spec, step):
        if exit_.target is not None:
            out.append(Edge(exit_.target, _exit_field(step, exit_.label), exit_.label))
    return out


def _exit_field(step: StepSpec, label: str) -> tuple[str | int, ...]:
    if label.startswith(("when[", "branch[")):
        index = int(label[label.index("[") + 1 : -1])
        return ("branches", index, "next") if label.startswith("when[") else ("branches", index)
    named = {"reject": "on_reject", "timeout": "on_timeout", "otherwise": "otherwise", "error": "on_error"}
    if label in named:
        return (named[label],)
    if label == "fail" and getattr(step, "on_fail", None):
        return ("on_fail",)
    return ("next",) if step.next else ("id",)


def first_step(spec: ProcessSpec) -> str:
    """The step every case starts at."""
    return spec.steps[0].id


# --- people ----------------------------------------------------------------------


def eligible_people(step: HumanStep, team: TeamSpec, scope: Mapping[str, Any]) -> tuple[str, ...]:
    """The people a human step's assignee names, in team order, without repeats.

    Raises:
        StepError: the assignee renders to a person or role the team does not have.
    """
    people: list[str] = []
    for reference in step.assignees:
        rendered = str(expressions.resolve_value(reference, dict(scope))).strip()
        try:
            members = team.members(rendered)
        except KeyError:
            raise StepError(
                f"step {step.id!r}: assignee {reference!r} gave {rendered!r}, which is not a person or role of the team"
            ) from None
        people.extend(member for member in members if member not in people)
    return tuple(people)


def resolve_recipients(references: Sequence[str], team: TeamSpec, scope: Mapping[str, Any]) -> list[str]:
    """Render ``to``/``escalate_to`` references to ``person:X``, ``role:X`` or channel URLs."""
    out: list[str] = []
    for reference in references:
        rendered = str(expressions.resolve_value(reference, dict(scope))).strip()
        if rendered and rendered not in out:
            out.append(rendered)
    return out


# --- routing ----------------------------------------------------------------------


def choose_branch(step: DecisionStep, scope: Mapping[str, Any]) -> Exit:
    """The first branch whose ``when`` holds, else ``otherwise``."""
    for index, branch in enumerate(step.branches):
        if expressions.evaluate(branch.when, dict(scope)):
            return Exit(f"when[{index}]", branch.next)
    return Exit("otherwise", step.otherwise)


def route(spec: ProcessSpec, step: StepSpec, result: Mapping[str, Any]) -> Goto | Finish:
    """Where the case goes after ``step`` finished with ``result``, and by which exit."""
    if isinstance(step, EndStep):
        return Finish(step.outcome, "end")
    if isinstance(step, DecisionStep):
        return _goto_or_finish(Exit(str(result["exit"]), result["next"]))
    decision = result.get("decision")
    if decision == TIMEOUT:
        target = getattr(step, "on_timeout", None)
        if not target:
            raise StepError(f"step {step.id!r} timed out but has no on_timeout")
        return Goto(target, "timeout")
    after = following(spec, step)
    if isinstance(step, CallStep) and "error" in result:
        return Goto(step.on_error, "error") if step.on_error else Finish(FAILED_OUTCOME, "error")
    if isinstance(step, ApprovalStep):
        if decision == "reject":
            return Goto(step.on_reject, "reject") if step.on_reject else Finish("rejected", "reject")
        return _goto_or_finish(Exit("approve", after))
    if isinstance(step, ChecklistStep):
        if result.get("passed"):
            return _goto_or_finish(Exit("pass", after))
        return _goto_or_finish(Exit("fail", step.on_fail or after))
    return _goto_or_finish(Exit("next", after))


def _goto_or_finish(exit_: Exit) -> Goto | Finish:
    return Goto(exit_.target, exit_.label) if exit_.target else Finish(IMPLICIT_OUTCOME, exit_.label)
