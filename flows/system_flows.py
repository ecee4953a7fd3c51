"""The system's own flows: a timer run per deadline, and a rare housekeeping run as the safety net.

Neither is scheduled every few seconds to look for work (``flows/timers.py`` says when
each runs). Both do :func:`due_now`: everything the register says is due at this moment,
each under its once-only mark, so a run that comes late, twice, or after another did
the work changes nothing more.

Before that, both look for cancels the register has not heard of (``flows/cancelling.py``):
a suspended run cancelled in the Prefect UI runs no hook, so the timer run asks Prefect
about its own case and the housekeeping run about every open case. A cancelled case has no
open step and is closed, so nothing of it is escalated, reminded, timed out or woken.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import flow, get_client
from prefect.types.entrypoint import EntrypointType

from aftercare.engine import settings
from aftercare.engine.clock import UTC, utc_now
from aftercare.engine.loader import Library
from aftercare.engine.register import WAIT_TIMER, Register
from aftercare.notifications import (
    EscalationReport,
    deliver_pending,
    escalate_overdue,
    load_checked_library,
    next_reminder,
    send_reminders,
    time_out_overdue,
)

from . import events
from .cancelling import sync_cancellations, sync_case
from .launching import launch_queued
from .recovery import recover_dead_runs
from .timers import HOUSEKEEPING_FLOW, SYSTEM_TAG, TIMER_FLOW, Timer, ensure_housekeeping, schedule, sleep_until
from .ui_updates import current_api_url

log = logging.getLogger(__name__)


def _library() -> Library:
    return load_checked_library(settings.processes_folder())


def due_now(register: Register, library: Library, now: datetime) -> dict[str, int]:
    """Everything due at ``now``: escalations, reminders, timeouts (their runs rescheduled), deliveries.

    Each thing is done once however often this runs (the register's marks, the outbox's
    keys); what comes due later gets its own timer (the next reminder, an outbox retry).
    """
    api_url = current_api_url()
    escalated = escalate_overdue(register, library, now, api_url=api_url)
    _emit_overdue(register, library, escalated, now)
    reminded = send_reminders(register, library, now, api_url=api_url)
    timed_out = time_out_overdue(register, library, now)
    for run in timed_out:
        flow_run_id = register.case(run.case_key).flow_run_id
        if flow_run_id:
            reschedule(flow_run_id)
    delivered = deliver_pending(register, now=now, limit=500)
    schedule_outbox_retry(register, now)
    return {
        "escalated": len(escalated.escalated),
        "cases": len(escalated.cases),
        "reminded": len(reminded.reminded),
        "timed_out": len(timed_out),
        "delivered": len(delivered.delivered),
        "retrying": len(delivered.retrying),
    }


def _emit_overdue(register: Register, library: Library, report: EscalationReport, now: datetime) -> None:
    """``aftercare.step.overdue`` (``aftercare.case.overdue``) for each step (case) breach this round marked first (a later round finds it marked)."""
    for breach in report.breaches:
        run = breach.run
        try:
            case = register.case(run.case_key)
            subject = events.Subject(case, case.flow_run_id, library.team, case.parent_key)
            assert run.due_at is not None  # an overdue step has a due
            events.emit(events.step_overdue(
                subject, run.step_id, run.visit, due_at=run.due_at, at=now, eligible=run.eligible, escalate_to=breach.escalate_to
            ))
        except Exception as error:  # noqa: BLE001 - an event never stops the deadlines
            log.warning("no overdue event for %s/%s: %s", run.case_key, run.step_id, error)
    for found in report.case_breaches:
        try:
            case = register.case(found.case_key)
            subject = events.Subject(case, case.flow_run_id, library.team, case.parent_key)
            events.emit(events.case_overdue(subject, due_at=found.due_at, at=now, escalate_to=found.escalate_to))
        except Exception as error:  # noqa: BLE001 - an event never stops the deadlines
            log.warning("no overdue event for %s: %s", found.case_key, error)


def schedule_outbox_retry(register: Register, now: datetime) -> None:
    """A timer for the earliest message waiting out its backoff (one per moment)."""
    next_at = register.next_message_at(now)
    if next_at is not None:
        schedule(Timer("outbox", next_at))


def reschedule(flow_run_id: str) -> bool:
    """Put a paused or suspended run back to Scheduled so its deployment runs it again from the top (a replay)."""
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        if run.state is not None and run.state.is_paused():
            client.set_flow_run_state(UUID(flow_run_id), Scheduled(), force=True)
            return True
    return False


@flow(name=TIMER_FLOW, log_prints=False, persist_result=False)
def aftercare_timer(
    kind: str, at: str, case: str | None = None, step: str | None = None, visit: int | None = None, every: float | None = None
) -> dict[str, int]:
    """One deadline's moment came: do what is due now; a reminder sets the next one."""
    moment = datetime.fromisoformat(at).astimezone(UTC)
    sleep_until(moment)
    register = Register()
    library = _library()
    cancelled = _sync_case(register, library, case) if case else False
    report = due_now(register, library, max(moment, utc_now()))
    if kind == "reminder" and case and step and visit and every:
        _next_reminder(register, library, case, step, visit, every)
    ensure_housekeeping()
    return {**report, "cancelled": int(cancelled)}


