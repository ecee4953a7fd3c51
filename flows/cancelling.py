"""Cancelling a case (DESIGN.md "Cancelling"): who may, the register, its Prefect runs, its timers, the people told.

A cancel starts in one of two places and ends the same way:

* ``aftercare cancel CASE --as PERSON --reason TEXT`` (:func:`cancel`): the person is
  checked (:func:`check_canceller`), the register cancels the case in one transaction
  (``Register.cancel_case``: its waiting steps withdrawn, the linked cases it waits for
  cancelled too), then :func:`finish` stops the Prefect runs of every case cancelled,
  drops their timer runs and tells the people they waited on.
* Cancel on the case's flow run in the Prefect UI. A run with a process (Running, or a
  foreground pause) goes to Cancelling and its flow's ``on_cancellation`` hook
  (:func:`cancelled_in_prefect`, in ``build_flow``) cancels the case in the register. A
  suspended or scheduled run has no process: Prefect moves it straight to Cancelled and no
  hook runs. The housekeeping run (every 5 minutes and when ``serve`` starts) and each
  timer run of the case find it (:func:`sync_cancellations`, :func:`sync_case`) and
  cancel the case in the register, by ``prefect-ui``.

Whoever notices a cancel first does the work; the others find the case closed and do
nothing more (the register refuses a second cancel, messages are keyed per case and
person). The register is the truth: a case it says is cancelled never runs again, and a
run that replays asks :func:`is_cancelled` before it goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aftercare.engine import settings
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AftercareError, AnswerError, CaseCancelled
from aftercare.engine.loader import Library
from aftercare.engine.register import CASE_CANCELLED, CancelOutcome, Register
from aftercare.engine.spec import ProcessSpec
from aftercare.engine.suggest import did_you_mean
from aftercare.engine.team import TeamSpec
from aftercare.notifications import Messenger, load_checked_library, run_url

from . import events
from .answering import case_spec
from .forms import close_forms
from .timers import drop_timers
from .waiting_tags import sync_waiting_tags

log = logging.getLogger(__name__)

PREFECT_UI_ACTOR = "prefect-ui"
"""The actor of a cancel pressed in the Prefect UI (Prefect does not say who pressed it)."""
UI_REASON = "cancelled in the Prefect UI"
RECHECK = timedelta(days=1)
"""How long after a cancel the housekeeping run still checks that its Prefect runs stopped."""
PAGE = 200
"""The most flow runs the Prefect API returns per call."""
CASE_TAG = "case:"


@dataclass
class Cancellation:
    """What a cancel did beyond the register: per case key, the state its flow run is in now; messages queued."""

    outcome: CancelOutcome
    runs: dict[str, str | None] = field(default_factory=dict)
    """Case key -> the name of its flow run's state after the cancel (None: no run, or Prefect out of reach)."""
    timers_dropped: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)
    """What could not be done now (Prefect out of reach): the housekeeping run does it later."""

    @property
    def cancelled(self) -> list[str]:
        """The linked cases cancelled with it, every level, in order."""
        return [each.case.key for each in self.outcome.every()[1:]]


# --- who may cancel -------------------------------------------------------------------------------


def check_canceller(spec: ProcessSpec, team: TeamSpec, person: str, case_key: str) -> None:
    """Refuse a person who may not cancel a case of ``spec``.

    Without ``cancel_by`` any person of the team may; with it, the people its ``role:``
    and ``person:`` references name.

    Raises:
        AnswerError: an unknown person (with the nearest id), or one ``cancel_by`` does not name.
    """
    if person not in team.people:
        raise AnswerError(f"unknown person {person!r}{did_you_mean(person, team.people)}")
    allowed: Sequence[str] = tuple(getattr(spec, "cancel_by", ()) or ())
    if not allowed:
        return
    members: set[str] = set()
    for reference in allowed:
        try:
            members.update(team.members(reference))
        except KeyError:
            log.warning("%s: cancel_by names %r, which the team does not have", spec.process, reference)
    if person not in members:
        raise AnswerError(f"{person!r} may not cancel {case_key}: {spec.process} lets only {', '.join(allowed)} cancel (cancel_by)")


