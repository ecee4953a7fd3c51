"""One Prefect flow per definition: typed parameters, the case opened or found, the case runner with the Prefect executor."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from prefect import Flow, flow
from prefect.context import FlowRunContext

from aftercare.engine import settings
from aftercare.engine.calendars import calendar_of
from aftercare.engine.case import CaseState, opening
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AftercareError, AnswerError
from aftercare.engine.loader import Library, LoadedDefinition
from aftercare.engine.register import CaseRecord, Register
from aftercare.engine.runner import run_case
from aftercare.notifications import Messenger, run_url

from . import events, ui_updates
from .answering import case_spec
from .cancelling import CaseCancelled, cancelled_in_prefect, cancelled_state, is_cancelled
from .executor import PrefectExecutor
from .launching import launch_case
from .parameters import flow_signature, plain_value
from .recovery import record_process
from .timers import Timer, schedule

CASE_TAG = "case:"
#: Called with (case key, flow run id) as soon as a run has its case: ``aftercare run`` feeds scripted answers from it.
CASE_LISTENERS: list[Callable[[str, str], None]] = []


def attribute_name(process: str) -> str:
    """The attribute of ``aftercare.flows.compiled`` a process's flow is found under (its deployments' entrypoint)."""
    return process.replace("-", "_")


def flow_name(process: str) -> str:
    """The Prefect flow (and deployment) name of a process."""
    return process


def run_tags(definition: LoadedDefinition) -> list[str]:
    """Tags of a process's runs (served, deployed or in the foreground): its process, version and own tags."""
    spec = definition.spec
    return [f"process:{spec.process}", f"version:{spec.version}", *spec.tags]


def build_flow(definition: LoadedDefinition, library: Library) -> Flow[..., dict[str, Any]]:
    """The Prefect flow of a definition: its inputs are the flow's typed parameters."""
    spec = definition.spec

    def run_process(**parameters: Any) -> dict[str, Any]:
        return run_definition(definition, library, parameters)

    run_process.__signature__ = flow_signature(spec, library.team)  # type: ignore[attr-defined]
    # Served and deployed runs load the flow again in a new process by module path:
    # aftercare.flows.compiled builds it from AFTERCARE_PROCESSES under this name.
    run_process.__name__ = attribute_name(spec.process)
    run_process.__qualname__ = run_process.__name__
    run_process.__module__ = "aftercare.flows.compiled"
    run_process.__doc__ = spec.description or spec.title
    return flow(
        name=flow_name(spec.process),
        description=(spec.description or spec.title).strip(),
        version=str(spec.version),
        persist_result=False,
        log_prints=False,
        on_completion=[show_the_case],
        on_failure=[show_the_case],
        on_crashed=[show_the_case],
        on_cancellation=[show_the_case, cancelled_in_prefect],
    )(run_process)


def show_the_case(flow: Any, flow_run: Any, state: Any) -> None:
    """The run ended: send its name and case artifact to the Prefect UI (``ui_updates``)."""
    ui_updates.release_run(flow_run.id)