def _sync_case(register: Register, library: Library, case: str) -> bool:
    """The timer's case was cancelled in the Prefect UI while suspended: cancel it in the register first."""
    try:
        return sync_case(register, library, case)
    except Exception as error:  # noqa: BLE001 - the housekeeping run looks again
        log.warning("could not check whether %s was cancelled in Prefect: %s", case, error)
        return False


def _next_reminder(register: Register, library: Library, case: str, step: str, visit: int, every: float) -> None:
    """While the step still waits, its next reminder: reminder ``n`` falls ``n`` periods after it began (on its calendar)."""
    moment = next_reminder(register, library, case, step, visit, utc_now())
    if moment is not None:
        schedule(Timer("reminder", moment, case, step, visit, every))


@flow(name=HOUSEKEEPING_FLOW, log_prints=False, persist_result=False)
def aftercare_housekeeping(kind: str = "housekeeping", at: str | None = None) -> dict[str, int]:
    """The safety net, every few minutes: what a lost timer left undone, queued linked cases, runs whose process died."""
    ensure_housekeeping()  # the next one first: a failure below must not break the chain
    if at:
        sleep_until(datetime.fromisoformat(at).astimezone(UTC))
    register = Register()
    library = _library()
    now = utc_now()
    cancelled = _sync_cancellations(register, library, now)
    report = due_now(register, library, now)
    woken = 0
    for run in register.overdue_steps(now, wait_kind=WAIT_TIMER, limit=1000):
        flow_run_id = register.case(run.case_key).flow_run_id
        if flow_run_id and reschedule(flow_run_id):
            woken += 1
    launched = launch_queued(register)
    return {**report, "woken": woken, "launched": len(launched), "recovered": _recover_dead_runs(library), "cancelled": cancelled}


def _sync_cancellations(register: Register, library: Library, now: datetime) -> int:
    """Cases cancelled in Prefect but open in the register, cancelled there; runs of cases cancelled here, stopped."""
    try:
        return len(sync_cancellations(register, library, now=now))
    except Exception as error:  # noqa: BLE001 - a failing check must not stop the safety net
        log.warning("could not compare cancels with Prefect: %s", error)
        return 0


def _recover_dead_runs(library: Library) -> int:
    """Runs of this folder's flows whose process died (see flows/recovery.py): replay them (a cancelled case's: cancel them)."""
    try:
        names = [definition.spec.process for definition in library.definitions.values()]
        report = recover_dead_runs([*names, *(system_flow.name for system_flow in SYSTEM_FLOWS.values())], cancellations=False)
    except Exception as error:  # noqa: BLE001 - a failing check must not stop the safety net
        log.warning("recovery check failed: %s", error)
        return 0
    return len(report.rescheduled) + len(report.crashed) + len(report.cancelled)


SYSTEM_FLOWS = {"aftercare_timer": aftercare_timer, "aftercare_housekeeping": aftercare_housekeeping}


def system_deployments(**options: Any) -> list[Any]:
    """The system flows as deployments without schedules: their runs are created for their moments."""
    return [
        system_flow.to_deployment(name=system_flow.name, tags=[SYSTEM_TAG], entrypoint_type=EntrypointType.MODULE_PATH, **options)
        for system_flow in SYSTEM_FLOWS.values()
    ]
