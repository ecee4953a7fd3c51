"""Answering a waiting human step from outside the run: ``aftercare answer`` and scripted answers.

Both take the path a person's answer in the Prefect UI takes: the run's resume form,
submitted through ``resume_flow_run`` with the step's RunInput. The answer is checked
first with the engine's rule (:func:`aftercare.engine.answers.accept_answer`), so a
mistake is told at once and audited; the run checks it again when it takes it.

The operator's shell holds the register's URL, so it needs no person's answer code: it
issues a one-time operator token in the register (its hash, tied to the step visit, the
person and the operating-system user) and submits it as the form's code. The run takes
it as it takes a person's code and records the OS user with the answer; a stranger in
the Prefect UI, who cannot write the register, cannot forge one.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect import get_client

from aftercare.engine.answers import Submission, accept_answer, from_rows
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AnswerError, NotFoundError
from aftercare.engine.library import definition_of_case
from aftercare.engine.loader import Library
from aftercare.engine.register import CaseRecord, Register, StepRunRecord
from aftercare.engine.runner import structure_of
from aftercare.engine.spec import HumanStep, ProcessSpec, is_human
from aftercare.engine.suggest import did_you_mean

from . import events
from .resume_form import pause_prefix
from .forms import find_form, parse_row
from .run_input import input_payload

log = logging.getLogger(__name__)


def case_spec(register: Register, library: Library | None, record: CaseRecord) -> ProcessSpec:
    """The definition a case runs (the version it started with), by the engine's one lookup."""
    found = definition_of_case(library, record.process, record.definition_hash, register.stored_definition)
    if found.note:
        log.warning("%s: %s", record.key, found.note)
    return found.spec


def waiting_step(register: Register, spec: ProcessSpec, case_key: str, step_id: str, person: str | None = None) -> StepRunRecord:
    """The open visit of a step a case waits at (of a ``for_each`` step: the open instance that names ``person``).

    Raises:
        NotFoundError: the process has no such step (with the near name).
        AnswerError: the case is closed, the step is not one people answer, or the case is not waiting there.
    """
    record = register.case(case_key)
    if step_id not in spec.step_ids:
        raise NotFoundError(f"{record.process} has no step {step_id!r}{did_you_mean(step_id, spec.step_ids)}")
    if not is_human(spec.step(step_id)):
        raise AnswerError(
            f"step {step_id!r} of {record.process} is a {spec.step(step_id).type} step; people answer approval, form and checklist steps"
        )
    if not record.is_open:
        raise AnswerError(f"{case_key} is closed (outcome {record.outcome}); nothing to answer")
    every = register.step_runs(case_key)
    runs = [run for run in every if run.step_id == step_id]
    if runs and runs[-1].is_open and getattr(spec.step(step_id), "for_each", None) is not None:
        instances = [run for run in every if parse_row(run.step_id)[0] == step_id and run.step_id != step_id and run.visit == runs[-1].visit]
        open_ones = [run for run in instances if run.is_open]
        mine = [run for run in open_ones if person is None or person in run.eligible]
        if mine:
            return mine[0]
        if open_ones:
            named = ", ".join(f"{run.step_id} ({', '.join(run.eligible)})" for run in open_ones)
            raise AnswerError(f"{person!r} may not answer step {step_id!r}: no open instance names them; open: {named}")
    if not runs or not runs[-1].is_open:
        waiting = [run.step_id for run in register.step_runs(case_key) if run.is_open]
        raise AnswerError(f"{case_key} is not waiting at step {step_id!r}; it waits at {', '.join(waiting) or 'no step'}")
    return runs[-1]


def paused_key(flow_run_id: str) -> str | None:
    """The pause key of a paused or suspended run, None while it is not waiting for input."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    state = run.state
    if state is None or not state.is_paused() or not state.state_details.run_input_keyset:
        return None
    return state.state_details.pause_key


@dataclass(frozen=True)
class CheckedAnswer:
    """An answer the step takes, ready to be submitted to the case's run."""

    case: CaseRecord
    run: StepRunRecord
    step: HumanStep
    submission: Submission
    beside_others: bool = False
    """The step waits in a form run of its own (in a parallel branch, or a ``for_each`` instance)."""
    code: str | None = None
    """The operator's one-time token the form takes as the answer code (the register keeps only its hash)."""

    def form_run_id(self) -> str | None:
        """The run whose form takes the answer: the step's own form run (None until it exists), else the case's run."""
        if not self.beside_others:
            return self.case.flow_run_id
        if self.case.flow_run_id is None:
            return None
        found = find_form(self.case.flow_run_id, self.run.step_id, self.run.visit)
        return str(found.id) if found is not None else None