# --- the one question a replay asks ----------------------------------------------------------------


def is_cancelled(register: Register, key: str) -> bool:
    """Whether the register says the case is cancelled (a run must not go on with it)."""
    return register.case(key).status == CASE_CANCELLED


def stop_if_cancelled(register: Register, key: str) -> None:
    """Raise :class:`CaseCancelled` when the case is cancelled: call it before a replay does anything.

    Raises:
        CaseCancelled: the case is cancelled.
    """
    if is_cancelled(register, key):
        raise CaseCancelled(f"{key} is cancelled; its run stops here")


def cancelled_state(key: str) -> Any:
    """The Prefect state a run returns when its case is cancelled, so the run ends Cancelled, not Failed."""
    from prefect.states import Cancelled

    return Cancelled(message=f"{key} is cancelled (aftercare)")


# --- a cancel from the command line ------------------------------------------------------------


def cancel(register: Register, library: Library, key: str, *, by: str, reason: str) -> Cancellation:
    """``aftercare cancel``: check the person, cancel in the register, then :func:`finish`.

    Raises:
        NotFoundError: no such case.
        AnswerError: the person may not cancel, or the case is closed already.
    """
    spec = case_spec(register, library, register.case(key))
    try:
        check_canceller(spec, library.team, by, key)
    except AnswerError as error:
        register.audit(key, "cancel.refused", by, detail=str(error))
        raise
    outcome = register.cancel_case(key, by=by, reason=reason)
    return finish(register, library, outcome, by=by, reason=reason, message=f"cancelled with aftercare cancel by {by}: {reason}")


def finish(
    register: Register,
    library: Library | None,
    outcome: CancelOutcome,
    *,
    by: str,
    reason: str,
    message: str,
    skip_run: str | None = None,
) -> Cancellation:
    """After the register cancelled: stop each cancelled case's Prefect run, drop its timers, tell its people.

    Args:
        register: the register.
        library: the definitions folder (its team and templates); None: nobody is told.
        outcome: what ``Register.cancel_case`` did.
        by: who cancelled.
        reason: why.
        message: the message of the Cancelled states set.
        skip_run: a flow run already being cancelled by Prefect (the hook's own).
    """
    from prefect import get_client

    emit_cancel_events(outcome, by=by, reason=reason, team=library.team if library is not None else None)
    report = Cancellation(outcome)
    runs = [(each.case.key, each.case.flow_run_id) for each in outcome.every()]
    report.runs = {key: None for key, _ in runs}
    if _api_url() is None:  # never an ephemeral server of our own: it would not know the runs
        if any(flow_run_id for _, flow_run_id in runs):
            report.problems.append("no Prefect API to reach (PREFECT_API_URL is not set): the case's run is stopped when the housekeeping run sees it")
        if library is not None:
            report.messages = tell(register, library, outcome, by=by, reason=reason)
        return report
    with get_client(sync_client=True) as client:
        for key, flow_run_id in runs:
            if not flow_run_id or flow_run_id == skip_run:
                continue
            try:
                report.runs[key] = stop_run(client, flow_run_id, message)
            except Exception as error:  # noqa: BLE001 - the register is the truth; the housekeeping run stops it later
                report.problems.append(f"could not stop the Prefect run of {key} ({' '.join(str(error).split())[:200]}); the housekeeping run will")
                log.warning("cancel of %s: %s", outcome.case.key, report.problems[-1])
    for key, flow_run_id in runs:
        report.timers_dropped += drop_timers(key)
        if flow_run_id:
            close_forms(flow_run_id, message)  # the forms of steps that waited side by side are no longer offered
            sync_waiting_tags(register, key)  # nobody waits on a cancelled case
    if library is not None:
        report.messages = tell(register, library, outcome, by=by, reason=reason)
    return report


