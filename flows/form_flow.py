"""The body of a form run (:mod:`.forms`): one human step or instance waiting beside others, answered on its own.

It waits for its form with the engine's one rule (:func:`aftercare.engine.answers.collect`)
through the same resume form a lone step uses (:class:`.executor.ResumeForm`): suspended
when served (no process held while people think), paused in a thread of the foreground
run. When the answers decide its step (the register records the decision with the
answer, under its row lock), it wakes the case's run and ends.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.context import FlowRunContext

from aftercare.engine import settings
from aftercare.engine.answers import collect, plan_human_step
from aftercare.engine.calendars import calendar_of
from aftercare.engine.case import CaseState
from aftercare.engine.clock import utc_now
from aftercare.engine.register import Register
from aftercare.engine.spec import HumanStep
from aftercare.notifications import Messenger, load_checked_library, run_url

from . import ui_updates
from .answering import case_spec
from .cancelling import sync_case
from .resume_form import ResumeForm
from .forms import FORM_FLOW, FORM_TAG, unit_row, wake
from .recovery import record_process


@flow(name=FORM_FLOW, log_prints=False, persist_result=False)
def answer_form(case: str, step: str, visit: int, unit: int = -1, item: Any = None) -> dict[str, Any]:
    """Wait for the answers of one human step (or instance, ``unit`` ≥ 0) of a case that waits at several."""
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    served = context.flow_run.deployment_id is not None
    if served:
        record_process(context.flow_run.id)  # a form run whose process dies is put back by recovery, as a case's run is
    return take_answers(case, step, visit, None if unit < 0 else unit, item, flow_run_id=context.flow_run.id, served=served)


def take_answers(
    case_key: str, step_id: str, visit: int, unit: int | None, item: Any = None, *, flow_run_id: Any, served: bool
) -> dict[str, Any]:
    """Collect a waiting unit's answers until its step is decided, then wake the case's run."""
    register = Register()
    library = load_checked_library(settings.processes_folder())
    record = register.case(case_key)
    if record.is_open and sync_case(register, library, case_key):  # its run was cancelled in the UI while it was suspended
        record = register.case(case_key)
    spec = case_spec(register, library, record)
    step: HumanStep = spec.step(step_id)  # type: ignore[assignment]
    row = unit_row(step_id, unit)
    run = register.step_run(case_key, row, visit)
    if run is None or not run.is_open or not record.is_open:
        return {"case": case_key, "step": row, "closed": True}
    case = CaseState.from_record(record, url=run_url(record.flow_run_id or "", api_url=ui_updates.current_api_url()) if record.flow_run_id else None)
    for done in register.step_runs(case_key):
        if not done.is_open and done.result is not None and "[" not in done.step_id:
            case.results[done.step_id] = dict(done.result)
    scope = case.scope(utc_now())
    if unit is not None:
        scope["item"] = item
    plan = plan_human_step(
        step, library.team, scope, started_at=run.started_at, due_at=run.due_at, eligible=run.eligible, calendar=calendar_of(spec, library.team)
    )
    messenger = Messenger(register, library, spec)
    links = {"run": url} if (url := run_url(str(flow_run_id), api_url=ui_updates.current_api_url())) else {}
    resend = messenger.resender(case, step, visit, plan, links)
    form = ResumeForm(register, library.team, case, step, visit, plan, suspend=served, row=row, case_run=record.flow_run_id, resend=resend)
    result = collect(step, plan, form, people=list(library.team.people))
    if served:
        wake(record.flow_run_id)
    return {"case": case_key, "step": row, "decision": result.get("decision")}


FORM_FLOWS = {"answer_form": answer_form}


def form_deployment(**options: Any) -> Any:
    """The form runs' deployment (no schedule): a case's run creates its runs when steps wait side by side."""
    from prefect.types.entrypoint import EntrypointType

    return answer_form.to_deployment(name=FORM_FLOW, tags=[FORM_TAG], entrypoint_type=EntrypointType.MODULE_PATH, **options)

__all__ = ["FORM_FLOWS", "answer_form", "form_deployment", "take_answers"]
