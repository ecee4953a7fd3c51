"""Issue #19: ``type: call`` steps run for real in Prefect flows, their output recorded once.

- A step kind from an installed package of its own (tests/data/plugin_pkg, ``ledger-post``)
  in ``aftercare run`` (foreground, a real Prefect server): retried after a failing attempt
  under one idempotency key, its output in the register and in later steps; a refusal that
  is not retryable takes ``on_error`` after one attempt.
- The built-in ``http`` kind in a served case that suspends at a human step and is run again
  from the top when answered: the tracker answers 503, then 201; after the replay it has
  still seen exactly those two requests, with one ``Idempotency-Key`` and the token taken
  from the environment.
- A served run killed while the tracker holds its request recorded nothing; the restarted
  ``serve`` runs it again and it calls again, with the same ``Idempotency-Key``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine import kinds
from aftercare.flows.answering import submit_answer
from tests.e2e.conftest import AFTERCARE, Aftercare, kill_group, timing, write_team
from tests.e2e.test_crash_recovery import HoldingListener, holding_listener  # noqa: F401 - the fixture, shared
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.prefect_server import PrefectServer

PLUGINS = Path(__file__).resolve().parents[1] / "data" / "plugins"


def task_runs(server: PrefectServer, run_id: uuid.UUID | str) -> Counter[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with server.client() as client:
        found = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(str(run_id))])))
    return Counter(task.name for task in found)


def run_ledger(server: PrefectServer, aftercare: Aftercare, tmp_path: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    inputs_file = tmp_path / f"inputs-{inputs['account']}.json"
    inputs_file.write_text(json.dumps(inputs), encoding="utf-8")
    done = subprocess.run(
        [str(AFTERCARE), "run", "ledger-payment", "--inputs", str(inputs_file), "--json"],
        env=server.subprocess_env(aftercare.env), cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return printed


@pytest.mark.prefect_server
@pytest.mark.timeout(300)
def test_a_plugin_kind_runs_in_aftercare_run_with_retries_and_on_error(
    prefect_server: PrefectServer, aftercare_env: Callable[..., Aftercare], step_plugin: kinds.KindRegistry, tmp_path: Path
) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    for name in ("ledger-payment.yaml", "team.yaml"):
        shutil.copy(PLUGINS / name, folder / name)
    aftercare = aftercare_env(folder, ["ledger-payment"])
    ledger = tmp_path / "ledger.jsonl"

    started = time.monotonic()
    posted = run_ledger(prefect_server, aftercare, tmp_path, {"ledger": str(ledger), "account": "ops", "amount": 120})
    timing("aftercare run with a plug-in step (one retry of 1 s)", time.monotonic() - started)
    assert (posted["path"], posted["outcome"]) == (["post", "book", "posted"], "posted")
    key = posted["case"]
    record = aftercare.register.case(key)
    assert (record.status, record.outcome) == ("closed", "posted")
    assert record.fields == {"entry": 1, "balance": 120.0}
    steps = {run.step_id: run for run in aftercare.register.step_runs(key)}
    assert steps["post"].status == "done" and steps["post"].result == {"entry": 1, "account": "ops", "balance": 120.0}
    # the first attempt failed (fail_first: 1), the second posted; both under the visit's one key
    attempts = [json.loads(line) for line in ledger.with_suffix(".attempts").read_text(encoding="utf-8").splitlines()]
    assert attempts == [
        {"key": f"aftercare:{key}:post:1", "attempt": number, "case": key, "step": "post", "visit": 1} for number in (1, 2)
    ]
    assert [json.loads(line)["memo"] for line in ledger.read_text(encoding="utf-8").splitlines()] == [f"{key}: payment to ops"]
    assert task_runs(prefect_server, record.flow_run_id or "")["post #1"] == 1  # the step is one Prefect task, retries inside it

    refused = run_ledger(prefect_server, aftercare, tmp_path, {"ledger": str(ledger), "account": "closed", "amount": 5, "refuse": True})
    assert (refused["path"], refused["outcome"]) == (["post", "tell-lead", "not-posted"], "not-posted")
    steps = {run.step_id: run for run in aftercare.register.step_runs(refused["case"])}
    assert steps["post"].result == {"error": "account closed is closed"}
    attempts = ledger.with_suffix(".attempts").read_text(encoding="utf-8").splitlines()
    assert len(attempts) == 3  # not retried: LedgerRefused.retryable is False
    assert len(ledger.read_text(encoding="utf-8").splitlines()) == 1


TICKET = """\
process: ticket-drill
title: Ticket drill
version: 1
key: TKT
inputs:
  title: {type: string}
