"""Steps that wait side by side run for real: ``aftercare run --answers`` agrees with ``simulate`` on v2 definitions.

Each waiting step (a parallel branch, a for_each instance) has a form run of its own; the
scripted answers go to those forms in the order ``after`` gives; an any-join withdraws the
slower branch in the register and tells its people once.
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
from aftercare.engine.simulator import Simulator
from aftercare.notifications import Composer, load_checked_library
from tests.fixtures.prefect_server import PrefectServer, running_prefect_server

pytestmark = pytest.mark.prefect_server

FOLDER = Path(__file__).resolve().parents[1] / "data" / "v2"
AFTERCARE = Path(sys.executable).with_name("aftercare")

CASES = [
    ("reviews", {"title": "Upgrade"}, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "2h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    }),
    ("first-wins", {"title": "Spare part"}, {
        "tech-review": {"decision": "approve", "by": "ann", "after": "2h"},
        "customer-review": {"decision": "approve", "by": "bob", "after": "1h"},
    }),
    ("scores", {"title": "Evaluation", "stakeholders": ["ann", "bob"]}, {
        "score": [{"by": "bob", "score": 4, "after": "1h"}, {"by": "ann", "score": 5, "after": "2h"}],
    }),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running_prefect_server(tmp_path_factory.mktemp("parallel-prefect")) as running:
        yield running


def _write(path: Path, data: Any) -> Path:
    with path.open("w", encoding="utf-8") as file:
        YAML(typ="safe", pure=True).dump(data, file)
    return path


@pytest.mark.parametrize(("process", "inputs", "answers"), CASES, ids=[c[0] for c in CASES])
def test_run_agrees_with_simulate(server: PrefectServer, tmp_path: Path, process: str, inputs: dict[str, Any], answers: dict[str, Any]) -> None:
    library = load_checked_library(FOLDER)
    simulated = Simulator(library.get(process).spec, library.team, answers, composer=Composer.for_library(library)).run(inputs)
    register_url = f"sqlite:///{tmp_path / 'register.db'}"
    env = server.subprocess_env({"AFTERCARE_DATABASE_URL": register_url, "AFTERCARE_PROCESSES": str(FOLDER)})
    env.pop("AFTERCARE_SMTP_URL", None)
    done = subprocess.run(
        [str(AFTERCARE), "run", process, "--inputs", str(_write(tmp_path / "inputs.yaml", inputs)),
         "--answers", str(_write(tmp_path / "answers.yaml", answers)), "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ran = json.loads(done.stdout.strip().splitlines()[-1])
    assert ran == {**simulated.as_json(), "case": ran["case"]}
    register = Register(register_url)
    runs = {run.step_id: run for run in register.step_runs(ran["case"])}
    for step_id in simulated.withdrawn:
        assert runs[step_id].status == "withdrawn"
        withdrawn_mail = [m for m in register.messages(case_key=ran["case"]) if "/withdrawn/" in m.idempotency_key]
        assert [m.recipient for m in withdrawn_mail] == [f"person:{p}" for p in runs[step_id].eligible]
    answers_taken = [(a.person, a.decision) for step in runs for a in register.answers(ran["case"], step)]
    assert sorted(answers_taken) == sorted((a.by, a.decision) for _, _, a in simulated.answers)
    if process == "scores":
        assert register.case(ran["case"]).fields["scores"] == [5, 4]
    register.close()