def run_definition(definition: LoadedDefinition, library: Library, parameters: dict[str, Any]) -> dict[str, Any]:
    """The body of every process flow."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("a process flow must run as a Prefect flow run")
    flow_run = context.flow_run
    if flow_run.deployment_id is not None:
        record_process(flow_run.id)  # the liveness signal recovery reads (flows/recovery.py)
    register = Register()
    record = _case_for_run(register, definition, library, flow_run.id, list(flow_run.tags or []), parameters)
    spec = case_spec(register, library, record)  # the version the case started with
    _name_run(flow_run.id, flow_run.name, record)
    for listener in list(CASE_LISTENERS):
        listener(record.key, str(flow_run.id))
    url = run_url(str(flow_run.id), api_url=ui_updates.current_api_url())
    links = {"run": url} if url else {}
    if ui := settings.ui_url(ui_updates.current_api_url()):
        links["ui"] = ui  # the base of each person's link to their waiting work
    case = CaseState.from_record(record, url=url)
    served = flow_run.deployment_id is not None  # a foreground run has no timer runs: it watches its own deadlines
    messenger = Messenger(register, library, spec, on_retry=(lambda at: schedule(Timer("outbox", at))) if served else None)
    messenger.opened(case, links)
    executor = PrefectExecutor(
        spec=spec,
        fresh=record.current_step is None and record.closed_at is None,
        library=library,
        register=register,
        messenger=messenger,
        suspend=served,
        flow_run_id=flow_run.id,
        links=links,
        launch=launch_case,
        run_form=functools.partial(run_form_in_thread, api_url=ui_updates.current_api_url(), case_run=str(flow_run.id)),
    )
    if executor.fresh and record.is_open:  # the first execution of the case: it opens now (a replay has begun steps)
        events.emit(events.case_opened(
            executor.subject(case), inputs=record.inputs, due_at=record.due_at, started_by_step=record.started_by_step
        ))
    if served and executor.fresh and record.due_at is not None:
        schedule(Timer("sla", record.due_at, record.key))  # the case's own deadline (``sla.due``)
    if is_cancelled(register, record.key):  # cancelled while it was away: nothing of it runs again
        return cancelled_state(record.key)  # type: ignore[no-any-return]
    try:
        outcome = run_case(spec, library.team, executor, case)
    except CaseCancelled:
        return cancelled_state(record.key)  # type: ignore[no-any-return]
    except (Exception, KeyboardInterrupt) as error:  # not Prefect's signals: a suspended run is not failed
        # Nothing may look alive after a failed run: the step that failed (begun only in
        # memory) is written, the case is closed as failed with the reason (`aftercare
        # show`), and the run fails with its own error.
        with contextlib.suppress(Exception):
            executor.begin_pending(case)
            register.fail_case(case.key, failure_reason(error))
        raise
    return {"case": case.key, "path": case.path, "outcome": outcome, "withdrawn": list(case.withdrawn)}


def run_form_in_thread(case: str, step: str, visit: int, unit: int | None, item: Any, *, api_url: str, case_run: str) -> None:
    """A foreground run's form run: its own flow run, paused for its form, in this thread (on the run's Prefect API)."""
    from prefect import tags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from .form_flow import answer_form
    from .forms import form_tags, unit_row

    row = unit_row(step, unit)
    named = answer_form.with_options(flow_run_name=f"{case} · {row}")
    with temporary_settings(updates={PREFECT_API_URL: api_url}), tags(*form_tags(case, case_run, row, visit)), contextlib.suppress(Exception):
        named(case, step, visit, -1 if unit is None else unit, item)  # a withdrawn or closed form just ends


def failure_reason(error: BaseException) -> str:
    """Why a case's run stopped, in one line for the register."""
    if isinstance(error, KeyboardInterrupt):
        return "the run was interrupted before the case ended"
    if isinstance(error, AftercareError):
        return " ".join(str(error).split())
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _case_for_run(
    register: Register, definition: LoadedDefinition, library: Library, flow_run_id: Any, tags: list[str], parameters: dict[str, Any]
) -> CaseRecord:
    """The case this run drives: pre-opened (a ``case:KEY`` tag), already opened (a replay), or new."""
    run_id = str(flow_run_id)
    for tag in tags:
        if tag.startswith(CASE_TAG):
            record = register.case(tag[len(CASE_TAG):])
            if record.flow_run_id != run_id:
                record = register.attach_run(record.key, run_id)
            return record
    spec = definition.spec
    now = utc_now()
    try:
        opened = opening(spec, plain_value(parameters), library.team.people, now, calendar_of(spec, library.team))
    except AnswerError:
        existing = register.case_for_run(run_id)  # a replay keeps its case though the team changed since
        if existing is not None:
            return existing
        raise
    _save_definition(register, definition)
    # Replay-safe: a run that already opened its case gets that case back.
    return register.open_case(
        process=spec.process,
        version=spec.version,
        definition_hash=definition.digest,
        key_prefix=spec.key,
        title=opened.title,
        inputs=opened.inputs,
        due_at=opened.due_at,
        flow_run_id=run_id,
        opened_at=now,
    )


_SAVED: set[tuple[str, str]] = set()
"""(register URL, definition hash) saved by this process: a served process saves each once."""


def _save_definition(register: Register, definition: LoadedDefinition) -> None:
    """Keep the definition's text in the register under its hash (what ``definition_of_case`` reads back)."""
    if (register.url, definition.digest) in _SAVED:
        return
    spec = definition.spec
    register.save_definition(definition.digest, spec.process, spec.version, definition.path.read_text(encoding="utf-8"))
    _SAVED.add((register.url, definition.digest))


def _name_run(flow_run_id: Any, current: str | None, record: CaseRecord) -> None:
    """Name the flow run after its case: "ISS-0042 · Login fails"."""
    name = f"{record.key} · {record.title}"[:200]
    if current != name:
        ui_updates.hold(flow_run_id, f"name of {record.key}'s run", lambda client: client.update_flow_run(flow_run_id, name=name))


__all__ = ["CASE_LISTENERS", "attribute_name", "build_flow", "flow_name", "run_definition", "run_tags"]
