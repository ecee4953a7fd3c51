"""Issue #5: suspend, resume, replay: every step and every message exists once.

A served case suspends at each human step and is run again from the top when answered;
the register turns each re-run into a replay. Notify steps before, between and after the
human steps send mail (to the SMTP sink) and a JSON webhook (to the HTTP listener): after
the case completes, each message arrived exactly once and each step ran once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from aftercare.flows.answering import submit_answer
from tests.e2e.conftest import Aftercare, json_hook, timing, wait_delivered, write_team
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.smtp import SmtpSink

PROCESS = "replay-drill"
DEFINITION = """\
process: replay-drill
title: Replay drill
version: 1
key: RPL
inputs:
  title: {type: string}
  requester: {type: person}
steps:
  - id: announce
    type: notify
    to: ["person:{{ inputs.requester }}", role:support-lead, person:hook.bot]
    subject: "{{ case.key }} opened: {{ inputs.title }}"
    message: "{{ inputs.title }} waits for the support lead."
  - id: approve
    type: approval
    title: "Approve {{ case.key }}"
    assignee: role:support-lead
  - id: tell-team
    type: notify
    to: [role:engineering, person:hook.bot]
    subject: "{{ case.key }} approved by {{ approve.by }}"
    message: "{{ approve.comment }}"
  - id: confirm
    type: form
    title: "Confirm {{ case.key }}"
    assignee: "person:{{ inputs.requester }}"
    form:
      note: {type: text}
  - id: close-note
    type: notify
    to: ["person:{{ inputs.requester }}", person:hook.bot]
    subject: "{{ case.key }} confirmed"
    message: "{{ confirm.note }}"
  - id: done
    type: end
    outcome: done
"""


@pytest.mark.prefect_server
@pytest.mark.timeout(240)
def test_each_step_and_message_exists_once_after_suspend_resume_replay(
    aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, http_listener: HttpListener, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    test_started = time.monotonic()
    folder = tmp_path / "processes"
    write_team(folder, json_hook(http_listener.url))
    (folder / f"{PROCESS}.yaml").write_text(DEFINITION, encoding="utf-8")
    aftercare = aftercare_env(folder, [PROCESS])
    register = aftercare.register
    with aftercare.serve():
        started = time.monotonic()
        run_id = aftercare.start(PROCESS, {"title": "Printer on fire", "requester": "huang.lei"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "approve")
        submit_answer(key, "approve", by="li.na", decision="approve", comment="灭火器在二楼", register=register)
        aftercare.wait_waiting_at(run_id, key, "confirm")
        submit_answer(key, "confirm", by="huang.lei", decision=None, comment="", fields={"note": "Fire is out"}, register=register)
        final = aftercare.wait_final(run_id)
        timing("created -> completed (two suspends, two replays)", time.monotonic() - started)
        with aftercare.server.client() as client:
            states = client.read_flow_run_states(run_id)
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))

    assert final.state_name == "Completed"
    record = register.case(key)
    assert (record.status, record.outcome) == ("closed", "done")
    # It really was replayed: three executions, two suspensions in between.
    names = [state.name for state in states]
    assert names.count("Suspended") == 2 and names.count("Running") == 3, names

    # Each step once in the register, and once as a task run (replays do not re-run tasks).
    steps = register.step_runs(key)
    assert [step.step_id for step in steps] == ["announce", "approve", "tell-team", "confirm", "close-note", "done"]
    assert all(step.status == "done" and step.visit == 1 for step in steps)
    tasks = Counter(task.name for task in task_runs)
    assert tasks == Counter(
        ["announce #1", "approve #1: li.na approve", "tell-team #1", "confirm #1: huang.lei submit", "close-note #1", "done #1"]
    ), tasks
    assert [(a.step_id, a.person, a.comment) for step in ("approve", "confirm") for a in register.answers(key, step)] == [
        ("approve", "li.na", "灭火器在二楼"),
        ("confirm", "huang.lei", ""),
    ]

    # Each message once in the outbox (one row per idempotency key), all delivered ...
    messages = wait_delivered(register, [key])
    assert len({m.idempotency_key for m in messages}) == len(messages)
    emails = [m for m in messages if m.channel.startswith("email:")]
    hooks = [m for m in messages if m.channel.startswith("json://")]
    per_step = Counter(m.step_id for m in messages)
    assert per_step["announce"] == 3 and per_step["tell-team"] == 2 and per_step["close-note"] == 2, per_step
    assert len(hooks) == 3  # announce, tell-team, close-note
    assert {m.step_id for m in messages if "/waiting/" in m.idempotency_key} == {"approve", "confirm"}

    # ... and arrived exactly once where it was sent.
    smtp_sink.wait_for(len(emails), timeout=30)
    http_listener.wait_for(len(hooks), timeout=30)
    time.sleep(2)  # a duplicate would come now (a retry would be a timer run; deliveries are immediate)
    mails = list(smtp_sink.messages)
    assert len(mails) == len(emails), sorted(m.subject for m in mails)
    assert Counter(m.message["Message-ID"] for m in mails).most_common(1)[0][1] == 1
    assert sorted((m.rcpt_tos[0], m.subject) for m in mails) == sorted((e.channel.removeprefix("email:"), e.subject) for e in emails)
    requests = list(http_listener.requests)
    assert len(requests) == len(hooks), [r.json for r in requests]
    assert sorted(r.json["title"] for r in requests) == sorted(m.subject for m in hooks)
    assert {r.path for r in requests} == {"/hook"}
    timing("whole replay test", time.monotonic() - test_started)
