"""Human steps: what a step asks, people's answers checked against it, the tally, the timeout, the result.

One rule for each, called by every executor: the simulator (scripted answers on a simulated
clock), the Prefect flow (answers through the run's resume form) and the register (which
decides under a row lock with :func:`decide`). :func:`collect` is the wait itself, written
once over an :class:`AnswerSource`; each executor supplies only where answers come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from . import expressions
from .calendars import BusinessCalendar, shown_in
from .durations import due_after
from .errors import AnswerError
from .router import TIMEOUT, eligible_people, resolve_recipients
from .spec import ApprovalStep, ChecklistStep, HumanStep
from .suggest import did_you_mean
from .team import TeamSpec
from .values import coerce_all

Decision = Literal["approve", "reject", "submit"]


@dataclass(frozen=True)
class HumanPlan:
    """What a human step asks: who may answer, its title and description, when it began and is due."""

    eligible: tuple[str, ...]
    title: str
    description: str
    started_at: datetime
    due_at: datetime | None
    escalate_to: tuple[str, ...]
    calendar: BusinessCalendar | None = None
    """The process's business calendar: its ``due`` counted there, and shown in its time zone."""

    @property
    def due_shown(self) -> str | None:
        """The due as people read it: in the calendar's time zone (``2026-09-28 14:30 Asia/Shanghai``), else UTC."""
        return shown_in(self.due_at, self.calendar) if self.due_at is not None else None


def plan_human_step(
    step: HumanStep,
    team: TeamSpec,
    scope: Mapping[str, Any],
    *,
    started_at: datetime,
    due_at: datetime | None = None,
    eligible: Sequence[str] | None = None,
    calendar: BusinessCalendar | None = None,
) -> HumanPlan:
    """The plan of a human step visit (the one builder: the runner, escalations and reminders call it).

    Args:
        step: the approval, form or checklist step.
        team: the team, for the assignee and ``escalate_to``.
        scope: the case scope at the step.
        started_at: when the visit began.
        due_at: its deadline; by default ``started_at`` plus the step's ``due``.
        eligible: the people recorded when the visit began (the register's); by default
            the step's assignee rendered now.
        calendar: the process's business calendar, which a ``due`` such as ``4bh`` counts on.

    Raises:
        StepError: a title, description or reference fails to render, or names nobody of the team.
    """
    escalate = step.escalate_to
    references = (escalate,) if isinstance(escalate, str) else tuple(escalate or ())
    if due_at is None and step.due:
        due_at = due_after(started_at, step.due, calendar)
    return HumanPlan(
        eligible=tuple(eligible) if eligible is not None else eligible_people(step, team, scope),
        title=expressions.render(step.title, dict(scope)) if step.title else step.id,
        description=expressions.render(step.description, dict(scope)) if step.description else "",
        started_at=started_at,
        due_at=due_at,
        escalate_to=tuple(resolve_recipients(references, team, scope)),
        calendar=calendar,
    )


@dataclass(frozen=True)
class Submission:
    """What a person (or a script) submits to a human step, not yet checked."""

    by: str
    decision: str | None = None
    comment: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """One person's answer to a human step, checked and typed."""

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


