"""``simulate`` and ``run`` agree: shipped scenarios through the simulator and through a real ``aftercare run``.

Each scenario's inputs and answers go to the simulator (in memory, simulated clock) and to
``aftercare run PROCESS --inputs F --answers F --json`` against a real Prefect server with
a fresh register. The path, the outcome, the case title and every step's stored result must
be equal; only moments that come from the clock (when someone answered, a message was
queued, a timer fired) are left out of the comparison, and the simulated clock starts
when the real case opened. The scenarios cover a title from
``topic``, notify steps to roles, ``start`` (also one case per item), ``wait`` until a date,
checklists, a quorum of two, loops, a ``timeout: true`` that takes ``on_timeout``, and two
approvals side by side: answered in the order ``after`` gives (the join fires on the later),
and rejected on one side, which withdraws the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from aftercare.engine.register import Register
from aftercare.engine.scenarios import load_scenarios
from aftercare.engine.simulator import Simulator
from aftercare.notifications import Composer, load_checked_library
from tests.fixtures.prefect_server import PrefectServer, running_prefect_server

pytestmark = pytest.mark.prefect_server

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
AFTERCARE = Path(sys.executable).with_name("aftercare")
CLOCK_KEYS = frozenset({"answered_at", "sent_at", "fired_at"})
"""Result entries that are moments of the executor's clock (simulated or real)."""

SCENARIOS = [
    ("knowledge-capture", "Article on background exports, reworked after peer review"),  # topic title, loop, notify
    ("training-plan", "Assessment below the pass mark - re-training on permissions"),  # topic title, wait until, loop
    ("issue-resolution", "P1 export timeout, fix reopened once, becomes a KB article"),  # start, notify to roles, decisions
    ("maintenance-check", "Disk and certificate fail - two issues opened, the round waits until both are closed"),  # checklist, start for each item, wait: all
    ("maintenance-check", "Nobody does the check within two hours"),  # timeout: true takes on_timeout
    ("team-recognition", "Bonus approved by two managers and finance"),  # quorum 2
    ("change-request", "Regional export approved, implemented, verified after one rework"),  # parallel approvals answered in after's order, join, loop
    ("change-request", "Out of contract scope - project manager rejects, the customer's approval is withdrawn"),  # an end in a branch withdraws the other
]
NOT_YET = {
    ("maintenance-check", "Disk and certificate fail - two issues opened, the round waits until both are closed"): pytest.mark.xfail(
        run=False, reason="aftercare run --answers does not end the linked cases that a start with wait is scripted with "
        "({outcome, after}): the run waits for the queued issues until the 300 s timeout"),
}
"""Scenarios a real run cannot follow yet, and why."""


@pytest.fixture(scope="module")
def parity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server of its own: no deployment of a shipped process, so linked cases stay queued."""
    with running_prefect_server(tmp_path_factory.mktemp("parity-prefect")) as server:
        yield server


def _normalized(value: Any, *, clock_until: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            key: "<clock>" if key in CLOCK_KEYS or (clock_until and key == "until") else _normalized(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def _write(path: Path, data: Any) -> Path:
    with path.open("w", encoding="utf-8") as file:
        YAML(typ="safe", pure=True).dump(json.loads(json.dumps(data, default=str)), file)
    return path


@pytest.mark.parametrize(("process", "scenario_name"), [
    pytest.param(process, name, id=f"{process}:{name[:30]}",
                 marks=[NOT_YET[(process, name)]] if (process, name) in NOT_YET else [])
    for process, name in SCENARIOS
])
def test_simulate_and_run_agree(parity_server: PrefectServer, tmp_path: Path, process: str, scenario_name: str) -> None:
    library = load_checked_library(PROCESSES)
    spec = library.get(process).spec
    scenarios = load_scenarios(PROCESSES / f"{process}.scenarios.yaml")
    scenario = next(s for s in scenarios.spec.scenarios if s.name == scenario_name)
    inputs = {**(dict(spec.schedule.inputs) if scenario.from_schedule and spec.schedule else {}), **scenario.inputs}
    catalog = {name: item.spec for name, item in library.definitions.items()}

    register_url = f"sqlite:///{tmp_path / 'register.db'}"
    env = parity_server.subprocess_env({"AFTERCARE_DATABASE_URL": register_url, "AFTERCARE_PROCESSES": str(PROCESSES)})
    env.pop("AFTERCARE_SMTP_URL", None)
    done = subprocess.run(
        [str(AFTERCARE), "run", process, "--inputs", str(_write(tmp_path / "inputs.yaml", inputs)),
         "--answers", str(_write(tmp_path / "answers.yaml", scenario.answers)), "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ran = json.loads(done.stdout.strip().splitlines()[-1])
    register = Register(register_url)
    case = register.case(ran["case"])
    # The simulated clock starts when the real case opened: what templates take from `now` (a date in a title) agrees.
    composer = Composer.for_library(library)
    simulated = Simulator(spec, library.team, scenario.answers, composer=composer, catalog=catalog, start=scenario.start or case.opened_at).run(inputs)

    assert ran["path"] == simulated.path
    assert ran["withdrawn"] == simulated.withdrawn
    assert (ran["outcome"], case.outcome) == (simulated.outcome, simulated.outcome)
    assert case.title == simulated.case.title
    assert ran["case"] == simulated.case.key

    def clock_until(step_id: str) -> bool:  # a wait for a duration ends at a moment of the clock
        return getattr(spec.step(step_id), "duration", None) is not None

    # By step and visit: steps waiting side by side finish in after's order (the simulator's visits)
    # but are stored in the order they started (the register's); the path above fixes the order.
    def by_step(results: list[tuple[str, int, Any]]) -> list[tuple[str, int, Any]]:
        return sorted(results, key=lambda entry: (entry[0], entry[1]))

    runs = register.step_runs(case.key)
    real_results = [(run.step_id, run.visit, _normalized(run.result, clock_until=clock_until(run.step_id))) for run in runs if run.status != "withdrawn"]
    simulated_results = [(step_id, visit, _normalized(result, clock_until=clock_until(step_id))) for step_id, visit, result, _, _ in simulated.visits]
    assert by_step(real_results) == by_step(simulated_results)
    # A withdrawn step finished no visit: the simulator keeps it in its case's results, the register as a withdrawn run.
    withdrawn = sorted((run.step_id, run.result) for run in runs if run.status == "withdrawn")
    assert withdrawn == sorted((step_id, simulated.case.results[step_id]) for step_id in simulated.withdrawn)
    assert all(result == {"withdrawn": True} for _, result in withdrawn)
    children = [(c.process, c.title, c.inputs) for c in register.timeline(case.key).children]
    assert children == [(s.process, s.title, s.inputs) for s in simulated.started]
    register.close()
