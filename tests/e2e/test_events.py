"""Issue #17 on a real Prefect server with ``aftercare serve``: a case's Prefect events, and an Automation that acts on one.

A served case opens, waits at an approval with a 20-second due, is answered by someone the
step does not name (refused, through ``aftercare answer``), passes its due (the timer run
escalates it), is approved and closes; another is cancelled with ``aftercare cancel``. Their
events are read back through Prefect's events API, each once, with the case as resource and
the process, step, people and the case's run related. The Automation of docs/events.md,
created by this test with Prefect's own API, calls the HTTP listener when the step is
overdue: the server itself makes that call.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.clock import utc_now
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.prefect_server import PrefectServer
from tests.flows.test_events import read_case_events

from .conftest import AFTERCARE, Aftercare, timing, wait_until, write_team

pytestmark = [pytest.mark.prefect_server, pytest.mark.timeout(420)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
DUE = "evt-due"
QUIET = "evt-quiet"
DEFINITIONS = {
    DUE: """
process: evt-due
title: Triage with a short due
version: 1
key: EVD
inputs:
  title: {type: string}
steps:
  - id: triage
    type: approval
    title: "Triage {{ inputs.title }}"
    assignee: person:li.na
    due: 20s
    escalate_to: person:huang.lei
  - {id: resolved, type: end, outcome: resolved}
""",
    QUIET: """
process: evt-quiet
title: Check without a due
version: 1
key: EVQ
inputs:
  title: {type: string}
steps:
  - id: check
    type: approval
    assignee: role:engineering
  - {id: done, type: end, outcome: done}
