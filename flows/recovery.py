"""Runs whose process died: told from live ones by a liveness signal and put back to Scheduled, so serve replays them.

A served run whose process is killed (``kill -9`` of ``aftercare serve`` and its children,
a machine reboot) stays Running in Prefect for ever, and a restarted ``serve`` does not
take it up (DESIGN.md, "Known ground truths"). Forcing it to Scheduled makes its
deployment run it again from the top, which the register turns into a replay.

Two signals tell a dead run from a live one:

* the process label: each execution of a process flow labels its run with the host and
  pid of its process (``aftercare.host``, ``aftercare.pid``, ``aftercare.since``). On
  the same host a process that is gone (no such pid, a zombie, or a pid another flow run
  now uses) is certain, and known at once: ``aftercare serve`` checks at start-up,
  before it takes runs, and the housekeeping run every 5 minutes.
* heartbeats, for runs on other hosts or without a fresh label: a run emits
  ``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds; a
  run with none (and no state change) for ``STALE_HEARTBEATS`` periods plus a margin is
  dead. The ``aftercare-housekeeping`` run checks this every 5 minutes.

Process runs go back to Scheduled (a replay); system runs are marked Crashed (their next
next run does their work). A process run whose case is cancelled in the register is
marked Cancelled instead: a cancelled case never runs again. And before any of it,
cancels are made to agree (``flows/cancelling.py``): a case whose run was cancelled in the
Prefect UI while it was suspended (no process, so no hook told the register) is
cancelled in the register, so nothing of it is replayed, escalated or reminded.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from aftercare.engine.clock import utc_now

log = logging.getLogger(__name__)

HOST_LABEL = "aftercare.host"
PID_LABEL = "aftercare.pid"
SINCE_LABEL = "aftercare.since"
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
STALE_HEARTBEATS = 2
"""Heartbeat periods without a sign of life after which a run on another host is dead."""
STALE_MARGIN = timedelta(seconds=30)
"""Slack for events reaching the server's store late."""
SYSTEM_TAG = "aftercare-system"
PAGE = 200
"""The most flow runs the Prefect API returns per call."""


@dataclass
class Recovery:
    """What one sweep did: run ids put back to Scheduled, marked Crashed or Cancelled, or left alone (alive); cases cancelled."""

    rescheduled: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    """Dead runs of cases the register says are cancelled, or left Cancelling: marked Cancelled, never replayed."""
    cases_cancelled: list[str] = field(default_factory=list)
    """Open cases whose run was cancelled in Prefect: cancelled in the register now."""


def record_process(flow_run_id: Any) -> None:
    """Label a run with this process (host, pid, when): the liveness signal on one machine."""
    from prefect import get_client

    labels: dict[str, bool | int | float | str] = {
        HOST_LABEL: socket.gethostname(),
        PID_LABEL: str(os.getpid()),
        SINCE_LABEL: utc_now().isoformat(),
    }
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(UUID(str(flow_run_id)), labels)


def stale_after() -> timedelta:
    """How long a run on another host may go without a heartbeat before it counts as dead."""
    from prefect.settings import get_current_settings

    frequency = get_current_settings().flows.heartbeat_frequency or 180
    return timedelta(seconds=STALE_HEARTBEATS * max(30, int(frequency))) + STALE_MARGIN