class AnswerRow(Protocol):
    """An answer as the register stores it (``AnswerRecord``)."""

    @property
    def person(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def comment(self) -> str | None: ...
    @property
    def fields(self) -> dict[str, Any]: ...
    @property
    def answered_at(self) -> datetime: ...


def from_rows(rows: Iterable[AnswerRow]) -> list[Answer]:
    """Stored answers as answers (oldest first, as given)."""
    out: list[Answer] = []
    for row in rows:
        decision: Decision = "approve" if row.decision == "approve" else "reject" if row.decision == "reject" else "submit"
        out.append(Answer(by=row.person, decision=decision, comment=row.comment or "", fields=dict(row.fields), answered_at=row.answered_at))
    return out


def is_late(step: HumanStep, due_at: datetime | None, now: datetime) -> bool:
    """Whether the step's due has passed and it takes ``on_timeout`` (an answer now is too late)."""
    return bool(step.on_timeout) and due_at is not None and now >= due_at


def accept_answer(
    step: HumanStep,
    submission: Submission,
    *,
    eligible: Sequence[str],
    earlier: Sequence[Answer] = (),
    people: Sequence[str] = (),
    answered_at: datetime | None = None,
    due_at: datetime | None = None,
) -> Answer:
    """Check one submission against the step and return it as a typed answer.

    Raises:
        AnswerError: the person is not named by the assignee or has answered already,
            the step timed out (its due passed and it has ``on_timeout``), or the
            decision or a field does not fit the step.
    """
    by = submission.by
    if by not in eligible:
        raise AnswerError(
            f"{by!r} may not answer step {step.id!r}: its assignee names {', '.join(eligible) or 'nobody'}"
            + did_you_mean(by, eligible)
        )
    if any(answer.by == by for answer in earlier):
        raise AnswerError(f"{by!r} has already answered step {step.id!r}")
    if answered_at is not None and is_late(step, due_at, answered_at):
        assert due_at is not None
        raise AnswerError(
            f"step {step.id!r} timed out at {due_at:%Y-%m-%d %H:%M} UTC (it takes on_timeout: {step.on_timeout}); "
            f"the answer of {by!r} came too late"
        )
    decision = submission.decision
    chosen: Decision
    if isinstance(step, ApprovalStep):
        if decision not in ("approve", "reject"):
            raise AnswerError(f"step {step.id!r} is an approval: answer with decision approve or reject, not {decision!r}")
        chosen = "approve" if decision == "approve" else "reject"
    else:
        if decision not in (None, "", "submit"):
            raise AnswerError(f"step {step.id!r} is a {step.type}: it takes no decision, got {decision!r}")
        chosen = "submit"
    given = dict(submission.fields)
    verdicts: dict[str, bool] | None = None
    if isinstance(step, ChecklistStep):
        # the item verdicts are not form fields: take them out before the form is checked
        verdicts = _checklist_verdicts(step, given)
    try:
        values = coerce_all(dict(step.form), given, people, what="field") if step.form or given else {}
    except ValueError as error:
        raise AnswerError(f"step {step.id!r}: {error}") from None
    if verdicts is not None:
        values["items"] = verdicts
    return Answer(by=by, decision=chosen, comment=submission.comment or "", fields=values, answered_at=answered_at)


def _checklist_verdicts(step: ChecklistStep, given: dict[str, Any]) -> dict[str, bool]:
    """Pull the item verdicts (``items: {id: pass|fail}`` or ``ID: pass`` at top level) out of ``given``."""
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
    return verdicts


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
    """Whether the answers decide the step: the first rejection vetoes; ``quorum`` approvals approve."""
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


def decide(step: HumanStep, answers: Sequence[Answer], *, due_at: datetime | None, now: datetime) -> dict[str, Any] | None:
    """The one rule deciding a human step: its result once decided, None while it waits.

    The answers decide first (veto, quorum, a form's one answer); else, once the due
    has passed, a step with ``on_timeout`` times out; a passed due never decides a step
    without ``on_timeout`` (DESIGN.md: it escalates and keeps waiting).
    """
    decision = tally(step, answers)
    if decision is not None:
        return human_result(step, answers, decision)
    if is_late(step, due_at, now):
        return human_result(step, answers, TIMEOUT)
    return None


class AnswerSource(Protocol):
    """Where a waiting human step's answers come from (a script, a Prefect form) and where they go."""

    def now(self) -> datetime:
        """The executor's clock."""

    def recorded(self) -> list[Answer]:
        """The answers this visit has taken so far, oldest first."""

    def next(self) -> Submission | None:
        """Wait for the next submission; None when the clock moved instead (a due passed)."""

    def take(self, answer: Answer) -> None:
        """Keep an accepted answer."""

    def refuse(self, submission: Submission, error: AnswerError) -> None:
        """A submission the step refused (raise to stop, or keep waiting)."""


def collect(step: HumanStep, plan: HumanPlan, source: AnswerSource, *, people: Sequence[str]) -> dict[str, Any]:
    """Wait for a human step's answers until :func:`decide` decides it; returns its result.

    Raises:
        StepError: the source ran out of answers (a script that does not answer the step).
    """
    while True:
        answers = source.recorded()
        result = decide(step, answers, due_at=plan.due_at, now=source.now())
        if result is not None:
            return result
        submission = source.next()
        if submission is None:
            continue
        try:
            answer = accept_answer(
                step, submission, eligible=plan.eligible, earlier=answers, people=people,
                answered_at=source.now(), due_at=plan.due_at,
            )
        except AnswerError as error:
            source.refuse(submission, error)
            continue
        source.take(answer)


__all__ = [
    "TIMEOUT",
    "Answer",
    "AnswerRow",
    "AnswerSource",
    "Decision",
    "HumanPlan",
    "Submission",
    "accept_answer",
    "checklist_score",
    "collect",
    "decide",
    "from_rows",
    "human_result",
    "is_late",
    "plan_human_step",
    "tally",
]
