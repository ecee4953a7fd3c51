"""The system's own recurring flows: escalations of passed due times, outbox retries, durable timers."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect import flow, get_client
from prefect.schedules import Interval
from prefect.types.entrypoint import EntrypointType

from aftercare.engine.register import Register

from .clock import utc_now
from .launching import launch_queued

log = logging.getLogger(__name__)
SWEEP_SECONDS = 30


def _library() -> Any:
    from aftercare.engine.library import load_library

    from .cli import processes_folder
    from .templates_bridge import template_sources

    folder = processes_folder()
    return load_library(folder, template_sources([folder]))


@flow(name="aftercare-escalations", log_prints=False, persist_result=False)
def aftercare_escalations() -> dict[str, int]:
    """Human steps whose due passed: escalate once per breach, remind, and let steps with on_timeout move on."""
    from aftercare.notifications import deliver_pending, escalate_overdue, send_reminders

    register = Register()
    library = _library()
    report = escalate_overdue(register, library, utc_now())
    reminders = send_reminders(register, library, utc_now())
    timed_out = _time_out_steps(register, library)
    deliver_pending(register, now=utc_now())
    return {"escalated": len(report.escalated), "cases": len(report.cases), "reminded": len(reminders.reminded), "timed_out": timed_out}


def _time_out_steps(register: Register, library: Any) -> int:
    """Overdue steps that have ``on_timeout``: mark them timed out and let their run take that exit."""
    from .human import TIMED_OUT_EVENT
    from .pinning import stored_spec

    count = 0
    for run in register.open_steps(limit=1000):
        if run.due_at is None or run.due_at > utc_now() or not run.assignee:
            continue
        record = register.case(run.case_key)
        try:
            step = stored_spec(register, record).step(run.step_id)
        except Exception:  # noqa: BLE001 - an unreadable definition must not stop the sweep
            continue
        if not getattr(step, "on_timeout", None):
            continue
        events = register.audit_events(run.case_key)
        if any(e.event == TIMED_OUT_EVENT and (e.after or {}).get("step") == run.step_id and (e.after or {}).get("visit") == run.visit for e in events):
            continue
        register.audit(run.case_key, TIMED_OUT_EVENT, "aftercare", after={"step": run.step_id, "visit": run.visit}, detail=f"{run.step_id} #{run.visit}: due passed")
        if record.flow_run_id:
            reschedule(record.flow_run_id)
        count += 1
    return count


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
    from aftercare.notifications import deliver_pending

    report = deliver_pending(Register(), now=utc_now(), limit=500)
    return {"delivered": len(report.delivered), "retrying": len(report.retrying), "failed": len(report.failed)}


@flow(name="aftercare-timers", log_prints=False, persist_result=False)
def aftercare_timers() -> dict[str, int]:
    """Wake runs whose wait step is due, launch linked cases still queued, replay runs whose process died."""
    from prefect.flow_runs import resume_flow_run

    register = Register()
    woken = 0
    for run in register.overdue_steps(utc_now(), limit=1000):
        if run.assignee:
            continue  # a human step: the escalations flow owns it
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
    from .recovery import recover_dead_runs

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
