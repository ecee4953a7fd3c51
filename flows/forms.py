"""Form runs: one Prefect flow run per human step (or ``for_each`` instance) that waits beside others.

Prefect offers one flow run one pending input at a time, and does not suspend sub-flows.
So while a case waits at several human steps at once (parallel branches, ``for_each``
instances), each gets a flow run of its own, named "PP-0001 · tech-review", that waits for
its form: its own Resume button in the Prefect UI, its own case context, its own
``aftercare answer``. The case's run waits for any of them (suspended when served, polling
in the foreground); a form run that decides its step wakes the case's run. A withdrawn
step's form run is cancelled, so its form is no longer offered.

This module creates, finds, wakes and cancels those runs; the form run's body is
:mod:`.form_flow`.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from aftercare.engine.waiting import parse_row, unit_row

log = logging.getLogger(__name__)

FORM_FLOW = "aftercare-form"
FORM_TAG = "aftercare-form"
WAKE_SECONDS = 30.0
"""How long a form run that decided its step tries to wake the case's run (it may be about to suspend)."""


def form_tags(case_key: str, case_run: str, row: str, visit: int) -> list[str]:
    """The tags of a form run: the case for people (``form-of:KEY``); the case's run, step and visit to find it again.

    The case's flow run id, not its key, finds it: registers that share a Prefect server
    each have a ``CHG-0001``.
    """
    return [FORM_TAG, f"form-of:{case_key}", f"forms-of:{case_run}", f"form:{case_run}:{row}:{visit}"]


def find_form(case_run: str, row: str, visit: int) -> Any | None:
    """The form run of a step visit (or instance) of the case driven by ``case_run``, if one was made."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"form:{case_run}:{row}:{visit}"])), limit=5)
    return runs[0] if runs else None


def form_holder(case_run: str | None, row: str, visit: int) -> str | None:
    """The flow run whose Resume form answers a waiting unit: its form run when it has one, else the case's run."""
    if case_run is None:
        return None
    found = find_form(case_run, row, visit)
    return str(found.id) if found is not None else case_run


def open_form(case_key: str, case_run: str, title: str, row: str, visit: int, item: Any = None) -> str | None:
    """Create the served form run of a step visit (once): Prefect's runner starts it, and it suspends for its form.

    Returns:
        Its flow run id, or None when no ``aftercare-form`` deployment exists on this API.
    """
    from prefect import get_client

    from .timers import _deployment_id

    step_id, unit = parse_row(row)
    with get_client(sync_client=True) as client:
        deployment_id = _deployment_id(client, FORM_FLOW)
        if deployment_id is None:
            return None
        run = client.create_flow_run_from_deployment(
            deployment_id,
            parameters={"case": case_key, "step": step_id, "visit": visit, "unit": -1 if unit is None else unit, "item": item},
            name=f"{case_key} · {title}"[:200],
            tags=form_tags(case_key, case_run, row, visit),
            idempotency_key=f"form:{case_run}:{row}:{visit}",
        )
    return str(run.id)


def close_form(case_run: str, row: str, visit: int, reason: str) -> None:
    """Cancel a form run that is no longer needed (withdrawn, timed out, case closed): its form is gone from the UI."""
    from prefect import get_client
    from prefect.states import Cancelled

    try:
        run = find_form(case_run, row, visit)
        if run is None or run.state is None or run.state.is_final():
            return
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelled(message=reason), force=True)
    except Exception as error:  # noqa: BLE001 - a stale form refuses its answer anyway (the step is closed)
        log.warning("could not close the form of %s in run %s: %s", row, case_run, error)


def close_forms(case_run: str, reason: str) -> int:
    """Cancel every form run still waiting of the case driven by ``case_run`` (cancelled or closed); returns how many."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.states import Cancelled

    closed = 0
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[FORM_TAG, f"forms-of:{case_run}"])), limit=200)
            for run in runs:
                if run.state is not None and not run.state.is_final():
                    client.set_flow_run_state(run.id, Cancelled(message=reason), force=True)
                    closed += 1
    except Exception as error:  # noqa: BLE001 - a stale form refuses its answer anyway (the case is closed)
        log.warning("could not close the forms of run %s: %s", case_run, error)
    return closed


def wake(flow_run_id: str | None, *, patience: float = WAKE_SECONDS) -> bool:
    """Resume a case's run suspended while its steps wait (a form run decided one); True when woken or already on its way.

    The case's run may be running still (about to suspend): tried again for ``patience`` seconds.
    """
    from prefect import get_client

    if flow_run_id is None:
        return False
    deadline = time.monotonic() + patience
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(UUID(flow_run_id))
            state = run.state
            if state is None or state.is_final() or state.is_scheduled() or state.is_pending():
                return state is not None and not state.is_final()
            if state.is_paused():
                result = client.resume_flow_run(UUID(flow_run_id))
                if str(getattr(result.status, "value", result.status)).upper() == "ACCEPT":
                    return True
            if time.monotonic() > deadline:
                if patience:
                    log.warning("the run %s did not suspend within %.0f s; the housekeeping run wakes it", flow_run_id, patience)
                return False
            time.sleep(0.3)


__all__ = ["FORM_FLOW", "FORM_TAG", "close_form", "close_forms", "find_form", "form_holder", "form_tags", "open_form", "parse_row", "unit_row", "wake"]
