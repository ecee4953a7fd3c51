"""Scenario tests as data: ``NAME.scenarios.yaml`` beside a definition, run through the simulator, with coverage.

A scenario file holds ``scenarios: [{name, inputs, answers, path, outcome, started, ...}]``.
Each scenario opens a case with its inputs, answers the human steps from its script
(the answers-file format of ``aftercare simulate``), and compares what the case did
with what the scenario expects. Coverage counts the steps the scenarios visited and the
exits they took, where a step's exits are ``router.exits`` (approve/reject, pass/fail,
``when[i]``/otherwise, timeout, next, end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from . import router
from .answers_file import ScriptedAnswers
from .errors import AnswerError, DefinitionError, Problem
from .loader import validate_shape
from .simulator import MessageComposer, SimulationResult, Simulator
from .spec import ProcessSpec, RecordStep, SpecModel
from .suggest import did_you_mean
from .team import TeamSpec
from .yaml_source import PathKey, SourceDocument, read_yaml

SCENARIOS_SUFFIX = ".scenarios.yaml"

Answer = dict[str, Any]


class ScenarioSpec(SpecModel):
    """One scenario: a case's inputs, the people's answers, and what the case should do.

    Attributes:
        name: unique within the file; failures quote it.
        from_schedule: start from the schedule's inputs (``inputs`` then override some).
        inputs: the start form.
        answers: step id -> one answer or a list taken in order, as in ``aftercare simulate``.
        path: the step ids the case must visit, in order (not compared when absent).
        outcome: the outcome the case must end with.
        started: the processes of the cases it must open, in order (not compared when absent).
        fields: values the record steps must have written, the last of each (``status`` too).
        escalated: the human steps, in order, whose ``due`` must pass before their answer.
        start: the simulated clock's start (default Monday 2026-01-05 09:00 UTC).
    """

    name: str = Field(min_length=1)
    description: str | None = None
    from_schedule: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    answers: dict[str, Answer | list[Answer]] = Field(default_factory=dict)
    path: tuple[str, ...] | None = None
    outcome: str
    started: tuple[str, ...] | None = None
    fields: dict[str, Any] | None = None
    escalated: tuple[str, ...] | None = None
    start: datetime | None = None


class ScenarioFileSpec(SpecModel):
    """A scenario file: optionally the process it tests, and its scenarios."""

    process: str | None = None
    scenarios: tuple[ScenarioSpec, ...] = Field(min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _unique_names(cls, scenarios: tuple[ScenarioSpec, ...]) -> tuple[ScenarioSpec, ...]:
        seen: set[str] = set()
        for scenario in scenarios:
            if scenario.name in seen:
                raise ValueError(f"scenario name {scenario.name!r} appears twice")
            seen.add(scenario.name)
        return scenarios


@dataclass
class ScenarioFile:
    """A loaded scenario file and where each of its nodes is."""

    path: Path
    spec: ScenarioFileSpec
    document: SourceDocument

    def problem(self, where: PathKey, message: str) -> Problem:
        """A problem pointing at ``where`` in this file."""
        return self.document.problem(where, message)


@dataclass
class ScenarioResult:
    """How one scenario went."""

    name: str
    failures: list[Problem] = field(default_factory=list)
    result: SimulationResult | None = None

    @property
    def passed(self) -> bool:
        """Whether the case did all the scenario expects."""
        return not self.failures


@dataclass
class Coverage:
    """The steps and exits of one definition, and those the scenarios walked."""

    steps: list[str]
    exits: list[tuple[str, str]]
    visited: set[str] = field(default_factory=set)
    taken: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, spec: ProcessSpec) -> Coverage:
        """Empty coverage of a definition: every step, every labelled exit."""
        exits = [(step.id, exit_.label) for step in spec.steps for exit_ in router.exits(spec, step)]
        return cls(steps=list(spec.step_ids), exits=exits)

    def add(self, result: SimulationResult) -> None:
        """Count what one simulated case walked."""
        self.visited.update(step for step in result.case.path if step in self.steps)
        self.taken.update(exit_ for exit_ in result.case.exits if exit_ in self.exits)

    @property
    def steps_covered(self) -> int:
        """Steps visited at least once."""
        return len(self.visited)

    @property
    def exits_covered(self) -> int:
        """Exits taken at least once."""
        return len(self.taken)

    @property
    def step_percent(self) -> float:
        """Step coverage in percent."""
        return percent(self.steps_covered, len(self.steps))

    @property
    def branch_percent(self) -> float:
        """Branch (exit) coverage in percent."""
        return percent(self.exits_covered, len(self.exits))

    @property
    def missed_steps(self) -> list[str]:
        """Steps no scenario visited, in definition order."""
        return [step for step in self.steps if step not in self.visited]

    @property
    def missed_exits(self) -> list[str]:
        """Exits no scenario took, as ``step:label``, in definition order."""
        return [f"{step}:{label}" for step, label in self.exits if (step, label) not in self.taken]


def percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in percent; an empty whole is fully covered."""
    return 100.0 if whole == 0 else 100.0 * part / whole