""",
}


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "processes"
    write_team(folder)
    for name, text in DEFINITIONS.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def documented_automation() -> dict[str, Any]:
    """Run the Python block of docs/events.md's "An Automation on an overdue step" as it is written."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## An Automation on an overdue step"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "docs/events.md has no python block under its automation"
    namespace: dict[str, Any] = {"__name__": "docs_events"}
    exec(compile(code.group(1), str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation, tested as written
    return namespace


@pytest.fixture
def overdue_automation(prefect_server: PrefectServer, http_listener: HttpListener) -> Iterator[Any]:
    """The documented automation on this test's process, calling the listener; deleted afterwards with its block."""
    name = f"aftercare-overdue-{time.monotonic_ns()}"
    automation = documented_automation()["create_overdue_automation"](f"{http_listener.url}/overdue", DUE, name=name)
    yield automation
    with prefect_server.client() as client:
        client.delete_automation(automation.id)
        block = client.read_block_document_by_name(name, "webhook")
        client.delete_block_document(block.id)


def _related(event: Any) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for resource in event.related:
        roles.setdefault(resource.role, []).append(resource.id)
    return roles


def _kinds(found: list[Any]) -> list[str]:
    return [event.event.removeprefix("aftercare.") for event in found]


def test_a_served_case_tells_prefect_its_life_and_an_automation_acts_on_the_overdue_step(
    aftercare_env: Callable[..., Aftercare], tmp_path: Path, http_listener: HttpListener, overdue_automation: Any
) -> None:
    aftercare = aftercare_env(_folder(tmp_path), [DUE, QUIET])
    env = aftercare.server.subprocess_env(aftercare.env)
    with aftercare.serve():
        run_id = aftercare.start(DUE, {"title": "Login fails"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "triage")
        waiting_since = utc_now()

        refused = subprocess.run([str(AFTERCARE), "answer", key, "triage", "--as", "liu.yang", "--approve"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, refused.stdout + refused.stderr

        # The due passes; the timer run escalates it and sends step.overdue; the automation calls the listener.
        assert http_listener.wait_for(1, timeout=120), f"the automation did not call the webhook\n{aftercare.log_tail()}"
        timing("due passed → webhook called by the automation", (utc_now() - waiting_since).total_seconds() - 20)
        call = http_listener.requests[0]
        assert (call.method, call.path) == ("POST", "/overdue")
        assert call.json == {
            "text": f"{key} waits too long at triage", "case": key, "step": "triage",
            "due": aftercare.register.step_run(key, "triage", 1).due_at.isoformat(), "assignees": "li.na",
            "event": "aftercare.step.overdue",
        }

        answered = subprocess.run([str(AFTERCARE), "answer", key, "triage", "--as", "li.na", "--approve", "--comment", "on it"],
                                  env=env, capture_output=True, text=True, timeout=120)
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert aftercare.wait_final(run_id).state_name == "Completed"

        quiet_run = aftercare.start(QUIET, {"title": "Pump 3"})
        quiet = aftercare.case_of(quiet_run).key
        aftercare.wait_waiting_at(quiet_run, quiet, "check")
        cancelled = subprocess.run([str(AFTERCARE), "cancel", quiet, "--as", "li.na", "--reason", "duplicate of the pump check"],
                                   env=env, capture_output=True, text=True, timeout=120)
        assert cancelled.returncode == 0, cancelled.stderr
        assert aftercare.wait_final(quiet_run).state_name == "Cancelled"

    found = read_case_events(aftercare.server, key, until=lambda events: "case.closed" in _kinds(events))
    assert _kinds(found) == ["case.opened", "step.waiting", "answer.refused", "step.overdue", "step.answered", "case.closed"]
    by_kind = {event.event.removeprefix("aftercare."): event for event in found}
    for event in found:
        assert event.resource.id == f"aftercare.case.{key}"
        assert event.resource["aftercare.process"] == DUE
        related = _related(event)
        assert related["process"] == [f"aftercare.process.{DUE}"]
        assert f"prefect.flow-run.{run_id}" in related["flow-run"]  # the UI links the event to the case's run
    assert _related(by_kind["step.waiting"])["step"] == [f"aftercare.step.{key}.triage"]
    assert _related(by_kind["step.waiting"])["assignee"] == ["aftercare.person.li.na"]
    assert by_kind["step.waiting"].payload["step_title"] == "Triage Login fails"
    # Sent inside the case's own run, Prefect adds the run's deployment too.
    assert any(rid.startswith("prefect.deployment.") for rid in _related(by_kind["step.waiting"])["deployment"])
    assert _related(by_kind["answer.refused"])["answerer"] == ["aftercare.person.liu.yang"]
    assert by_kind["answer.refused"].payload["via"] == "cli"
    assert "liu.yang" in by_kind["answer.refused"].payload["reason"]
    assert by_kind["step.overdue"].payload["escalate_to"] == ["person:huang.lei"]
    assert _related(by_kind["step.overdue"])["assignee"] == ["aftercare.person.li.na"]
    assert "deployment" not in _related(by_kind["step.overdue"])  # sent by the timer run, which is not the case's run
    assert _related(by_kind["step.answered"])["answerer"] == ["aftercare.person.li.na"]
    assert by_kind["step.answered"].payload.items() >= {"decision": "approve", "comment": "on it", "decided": "approve"}.items()
    assert by_kind["case.closed"].payload["outcome"] == "resolved"

    quiet_events = read_case_events(aftercare.server, quiet, until=lambda events: "case.cancelled" in _kinds(events))
    assert _kinds(quiet_events) == ["case.opened", "step.waiting", "step.withdrawn", "case.cancelled"]
    waiting = quiet_events[1]
    assert sorted(_related(waiting)["assignee"]) == ["aftercare.person.liu.yang"]
    assert quiet_events[2].payload["reason"] == "duplicate of the pump check"
    assert quiet_events[3].payload.items() >= {"by": "li.na", "withdrawn": ["check"], "outcome": "cancelled"}.items()
    assert _related(quiet_events[3])["actor"] == ["aftercare.person.li.na"]

    # The automation acted once: one overdue step, one call (the cancelled case had no due).
    time.sleep(5)
    assert len(http_listener.requests) == 1
