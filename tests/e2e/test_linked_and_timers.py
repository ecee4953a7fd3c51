"""Served runs: a ``start`` step opens the linked case as its own flow run; a ``wait`` step suspends durably."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aftercare.engine.clock import utc_now

from .conftest import Aftercare, kill_group, timing, wait_until, write_team

pytestmark = [pytest.mark.prefect_server]

PARENT = """\
process: e2e-parent
title: Parent
version: 1
key: PAR
inputs:
  title: {type: string}
  items: {type: list}
steps:
  - id: cool-down
    type: wait
    duration: 30s
  - id: spawn
    type: start
    process: e2e-child
    for_each: "{{ inputs['items'] }}"
    inputs: {title: "{{ item }}", owner: liu.yang}
  - id: done
    type: end
    outcome: spawned
"""

CHILD = """\
process: e2e-child
title: Child
version: 1
key: CHD
inputs:
  title: {type: string}
  owner: {type: person}
steps:
  - id: note
    type: record
    set: {status: noted, parent_title: "{{ inputs.title }}"}
  - id: done
    type: end
    outcome: noted
"""


def test_wait_suspends_and_start_launches_linked_runs(aftercare_env: Callable[..., Aftercare], tmp_path: Path) -> None:
    folder = tmp_path / "processes"
    write_team(folder)
    (folder / "e2e-parent.yaml").write_text(PARENT, encoding="utf-8")
    (folder / "e2e-child.yaml").write_text(CHILD, encoding="utf-8")
    aftercare = aftercare_env(folder, ("e2e-parent", "e2e-child"))
    started = time.monotonic()
    with aftercare.serve() as served:
        run_id = aftercare.start("e2e-parent", {"title": "Weekly review", "items": ["回访客户 Call the customer", "Update the runbook"]})
        case = aftercare.case_of(run_id)
        # The wait hands the run back to Prefect, Scheduled at its moment: no process is held.
        run = aftercare.server.wait_for_flow_run(run_id, lambda run: run.state is not None and run.state.name == "Scheduled",
                                                 timeout=90, what="the wait step to schedule its run")
        until = aftercare.register.step_run(case.key, "cool-down", 1).due_at
        assert until is not None and abs((run.state.state_details.scheduled_time - until).total_seconds()) < 1
        # serve is killed and restarted before the moment: the timer lives in Prefect, not in a process.
        kill_group(served.process)
    with aftercare.serve():
        assert utc_now() < until, "the restart took longer than the wait: nothing left to test"
        aftercare.wait_final(run_id, timeout=150)
        done = aftercare.register.step_run(case.key, "cool-down", 1)
        late = (done.finished_at - until).total_seconds()
        timing("wait step fired after its moment", late)
        assert 0 <= late < 8, f"the wait ended {late:.1f} s after its moment"
        assert aftercare.register.case(case.key).outcome == "spawned"
        wait_until(lambda: len([c for c in aftercare.register.cases(process="e2e-child") if c.outcome == "noted"]) == 2,
                   150, "both linked cases to run", aftercare.log_tail)
    timing("wait + restart + linked cases", time.monotonic() - started)
    children = aftercare.register.cases(process="e2e-child")
    assert sorted(c.title for c in children) == ["Update the runbook", "回访客户 Call the customer"]
    assert {c.parent_key for c in children} == {case.key}
    assert all(c.flow_run_id for c in children)
    with aftercare.server.client() as client:
        tags = [client.read_flow_run(__import__("uuid").UUID(c.flow_run_id)).tags for c in children]
    assert sorted(t for tag in tags for t in tag if t.startswith("case:")) == sorted(f"case:{c.key}" for c in children)
    steps = [(s.step_id, s.visit) for s in aftercare.register.step_runs(case.key)]
    assert steps == [("cool-down", 1), ("spawn", 1), ("done", 1)]