steps:
  - id: open-ticket
    type: call
    call: http
    with:
      method: POST
      url: "${TRACKER_URL}/api/issues"
      headers: {Authorization: "Bearer ${TRACKER_TOKEN}"}
      json: {title: "{{ inputs.title }}", reference: "{{ case.key }}"}
      timeout: 5
    retry: {attempts: 3, delay: 1s}
    on_error: no-ticket
  - id: approve
    type: approval
    title: "Ticket {{ steps['open-ticket'].json.id }} for {{ case.key }}: approve the fix?"
    assignee: role:support-lead
  - id: book
    type: record
    set: {ticket: "{{ steps['open-ticket'].json.id }}"}
  - id: done
    type: end
    outcome: done
  - id: no-ticket
    type: end
    outcome: no-ticket
"""


@pytest.mark.prefect_server
@pytest.mark.timeout(300)
def test_a_served_http_step_is_called_once_across_suspend_and_replay(
    aftercare_env: Callable[..., Aftercare], http_listener: HttpListener, tmp_path: Path
) -> None:
    folder = tmp_path / "processes"
    write_team(folder)
    (folder / "ticket-drill.yaml").write_text(TICKET, encoding="utf-8")
    http_listener.queue_statuses(503)
    http_listener.status = 201
    http_listener.response_body = b'{"id": 7}'
    aftercare = aftercare_env(folder, ["ticket-drill"], TRACKER_URL=http_listener.url, TRACKER_TOKEN="s3cret")
    with aftercare.serve():
        run_id = aftercare.start("ticket-drill", {"title": "Export times out"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "approve")
        assert len(http_listener.requests) == 2  # the 503 and the 201, before the case waits
        submit_answer(key, "approve", by="li.na", decision="approve", comment="go", register=aftercare.register)
        final = aftercare.wait_final(run_id)
        with aftercare.server.client() as client:
            states = [state.name for state in client.read_flow_run_states(run_id)]
    assert final.state_name == "Completed"
    assert states.count("Suspended") == 1 and states.count("Running") == 2, states  # it really was run again from the top
    record = aftercare.register.case(key)
    assert (record.status, record.outcome) == ("closed", "done")
    steps = {run.step_id: run for run in aftercare.register.step_runs(key)}
    assert steps["open-ticket"].result == {"status": 201, "json": {"id": 7}, "text": '{"id": 7}'}
    assert record.fields == {"ticket": 7}  # the replay read the recorded output

    time.sleep(1)  # a call the replay made would have arrived by now
    requests = http_listener.requests
    assert [(r.method, r.path, r.status) for r in requests] == [("POST", "/api/issues", 503), ("POST", "/api/issues", 201)]
    assert {r.headers["idempotency-key"] for r in requests} == {f"aftercare:{key}:open-ticket:1"}
    assert {r.headers["authorization"] for r in requests} == {"Bearer s3cret"}
    assert {json.dumps(r.json, sort_keys=True) for r in requests} == {json.dumps({"reference": key, "title": "Export times out"})}
    assert task_runs(aftercare.server, run_id)["open-ticket #1"] == 1


@pytest.mark.prefect_server
@pytest.mark.timeout(300)
def test_a_run_that_dies_during_the_call_calls_again_with_the_same_key(
    aftercare_env: Callable[..., Aftercare], holding_listener: HoldingListener, tmp_path: Path
) -> None:
    """``kill -9`` of ``serve`` while the tracker holds the request: nothing was recorded, so the replay calls again."""
    folder = tmp_path / "processes"
    write_team(folder)
    (folder / "ticket-crash.yaml").write_text(
        TICKET.replace("process: ticket-drill", "process: ticket-crash").replace("key: TKT", "key: TCR").replace("timeout: 5", "timeout: 60"),
        encoding="utf-8",
    )
    aftercare = aftercare_env(folder, ["ticket-crash"], TRACKER_URL=holding_listener.url, TRACKER_TOKEN="s3cret")
    with aftercare.serve() as first:
        run_id = aftercare.start("ticket-crash", {"title": "Crash mid-call"})
        key = aftercare.case_of(run_id).key
        holding_listener.wait_for(1, timeout=60)  # the call is in flight, held by the tracker
        kill_group(first.process)
    holding_listener.release.set()
    assert aftercare.register.step_run(key, "open-ticket", 1) is None  # nothing recorded: the call never returned

    with aftercare.serve():
        aftercare.wait_waiting_at(run_id, key, "approve", timeout=120)
        submit_answer(key, "approve", by="li.na", decision="approve", comment="", register=aftercare.register)
        final = aftercare.wait_final(run_id)
    assert final.state_name == "Completed"
    steps = [(run.step_id, run.visit, run.status) for run in aftercare.register.step_runs(key)]
    assert steps == [("open-ticket", 1, "done"), ("approve", 1, "done"), ("book", 1, "done"), ("done", 1, "done")]
    assert aftercare.register.step_run(key, "open-ticket", 1).result == {"status": 200, "json": {}, "text": "{}"}  # type: ignore[union-attr]
    assert [r["path"] for r in holding_listener.requests] == ["/api/issues", "/api/issues"]
    assert [r["idempotency_key"] for r in holding_listener.requests] == [f"aftercare:{key}:open-ticket:1"] * 2