def emit_cancel_events(outcome: CancelOutcome, *, by: str, reason: str, team: TeamSpec | None) -> None:
    """``aftercare.step.withdrawn`` for each step the cancel withdrew, then ``aftercare.case.cancelled``, for every case cancelled.

    Once: the register cancels a case once (a second cancel is refused before it gets here).
    A linked case's reason is the one the register wrote for it (and its people were told).
    """
    record = outcome.case
    subject = events.Subject(record, record.flow_run_id, team, record.parent_key)
    at = record.closed_at or utc_now()
    for run in outcome.withdrawn:
        events.emit(events.step_withdrawn(subject, run.step_id, run.visit, reason=reason, at=run.finished_at or at, eligible=run.eligible))
    events.emit(events.case_cancelled(subject, by=by, reason=reason, at=at, withdrawn=[run.step_id for run in outcome.withdrawn]))
    for child in outcome.children:
        emit_cancel_events(child, by=by, reason=f"{record.key} was cancelled: {reason}", team=team)


def stop_run(client: Any, flow_run_id: str, message: str) -> str | None:
    """Stop a case's Prefect run for good; returns the name of its state now.

    A run with a process (Pending, Running) goes to Cancelling: its runner (``serve``, a
    worker) stops the process and runs the flow's ``on_cancellation`` hook, then marks it
    Cancelled. A run without one (Scheduled, Suspended, a foreground pause) is set
    Cancelled at once, so nothing ever starts it again. A final run is left as it is.
    """
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    try:
        run = client.read_flow_run(UUID(flow_run_id))
    except ObjectNotFound:
        return None
    state = run.state
    if state is None or state.is_final() or state.is_cancelling():
        return state.name if state is not None else None
    if (state.is_running() or state.is_pending()) and run.deployment_id is not None:
        new: Any = Cancelling(message=message)
    else:
        new = Cancelled(message=message)
    result = client.set_flow_run_state(run.id, new, force=True)
    accepted = getattr(result, "state", None)
    return str(accepted.name) if accepted is not None else new.name


def tell(register: Register, library: Library, outcome: CancelOutcome, *, by: str, reason: str) -> int:
    """Tell the people each cancelled case waited on (once per case and person), then deliver; returns the messages queued."""
    messengers: list[Messenger] = []

    def each(cancelled: CancelOutcome, why: str) -> int:
        record = cancelled.case
        count = 0
        try:
            messenger = Messenger(register, library, case_spec(register, library, record))
        except AftercareError as error:
            log.warning("cancel of %s: nobody told: %s", record.key, error)
        else:
            messengers.append(messenger)
            url = run_url(record.flow_run_id, api_url=_api_url())
            count = len(messenger.cancelled(record, cancelled.withdrawn, by, why, {"run": url} if url else {}, deliver=False))
        # the same reason the register wrote for each linked case
        return count + sum(each(child, f"{record.key} was cancelled: {why}") for child in cancelled.children)

    queued = each(outcome, reason)
    if queued and messengers:
        messengers[0].deliver()
    return queued


# --- a cancel in the Prefect UI ------------------------------------------------------------------


def cancelled_in_prefect(flow: Any, flow_run: Any, state: Any) -> None:
    """The ``on_cancellation`` hook of every process flow: the run was cancelled in Prefect, cancel its case.

    Runs where the run's process was (its runner, or the process itself). A case cancelled
    already (``aftercare cancel`` stopped the run) is left as it is. Never raises: a hook
    that fails would only be logged by Prefect.
    """
    try:
        register = Register()
        key = _case_key(register, str(flow_run.id), list(getattr(flow_run, "tags", None) or []))
        if key is not None:
            cancel_noticed(register, library_for_messages(), key, skip_run=str(flow_run.id))
    except Exception as error:  # noqa: BLE001 - see the docstring
        log.warning("could not cancel the case of flow run %s: %s", getattr(flow_run, "id", "?"), error)


