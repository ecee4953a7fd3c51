"""Cancelling served cases for real: ``aftercare cancel`` on a suspended run, and Cancel pressed in the Prefect UI
on a suspended run (no process, so no hook) that the housekeeping run finds. Each ends with its run Cancelled, its
timers gone, its waiting person told once, and nothing of it escalated afterwards."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.clock import utc_now
from tests.fixtures.smtp import SmtpSink

from .conftest import AFTERCARE, Aftercare, wait_until, write_team

pytestmark = [pytest.mark.prefect_server]

PROCESS = "cancel-check"
DUE_SECONDS = 20


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "processes"
    write_team(folder)
    (folder / f"{PROCESS}.yaml").write_text(
        f"""\
process: {PROCESS}
title: Cancel check
version: 1
key: CNC
inputs:
  title: {{type: string}}
steps:
  - id: check
    type: approval
    title: Check the pump
    assignee: person:li.na
    due: {DUE_SECONDS}s
    escalate_to: person:huang.lei
  - id: done
    type: end
    outcome: done
""",
        encoding="utf-8",
    )
    return folder


def _scheduled_timers(aftercare: Aftercare, key: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with aftercare.server.client() as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"timer-of:{key}"])), limit=50)
    return [run for run in runs if run.state_name == "Scheduled"]


def _mails(smtp_sink: SmtpSink, key: str, marker: str) -> list[Any]:
    return [mail for mail in smtp_sink.messages if mail.subject.startswith(f"[{key}] {marker}")]


def _housekeeping(aftercare: Aftercare) -> None:
    """A housekeeping run now, as its 5-minute chain would start one, run by serve's system runner."""
    with aftercare.server.client() as client:
        deployment = client.read_deployment_by_name("aftercare-housekeeping/aftercare-housekeeping")
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"kind": "housekeeping"}, tags=["aftercare-system"], idempotency_key=f"test-{uuid.uuid4()}",
        )
    final = aftercare.wait_final(run.id, timeout=90)
    assert final.state_name == "Completed", aftercare.log_tail()


