"""Time-driven work on Prefect's own scheduler: one flow run, Scheduled at its moment, per deadline.

The register says what is due (a step's ``due``, a reminder, the case's ``sla.due``, an
outbox retry); Prefect says when to look. Each deadline becomes a run of the
``aftercare-timer`` deployment created in state Scheduled at its moment, named after what
it does ("ISS-0042 · triage due") and tagged ``aftercare-system``. Prefect keeps it
through restarts of serve, workers and server, and hands it to exactly one runner
(only one can move it from Scheduled to Pending). Creating it twice is harmless: its
idempotency key makes the server return the first. What a timer run does is idempotent
too (``flows/system_flows.py``): it does everything the register says is due now, under
the register's once-only marks, so two runs that overlap do each thing once.

A ``wait`` step needs no timer run: its own case run is set to Scheduled at the moment
(``flows/executor.py``). One ``aftercare-housekeeping`` run every
:data:`HOUSEKEEPING_EVERY` is the safety net (each run schedules the next).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aftercare.engine.clock import UTC, utc_now

log = logging.getLogger(__name__)

TIMER_FLOW = "aftercare-timer"
HOUSEKEEPING_FLOW = "aftercare-housekeeping"
SYSTEM_TAG = "aftercare-system"
HOUSEKEEPING_EVERY = timedelta(minutes=5)
"""How often the safety net looks for anything a lost timer left undone."""

KINDS = ("due", "reminder", "sla", "outbox", "housekeeping")

_deployments: dict[tuple[str, str], UUID] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Timer:
    """One moment something is due: a step's ``due`` or reminder, a case's SLA, an outbox retry, the safety net."""

    kind: str
    at: datetime
    case: str | None = None
    step: str | None = None
    visit: int | None = None
    every: float | None = None
    """A reminder's period in seconds (the run schedules the next reminder)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown timer kind {self.kind!r}")
        # Whole seconds, rounded up (never before the deadline): the same deadline gives the same key.
        at = self.at.astimezone(UTC)
        if at.microsecond:
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        object.__setattr__(self, "at", at)

    @property
    def name(self) -> str:
        """What the Runs page shows: "ISS-0042 · triage due"."""
        what = {"due": "due", "reminder": "reminder", "sla": "SLA due", "outbox": "outbox retry", "housekeeping": "housekeeping"}[self.kind]
        if self.kind in ("due", "reminder") and self.step:
            what = f"{self.step} {what}"
        return f"{self.case or 'aftercare'} · {what}"

    @property
    def idempotency_key(self) -> str:
        return ":".join(str(part) for part in ("timer", self.kind, self.case or "", self.step or "", self.visit or "", self.at.isoformat()))

    @property
    def parameters(self) -> dict[str, Any]:
        given = {"kind": self.kind, "at": self.at.isoformat(), "case": self.case, "step": self.step, "visit": self.visit, "every": self.every}
        return {name: value for name, value in given.items() if value is not None}

    @property
    def tags(self) -> list[str]:
        return [SYSTEM_TAG, f"timer:{self.kind}", *([f"timer-of:{self.case}"] if self.case else [])]


def schedule(timer: Timer) -> str | None:
    """Create the timer's flow run, Scheduled at its moment (once per timer).

    Returns:
        The flow run's id; None when no deployment serves timers on this Prefect API (a
        foreground ``aftercare run`` watches its own deadlines) or the API could not be
        reached (the housekeeping run catches up).
    """
    from prefect import get_client
    from prefect.states import Scheduled

    flow_name = HOUSEKEEPING_FLOW if timer.kind == "housekeeping" else TIMER_FLOW
    try:
        with get_client(sync_client=True) as client:
            deployment_id = _deployment_id(client, flow_name)
            if deployment_id is None:
                return None
            run = client.create_flow_run_from_deployment(
                deployment_id,
                parameters=timer.parameters,
                state=Scheduled(scheduled_time=timer.at),
                name=timer.name,
                tags=timer.tags,
                idempotency_key=timer.idempotency_key,
            )
            return str(run.id)
    except Exception as error:  # noqa: BLE001 - a timer never fails the case that sets it
        log.warning("could not schedule %s at %s: %s", timer.name, timer.at.isoformat(), error)
        return None


def drop_timers(case_key: str, step: str | None = None, visit: int | None = None) -> int:
    """Delete a case's timer runs still waiting for their moment (of one step visit, or all): nothing is due any more.

    Keeps the Runs page to what will happen. A timer run already taken by a runner just
    finds nothing due.

    Returns:
        How many were deleted.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
    from prefect.client.schemas.objects import StateType

    dropped = 0
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[SYSTEM_TAG, f"timer-of:{case_key}"]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                ),
                limit=200,
            )
            for run in runs:
                parameters = run.parameters or {}
                if step is not None and (parameters.get("step") != step or parameters.get("visit") != visit):
                    continue
                client.delete_flow_run(run.id)
                dropped += 1
    except Exception as error:  # noqa: BLE001 - a leftover timer run finds nothing due
        log.info("could not drop the timers of %s: %s", case_key, error)
    return dropped


def _deployment_id(client: Any, flow_name: str) -> UUID | None:
    """The deployment (named after its flow) on this API; remembered once found."""
    from prefect.exceptions import ObjectNotFound

    cache_key = (str(client.api_url), flow_name)
    with _lock:
        known = _deployments.get(cache_key)
    if known is not None:
        return known
    try:
        deployment = client.read_deployment_by_name(f"{flow_name}/{flow_name}")
    except ObjectNotFound:
        return None
    with _lock:
        _deployments[cache_key] = deployment.id
    return UUID(str(deployment.id))


def forget_deployments() -> None:
    """Look the deployments up again (after they were made anew)."""
    with _lock:
        _deployments.clear()


def next_housekeeping(now: datetime | None = None) -> Timer:
    """The safety net's next moment: the next whole :data:`HOUSEKEEPING_EVERY` after ``now``."""
    when = (now or utc_now()).astimezone(UTC)
    period = int(HOUSEKEEPING_EVERY.total_seconds())
    epoch = int(when.timestamp())
    return Timer("housekeeping", datetime.fromtimestamp((epoch // period + 1) * period, UTC))


def ensure_housekeeping(now: datetime | None = None) -> str | None:
    """Make sure the next housekeeping run exists (every serve, deploy and system run calls this)."""
    return schedule(next_housekeeping(now))


def sleep_until(moment: datetime, *, at_most: timedelta = timedelta(minutes=1)) -> None:
    """Wait for a moment a runner started us ahead of (runners take runs up to their prefetch early)."""
    import time

    left = min((moment - utc_now()).total_seconds(), at_most.total_seconds())
    if left > 0:
        time.sleep(left)


__all__ = [
    "HOUSEKEEPING_EVERY",
    "HOUSEKEEPING_FLOW",
    "SYSTEM_TAG",
    "TIMER_FLOW",
    "Timer",
    "drop_timers",
    "ensure_housekeeping",
    "forget_deployments",
    "next_housekeeping",
    "schedule",
    "sleep_until",
]