@dataclass
class DefinitionReport:
    """The scenarios of one definition: their results and the coverage they reach."""

    spec: ProcessSpec
    definition: Path
    scenario_file: Path | None
    results: list[ScenarioResult] = field(default_factory=list)
    coverage: Coverage | None = None
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.coverage is None:
            self.coverage = Coverage.of(self.spec)

    @property
    def passed(self) -> int:
        """Scenarios that passed."""
        return sum(result.passed for result in self.results)

    @property
    def failed(self) -> int:
        """Scenarios that failed."""
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        """No problem in the scenario file and every scenario passed."""
        return not self.problems and self.failed == 0


def scenario_file_for(definition: Path) -> Path:
    """Where the scenarios of a definition live: ``NAME.scenarios.yaml`` beside ``NAME.yaml``."""
    return definition.with_name(definition.name.removesuffix(".yaml").removesuffix(".yml") + SCENARIOS_SUFFIX)


def definition_file_for(scenarios: Path) -> Path:
    """The definition a scenario file belongs to."""
    return scenarios.with_name(scenarios.name.removesuffix(SCENARIOS_SUFFIX) + ".yaml")


def load_scenarios(path: Path, display: str | None = None) -> ScenarioFile:
    """Read a scenario file and check its shape.

    Raises:
        DefinitionError: bad YAML or a bad shape, each problem as FILE:LINE:COL.
    """
    document = read_yaml(path, display)
    spec: ScenarioFileSpec = validate_shape(document, ScenarioFileSpec)
    return ScenarioFile(path, spec, document)


def check_scenarios(scenarios: ScenarioFile, spec: ProcessSpec, catalog: Mapping[str, ProcessSpec]) -> list[Problem]:
    """What the scenarios name that the definition does not have: steps, processes, a schedule."""
    problems: list[Problem] = []
    file_spec = scenarios.spec
    if file_spec.process is not None and file_spec.process != spec.process:
        problems.append(scenarios.problem(("process",), f"the scenarios are for {file_spec.process!r}, but the definition beside them is {spec.process!r}"))
    steps = spec.step_ids
    for index, scenario in enumerate(file_spec.scenarios):
        where: PathKey = ("scenarios", index)
        try:
            ScriptedAnswers.parse(scenario.answers, spec, document=scenarios.document, at=(*where, "answers"))
        except DefinitionError as error:
            problems.extend(error.problems)
        for position, step in enumerate(scenario.path or ()):
            if step not in steps:
                problems.append(scenarios.problem((*where, "path", position), f"unknown step {step!r}{did_you_mean(step, steps)}"))
        for position, step in enumerate(scenario.escalated or ()):
            if step not in steps:
                problems.append(scenarios.problem((*where, "escalated", position), f"unknown step {step!r}{did_you_mean(step, steps)}"))
        for position, process in enumerate(scenario.started or ()):
            if catalog and process not in catalog:
                problems.append(scenarios.problem((*where, "started", position), f"unknown process {process!r}{did_you_mean(process, catalog)}"))
        if scenario.from_schedule and spec.schedule is None:
            problems.append(scenarios.problem((*where, "from_schedule"), f"{spec.process!r} has no schedule to take the inputs from"))
    return problems


