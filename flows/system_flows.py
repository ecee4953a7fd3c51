"""The system's own recurring flows: escalations of passed due times, outbox retries, durable timers."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect import flow, get_client
from prefect.schedules import Interval
from prefect.types.entrypoint import EntrypointType

from aftercare.engine import settings
from aftercare.engine.clock import utc_now
from aftercare.engine.loader import Library
from aftercare.engine.register import WAIT_TIMER, Register
from aftercare.notifications import deliver_pending, escalate_overdue, load_checked_library, send_reminders, time_out_overdue

from .launching import launch_queued
from .recovery import recover_dead_runs
from .ui_updates import current_api_url

log = logging.getLogger(__name__)
SWEEP_SECONDS = 30


def _library() -> Library:
    return load_checked_library(settings.processes_folder())


@flow(name="aftercare-escalations", log_prints=False, persist_result=False)
def aftercare_escalations() -> dict[str, int]:
    """Human steps whose due passed: escalate once per breach, remind, and let steps with on_timeout move on."""
    register = Register()
    library = _library()
    api_url = current_api_url()
    report = escalate_overdue(register, library, utc_now(), api_url=api_url)
    reminders = send_reminders(register, library, utc_now(), api_url=api_url)
    timed_out = time_out_overdue(register, library, utc_now())
    for run in timed_out:
        flow_run_id = register.case(run.case_key).flow_run_id
        if flow_run_id:
            reschedule(flow_run_id)
    deliver_pending(register, now=utc_now())
    return {"escalated": len(report.escalated), "cases": len(report.cases), "reminded": len(reminders.reminded), "timed_out": len(timed_out)}


def reschedule(flow_run_id: str) -> None:
    """Put a suspended run back to Scheduled so its deployment runs it again from the top (a replay)."""
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        if run.state is not None and run.state.is_paused():
            client.set_flow_run_state(UUID(flow_run_id), Scheduled(), force=True)


@flow(name="aftercare-outbox", log_prints=False, persist_result=False)
def aftercare_outbox() -> dict[str, int]:
    """Deliver pending messages and retry failed attempts whose backoff has passed."""
    report = deliver_pending(Register(), now=utc_now(), limit=500)
    return {"delivered": len(report.delivered), "retrying": len(report.retrying), "failed": len(report.failed)}


@flow(name="aftercare-timers", log_prints=False, persist_result=False)
def aftercare_timers() -> dict[str, int]:
    """Wake runs whose wait step is due, launch linked cases still queued, replay runs whose process died."""
    from prefect.flow_runs import resume_flow_run

    register = Register()
    woken = 0
    for run in register.overdue_steps(utc_now(), wait_kind=WAIT_TIMER, limit=1000):
        record = register.case(run.case_key)
        if record.flow_run_id is None:
            continue
        try:
            resume_flow_run(UUID(record.flow_run_id))
            woken += 1
        except Exception as error:  # noqa: BLE001 - not paused (yet): next sweep
            log.info("could not wake %s: %s", run.case_key, error)
    launched = launch_queued(register)
    recovered = _recover_dead_runs()
    return {"woken": woken, "launched": len(launched), "recovered": recovered}


def _recover_dead_runs() -> int:
    """Runs of this folder's flows whose process died (see flows/recovery.py): replay them."""
    try:
        names = [definition.spec.process for definition in _library().definitions.values()]
        report = recover_dead_runs([*names, *(system_flow.name for system_flow in SYSTEM_FLOWS.values())])
    except Exception as error:  # noqa: BLE001 - a failing check must not stop the timers
        log.warning("recovery sweep failed: %s", error)
        return 0
    return len(report.rescheduled) + len(report.crashed)


SYSTEM_FLOWS = {"aftercare_escalations": aftercare_escalations, "aftercare_outbox": aftercare_outbox, "aftercare_timers": aftercare_timers}


def system_deployments(**options: Any) -> list[Any]:
    """The system flows as deployments on short intervals."""
    return [
        system_flow.to_deployment(
            name=system_flow.name,
            schedules=[Interval(SWEEP_SECONDS)],
            tags=["aftercare-system"],
            entrypoint_type=EntrypointType.MODULE_PATH,
            **options,
        )
        for system_flow in SYSTEM_FLOWS.values()
    ]
