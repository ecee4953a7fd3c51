"""Running a definition in memory with scripted answers on a simulated clock (no Prefect, no database).

The simulator is a step executor like the Prefect flow: the case runner, the router, the
human-step rules (:mod:`.answers`) and the result builders (:mod:`.results`) are the same
code; only where answers come from (the answers file), where messages go (a list) and the
clock (simulated) differ. Messages are composed by a :class:`MessageComposer`, which
``aftercare.notifications`` provides with the same templates and addressing a real run uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import ValidationError

from .answers import Answer, HumanPlan, Submission, accept_answer, decide, human_result
from .answers_file import ScriptedAnswers
from .calendars import calendar_of
from .case import CaseState, opening
from .errors import AnswerError, NotFoundError, StepError
from . import kinds
from .results import call_error, call_result, notify_result, record_result, start_result, wait_result
from .router import IMPLICIT_OUTCOME, TIMEOUT
from .runner import run_case
from .spec import CallStep, HumanStep, NotifyStep, ProcessSpec, RecordStep, StartStep, StepSpec
from .team import TeamSpec
from .waiting import Event, Unit, Waiting, unit_row

SIMULATION_START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
"""Where the simulated clock starts unless told otherwise (a Monday morning)."""


class ComposedMessage(Protocol):
    """One message for one recipient on one channel (``aftercare.notifications.OutboxMessage``)."""

    @property
    def recipient(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...


class MessageComposer(Protocol):
    """Composes the messages a real run would queue, without queueing them."""

    def notify(self, scope: dict[str, Any], step: NotifyStep, recipients: Sequence[str], visit: int) -> Sequence[ComposedMessage]:
        """A notify step's messages."""

    def escalation(self, scope: dict[str, Any], step: HumanStep, plan: HumanPlan, visit: int) -> Sequence[ComposedMessage]:
        """A passed due's escalation and overdue reminders."""


@dataclass
class SimulatedMessage:
    """Messages the simulated case would send at one moment (one notify step, one escalation)."""

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
    title: str


