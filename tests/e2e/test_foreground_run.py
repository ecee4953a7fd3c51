"""``aftercare run`` against a Prefect server (``PREFECT_API_URL`` set): the run looks like a served one in the UI."""

from __future__ import annotations

import getpass
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from prefect.client.schemas.objects import StateType

from tests.e2e.conftest import AFTERCARE, PROCESSES, Aftercare, copy_processes
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.smtp import SmtpSink

INPUTS = PROCESSES / "examples/issue-inputs.yaml"
ANSWERS = PROCESSES / "examples/issue-answers.yaml"


def test_aftercare_run_names_and_tags_its_run_on_the_server(
    prefect_server: PrefectServer, aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    folder = copy_processes(tmp_path / "processes", ["issue-resolution", "knowledge-capture"])
    aftercare = aftercare_env(folder, ["issue-resolution", "knowledge-capture"])
    done = subprocess.run(
        [str(AFTERCARE), "run", "issue-resolution", "--inputs", str(INPUTS), "--answers", str(ANSWERS), "--json"],
        env=prefect_server.subprocess_env(aftercare.env), cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    case = aftercare.register.case(json.loads(done.stdout.strip().splitlines()[-1])["case"])
    assert case.outcome == "resolved" and case.flow_run_id
    # scripted answers go in as the operator's: no answer code, the OS user kept with each (docs/people.md)
    answers = [a for step in ("triage", "resolve", "verify") for a in aftercare.register.answers(case.key, step)]
    assert answers and {a.operator for a in answers} == {getpass.getuser()}

    with prefect_server.client() as client:
        run = client.read_flow_run(uuid.UUID(case.flow_run_id))
        artifacts = client.read_artifacts()
    assert run.state_type == StateType.COMPLETED
    assert run.name == f"{case.key} · {case.title}"  # sent after the run, before `aftercare run` exits
    assert {"process:issue-resolution", "version:1"} <= set(run.tags)
    latest = [a for a in artifacts if a.flow_run_id == run.id and a.key == f"case-{case.key.lower()}"]
    assert latest and "**Outcome:** resolved" in max(latest, key=lambda a: a.created).data
    assert any(case.key in mail.subject and "resolved" in mail.subject for mail in smtp_sink.messages)  # the closing mail
