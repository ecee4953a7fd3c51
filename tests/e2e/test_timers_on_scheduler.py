"""Deadlines on Prefect's own scheduler: a ``due`` that passed while serve was killed fires when it is back,
two serves fire each timer once, and a case starts at once while many timers are due."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.clock import utc_now
from tests.fixtures.prefect_server import PrefectServer

from .conftest import Aftercare, kill_group, timing, wait_until, write_team

pytestmark = [pytest.mark.prefect_server]

DUE_SECONDS = 25


def _definition(process: str, key: str) -> str:
    return f"""\
process: {process}
title: Timer check
version: 1
key: {key}
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
"""


def _folder(tmp_path: Path, process: str, key: str) -> Path:
    folder = tmp_path / "processes"
    write_team(folder)
    (folder / f"{process}.yaml").write_text(_definition(process, key), encoding="utf-8")
    return folder


def _timer_runs(server: PrefectServer, case_key: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with server.client() as client:
        return list(client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"timer-of:{case_key}"])), limit=50))


def _escalations(aftercare: Aftercare, key: str) -> list[Any]:
    """The escalation messages of a case's ``check`` step (their key names the breach)."""
    return [m for m in aftercare.register.messages(case_key=key, limit=1000) if m.idempotency_key.startswith(f"{key}/check/1/escalation@")]


@pytest.fixture
def no_timers_left(prefect_server: PrefectServer) -> Iterator[None]:
    """Timer runs a test leaves Scheduled would fire in a later test's serve: delete them."""
    yield
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with prefect_server.client() as client:
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["aftercare-system"])), limit=200):
            if run.state is not None and not run.state.is_final():
                client.delete_flow_run(run.id)


@pytest.mark.timeout(300)
def test_a_due_passed_while_serve_was_down_fires_when_it_is_back(
    aftercare_env: Callable[..., Aftercare], tmp_path: Path, no_timers_left: None
) -> None:
    process = "timer-restart"
    aftercare = aftercare_env(_folder(tmp_path, process, "TRS"), [process])
    with aftercare.serve() as served:
        run_id = aftercare.start(process, {"title": "Pump 2 vibrates"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "check")
        due = aftercare.register.step_run(key, "check", 1).due_at
        assert due is not None
        timers = _timer_runs(aftercare.server, key)
        # One Prefect run for the deadline, Scheduled at it, named after what it does.
        assert [(t.name, t.state_name) for t in timers] == [(f"{key} · check due", "Scheduled")]
        assert abs((timers[0].expected_start_time - due).total_seconds()) < 1
        assert "aftercare-system" in timers[0].tags
        kill_group(served.process)
    assert utc_now() < due - timedelta(seconds=5), "the kill took longer than the due: nothing left to test"
    # Nothing serves while the due passes; the restarted serve fires it at once.
    wait_until(lambda: utc_now() > due + timedelta(seconds=3), DUE_SECONDS + 10, "the due to pass")
    assert _escalations(aftercare, key) == []
    with aftercare.serve():
        restarted = utc_now()
        wait_until(lambda: bool(_escalations(aftercare, key)), 60, "the escalation", aftercare.log_tail)
        after_restart = (_escalations(aftercare, key)[0].created_at - restarted).total_seconds()
        timing("due fired after serve came back", after_restart)
        assert after_restart < 12, f"the escalation was written {after_restart:.1f} s after serve came back"
        time.sleep(3)
    assert [m.recipient for m in _escalations(aftercare, key)] == ["person:huang.lei"]
    assert [t.state_name for t in _timer_runs(aftercare.server, key)] == ["Completed"]


@pytest.mark.timeout(300)
def test_two_serves_fire_each_timer_once(aftercare_env: Callable[..., Aftercare], tmp_path: Path, no_timers_left: None) -> None:
    process = "timer-twice"
    aftercare = aftercare_env(_folder(tmp_path, process, "TTW"), [process])
    with aftercare.serve(), aftercare.serve():
        runs = [aftercare.start(process, {"title": f"Pump {n}"}) for n in range(6)]
        keys = [aftercare.case_of(run_id).key for run_id in runs]
        for run_id, key in zip(runs, keys, strict=True):
            aftercare.wait_waiting_at(run_id, key, "check")
        last_due = max(aftercare.register.step_run(key, "check", 1).due_at for key in keys)
        wait_until(lambda: all(_escalations(aftercare, key) for key in keys), (last_due - utc_now()).total_seconds() + 60,
                   "every escalation", aftercare.log_tail)
        time.sleep(5)  # a second firing would come now
    for key in keys:
        assert len(_escalations(aftercare, key)) == 1, key
        timers = _timer_runs(aftercare.server, key)
        assert [t.state_name for t in timers] == ["Completed"], key


@pytest.mark.timeout(300)
def test_a_case_starts_within_seconds_while_fifty_timers_are_due(
    aftercare_env: Callable[..., Aftercare], tmp_path: Path, no_timers_left: None
) -> None:
    from prefect.states import Scheduled

    process = "timer-busy"
    aftercare = aftercare_env(_folder(tmp_path, process, "TBY"), [process])
    with aftercare.serve():
        with aftercare.server.client() as client:
            timer = client.read_deployment_by_name("aftercare-timer/aftercare-timer")
            now = utc_now()
            for n in range(50):
                at = now - timedelta(seconds=n)
                client.create_flow_run_from_deployment(
                    timer.id, parameters={"kind": "outbox", "at": at.isoformat()}, state=Scheduled(scheduled_time=at),
                    name=f"load · outbox retry {n}", tags=["aftercare-system"], idempotency_key=f"load-{uuid.uuid4()}",
                )
        started = time.monotonic()
        run_id = aftercare.start(process, {"title": "Started behind fifty timers"})
        aftercare.case_of(run_id, timeout=30)
        opened = time.monotonic() - started
        timing("a case opened while 50 timers were due", opened)
        assert opened < 10, f"the case opened {opened:.1f} s after it was started"


@pytest.mark.timeout(300)
def test_a_step_answered_before_its_due_leaves_no_timer_behind(
    aftercare_env: Callable[..., Aftercare], tmp_path: Path, no_timers_left: None
) -> None:
    from aftercare.flows.answering import submit_answer

    process = "timer-answered"
    aftercare = aftercare_env(_folder(tmp_path, process, "TAN"), [process])
    with aftercare.serve():
        run_id = aftercare.start(process, {"title": "Answered in time"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "check")
        assert [t.state_name for t in _timer_runs(aftercare.server, key)] == ["Scheduled"]
        submit_answer(key, "check", by="li.na", decision="approve", register=aftercare.register)
        aftercare.wait_final(run_id)
    # The Runs page keeps no run for a deadline that can no longer pass.
    assert _timer_runs(aftercare.server, key) == []
    assert _escalations(aftercare, key) == []
