"""Answering a waiting human step from outside the run: ``aftercare answer`` and scripted answers.

Both take the path a person's answer in the Prefect UI takes: the run's resume form,
submitted through ``resume_flow_run`` with the step's RunInput.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_client

from aftercare.engine import router
from aftercare.engine.errors import AnswerError
from aftercare.engine.loader import find_team_file, load_team
from aftercare.engine.register import Register, StepRunRecord
from aftercare.engine.spec import HumanStep, ProcessSpec, is_human
from aftercare.engine.team import TeamSpec

from .human import as_answers, pause_prefix
from .pinning import stored_spec
from .run_input import input_payload


def waiting_step(register: Register, case_key: str, step_id: str) -> StepRunRecord:
    """The open visit of a step a case waits at.

    Raises:
        AnswerError: the case is closed or not waiting at that step.
    """
    record = register.case(case_key)
    if not record.is_open:
        raise AnswerError(f"{case_key} is closed (outcome {record.outcome}); nothing to answer")
    runs = [run for run in register.step_runs(case_key) if run.step_id == step_id]
    if not runs or not runs[-1].is_open:
        raise AnswerError(f"{case_key} is not waiting at step {step_id!r}; it is at {record.current_step!r}")
    return runs[-1]


def paused_key(flow_run_id: str) -> str | None:
    """The pause key of a paused or suspended run, None while it is not waiting for input."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    state = run.state
    if state is None or not state.is_paused() or not state.state_details.run_input_keyset:
        return None
    return state.state_details.pause_key


def submit_answer(
    case_key: str,
    step_id: str,
    *,
    by: str,
    decision: str | None,
    comment: str | None = None,
    fields: Mapping[str, Any] | None = None,
    register: Register | None = None,
    team: TeamSpec | None = None,
    wait_seconds: float = 60.0,
    skip_key: str | None = None,
) -> str:
    """Check an answer and resume the case's run with it; returns the pause key answered.

    Raises:
        AnswerError: the person may not answer, the answer does not fit the step, the
            case is not waiting there, or the run did not get to its form in time.
    """
    register = register or Register()
    record = register.case(case_key)
    run = waiting_step(register, case_key, step_id)
    spec: ProcessSpec = stored_spec(register, record)
    step = spec.step(step_id)
    if not is_human(step):
        raise AnswerError(f"step {step_id!r} of {record.process} is a {step.type} step; people answer approval, form and checklist steps")
    human: HumanStep = step  # type: ignore[assignment]
    eligible = tuple(p for p in (run.assignee or "").split(",") if p)
    earlier = as_answers(register.answers(case_key, step_id, run.visit))
    people = list(team.people) if team else []
    try:
        router.accept_answer(
            human, by=by, decision=decision, comment=comment, fields=dict(fields or {}),
            eligible=eligible, earlier=earlier, people=people,
        )
    except AnswerError as error:
        register.audit(case_key, "answer.refused", by, after={"step": step_id, "visit": run.visit, "via": "cli"}, detail=str(error))
        raise
    if record.flow_run_id is None:
        raise AnswerError(f"{case_key} has no flow run to resume")
    prefix = pause_prefix(step_id, run.visit)
    deadline = time.monotonic() + wait_seconds
    while True:
        key = paused_key(record.flow_run_id)
        if key and key.startswith(prefix) and key != skip_key:
            break
        if time.monotonic() > deadline:
            raise AnswerError(f"the run of {case_key} is not waiting for an answer to {step_id!r} (state key {key!r}); try again")
        time.sleep(0.3)
    payload = input_payload(human, by=by, decision=decision, comment=comment, fields=dict(fields or {}))
    while True:
        with get_client(sync_client=True) as client:
            result = client.resume_flow_run(UUID(record.flow_run_id), run_input=payload)
        status = str(getattr(result.status, "value", result.status)).upper()
        if status == "ACCEPT":
            return key
        reason = str(getattr(result.details, "reason", "") or "")
        # The run saves its form's schema just after it pauses: a moment later it is there.
        if "schema not found" not in reason.lower() or time.monotonic() > deadline:
            raise AnswerError(f"Prefect refused the answer to {step_id!r} of {case_key}: {reason}")
        time.sleep(0.2)


def team_near(folder: Path) -> TeamSpec | None:
    """The team file of a processes folder, if there is one."""
    path = find_team_file(folder)
    return load_team(path) if path else None
