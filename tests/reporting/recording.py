"""Writing simulated cases into a register the way a served run writes them, for the report's tests.

``flows.cli.simulate.record_simulation`` keeps a simulated case for people to look at; the
report needs what a real run also stores: each ``for_each`` instance as its own row
(``step[1]``, ...) with its own answer, the due of every human step and the people who may
answer it, the case's cancellation. Timings are the simulator's clock, so they are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from aftercare.engine.answers import human_result
from aftercare.engine.durations import due_after
from aftercare.engine.loader import Library, LoadedDefinition
from aftercare.engine.register import Register
from aftercare.engine.scenarios import load_scenarios, run_scenario, scenario_file_for
from aftercare.engine.simulator import SimulationResult
from aftercare.engine.spec import HumanStepBase
from aftercare.engine.waiting import unit_row
from aftercare.notifications import Composer


def record(register: Register, definition: LoadedDefinition, result: SimulationResult, *, eligible: tuple[str, ...] = ()) -> str:
    """Write one simulated case: the case, every step visit with its due, every answer; closed with its outcome."""
    spec = definition.spec
    case = result.case
    register.save_definition(definition.digest, spec.process, spec.version, Path(definition.path).read_text(encoding="utf-8"))
    key = register.open_case(
        process=spec.process, version=spec.version, definition_hash=definition.digest, key_prefix=spec.key,
        title=case.title, inputs=case.inputs, due_at=case.due_at, opened_at=case.opened_at, actor="test",
    ).key
    for step_id, visit, step_result, started_at, finished_at in result.visits:
        step = spec.step(step_id)
        human = isinstance(step, HumanStepBase)
        due = due_after(started_at, step.due) if human and step.due and "b" not in step.due else None
        register.begin_step(key, step_id, visit, started_at=started_at, due_at=due, eligible=eligible if human else ())
        answers = [answer for answered, at_visit, answer in result.answers if (answered, at_visit) == (step_id, visit)]
        if human and step.for_each is not None:
            for index, answer in enumerate(answers):
                row = unit_row(step_id, index)
                register.begin_step(key, row, visit, started_at=started_at, due_at=due, eligible=(answer.by,))
                register.answer(
                    key, row, visit, person=answer.by, decision=answer.decision, comment=answer.comment,
                    fields=dict(answer.fields), answered_at=answer.answered_at,
                    decide=lambda rows, step=step, answer=answer: human_result(step, [answer], answer.decision),
                )
        elif human:
            for answer in answers:
                register.answer(
                    key, step_id, visit, person=answer.by, decision=answer.decision, comment=answer.comment,
                    fields=dict(answer.fields), answered_at=answer.answered_at or finished_at,
                    decide=lambda rows, step_result=step_result, answer=answer: step_result if answer is answers[-1] else None,
                )
        register.complete_step(key, step_id, visit, step_result, finished_at, started_at=started_at)
    if case.outcome:
        register.close_case(key, case.outcome, at=result.visits[-1][4] if result.visits else case.opened_at, actor="test")
    return str(key)


def scenario_results(library: Library) -> Iterator[tuple[LoadedDefinition, SimulationResult]]:
    """Every scenario of every definition of the library, run through the simulator."""
    catalog = {name: item.spec for name, item in library.definitions.items()}
    composer = Composer.for_library(library)
    for _, definition in sorted(library.definitions.items()):
        scenarios = load_scenarios(scenario_file_for(definition.path))
        for index in range(len(scenarios.spec.scenarios)):
            outcome = run_scenario(scenarios, index, definition.spec, library.team, catalog, composer)
            assert outcome.result is not None and outcome.passed, f"{definition.spec.process}: {outcome.failures}"
            yield definition, outcome.result


def record_every_scenario(register: Register, library: Library) -> list[tuple[str, datetime]]:
    """Record every shipped scenario's case; returns (key, opened) of each."""
    out = []
    for definition, result in scenario_results(library):
        out.append((record(register, definition, result), result.case.opened_at))
    return out


