"""``aftercare serve`` killed with ``kill -9`` (serve and its flow-run processes), then started again.

(a) A case suspended at a human step needs no process: after the restart it is answered
    and completes.
(b) Runs that were Running when their process died stay Running in Prefect for ever
    (DESIGN.md, "Known ground truths"). The restarted serve finds them by their liveness
    signal (flows/recovery.py: the host and pid each execution labels its run with),
    schedules them again, and the replay finishes them: every step and message once.

Two runs are caught mid-flight in (b): one that took an answer and was about to record it
(held on the register's write lock), one whose notify step was sending a webhook (held
by a listener that does not answer).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.register import MESSAGE_SENDING, Register
from aftercare.flows.answering import submit_answer
from tests.e2e.conftest import Aftercare, answer_code, json_hook, kill_group, timing, wait_delivered, wait_until, write_team
from tests.fixtures.smtp import SmtpSink

DEFINITION = """\
process: {process}
title: Crash drill
version: 1
key: {key}
inputs:
  title: {{type: string}}
  hook: {{type: boolean, default: false, description: Call the webhook before the check}}
steps:
  - id: announce
    type: notify
    to: [role:support-lead]
    subject: "{{{{ case.key }}}} opened: {{{{ inputs.title }}}}"
    message: "{{{{ inputs.title }}}} needs a check."
  - id: route
    type: decision
    branches:
      - when: inputs.hook
        next: call-hook
    otherwise: check
  - id: call-hook
    type: notify
    to: [person:hook.bot]
    subject: "{{{{ case.key }}}} hook"
    message: "{{{{ inputs.title }}}}"
  - id: check
    type: approval
    title: "Check {{{{ case.key }}}}"
    assignee: role:support-lead
  - id: wrap-up
    type: notify
    to: [role:engineering]
    subject: "{{{{ case.key }}}} checked by {{{{ check.by }}}}"
    message: "{{{{ check.comment }}}}"
  - id: done
    type: end
    outcome: done
"""


def _folder(tmp_path: Path, process: str, key: str, hook_url: str) -> Path:
    folder = tmp_path / "processes"
    write_team(folder, hook_url)
    (folder / f"{process}.yaml").write_text(DEFINITION.format(process=process, key=key), encoding="utf-8")
    return folder


class HoldingListener:
    """An HTTP endpoint that records each request as it arrives and answers only when released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._arrived = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                import json

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with listener._arrived:
                    listener.requests.append(
                        {"path": self.path, "json": json.loads(body or b"null"), "idempotency_key": self.headers.get("Idempotency-Key")}
                    )
                    listener._arrived.notify_all()
                listener.release.wait(60)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender was killed while it waited: that is the point

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float) -> None:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} webhook request(s) within {timeout} s, got {len(self.requests)}")

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def holding_listener() -> Iterator[HoldingListener]:
    listener = HoldingListener()
    try:
        yield listener
    finally:
        listener.close()


def _resume(aftercare: Aftercare, run_id: uuid.UUID, run_input: dict[str, Any]) -> None:
    """Resume a suspended run with an answer through the API (what the UI's Submit does)."""
    deadline = time.monotonic() + 30
    with aftercare.server.client() as client:
        while True:
            result = client.resume_flow_run(run_id, run_input=run_input)
            if str(getattr(result.status, "value", result.status)).upper() == "ACCEPT":
                return
            reason = str(getattr(result.details, "reason", ""))
            if "schema not found" not in reason.lower() or time.monotonic() > deadline:
                raise AssertionError(f"resume refused: {reason}")
            time.sleep(0.2)


def _assert_steps_once(register: Register, key: str, path: list[str]) -> None:
    steps = register.step_runs(key)
    assert [step.step_id for step in steps] == path
    assert Counter((step.step_id, step.visit) for step in steps).most_common(1)[0][1] == 1
    assert all(step.status == "done" for step in steps), [(s.step_id, s.status) for s in steps]


def _assert_mail_once(register: Register, smtp_sink: SmtpSink, keys: list[str]) -> None:
    """Every e-mail of these cases is in the outbox once, delivered, and arrived once."""
    messages = [message for key in keys for message in register.messages(case_key=key)]
    assert len({m.idempotency_key for m in messages}) == len(messages)
    emails = wait_delivered(register, keys, "email:")
    smtp_sink.wait_for(len(emails), timeout=30)
    time.sleep(1)
    mails = list(smtp_sink.messages)
    assert len(mails) == len(emails), sorted(m.subject for m in mails)
    assert Counter(m.message["Message-ID"] for m in mails).most_common(1)[0][1] == 1
    assert sorted((m.rcpt_tos[0], m.subject) for m in mails) == sorted((e.channel.removeprefix("email:"), e.subject) for e in emails)


