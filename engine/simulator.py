"""Running a definition in memory with scripted answers on a simulated clock (no Prefect, no database)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import expressions, router
from .case import CaseState
from .driver import HumanPlan, run_case
from .durations import parse_duration
from .errors import AnswerError, StepError
from .spec import HumanStep, NotifyStep, ProcessSpec, RecordStep, StartStep, StepSpec, WaitStep
from .team import TeamSpec
from .values import coerce_all

#: Renders a named template: (template name, scope, recipient) -> (subject, body).
TemplateRenderer = Callable[[str, dict[str, Any]], tuple[str, str]]
ANSWER_KEYS = frozenset({"decision", "by", "comment", "after", "timeout"})


@dataclass
class SimulatedMessage:
    """A message the simulated case would send."""

    step: str
    visit: int
    kind: str
    recipients: list[str]
    subject: str
    body: str
    at: datetime


@dataclass
class StartedCase:
    """A linked case the simulated case would open."""

    step: str
    process: str
    key: str
    inputs: dict[str, Any]


@dataclass
class SimulationResult:
    """What a simulated case did."""

    case: CaseState
    messages: list[SimulatedMessage] = field(default_factory=list)
    started: list[StartedCase] = field(default_factory=list)
    answers: list[tuple[str, int, router.Answer]] = field(default_factory=list)
    visits: list[tuple[str, int, dict[str, Any], datetime, datetime]] = field(default_factory=list)

    @property
    def path(self) -> list[str]:
        """The step ids visited, in order."""
        return list(self.case.path)

    @property
    def outcome(self) -> str | None:
        """The case's outcome."""
        return self.case.outcome

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` form of the CLI contract."""
        return {"case": self.case.key, "path": self.path, "outcome": self.outcome}


class Simulator:
    """A step executor whose people are an answers script and whose clock is simulated."""

    def __init__(
        self,
        spec: ProcessSpec,
        team: TeamSpec,
        answers: Mapping[str, Any] | None = None,
        *,
        catalog: Mapping[str, ProcessSpec] | None = None,
        renderer: TemplateRenderer | None = None,
        start: datetime | None = None,
        key: str | None = None,
    ) -> None:
        self.spec = spec
        self.team = team
        self.catalog = catalog or {}
        self.renderer = renderer
        self.clock = start or datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
        self.key = key or f"{spec.key}-0001"
        self.script = {step: list(value) if isinstance(value, list) else [value] for step, value in (answers or {}).items()}
        unknown = [step for step in self.script if step not in spec.step_ids]
        if unknown:
            from .suggest import did_you_mean

            raise AnswerError(f"the answers name unknown step {unknown[0]!r}{did_you_mean(unknown[0], spec.step_ids)}")
        self.counters: dict[str, int] = {}
        self.result: SimulationResult | None = None
        self._started_at: dict[tuple[str, int], datetime] = {}

    # --- running ---------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any]) -> SimulationResult:
        """Open a case with these inputs and drive it to its outcome.

        Raises:
            AnswerError: an input or scripted answer the definition refuses.
            StepError: a step could not run (no answer left for a waiting step, say).
        """
        try:
            values = coerce_all(self.spec.inputs, inputs, self.team.people)
        except ValueError as error:
            raise AnswerError(f"inputs: {error}") from None
        case = CaseState(
            key=self.key,
            process=self.spec.process,
            version=self.spec.version,
            title=str(values.get("title") or self.spec.title),
            inputs=values,
            opened_at=self.clock,
            due_at=self.clock + parse_duration(self.spec.sla.due) if self.spec.sla else None,
        )
        self.result = SimulationResult(case)
        run_case(self.spec, self.team, self, case)
        return self.result

    # --- the executor protocol ----------------------------------------------------

    def now(self) -> datetime:
        return self.clock

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        return None

    def begin(self, case: CaseState, step: StepSpec, visit: int, due_at: datetime | None, assignee: str | None) -> None:
        self._started_at[(step.id, visit)] = self.clock

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        assert self.result is not None
        self.result.visits.append((step.id, visit, result, self._started_at.get((step.id, visit), self.clock), self.clock))
        return result

    def finish(self, case: CaseState, outcome: str) -> None:
        pass

    def human(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> dict[str, Any]:
        assert self.result is not None
        given: list[router.Answer] = []
        escalated = False
        while True:
            script = self._next_answer(step, visit)
            if script.get("timeout"):
                if plan.due_at is None:
                    raise StepError(f"step {step.id!r}: the answers let it time out, but it has no due")
                self.clock = max(self.clock, plan.due_at)
                if not escalated:
                    self._escalate(case, step, visit, plan)
                if not step.on_timeout:
                    raise StepError(f"step {step.id!r} has no on_timeout: a passed due never decides it; give an answer instead")
                return router.human_result(step, given, "timeout")
            delay = parse_duration(str(script["after"])) if script.get("after") else timedelta(0)
            if plan.due_at and not escalated and self.clock + delay > plan.due_at:
                self.clock = plan.due_at
                self._escalate(case, step, visit, plan)
                escalated = True
            self.clock = max(self.clock, plan.started_at + delay) if delay else self.clock
            fields = {k: v for k, v in script.items() if k not in ANSWER_KEYS}
            answer = router.accept_answer(
                step,
                by=str(script.get("by", "")),
                decision=script.get("decision"),
                comment=script.get("comment"),
                fields=fields,
                eligible=plan.eligible,
                earlier=given,
                people=list(self.team.people),
                answered_at=self.clock,
            )
            given.append(answer)
            self.result.answers.append((step.id, visit, answer))
            decision = router.tally(step, given)
            if decision is not None:
                return router.human_result(step, given, decision)

    def _next_answer(self, step: HumanStep, visit: int) -> dict[str, Any]:
        queue = self.script.get(step.id)
        if not queue:
            raise StepError(f"step {step.id!r} (visit {visit}) waits for an answer, but the answers file has no more for it")
        answer = queue.pop(0)
        if not isinstance(answer, dict):
            raise AnswerError(f"an answer to step {step.id!r} must be a mapping, got {answer!r}")
        return answer

    def _escalate(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> None:
        assert self.result is not None
        recipients = self._people(plan.escalate_to) + list(plan.eligible)
        subject = f"Overdue: {plan.title} ({case.key})"
        body = f"Step {step.id!r} of {case.key} was due {plan.due_at:%Y-%m-%d %H:%M} UTC and is still waiting."
        self.result.messages.append(SimulatedMessage(step.id, visit, "escalation", recipients, subject, body, self.clock))

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        assert self.result is not None
        if step.template is not None and self.renderer is not None:
            subject, body = self.renderer(step.template, scope)
        elif step.template is not None:
            subject, body = f"[{step.template}] {case.key}", f"(template {step.template})"
        else:
            assert step.message is not None
            body = expressions.render(step.message, scope)
            subject = expressions.render(step.subject, scope) if step.subject else f"{case.key}: {case.title}"
        people = self._people(recipients)
        self.result.messages.append(SimulatedMessage(step.id, visit, "notify", people, subject, body, self.clock))
        return {"recipients": people, "subject": subject, "sent_at": self.clock.isoformat()}

    def _people(self, references: Sequence[str]) -> list[str]:
        out: list[str] = []
        for reference in references:
            try:
                members = self.team.members(reference)
            except KeyError:
                members = (reference,)  # a channel URL
            out.extend(m for m in members if m not in out)
        return out

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.result is not None
        target = self.catalog.get(step.process)
        keys = []
        for given in inputs:
            if target is not None:
                try:
                    given = coerce_all(target.inputs, given, self.team.people)
                except ValueError as error:
                    raise StepError(f"step {step.id!r} starts {step.process!r} with bad inputs: {error}") from None
            prefix = target.key if target else step.process.upper()[:3]
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            key = f"{prefix}-{self.counters[prefix]:04d}"
            keys.append(key)
            self.result.started.append(StartedCase(step.id, step.process, key, given))
        return {"process": step.process, "cases": keys, "case": keys[0] if keys else None}

    def wait(self, case: CaseState, step: WaitStep, visit: int, until: datetime) -> dict[str, Any]:
        self.clock = max(self.clock, until)
        return {"until": until.isoformat(), "fired_at": self.clock.isoformat()}