def check_answer(
    case_key: str,
    step_id: str,
    *,
    by: str,
    decision: str | None,
    library: Library | None = None,
    comment: str | None = None,
    fields: Mapping[str, Any] | None = None,
    register: Register | None = None,
) -> CheckedAnswer:
    """Check an answer with the engine's rule before it goes to the run; a refusal is audited.

    ``library`` is the definitions folder (its team checks person fields); without it the
    register's copy of the case's definition is used.

    Raises:
        NotFoundError: no such case or step (with the near name).
        AnswerError: the person may not answer, the answer does not fit the step or came
            too late, or the case is not waiting there.
    """
    register = register or Register()
    record = register.case(case_key)
    spec = case_spec(register, library, record)
    run = waiting_step(register, spec, case_key, step_id, by)
    step: HumanStep = spec.step(step_id)  # type: ignore[assignment]
    submission = Submission(by=by, decision=decision, comment=comment, fields=dict(fields or {}))
    now = utc_now()
    try:
        accept_answer(
            step, submission, eligible=run.eligible, earlier=from_rows(register.answers(case_key, run.step_id, run.visit)),
            people=list(library.team.people) if library else [], answered_at=now, due_at=run.due_at,
        )
    except AnswerError as error:
        register.refuse_answer(case_key, run.step_id, run.visit, person=by, reason=str(error), via="cli", at=now)
        subject = events.Subject(record, record.flow_run_id, library.team if library else None, record.parent_key)
        events.emit(events.answer_refused(subject, run.step_id, run.visit, person=by, reason=str(error), via="cli", at=now))
        raise
    if record.flow_run_id is None:
        raise AnswerError(f"{case_key} has no flow run to resume")
    beside = step.for_each is not None or structure_of(spec).in_region(step.id)
    codes = library.team.answer_codes if library else True  # without the folder: the default, codes on
    token = register.issue_operator_token(case_key, step.id, run.visit, by, os_user=getpass.getuser(), at=now) if codes else None
    return CheckedAnswer(record, run, step, submission, beside_others=beside, code=token)


def resume_with(checked: CheckedAnswer, *, wait_seconds: float = 60.0) -> str:
    """Submit a checked answer through the run's resume form; returns the pause key answered.

    Raises:
        AnswerError: the run did not get to its form in time, or Prefect refused the answer.
    """
    case_key, step_id = checked.case.key, checked.step.id
    prefix = pause_prefix(checked.run.step_id, checked.run.visit)
    deadline = time.monotonic() + wait_seconds
    flow_run_id = checked.form_run_id()
    while flow_run_id is None:
        if time.monotonic() > deadline:  # the case's run makes the form run as the step starts waiting
            raise AnswerError(f"the form of {step_id!r} of {case_key} is not there yet; try again")
        time.sleep(0.3)
        flow_run_id = checked.form_run_id()
    deadline = time.monotonic() + wait_seconds
    while True:
        key = paused_key(flow_run_id)
        if key and key.startswith(prefix):
            break
        if time.monotonic() > deadline:
            raise AnswerError(f"the run of {case_key} is not waiting for an answer to {step_id!r} (state key {key!r}); try again")
        time.sleep(0.3)
    given = checked.submission
    payload = input_payload(
        checked.step, by=given.by, decision=given.decision, comment=given.comment, fields=dict(given.fields), code=checked.code
    )
    while True:
        with get_client(sync_client=True) as client:
            result = client.resume_flow_run(UUID(flow_run_id), run_input=payload)
        status = str(getattr(result.status, "value", result.status)).upper()
        if status == "ACCEPT":
            return key
        reason = str(getattr(result.details, "reason", "") or "")
        # The run saves its form's schema just after it pauses: a moment later it is there.
        if "schema not found" not in reason.lower() or time.monotonic() > deadline:
            raise AnswerError(f"Prefect refused the answer to {step_id!r} of {case_key}: {reason}")
        time.sleep(0.2)


def submit_answer(
    case_key: str,
    step_id: str,
    *,
    by: str,
    decision: str | None,
    library: Library | None = None,
    comment: str | None = None,
    fields: Mapping[str, Any] | None = None,
    register: Register | None = None,
    wait_seconds: float = 60.0,
) -> str:
    """Check an answer (:func:`check_answer`) and resume the case's run with it (:func:`resume_with`)."""
    checked = check_answer(case_key, step_id, by=by, decision=decision, library=library, comment=comment, fields=fields, register=register)
    return resume_with(checked, wait_seconds=wait_seconds)
