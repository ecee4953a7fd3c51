"""``aftercare reassign``: a waiting step handed on to another person, its form's choices following.

Who may hand a step on: one of the people it waits for (they hand on their own part: they
leave, the new person comes in), or a person its ``escalate_to`` names (the step is handed on
whole). The register keeps the new ``eligible`` under the step's row lock with the audit
event ``step.reassigned`` (who, from whom to whom, why). The run that holds the step's form
(its form run, or the case's run) is suspended with a RunInput whose "Answering as" choices
were fixed when it suspended: its saved schema is replaced with one built from the new
people, so the Prefect UI's Resume form offers the new person at once, and the replay the
answer starts takes it (the runs build their form from the register's ``eligible``). Both
are told through the outbox: the new person with the waiting message (the same composer),
the people who left with ``step-reassigned``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from aftercare.engine.answers import HumanPlan
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AnswerError, NotFoundError
from aftercare.engine.loader import Library
from aftercare.engine.register import CaseRecord, Reassignment, Register, StepRunRecord
from aftercare.engine.spec import ApprovalStep, HumanStep
from aftercare.engine.suggest import did_you_mean
from aftercare.engine.team import TeamSpec
from aftercare.engine.calendars import calendar_of
from aftercare.engine.waiting import parse_row
from aftercare.notifications import run_url
from aftercare.notifications.delivery import deliver_pending
from aftercare.notifications.escalation import case_scope, human_plan
from aftercare.notifications.outbox import enqueue, step_reassigned_messages, waiting_messages
from aftercare.notifications.rendering import MessageTemplates

from .answering import case_spec, waiting_step
from .forms import form_holder
from .run_input import answer_model, describe
from .waiting_tags import sync_waiting_tags

log = logging.getLogger(__name__)


@dataclass
class Reassigned:
    """What ``aftercare reassign`` did: the register's change, the form rebuilt (or why not), the messages."""

    reassignment: Reassignment
    form_run: str | None = None
    form_rebuilt: bool = False
    messages: int = 0
    problems: list[str] = field(default_factory=list)


def handed_on(step: HumanStep, run: StepRunRecord, escalate_people: set[str], *, by: str, to: str) -> tuple[str, ...]:
    """Who may answer after ``by`` hands the step visit on to ``to`` (the rule of who may, in one place).

    Raises:
        AnswerError: ``by`` is neither one of the step's people nor its ``escalate_to``, ``to``
            may answer already, or a step that needs several approvals would be handed on whole.
    """
    eligible = tuple(run.eligible)
    if to in eligible:
        raise AnswerError(f"{to!r} may answer step {run.step_id!r} already (it waits for {', '.join(eligible)})")
    if by in eligible:
        return tuple(to if person == by else person for person in eligible)
    if by in escalate_people:
        if isinstance(step, ApprovalStep) and step.quorum > 1 and len(eligible) > 1:
            raise AnswerError(
                f"step {run.step_id!r} needs {step.quorum} approvals: its people hand it on one at a time ({', '.join(eligible)})"
            )
        return (to,)
    allowed = sorted(set(eligible) | escalate_people)
    raise AnswerError(
        f"{by!r} may not hand on step {run.step_id!r}: its people ({', '.join(eligible)}) and its escalate_to "
        f"({', '.join(sorted(escalate_people)) or 'nobody'}) may{did_you_mean(by, allowed)}"
    )


def check_person(team: TeamSpec, person: str, what: str) -> None:
    """A person of the team.

    Raises:
        NotFoundError: no such person, with the near name.
    """
    if person not in team.people:
        raise NotFoundError(f"{what} {person!r} is not in the team{did_you_mean(person, list(team.people))}")


def reassign(
    register: Register, library: Library, case_key: str, step_id: str, *, to: str, by: str, reason: str | None, prefect: bool = True
) -> Reassigned:
    """Hand a waiting step (``step`` or a ``for_each`` instance ``step[2]``) on; see the module.

    ``prefect``: a Prefect API is there (False: the register and the messages only; the run
    builds its new form when it next waits).

    Raises:
        NotFoundError: no such case, step or person.
        AnswerError: the case is not waiting there, or the person may not hand it on.
    """
    team = library.team
    check_person(team, by, "--as")
    check_person(team, to, "--to")
    record = register.case(case_key)
    spec = case_spec(register, library, record)
    base, unit = parse_row(step_id)
    run = _waiting_row(register, spec, case_key, step_id, base, unit, by)
    step: HumanStep = spec.step(base)  # type: ignore[assignment]
    now = utc_now()
    scope = case_scope(register, record, now)
    plan = human_plan(team, scope, step, run, calendar=calendar_of(spec, team))
    escalate_people = {person for reference in plan.escalate_to for person in _members(team, reference)}
    try:
        eligible = handed_on(step, run, escalate_people, by=by, to=to)
    except AnswerError as error:
        register.audit(case_key, "reassign.refused", by, detail=str(error))
        raise
    done = Reassigned(register.reassign_step(case_key, run.step_id, run.visit, eligible=eligible, by=by, reason=reason, at=now))
    new_plan = replace(plan, eligible=eligible)
    holder = form_holder(record.flow_run_id, run.step_id, run.visit) if prefect else None
    done.form_run = holder
    if not prefect:
        done.problems.append("no Prefect API to reach (PREFECT_API_URL is not set): the form in the Prefect UI offers the new person once its run waits again")
    if holder is not None:
        try:
            done.form_rebuilt = rebuild_form(holder, step, new_plan, team, record, scope)
        except Exception as error:  # noqa: BLE001 - the register stands; the form is rebuilt when the run next waits
            done.problems.append(f"could not rebuild the form of {run.step_id!r} in the Prefect UI: {' '.join(str(error).split())[:200]}")
        if not sync_waiting_tags(register, case_key):
            done.problems.append("could not write the runs' waiting tags; the next change of the case writes them")
    done.messages = _tell(register, library, record, step, run, new_plan, done.reassignment, holder, reason or "")
    return done