def run_scenario(
    scenarios: ScenarioFile,
    index: int,
    spec: ProcessSpec,
    team: TeamSpec,
    catalog: Mapping[str, ProcessSpec],
    composer: MessageComposer,
) -> ScenarioResult:
    """Run one scenario through the simulator and compare what the case did with what it expects."""
    scenario = scenarios.spec.scenarios[index]
    where: PathKey = ("scenarios", index)
    outcome = ScenarioResult(scenario.name)

    def fail(at: str | None, message: str) -> None:
        path = (*where, at) if at and at in scenarios.document.data["scenarios"][index] else where
        outcome.failures.append(scenarios.problem(path, f"scenario {scenario.name!r}: {message}"))

    inputs = dict(spec.schedule.inputs) if scenario.from_schedule and spec.schedule else {}
    inputs.update(scenario.inputs)
    start = scenario.start
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    simulator: Simulator | None = None
    try:
        answers = ScriptedAnswers.parse(scenario.answers, spec, document=scenarios.document, at=(*where, "answers"))
        simulator = Simulator(spec, team, answers, composer=composer, catalog=catalog, start=start)
        result = simulator.run(inputs)
    except Exception as error:  # a test runner reports a scenario that crashes, and goes on with the next
        partial = simulator.result if simulator is not None else None
        outcome.result = partial
        walked = f" (after {' → '.join(partial.path)})" if partial and partial.path else ""
        fail("answers" if isinstance(error, AnswerError) else None, f"{type(error).__name__}: {error}{walked}")
        return outcome
    outcome.result = result
    if scenario.path is not None and list(scenario.path) != result.path:
        fail("path", _path_difference(list(scenario.path), result.path))
    if result.outcome != scenario.outcome:
        fail("outcome", f"expected outcome {scenario.outcome!r}, got {result.outcome!r} (path {' → '.join(result.path)})")
    started = [case.process for case in result.started]
    if scenario.started is not None and list(scenario.started) != started:
        fail("started", f"expected the case to open {list(scenario.started)}, it opened {started}")
    if scenario.fields is not None:
        recorded = _recorded(spec, result)
        for name, expected in scenario.fields.items():
            got = recorded.get(name)
            if got != expected:
                fail("fields", f"expected case field {name!r} = {expected!r}, got {got!r}")
    escalated = [message.step for message in result.messages if message.kind == "escalation"]
    if scenario.escalated is not None and list(scenario.escalated) != escalated:
        fail("escalated", f"expected escalations of {list(scenario.escalated)}, got {escalated}")
    unused = simulator.script.left()
    if unused:
        listed = ", ".join(f"{step} ({count})" for step, count in unused.items())
        fail("answers", f"answers left unused: {listed}; the case never asked for them")
    return outcome


def _recorded(spec: ProcessSpec, result: SimulationResult) -> dict[str, Any]:
    """What the case's record steps wrote, the last value of each field (``status`` included)."""
    values: dict[str, Any] = {}
    for step_id, _visit, step_result, _began, _ended in result.visits:
        if isinstance(spec.step(step_id), RecordStep):
            values.update(step_result)
    return values


def _path_difference(expected: Sequence[str], got: Sequence[str]) -> str:
    position = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    want = expected[position] if position < len(expected) else "(the end)"
    have = got[position] if position < len(got) else "(the end)"
    return (
        f"path differs at step {position + 1}: expected {want!r}, got {have!r}\n"
        f"    expected: {' → '.join(expected)}\n"
        f"    got:      {' → '.join(got)}"
    )


def run_definition_scenarios(
    spec: ProcessSpec,
    definition: Path,
    team: TeamSpec,
    catalog: Mapping[str, ProcessSpec],
    composer: MessageComposer,
    scenario_file: Path | None = None,
) -> DefinitionReport:
    """Load and run every scenario of one definition; a missing scenario file is an empty report."""
    path = scenario_file or scenario_file_for(definition)
    report = DefinitionReport(spec, definition, path if path.is_file() else None)
    if report.scenario_file is None:
        return report
    try:
        scenarios = load_scenarios(path)
    except DefinitionError as error:
        report.problems.extend(error.problems)
        return report
    report.problems.extend(check_scenarios(scenarios, spec, catalog))
    if report.problems:
        return report
    assert report.coverage is not None
    for index in range(len(scenarios.spec.scenarios)):
        result = run_scenario(scenarios, index, spec, team, catalog, composer)
        report.results.append(result)
        if result.result is not None:
            report.coverage.add(result.result)
    return report


__all__ = [
    "Coverage",
    "DefinitionReport",
    "ScenarioFile",
    "ScenarioFileSpec",
    "ScenarioResult",
    "ScenarioSpec",
    "check_scenarios",
    "definition_file_for",
    "load_scenarios",
    "percent",
    "run_scenario",
    "run_definition_scenarios",
    "scenario_file_for",
]
