"""Writing simulated cases into a register the way a served run writes them, for the report's tests.

``flows.cli.simulate.record_simulation`` (what ``aftercare simulate --record`` does) writes what
a served run stores: each ``for_each`` instance as its own row (``step[1]``, ...) with its own
answer, the due of every human step and the people who may answer it. Timings are the
simulator's clock, so they are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from aftercare.engine.loader import Library, LoadedDefinition
from aftercare.engine.register import Register
from aftercare.engine.scenarios import load_scenarios, run_scenario, scenario_file_for
from aftercare.engine.simulator import SimulationResult
from aftercare.flows.cli.simulate import record_simulation
from aftercare.notifications import Composer


def record(register: Register, definition: LoadedDefinition, result: SimulationResult) -> str:
    """Write one simulated case as a served run stores it (``record_simulation``), under the actor ``test``."""
    return record_simulation(result, definition, register, actor="test")


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