@pytest.mark.prefect_server
@pytest.mark.timeout(240)
def test_a_case_waiting_at_a_human_step_survives_kill_9_of_serve(
    aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    test_started = time.monotonic()
    process = "crash-waiting"
    # The definition names hook.bot; this case never calls it (port 9 is discard).
    aftercare = aftercare_env(_folder(tmp_path, process, "CWT", json_hook("http://127.0.0.1:9")), [process])
    register = aftercare.register
    with aftercare.serve() as first:
        run_id = aftercare.start(process, {"title": "Pump 2 vibrates"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "check")
        kill_group(first.process)
    with aftercare.server.client() as client:
        assert client.read_flow_run(run_id).state_name == "Suspended"  # no process needed while people think

    with aftercare.serve():
        started = time.monotonic()
        submit_answer(key, "check", by="li.na", decision="approve", comment="轴承已更换", register=register)
        final = aftercare.wait_final(run_id)
        timing("answer after restart -> completed", time.monotonic() - started)

    assert final.state_name == "Completed"
    record = register.case(key)
    assert (record.status, record.outcome) == ("closed", "done")
    _assert_steps_once(register, key, ["announce", "route", "check", "wrap-up", "done"])
    assert [(a.person, a.decision, a.comment) for a in register.answers(key, "check")] == [("li.na", "approve", "轴承已更换")]
    _assert_mail_once(register, smtp_sink, [key])
    timing("whole crash test (a)", time.monotonic() - test_started)


@pytest.mark.prefect_server
@pytest.mark.timeout(240)
def test_runs_running_when_serve_is_killed_are_replayed_by_the_next_serve(
    aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, holding_listener: HoldingListener, tmp_path: Path
) -> None:
    from prefect.states import StateType

    test_started = time.monotonic()
    process = "crash-running"
    folder = _folder(tmp_path, process, "CRN", json_hook(holding_listener.url, rto="30"))
    aftercare = aftercare_env(folder, [process])
    register = aftercare.register
    with aftercare.serve() as first:
        # A: waits at the check, then is answered while the register is locked: its new
        # execution takes the answer from Prefect and hangs before it can record it.
        run_a = aftercare.start(process, {"title": "Answer in flight"})
        key_a = aftercare.case_of(run_a).key
        aftercare.wait_waiting_at(run_a, key_a, "check")
        # B: its call-hook step sends a webhook that gets no answer.
        run_b = aftercare.start(process, {"title": "Webhook in flight", "hook": True})
        key_b = aftercare.case_of(run_b).key
        holding_listener.wait_for(1, timeout=60)
        code_a = answer_code(smtp_sink, key_a, "li.na@example.com")  # li.na's answer code, from her waiting mail

        lock = sqlite3.connect(str(tmp_path / "register.db"), isolation_level=None, timeout=30)
        try:
            lock.execute("BEGIN IMMEDIATE")
            _resume(aftercare, run_a, {"answering_as": "li.na", "answer_code": code_a, "decision": "approve", "comment": "在途的答复"})
            aftercare.server.wait_for_flow_run(run_a, lambda run: run.state_type == StateType.RUNNING, timeout=60, what="Running")
            time.sleep(2)  # well inside its execution, blocked on the register
            kill_group(first.process)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        holding_listener.release.set()

    # The dead runs stay Running; the register shows where each one died.
    with aftercare.server.client() as client:
        assert client.read_flow_run(run_a).state_type == StateType.RUNNING
        assert client.read_flow_run(run_b).state_type == StateType.RUNNING
    assert register.step_run(key_a, "check", 1).is_open and register.answers(key_a, "check") == []
    assert register.step_run(key_b, "call-hook", 1).status == "done"
    [hook_message] = [m for m in register.messages(case_key=key_b) if m.step_id == "call-hook"]
    assert hook_message.status == MESSAGE_SENDING  # claimed by the process that died mid-send
    time.sleep(3)
    with aftercare.server.client() as client:  # no sign of life helps them: still Running
        assert client.read_flow_run(run_a).state_type == StateType.RUNNING

    with aftercare.serve() as second:
        started = time.monotonic()
        final_a = aftercare.wait_final(run_a)
        timing("restart -> run A replayed and completed", time.monotonic() - started)
        aftercare.wait_waiting_at(run_b, key_b, "check")
        timing("restart -> run B replayed and waiting", time.monotonic() - started)
        submit_answer(key_b, "check", by="li.na", decision="approve", comment="hook sent once", register=register)
        final_b = aftercare.wait_final(run_b)
        with aftercare.server.client() as client:
            states_a = client.read_flow_run_states(run_a)
            states_b = client.read_flow_run_states(run_b)
        # Recovered at start-up, before the runner took runs: no waiting for a stale heartbeat.
        assert "2 run(s) whose process died scheduled again" in second.log_path.read_text(errors="replace")

    assert (final_a.state_name, final_b.state_name) == ("Completed", "Completed")
    for states in (states_a, states_b):
        rescheduled = [s for s in states if s.type == StateType.SCHEDULED and "process died" in (s.message or "")]
        assert len(rescheduled) == 1, [(s.type, s.name, s.message) for s in states]
    for key in (key_a, key_b):
        record = register.case(key)
        assert (record.status, record.outcome) == ("closed", "done")
    _assert_steps_once(register, key_a, ["announce", "route", "check", "wrap-up", "done"])
    _assert_steps_once(register, key_b, ["announce", "route", "call-hook", "check", "wrap-up", "done"])
    # A's answer was given once, before the crash, and recorded once, after it.
    assert [(a.person, a.comment) for a in register.answers(key_a, "check")] == [("li.na", "在途的答复")]
    assert [(a.person, a.comment) for a in register.answers(key_b, "check")] == [("li.na", "hook sent once")]
    _assert_mail_once(register, smtp_sink, [key_a, key_b])
    # The webhook arrived once. Its outbox row stays claimed by the dead sender until the
    # claim's lease (5 min) passes; then the outbox sends it again (at least once: the
    # sender died between send and mark, see notifications/delivery.py).
    assert [r["json"]["title"] for r in holding_listener.requests] == [f"{key_b} hook"]
    [hook_message] = [m for m in register.messages(case_key=key_b) if m.step_id == "call-hook"]
    assert (hook_message.status, hook_message.attempts) == (MESSAGE_SENDING, 1)
    timing("whole crash test (b)", time.monotonic() - test_started)


@pytest.mark.prefect_server
@pytest.mark.timeout(120)
def test_without_a_process_label_heartbeats_tell_a_dead_run_from_a_live_one(prefect_server: Any) -> None:
    """The fallback signal (a run on another host, or one that died before it labelled itself)."""
    from datetime import timedelta

    from prefect import flow
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker
    from prefect.states import Running

    from aftercare.flows.recovery import last_heartbeat, recover_dead_runs

    @flow(name="crash-heartbeat")
    def crash_heartbeat() -> None:
        """Never runs: a deployment nobody serves, its runs' states set by hand."""

    deployment_id = crash_heartbeat.to_deployment(name="crash-heartbeat").apply()
    with prefect_server.client() as client:
        silent, beating = (client.create_flow_run_from_deployment(deployment_id).id for _ in range(2))
        for run_id in (silent, beating):
            client.set_flow_run_state(run_id, Running(), force=True)  # the server dates the state
        entered = max(client.read_flow_run(run_id).state.timestamp for run_id in (silent, beating))
    time.sleep(2.5)
    heard = entered + timedelta(seconds=2)  # a heartbeat after the state began (in the past by now)
    emit_event(event="prefect.flow-run.heartbeat", resource={"prefect.resource.id": f"prefect.flow-run.{beating}"}, occurred=heard)
    EventsWorker.drain_all(timeout=10)
    with prefect_server.client() as client:
        wait_until(lambda: last_heartbeat(client, str(beating), entered) is not None, 30, "the heartbeat to be stored")
        assert last_heartbeat(client, str(beating), entered) == heard
        assert last_heartbeat(client, str(silent), entered - timedelta(minutes=1)) is None

    # 40 s after the states began, a run silent for more than 39 s is dead; the heartbeat is 38 s old.
    now = entered + timedelta(seconds=40)
    report = recover_dead_runs(["crash-heartbeat"], now=now, stale=timedelta(seconds=39))
    assert report.rescheduled == [str(silent)]
    assert str(beating) in report.alive
    with prefect_server.client() as client:
        rescheduled = client.read_flow_run(silent)
        assert rescheduled.state_type.value == "SCHEDULED" and "process died" in (rescheduled.state.message or "")
        assert client.read_flow_run(beating).state_type.value == "RUNNING"
        for run_id in (silent, beating):
            client.delete_flow_run(run_id)
        client.delete_deployment(deployment_id)