@dataclass
class SimulationResult:
    """What a simulated case did."""

    case: CaseState
    messages: list[SimulatedMessage] = field(default_factory=list)
    started: list[StartedCase] = field(default_factory=list)
    answers: list[tuple[str, int, Answer]] = field(default_factory=list)
    late: list[tuple[str, int, Submission]] = field(default_factory=list)
    """Scripted answers that came after a due with ``on_timeout``: refused, the step timed out."""
    visits: list[tuple[str, int, dict[str, Any], datetime, datetime]] = field(default_factory=list)
    answer_rows: list[str] = field(default_factory=list)
    """The register row each of ``answers`` went to: its step's id, or ``step[2]`` for a ``for_each`` instance."""
    plans: dict[tuple[str, int], HumanPlan] = field(default_factory=dict)
    """The plan of each human step visit and ``for_each`` instance, by (register row, visit): who may answer, due."""
    opened_due: datetime | None = None
    """The case's due when it opened (``sla.due``); ``case.due_at`` is where it ended after ``due_moves``."""
    due_moves: list[tuple[str, int, datetime]] = field(default_factory=list)
    """Each move of the case's due (``sla.pause_while``): the step whose wait stopped the clock, its visit, the new due."""

    @property
    def path(self) -> list[str]:
        """The step ids visited, in order."""
        return list(self.case.path)

    @property
    def outcome(self) -> str | None:
        """The case's outcome."""
        return self.case.outcome

    @property
    def withdrawn(self) -> list[str]:
        """The steps withdrawn while they waited (a join, an end in another branch), each once."""
        return list(self.case.withdrawn)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` form of the CLI contract."""
        return {"case": self.case.key, "path": self.path, "outcome": self.outcome, "withdrawn": list(self.case.withdrawn)}


class Simulator:
    """A step executor whose people are an answers script and whose clock is simulated.

    Args:
        spec: the definition.
        team: its team.
        answers: the answers file's data, or answers already read (:class:`ScriptedAnswers`).
        composer: composes messages as a real run would (``aftercare.notifications``).
        catalog: the definitions ``start`` steps may open.
        start: when the simulated clock starts.
        key: the case's key.

    Raises:
        DefinitionError: the answers name unknown steps or are malformed.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        team: TeamSpec,
        answers: Mapping[str, Any] | ScriptedAnswers | None = None,
        *,
        composer: MessageComposer,
        catalog: Mapping[str, ProcessSpec] | None = None,
        start: datetime | None = None,
        key: str | None = None,
    ) -> None:
        self.spec = spec
        self.team = team
        self.composer = composer
        self.catalog = catalog or {}
        self.clock = start or SIMULATION_START
        self.key = key or f"{spec.key}-0001"
        self.script = answers if isinstance(answers, ScriptedAnswers) else ScriptedAnswers.parse(answers, spec)
        self.counters: dict[str, int] = {}
        self.result: SimulationResult | None = None
        self._started_at: dict[tuple[str, int], datetime] = {}
        self._taken: dict[tuple[str, int, int | None], list[Answer]] = {}

    # --- running ---------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any]) -> SimulationResult:
        """Open a case with these inputs and drive it to its outcome.

        Raises:
            AnswerError: an input or scripted answer the definition refuses.
            StepError: a step could not run (no answer left for a waiting step, say).
        """
        opened = opening(self.spec, inputs, self.team.people, self.clock, calendar_of(self.spec, self.team))
        case = CaseState(
            key=self.key,
            process=self.spec.process,
            version=self.spec.version,
            title=opened.title,
            inputs=opened.inputs,
            opened_at=self.clock,
            due_at=opened.due_at,
        )
        self.result = SimulationResult(case, opened_due=opened.due_at)
        run_case(self.spec, self.team, self, case)
        return self.result

    # --- the executor protocol ----------------------------------------------------

    def now(self) -> datetime:
        return self.clock

    def recorded(self, case: CaseState, step: StepSpec, visit: int) -> dict[str, Any] | None:
        return None

    def began(self, case: CaseState, step: StepSpec, visit: int) -> datetime | None:
        return None  # a simulation never replays

    def begin(self, case: CaseState, step: StepSpec, visit: int, plan: HumanPlan | None) -> None:
        self._started_at[(step.id, visit)] = self.clock
        if plan is not None and self.result is not None:
            self.result.plans[(step.id, visit)] = plan

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        assert self.result is not None
        self.result.visits.append((step.id, visit, result, self._started_at.get((step.id, visit), self.clock), self.clock))
        return result

    def finish(self, case: CaseState, outcome: str) -> None:
        pass

    def paused(self, case: CaseState, step_ids: Sequence[str]) -> list[tuple[datetime, datetime]]:
        assert self.result is not None
        return [(began, ended) for step_id, _, _, began, ended in self.result.visits if step_id in step_ids]

    def move_due(self, case: CaseState, step: StepSpec, visit: int, due_at: datetime) -> None:
        assert self.result is not None
        self.result.due_moves.append((step.id, visit, due_at))

    def rank(self, case: CaseState, step: StepSpec, visit: int) -> float:
        return 0.0  # a simulation never replays

    def waits(self, case: CaseState, waiting: Waiting) -> None:
        if self.result is not None:
            for unit in waiting.units or ():
                if unit.plan is not None:
                    self.result.plans.setdefault((unit_row(waiting.step.id, unit.index), waiting.visit), unit.plan)

    def withdraw(self, case: CaseState, waiting: Waiting, unit: Unit | None, reason: str) -> None:
        pass

    def next_event(self, case: CaseState, waiting: Sequence[Waiting]) -> Event:
        """The next thing the script or the clock makes happen, earliest first (ties: the step that began waiting first)."""
        assert self.result is not None
        while True:
            upcoming = [(moment, rank, w.order, kind, w) for w in waiting for moment, rank, kind in self._upcoming(w)]
            if not upcoming:
                if len(waiting) == 1:
                    only = waiting[0]
                    raise StepError(f"step {only.step.id!r} (visit {only.visit}) waits for an answer, but the answers file has no more for it")
                names = ", ".join(repr(w.step.id) for w in waiting)
                raise StepError(f"steps {names} wait for answers, but the answers file has no more for them")
            moment, _, _, kind, chosen = min(upcoming, key=lambda u: (u[0], u[1], u[2]))
            self._escalate_until(case, waiting, moment)
            self.clock = max(self.clock, moment)
            event = self._happen(case, chosen, kind)
            if event is not None:
                return event

    def _upcoming(self, waiting: Waiting) -> list[tuple[datetime, int, str]]:
        """What may happen next to a waiting step: (when, tie rank, kind); a timeout comes before an answer at one moment."""
        step = waiting.step
        if waiting.kind == "timer":
            assert waiting.until is not None
            return [(waiting.until, 0, "timer")]
        out: list[tuple[datetime, int, str]] = []
        scripted = self.script.peek(step.id)
        if scripted is not None:
            if scripted.timeout:
                if waiting.due_at is None:
                    raise StepError(f"step {step.id!r}: the answers let it time out, but it has no due")
                out.append((waiting.due_at, 0, "timeout"))
            else:
                after = scripted.after
                out.append((max(self.clock, waiting.started_at + after) if after else self.clock, 1, "answer"))
        elif waiting.kind == "cases" and waiting.open_units():
            out.append((self.clock, 1, "answer"))  # unscripted linked cases end at once, completed
        if scripted is not None and getattr(step, "on_timeout", None) and waiting.due_at is not None:
            out.append((waiting.due_at, 0, "timeout"))  # a scripted answer after the due comes too late
        return out

    def _escalate_until(self, case: CaseState, waiting: Sequence[Waiting], moment: datetime) -> None:
        """Dues passed before ``moment``: each step escalated once, at its due, as its timer run would."""
        for w in sorted((w for w in waiting if w.due_at is not None and w.due_at <= moment and not w.escalated), key=lambda w: w.due_at or moment):
            assert w.due_at is not None and w.plan is not None
            w.escalated = True
            self.clock = max(self.clock, w.due_at)
            plan = w.plan
            if w.units is not None:  # who answered already is not reminded: the people of the open instances
                plan = replace(plan, eligible=tuple(dict.fromkeys(p for u in w.open_units() if u.plan for p in u.plan.eligible)))
            self.escalate(case, w.step, w.visit, plan)  # type: ignore[arg-type]

    def _happen(self, case: CaseState, waiting: Waiting, kind: str) -> Event | None:
        assert self.result is not None
        step = waiting.step
        if kind == "timer":
            assert waiting.until is not None
            return Event(waiting, wait_result(waiting.until, self.clock))
        if kind == "timeout":
            scripted = self.script.pop(step.id)
            if scripted is not None and not scripted.timeout:
                self.result.late.append((step.id, waiting.visit, scripted.submission))
            if not getattr(step, "on_timeout", None):
                raise StepError(f"step {step.id!r} has no on_timeout: a passed due never decides it; give an answer instead")
            return Event(waiting, human_result(step, self._answers(waiting), TIMEOUT))  # type: ignore[arg-type]
        if waiting.kind == "cases":
            return self._case_ends(waiting)
        scripted = self.script.pop(step.id)
        assert scripted is not None
        return self._answer(waiting, scripted.submission)

    def _case_ends(self, waiting: Waiting) -> Event:
        """A linked case the step waits for ends: as scripted (``outcome``), else ``completed``."""
        scripted = self.script.pop(waiting.step.id)
        outcome = scripted.outcome if scripted is not None and scripted.outcome else IMPLICIT_OUTCOME
        unit = waiting.open_units()[0]
        return Event(waiting, {"case": unit.case, "outcome": outcome}, unit.index)

    def _answer(self, waiting: Waiting, submission: Submission) -> Event | None:
        """A scripted answer: to the step, or to the first open instance that names the person."""
        assert self.result is not None
        step: HumanStep = waiting.step  # type: ignore[assignment]
        people = list(self.team.people)
        target: Unit | None = None
        if waiting.units is not None:
            for unit in waiting.open_units():
                assert unit.plan is not None
                if submission.by in unit.plan.eligible and not any(a.by == submission.by for a in self._unit_answers(waiting, unit)):
                    target = unit
                    break
            if target is None:
                named = ", ".join(f"{u.item} ({', '.join(u.plan.eligible) if u.plan else ''})" for u in waiting.open_units())
                raise AnswerError(f"{submission.by!r} may not answer step {step.id!r}: no open instance names them; open: {named or 'none'}")
        plan = target.plan if target is not None else waiting.plan
        assert plan is not None
        earlier = self._unit_answers(waiting, target) if target is not None else self._answers(waiting)
        answer = accept_answer(step, submission, eligible=plan.eligible, earlier=earlier, people=people, answered_at=self.clock, due_at=plan.due_at)
        key = (step.id, waiting.visit, target.index if target is not None else None)
        self._taken.setdefault(key, []).append(answer)
        self.result.answers.append((step.id, waiting.visit, answer))
        self.result.answer_rows.append(unit_row(step.id, target.index if target is not None else None))
        decided = decide(step, self._taken[key], due_at=plan.due_at, now=self.clock)
        if decided is None:
            return None
        return Event(waiting, decided, target.index if target is not None else None)

    def _answers(self, waiting: Waiting) -> list[Answer]:
        return list(self._taken.get((waiting.step.id, waiting.visit, None), []))

    def _unit_answers(self, waiting: Waiting, unit: Unit) -> list[Answer]:
        return list(self._taken.get((waiting.step.id, waiting.visit, unit.index), []))

    def notify(self, case: CaseState, step: NotifyStep, visit: int, recipients: list[str], scope: dict[str, Any]) -> dict[str, Any]:
        messages = self.composer.notify(scope, step, recipients, visit)
        self._keep(step.id, visit, "notify", messages)
        return notify_result((m.recipient for m in messages), messages[0].subject if messages else "", self.clock, len(messages))

    def escalate(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> None:
        """The step's due passed while it waits: what its timer run would send."""
        self._keep(step.id, visit, "escalation", self.composer.escalation(case.scope(self.clock), step, plan, visit))

    def _keep(self, step_id: str, visit: int, kind: str, messages: Sequence[ComposedMessage]) -> None:
        assert self.result is not None
        recipients = list(dict.fromkeys(m.recipient.removeprefix("person:") for m in messages))
        subject, body = (messages[0].subject, messages[0].body) if messages else ("", "")
        self.result.messages.append(SimulatedMessage(step_id, visit, kind, recipients, subject, body, self.clock))

    def record(self, case: CaseState, step: RecordStep, visit: int, values: dict[str, Any]) -> dict[str, Any]:
        return record_result(values)

    def call(self, case: CaseState, step: CallStep, visit: int, inputs: dict[str, Any]) -> dict[str, Any]:
        """A call step never runs its kind here: the answers file says what it gives (its output is checked against the kind's)."""
        scripted = self.script.pop(step.id)
        if scripted is None or (scripted.output is None and scripted.error is None):
            raise StepError(
                f"step {step.id!r} (visit {visit}) calls {step.call!r}, which a simulation never runs, but the answers file"
                f" scripts nothing for it; add {step.id}: {{output: {{...}}}} or {{error: MESSAGE}}"
            )
        if scripted.error is not None:
            return call_error(scripted.error)
        try:
            kind = kinds.installed().get(step.call)
            return call_result(kind.output(scripted.output))
        except NotFoundError as error:
            raise StepError(f"step {step.id!r}: {error}") from None
        except ValidationError as error:
            raise AnswerError(f"step {step.id!r}: the scripted output does not fit the Output of {step.call!r}: {kinds.first_problem(error)}") from None

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.result is not None
        target = self.catalog.get(step.process)
        keys = []
        for given in inputs:
            title = str(given.get("title") or step.process)
            if target is not None:
                try:
                    opened = opening(target, given, self.team.people, self.clock, calendar_of(target, self.team))
                except AnswerError as error:
                    raise StepError(f"step {step.id!r} starts {step.process!r}: {error}") from None
                given, title = opened.inputs, opened.title
            prefix = target.key if target else step.process.upper()[:3]
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            key = f"{prefix}-{self.counters[prefix]:04d}"
            keys.append(key)
            self.result.started.append(StartedCase(step.id, step.process, key, given, title))
        return start_result(step.process, keys)
