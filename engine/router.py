"""The one step router: pure functions deciding who may answer, when a step is decided, and where a case goes next.

The simulator and the Prefect flow both call these; neither has routing of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from . import expressions
from .errors import AnswerError, StepError
from .spec import (
    ApprovalStep,
    ChecklistStep,
    DecisionStep,
    EndStep,
    FormStep,
    HumanStep,
    ProcessSpec,
    StepSpec,
)
from .suggest import did_you_mean
from .team import TeamSpec
from .values import coerce_all

IMPLICIT_OUTCOME = "completed"
Decision = Literal["approve", "reject", "submit"]


@dataclass(frozen=True)
class Exit:
    """One way out of a step: a label (``approve``, ``when[0]``, ...) and its target (None ends the case)."""

    label: str
    target: str | None


@dataclass(frozen=True)
class Finish:
    """The case ends with this outcome."""

    outcome: str


@dataclass(frozen=True)
class Goto:
    """The case moves on to this step, leaving by the exit of this label."""

    step: str
    label: str


@dataclass(frozen=True)
class Answer:
    """One person's answer to a human step."""

    by: str
    decision: Decision
    comment: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    answered_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the register and expressions."""
        return {
            "by": self.by,
            "decision": self.decision,
            "comment": self.comment,
            "fields": dict(self.fields),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
        }


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
    after = following(spec, step)
    out = []
    if isinstance(step, ApprovalStep):
        out = [Exit("approve", after), Exit("reject", step.on_reject)]
    elif isinstance(step, ChecklistStep):
        out = [Exit("pass", after), Exit("fail", step.on_fail or after)]
    else:
        out = [Exit("next", after)]
    if isinstance(step, (ApprovalStep, FormStep, ChecklistStep)) and step.on_timeout:
        out.append(Exit("timeout", step.on_timeout))
    return out


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


# --- answers -----------------------------------------------------------------------


def accept_answer(
    step: HumanStep,
    *,
    by: str,
    decision: str | None,
    comment: str | None,
    fields: Mapping[str, Any],
    eligible: Sequence[str],
    earlier: Sequence[Answer] = (),
    people: Sequence[str] = (),
    answered_at: datetime | None = None,
) -> Answer:
    """Check one answer against the step and return it typed.

    Raises:
        AnswerError: the person is not named by the assignee, has answered already,
            or the decision or a field does not fit the step.
    """
    if by not in eligible:
        raise AnswerError(
            f"{by!r} may not answer step {step.id!r}: its assignee names {', '.join(eligible) or 'nobody'}"
            + did_you_mean(by, eligible)
        )
    if any(answer.by == by for answer in earlier):
        raise AnswerError(f"{by!r} has already answered step {step.id!r}")
    if isinstance(step, ApprovalStep):
        if decision not in ("approve", "reject"):
            raise AnswerError(f"step {step.id!r} is an approval: answer with decision approve or reject, not {decision!r}")
        chosen: Decision = "approve" if decision == "approve" else "reject"
    else:
        if decision not in (None, "", "submit"):
            raise AnswerError(f"step {step.id!r} is a {step.type}: it takes no decision, got {decision!r}")
        chosen = "submit"
    form_fields = dict(step.form)
    given = dict(fields)
    verdicts: dict[str, bool] | None = None
    if isinstance(step, ChecklistStep):
        # the item verdicts are not form fields: take them out before the form is checked
        verdicts = _checklist_values(step, given).pop("items")
    try:
        values = coerce_all(form_fields, given, people, what="field") if form_fields or given else {}
    except ValueError as error:
        raise AnswerError(f"step {step.id!r}: {error}") from None
    if verdicts is not None:
        values["items"] = verdicts
    return Answer(by=by, decision=chosen, comment=comment or "", fields=values, answered_at=answered_at)


def _checklist_values(step: ChecklistStep, given: dict[str, Any]) -> dict[str, Any]:
    """Pull the item verdicts (``items: {id: pass|fail}`` or ``ID: pass`` at top level) out of an answer."""
    raw = dict(given.pop("items", None) or {})
    for item in step.items:
        if item.id in given:
            raw[item.id] = given.pop(item.id)
    verdicts: dict[str, bool] = {}
    problems: list[str] = []
    for item in step.items:
        if item.id not in raw:
            problems.append(f"item {item.id!r} has no verdict")
            continue
        verdict = _verdict(raw.pop(item.id))
        if verdict is None:
            problems.append(f"item {item.id!r}: answer pass or fail")
        else:
            verdicts[item.id] = verdict
    for name in raw:
        problems.append(f"unknown item {name!r}" + did_you_mean(name, [i.id for i in step.items]))
    if problems:
        raise AnswerError(f"step {step.id!r}: " + "; ".join(problems))
    given["items"] = verdicts
    return given


def _verdict(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("pass", "passed", "ok", "yes", "true", "y"):
        return True
    if text in ("fail", "failed", "no", "false", "n"):
        return False
    return None


def tally(step: HumanStep, answers: Sequence[Answer]) -> Decision | None:
    """Whether a human step is decided: the first rejection vetoes; ``quorum`` approvals approve."""
    if isinstance(step, ApprovalStep):
        if any(answer.decision == "reject" for answer in answers):
            return "reject"
        return "approve" if sum(answer.decision == "approve" for answer in answers) >= step.quorum else None
    return "submit" if answers else None


def checklist_score(step: ChecklistStep, items: Mapping[str, bool]) -> float:
    """The weighted share of passed items, 0 to 100, rounded to one decimal."""
    total = sum(item.weight for item in step.items)
    passed = sum(item.weight for item in step.items if items.get(item.id))
    return round(100.0 * passed / total, 1)


def human_result(step: HumanStep, answers: Sequence[Answer], decision: Decision | Literal["timeout"]) -> dict[str, Any]:
    """The result of a decided human step, as later expressions see it (``triage.priority``)."""
    deciding = answers[-1] if answers else None
    result: dict[str, Any] = {
        "decision": decision,
        "by": deciding.by if deciding else None,
        "comment": deciding.comment if deciding else "",
        "answered_at": deciding.answered_at.isoformat() if deciding and deciding.answered_at else None,
        "approved_by": [a.by for a in answers if a.decision == "approve"],
        "rejected_by": [a.by for a in answers if a.decision == "reject"],
        "answers": [a.as_dict() for a in answers],
    }
    for name in step.form:
        result[name] = deciding.fields.get(name) if deciding else None
    if isinstance(step, ChecklistStep):
        items = dict(deciding.fields.get("items", {})) if deciding else {}
        score = checklist_score(step, items) if deciding else 0.0
        result.update(
            items=items,
            score=score,
            passed=bool(deciding) and score >= step.pass_mark,
            failed=[item.id for item in step.items if deciding and not items.get(item.id)],
            failed_items=[{"id": i.id, "label": i.label} for i in step.items if deciding and not items.get(i.id)],
        )
    return result


# --- routing ----------------------------------------------------------------------


def choose_branch(step: DecisionStep, scope: Mapping[str, Any]) -> Exit:
    """The first branch whose ``when`` holds, else ``otherwise``."""
    for index, branch in enumerate(step.branches):
        if expressions.evaluate(branch.when, dict(scope)):
            return Exit(f"when[{index}]", branch.next)
    return Exit("otherwise", step.otherwise)


def route(spec: ProcessSpec, step: StepSpec, result: Mapping[str, Any]) -> Goto | Finish:
    """Where the case goes after ``step`` finished with ``result``."""
    if isinstance(step, EndStep):
        return Finish(step.outcome)
    if isinstance(step, DecisionStep):
        return _goto_or_finish(Exit(result["exit"], result["next"]))
    after = following(spec, step)
    decision = result.get("decision")
    if decision == "timeout":
        assert not isinstance(step, (DecisionStep, EndStep))
        target = getattr(step, "on_timeout", None)
        if not target:
            raise StepError(f"step {step.id!r} timed out but has no on_timeout")
        return Goto(target, "timeout")
    if isinstance(step, ApprovalStep):
        if decision == "reject":
            return Goto(step.on_reject, "reject") if step.on_reject else Finish("rejected")
        return _goto_or_finish(Exit("approve", after))
    if isinstance(step, ChecklistStep):
        if result.get("passed"):
            return _goto_or_finish(Exit("pass", after))
        return _goto_or_finish(Exit("fail", step.on_fail or after))
    return _goto_or_finish(Exit("next", after))


def _goto_or_finish(exit_: Exit) -> Goto | Finish:
    return Goto(exit_.target, exit_.label) if exit_.target else Finish(IMPLICIT_OUTCOME)


def exit_label(spec: ProcessSpec, step: StepSpec, result: Mapping[str, Any]) -> str:
    """The label of the exit a finished step took (for coverage)."""
    outcome = route(spec, step, result)
    if isinstance(outcome, Goto):
        return outcome.label
    if isinstance(step, ApprovalStep) and result.get("decision") == "reject":
        return "reject"
    if isinstance(step, EndStep):
        return "end"
    if isinstance(step, DecisionStep):
        return str(result["exit"])
    if isinstance(step, ApprovalStep):
        return "approve"
    if isinstance(step, ChecklistStep):
        return "pass" if result.get("passed") else "fail"
    return "next"
