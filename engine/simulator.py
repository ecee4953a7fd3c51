"""Running a definition in memory with scripted answers on a simulated clock (no Prefect, no database).

The simulator is a step executor like the Prefect flow: the case runner, the router, the
human-step rules (:mod:`.answers`) and the result builders (:mod:`.results`) are the same
code; only where answers come from (the answers file), where messages go (a list) and the
clock (simulated) differ. Messages are composed by a :class:`MessageComposer`, which
``aftercare.notifications`` provides with the same templates and addressing a real run uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from .answers import Answer, HumanPlan, Submission, collect, is_late
from .answers_file import ScriptedAnswers
from .case import CaseState, opening
from .errors import AnswerError, StepError
from .results import notify_result, record_result, start_result, wait_result
from .runner import run_case
from .spec import HumanStep, NotifyStep, ProcessSpec, RecordStep, StartStep, StepSpec, WaitStep
from .team import TeamSpec

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

    # --- running ---------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any]) -> SimulationResult:
        """Open a case with these inputs and drive it to its outcome.

        Raises:
            AnswerError: an input or scripted answer the definition refuses.
            StepError: a step could not run (no answer left for a waiting step, say).
        """
        opened = opening(self.spec, inputs, self.team.people, self.clock)
        case = CaseState(
            key=self.key,
            process=self.spec.process,
            version=self.spec.version,
            title=opened.title,
            inputs=opened.inputs,
            opened_at=self.clock,
            due_at=opened.due_at,
        )
        self.result = SimulationResult(case)
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

    def complete(self, case: CaseState, step: StepSpec, visit: int, result: dict[str, Any]) -> dict[str, Any]:
        assert self.result is not None
        self.result.visits.append((step.id, visit, result, self._started_at.get((step.id, visit), self.clock), self.clock))
        return result

    def finish(self, case: CaseState, outcome: str) -> None:
        pass

    def human(self, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> dict[str, Any]:
        return collect(step, plan, _Script(self, case, step, visit, plan), people=list(self.team.people))

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

    def start(self, case: CaseState, step: StartStep, visit: int, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.result is not None
        target = self.catalog.get(step.process)
        keys = []
        for given in inputs:
            title = str(given.get("title") or step.process)
            if target is not None:
                try:
                    opened = opening(target, given, self.team.people, self.clock)
                except AnswerError as error:
                    raise StepError(f"step {step.id!r} starts {step.process!r}: {error}") from None
                given, title = opened.inputs, opened.title
            prefix = target.key if target else step.process.upper()[:3]
            self.counters[prefix] = self.counters.get(prefix, 0) + 1
            key = f"{prefix}-{self.counters[prefix]:04d}"
            keys.append(key)
            self.result.started.append(StartedCase(step.id, step.process, key, given, title))
        return start_result(step.process, keys)

    def wait(self, case: CaseState, step: WaitStep, visit: int, until: datetime) -> dict[str, Any]:
        self.clock = max(self.clock, until)
        return wait_result(until, self.clock)


class _Script:
    """A human step's answers from the answers file, on the simulated clock (an ``AnswerSource``)."""

    def __init__(self, simulator: Simulator, case: CaseState, step: HumanStep, visit: int, plan: HumanPlan) -> None:
        self.simulator = simulator
        self.case = case
        self.step = step
        self.visit = visit
        self.plan = plan
        self.taken: list[Answer] = []
        self.escalated = False

    def now(self) -> datetime:
        return self.simulator.clock

    def recorded(self) -> list[Answer]:
        return list(self.taken)

    def next(self) -> Submission | None:
        simulator, step, plan = self.simulator, self.step, self.plan
        scripted = simulator.script.pop(step.id)
        if scripted is None:
            raise StepError(f"step {step.id!r} (visit {self.visit}) waits for an answer, but the answers file has no more for it")
        if scripted.timeout:
            if plan.due_at is None:
                raise StepError(f"step {step.id!r}: the answers let it time out, but it has no due")
            self._pass_due()
            if not step.on_timeout:
                raise StepError(f"step {step.id!r} has no on_timeout: a passed due never decides it; give an answer instead")
            return None
        at = max(simulator.clock, plan.started_at + scripted.after) if scripted.after else simulator.clock
        if plan.due_at is not None and at > plan.due_at:
            self._pass_due()
        if is_late(step, plan.due_at, at):
            assert simulator.result is not None
            simulator.result.late.append((step.id, self.visit, scripted.submission))
            return None  # the clock stands at the due: the step times out
        simulator.clock = at
        return scripted.submission

    def _pass_due(self) -> None:
        """The clock reaches the due: escalated once, as its timer run does."""
        assert self.plan.due_at is not None
        self.simulator.clock = max(self.simulator.clock, self.plan.due_at)
        if not self.escalated:
            self.escalated = True
            self.simulator.escalate(self.case, self.step, self.visit, self.plan)

    def take(self, answer: Answer) -> None:
        assert self.simulator.result is not None
        self.taken.append(answer)
        self.simulator.result.answers.append((self.step.id, self.visit, answer))

    def refuse(self, submission: Submission, error: AnswerError) -> None:
        raise error