def process_alive(pid: int, flow_run_id: str) -> bool | None:
    """Whether ``pid`` is a live process running that flow run; None when this host cannot tell.

    A pid the kernel no longer knows, a zombie, or a pid now used by another flow run's
    process is dead; a process whose environment cannot be read (not Linux, another user)
    or names no flow run is not known here.
    """
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "stat").read_text().rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
            return False  # died, not yet reaped
        environ = (proc / "environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return None
        return None
    variables = environ.split(b"\0")
    if not any(variable.startswith(b"PREFECT__FLOW_RUN_ID=") for variable in variables):
        return None
    return f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in variables


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def local_verdict(run: Any, host: str) -> bool | None:
    """Whether the run's process is alive, when its label names a process on this host; else None.

    Only a label written during the run's current state counts: an older one names the
    process of an earlier execution (before a suspend), which is gone by design.
    """
    state = run.state
    entered = state.timestamp if state is not None else None
    labels = dict(run.labels or {})
    since = _parse_time(labels.get(SINCE_LABEL))
    pid = labels.get(PID_LABEL, "")
    fresh = since is not None and (entered is None or since >= entered)
    if fresh and labels.get(HOST_LABEL) == host and pid.isdigit():
        return process_alive(int(pid), str(run.id))
    return None


def silent_too_long(run: Any, now: datetime, last_heartbeat: datetime | None, stale: timedelta) -> bool:
    """Neither the run's state nor a heartbeat changed for longer than ``stale``."""
    entered = run.state.timestamp if run.state is not None else None
    signs = [moment for moment in (entered, last_heartbeat) if moment is not None]
    return bool(signs) and now - max(signs) > stale


def is_dead(run: Any, now: datetime, last_heartbeat: datetime | None, stale: timedelta, host: str) -> bool:
    """The verdict on one Running or Pending run: its own process if known here, else its heartbeats."""
    alive = local_verdict(run, host)
    if alive is not None:
        return not alive
    return silent_too_long(run, now, last_heartbeat, stale)


def last_heartbeat(client: Any, flow_run_id: str, since: datetime) -> datetime | None:
    """The newest heartbeat event of a run since a moment, None if there is none."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventOrder, EventResourceFilter

    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=since, until=utc_now() + timedelta(minutes=5)),
        event=EventNameFilter(name=[HEARTBEAT_EVENT]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        order=EventOrder.DESC,
    )
    page = client.read_events(filter=event_filter, limit=1)
    return page.events[0].occurred if page.events else None


def recover_dead_runs(
    flow_names: Iterable[str], *, now: datetime | None = None, stale: timedelta | None = None, cancellations: bool = True
) -> Recovery:
    """Find Running, Pending or Cancelling runs of these flows' deployments whose process died; reschedule, crash or cancel them.

    Args:
        flow_names: the flows served (process ids and system flow names).
        now: the current time (injectable for tests).
        stale: how long without a sign of life makes a run dead (default: ``stale_after()``).
        cancellations: first make cancels agree between Prefect and the register
            (``cancelling.sync_cancellations``); the housekeeping run does that itself first.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.context import FlowRunContext
    from prefect.states import Cancelled, Crashed, Scheduled

    names = sorted(set(flow_names))
    report = Recovery()
    if not names:
        return report
    if cancellations:
        report.cases_cancelled = _sync_cancellations(now)
    now = now or utc_now()
    stale = stale if stale is not None else stale_after()
    context = FlowRunContext.get()
    own = str(context.flow_run.id) if context and context.flow_run else None
    host = socket.gethostname()
    with get_client(sync_client=True) as client:
        runs: list[Any] = []
        while True:  # the API returns at most PAGE runs at a time
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=names)),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING])),
                    deployment_id=FlowRunFilterDeploymentId(is_null_=False),
                ),
                limit=PAGE,
                offset=len(runs),
            )
            runs.extend(page)
            if len(page) < PAGE:
                break
        runs = [run for run in runs if str(run.id) != own]
        for run in runs:
            run_id = str(run.id)
            alive = local_verdict(run, host)
            if alive is None:
                try:
                    heard = last_heartbeat(client, run_id, now - stale - STALE_MARGIN)
                except Exception as error:  # noqa: BLE001 - without the signal, assume it lives
                    log.warning("recovery: could not read the heartbeats of %s: %s", run_id, error)
                    heard, alive = None, True
                if alive is None:
                    alive = not silent_too_long(run, now, heard, stale)
            if alive:
                report.alive.append(run_id)
                continue
            # Only if nothing moved it since we looked: never put a live replay back.
            current = client.read_flow_run(run.id)
            if current.state is None or run.state is None or current.state.id != run.state.id:
                report.alive.append(run_id)
                continue
            if run.state.is_cancelling() or (SYSTEM_TAG not in (run.tags or []) and _case_cancelled(run_id)):
                # Being cancelled, or of a cancelled case: its runner died with it, so nobody else ends it.
                client.set_flow_run_state(run.id, Cancelled(message="its process died and its case is cancelled (aftercare recovery)"), force=True)
                report.cancelled.append(run_id)
                log.warning("recovery: run %s (%s) had no live process and its case is cancelled; marked Cancelled", run.name, run_id)
            elif SYSTEM_TAG in (run.tags or []):
                client.set_flow_run_state(run.id, Crashed(message="its process died (aftercare recovery)"), force=True)
                report.crashed.append(run_id)
                log.warning("recovery: system run %s (%s) had no live process; marked Crashed", run.name, run_id)
            else:
                client.set_flow_run_state(run.id, Scheduled(message="its process died; replayed (aftercare recovery)"), force=True)
                report.rescheduled.append(run_id)
                log.warning("recovery: run %s (%s) had no live process; scheduled again to replay", run.name, run_id)
    return report


def _sync_cancellations(now: datetime | None) -> list[str]:
    """Cases whose run was cancelled in Prefect, cancelled in the register before anything is replayed."""
    from aftercare.engine.register import Register

    from .cancelling import library_for_messages, sync_cancellations

    try:
        return sync_cancellations(Register(), library_for_messages(), now=now)
    except Exception as error:  # noqa: BLE001 - recovery goes on; the next housekeeping run looks again
        log.warning("recovery: could not compare cancels with Prefect: %s", error)
        return []


def _case_cancelled(flow_run_id: str) -> bool:
    """Whether the case a process run drives is cancelled in the register."""
    from aftercare.engine.register import CASE_CANCELLED, Register

    try:
        record = Register().case_for_run(flow_run_id)
    except Exception as error:  # noqa: BLE001 - without the register, replay as before (the replay asks again)
        log.warning("recovery: could not read the case of run %s: %s", flow_run_id, error)
        return False
    return record is not None and record.status == CASE_CANCELLED


__all__ = ["Recovery", "is_dead", "last_heartbeat", "local_verdict", "process_alive", "record_process", "recover_dead_runs", "silent_too_long", "stale_after"]