def cancel_noticed(
    register: Register, library: Library | None, key: str, *, skip_run: str | None = None, reason: str = UI_REASON
) -> Cancellation | None:
    """A run of an open case was cancelled in Prefect: cancel the case by ``prefect-ui``; None when it was closed already."""
    try:
        outcome = register.cancel_case(key, by=PREFECT_UI_ACTOR, reason=reason)
    except AnswerError:
        return None  # closed meanwhile (cancelled by the command, or by another who noticed)
    log.info("%s: its run was cancelled in Prefect; the case is cancelled", key)
    return finish(register, library, outcome, by=PREFECT_UI_ACTOR, reason=reason, message=f"{key} cancelled: {reason}", skip_run=skip_run)


def sync_cancellations(register: Register, library: Library | None, *, now: datetime | None = None) -> list[str]:
    """Make Prefect and the register agree on cancels; returns the keys of the cases cancelled now.

    * Open cases whose run is Cancelled or Cancelling in Prefect (a suspended run cancelled
      in the UI has no process, so no hook told the register) are cancelled by ``prefect-ui``.
    * Cases cancelled in the last :data:`RECHECK` whose run is not final (the command could
      not reach Prefect) have their run stopped.

    Reads Prefect's runs by id in pages of :data:`PAGE`, filtered by state on the server.
    """
    from prefect import get_client
    from prefect.client.schemas.objects import StateType

    now = now or utc_now()
    cancelled: list[str] = []
    with get_client(sync_client=True) as client:
        open_runs = register.open_case_runs()
        for run in _runs_in_states(client, open_runs, [StateType.CANCELLED, StateType.CANCELLING]):
            key = open_runs[str(run.id)]
            if cancel_noticed(register, library, key, skip_run=str(run.id)) is not None:
                cancelled.append(key)
        done = register.cancelled_case_runs(now - RECHECK)
        running = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
        for run in _runs_in_states(client, done, running):
            state = stop_run(client, str(run.id), f"{done[str(run.id)]} is cancelled in the register (aftercare housekeeping)")
            log.warning("%s is cancelled but its run was %s; now %s", done[str(run.id)], run.state_name, state)
    return cancelled


def sync_case(register: Register, library: Library | None, key: str) -> bool:
    """One case's check (a timer run's): its run was cancelled in Prefect while the register says open. True: cancelled now."""
    from prefect import get_client

    record = register.case(key)
    if not record.is_open or not record.flow_run_id:
        return False
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(record.flow_run_id))
        except Exception as error:  # noqa: BLE001 - the housekeeping run looks again
            log.info("could not read the run of %s: %s", key, error)
            return False
    if run.state is None or not (run.state.is_cancelled() or run.state.is_cancelling()):
        return False
    return cancel_noticed(register, library, key, skip_run=record.flow_run_id) is not None


def _runs_in_states(client: Any, runs: dict[str, str], states: list[Any]) -> Iterable[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType

    ids = list(runs)
    for start in range(0, len(ids), PAGE):
        page = [UUID(run_id) for run_id in ids[start:start + PAGE]]
        yield from client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=page), state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states))),
            limit=PAGE,
        )


def _case_key(register: Register, flow_run_id: str, tags: list[str]) -> str | None:
    for tag in tags:
        if tag.startswith(CASE_TAG):
            return tag[len(CASE_TAG):]
    record = register.case_for_run(flow_run_id)
    return record.key if record is not None else None


def library_for_messages() -> Library | None:
    """The definitions folder, for messages; None when it cannot be loaded (the cancel itself goes on)."""
    folder = settings.processes_folder()
    try:
        return load_checked_library(folder)
    except AftercareError as error:
        log.warning("nobody is told of the cancel: the definitions at %s do not load: %s", folder, error)
        return None


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return str(url) if url else None


__all__ = [
    "PREFECT_UI_ACTOR",
    "UI_REASON",
    "CaseCancelled",
    "Cancellation",
    "cancel",
    "cancel_noticed",
    "cancelled_in_prefect",
    "cancelled_state",
    "check_canceller",
    "finish",
    "is_cancelled",
    "library_for_messages",
    "stop_if_cancelled",
    "stop_run",
    "sync_case",
    "sync_cancellations",
    "tell",
]