@pytest.mark.timeout(420)
def test_served_cases_cancelled_by_command_and_in_the_prefect_ui(
    aftercare_env: Callable[..., Aftercare], tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    from prefect.states import Cancelling

    aftercare = aftercare_env(_folder(tmp_path), [PROCESS])
    with aftercare.serve():
        by_command, in_ui = aftercare.start(PROCESS, {"title": "Pump 1"}), aftercare.start(PROCESS, {"title": "Pump 2"})
        first, second = aftercare.case_of(by_command).key, aftercare.case_of(in_ui).key
        aftercare.wait_waiting_at(by_command, first, "check")
        aftercare.wait_waiting_at(in_ui, second, "check")
        wait_until(lambda: len(_scheduled_timers(aftercare, first)) == 1 and len(_scheduled_timers(aftercare, second)) == 1,
                   30, "the due timers")

        # 1. aftercare cancel on a suspended run: the register, the run, the timers, li.na told once
        env = aftercare.server.subprocess_env(aftercare.env)
        done = subprocess.run([str(AFTERCARE), "cancel", first, "--as", "li.na", "--reason", "泵已更换 pump replaced"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert done.stdout.strip() == f"{first} cancelled by li.na: 泵已更换 pump replaced; withdrew check"
        run = aftercare.server.wait_for_final(by_command, timeout=10)
        assert run.state_name == "Cancelled"
        case = aftercare.register.case(first)
        assert (case.status, case.outcome) == ("cancelled", "cancelled")
        assert aftercare.register.step_run(first, "check", 1).status == "withdrawn"
        assert _scheduled_timers(aftercare, first) == []
        wait_until(lambda: len(_mails(smtp_sink, first, "已取消")) == 1, 30, "the cancel mail")
        refused = subprocess.run([str(AFTERCARE), "cancel", first, "--as", "li.na", "--reason", "again"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1
        assert refused.stderr.strip() == f"aftercare cancel: {first} is already cancelled (outcome cancelled); nothing to cancel"

        # 2. Cancel in the Prefect UI on a suspended run: Prefect cancels it at once, no process runs a hook
        with aftercare.server.client() as client:
            client.set_flow_run_state(in_ui, Cancelling(message="cancelled by a person in the UI"))
        assert aftercare.server.wait_for_final(in_ui, timeout=10).state_name == "Cancelled"
        assert aftercare.register.case(second).is_open  # the register has not heard of it yet
        _housekeeping(aftercare)
        case = aftercare.register.case(second)
        assert (case.status, case.outcome) == ("cancelled", "cancelled")
        [event] = [e for e in aftercare.register.audit_events(second) if e.event == "case.cancelled"]
        assert (event.actor, event.detail) == ("prefect-ui", "cancelled in the Prefect UI")
        assert _scheduled_timers(aftercare, second) == []
        wait_until(lambda: len(_mails(smtp_sink, second, "已取消")) == 1, 30, "the cancel mail of the UI's cancel")

        # 3. After the dues passed, housekeeping escalates nothing, wakes nothing, tells nobody twice
        started = aftercare.register.step_run(second, "check", 1).started_at
        wait_until(lambda: utc_now() > started + timedelta(seconds=DUE_SECONDS + 1), DUE_SECONDS + 10, "the dues to pass")
        _housekeeping(aftercare)
        time.sleep(2)
    for key in (first, second):
        keys = [m.idempotency_key for m in aftercare.register.messages(case_key=key, limit=1000)]
        assert not [k for k in keys if "escalation" in k or "overdue" in k], keys
        assert len(_mails(smtp_sink, key, "已取消")) == 1
        assert aftercare.register.open_steps() == []
    with aftercare.server.client() as client:
        states = {client.read_flow_run(run_id).state_name for run_id in (by_command, in_ui)}
    assert states == {"Cancelled"}


@pytest.mark.timeout(120)
def test_recovery_never_replays_a_cancelled_case_and_notices_cancels_of_suspended_runs(
    prefect_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without serve: a dead Running run of a cancelled case is marked Cancelled, not Scheduled; an open case whose
    run Prefect cancelled is cancelled in the register before anything is replayed."""
    from prefect.states import Cancelled, Running

    from aftercare.engine.register import Register
    from aftercare.flows.recovery import recover_dead_runs

    url = f"sqlite:///{tmp_path / 'register.db'}"
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", url)
    monkeypatch.setenv("AFTERCARE_PROCESSES", str(tmp_path / "no-definitions"))  # nobody to tell: the cancel goes on
    flow_name = f"cancel-recovery-{uuid.uuid4().hex[:8]}"
    with prefect_server.client() as client:
        flow_id = client.create_flow_from_name(flow_name)
        deployment_id = client.create_deployment(flow_id=flow_id, name=flow_name)
        dead = client.create_flow_run_from_deployment(deployment_id, state=Running())
        ui_cancelled = client.create_flow_run_from_deployment(deployment_id, state=Cancelled(message="pressed in the UI"))
    register = Register(url)
    common = {"process": flow_name, "version": 1, "definition_hash": "x", "key_prefix": "REC", "title": "t", "inputs": {}}
    gone = register.open_case(**common, flow_run_id=str(dead.id))
    waiting = register.open_case(**common, flow_run_id=str(ui_cancelled.id))
    register.begin_step(gone.key, "check", 1, started_at=utc_now(), eligible=["li.na"], status="waiting")
    register.begin_step(waiting.key, "check", 1, started_at=utc_now(), eligible=["li.na"], status="waiting")
    register.cancel_case(gone.key, by="li.na", reason="not needed")

    report = recover_dead_runs([flow_name], now=utc_now() + timedelta(minutes=5), stale=timedelta(seconds=1))
    assert (report.cancelled, report.rescheduled, report.cases_cancelled) == ([str(dead.id)], [], [waiting.key])
    with prefect_server.client() as client:
        assert client.read_flow_run(dead.id).state_name == "Cancelled"
    case = register.case(waiting.key)
    assert (case.status, register.step_run(waiting.key, "check", 1).status) == ("cancelled", "withdrawn")
    [event] = [e for e in register.audit_events(waiting.key) if e.event == "case.cancelled"]
    assert event.actor == "prefect-ui"
    again = recover_dead_runs([flow_name], now=utc_now() + timedelta(minutes=5), stale=timedelta(seconds=1))
    assert (again.cancelled, again.rescheduled, again.cases_cancelled) == ([], [], [])
    register.close()