def _waiting_row(register: Register, spec: Any, case_key: str, step_id: str, base: str, unit: int | None, by: str) -> StepRunRecord:
    """The open row a reassign names: the step's waiting visit (of a ``for_each`` step: the instance ``by`` holds, or ``step[N]``)."""
    if unit is None:
        return waiting_step(register, spec, case_key, base, by)
    waiting_step(register, spec, case_key, base, None)  # the step itself waits (the checks and their messages)
    rows = [row for row in register.step_runs(case_key) if row.step_id == step_id and row.is_open]
    if not rows:
        raise AnswerError(f"{case_key} has no open instance {step_id!r}")
    return rows[-1]


def _members(team: TeamSpec, reference: str) -> tuple[str, ...]:
    try:
        return team.members(reference)
    except KeyError:
        return ()


def rebuild_form(flow_run_id: str, step: HumanStep, plan: HumanPlan, team: TeamSpec, record: CaseRecord, scope: dict[str, Any]) -> bool:
    """Replace the saved schema (and description) of a run suspended for a step's form with ones of the new plan.

    The Prefect UI reads the schema when its Resume dialog opens and checks a submitted answer
    against it; the run, on resume, loads the answer with the model it builds from the register.
    False when the run does not wait for input now (it builds the new form when it next waits).
    """
    from prefect import get_client
    from prefect._internal.pydantic.v2_schema import create_v2_schema
    from prefect.input.run_input import keyset_from_paused_state

    from aftercare.engine.case import CaseState

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(flow_run_id))
        state = flow_run.state
        if state is None or not state.is_paused() or not state.state_details.run_input_keyset:
            return False
        keyset = state.state_details.run_input_keyset or keyset_from_paused_state(state)
        case = CaseState.from_record(record, url=scope["case"].get("url"))
        model = answer_model(step, plan, team)
        schema = create_v2_schema(model.__name__, model_base=model)
        description = describe(case, step, plan, team, [], f"Handed on to {', '.join(plan.eligible)}.")
        for key, value in ((keyset["schema"], schema), (keyset["description"], description)):
            try:
                client.delete_flow_run_input(UUID(flow_run_id), key)
            except Exception:  # noqa: BLE001 - a description may never have been saved
                pass
            client.create_flow_run_input(UUID(flow_run_id), key, json.dumps(value))
    return True


def _tell(
    register: Register, library: Library, record: CaseRecord, step: HumanStep, run: StepRunRecord, plan: HumanPlan,
    reassignment: Reassignment, holder: str | None, reason: str,
) -> int:
    """The new people get the waiting message (the one composer), the people who left ``step-reassigned``; delivered now."""
    from aftercare.engine import settings

    from . import ui_updates

    try:
        api = ui_updates.current_api_url()
    except RuntimeError:
        api = None
    links: dict[str, str] = {}
    if url := run_url(holder, api_url=api):
        links["run"] = url
    if ui := settings.ui_url(api):
        links["ui"] = ui
    scope = case_scope(register, record, utc_now(), api_url=api)
    templates = MessageTemplates.for_library(library)
    before, after = set(reassignment.before.eligible), set(reassignment.after.eligible)
    new = [f"person:{person}" for person in reassignment.after.eligible if person not in before]
    left = [person for person in reassignment.before.eligible if person not in after]
    kind = f"reassigned-{reassignment.audit.id}"
    messages = waiting_messages(
        library.team, scope, step, plan, visit=run.visit, recipients=new, templates=templates, links=links, kind=kind
    )
    messages += step_reassigned_messages(
        library.team, scope, {"id": run.step_id, "title": plan.title, "visit": run.visit}, left,
        by=reassignment.audit.actor, to=list(reassignment.after.eligible), reason=reason,
        kind=f"handed-on-{reassignment.audit.id}", templates=templates, links=links,
    )
    stored = enqueue(register, messages)
    deliver_pending(register, now=utc_now(), limit=50)
    return len(stored)


__all__ = ["Reassigned", "check_person", "handed_on", "reassign", "rebuild_form"]
