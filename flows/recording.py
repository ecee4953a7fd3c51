"""``aftercare simulate --record``: a simulated case written to the register like a real one."""

from __future__ import annotations

from typing import Any

from aftercare.engine import router
from aftercare.engine.loader import LoadedDefinition
from aftercare.engine.register import AnswerRecord, Register
from aftercare.engine.simulator import SimulationResult
from aftercare.engine.spec import is_human

SIMULATED = "simulated"


def record_simulation(result: SimulationResult, definition: LoadedDefinition, register: Register | None = None) -> str:
    """Write the case, its steps, answers and (as audit events, never sent) its messages; returns the case key.

    The case is tagged ``simulated`` in its fields so it is never mistaken for real work.
    """
    register = register or Register()
    spec = definition.spec
    case = result.case
    register.save_definition(definition.digest, spec.process, spec.version, definition.path.read_text(encoding="utf-8"))
    record = register.open_case(
        process=spec.process,
        version=spec.version,
        definition_hash=definition.digest,
        key_prefix=spec.key,
        title=case.title,
        inputs=case.inputs,
        due_at=case.due_at,
        opened_at=case.opened_at,
        actor=SIMULATED,
    )
    key = record.key
    register.update_case(key, fields={**case.fields, SIMULATED: True}, actor=SIMULATED, at=case.opened_at)
    answers = {(step_id, visit): [] for step_id, visit, _ in result.answers}
    for step_id, visit, answer in result.answers:
        answers[(step_id, visit)].append(answer)
    for step_id, visit, step_result, started_at, finished_at in result.visits:
        step = spec.step(step_id)
        register.begin_step(key, step_id, visit, started_at=started_at)
        if is_human(step):
            given: list[router.Answer] = []
            for answer in answers.get((step_id, visit), []):
                given.append(answer)
                register.answer(
                    key, step_id, visit, person=answer.by, decision=answer.decision, comment=answer.comment,
                    fields=dict(answer.fields), answered_at=answer.answered_at or finished_at,
                    decide=_decider(step_result, len(given), len(answers.get((step_id, visit), []))),
                )
        register.complete_step(key, step_id, visit, step_result, finished_at, started_at=started_at)
    for message in result.messages:
        register.audit(
            key, "message.simulated", SIMULATED,
            after={"step": message.step, "visit": message.visit, "to": message.recipients, "kind": message.kind},
            detail=message.subject, at=message.at,
        )
    for started in result.started:
        register.audit(key, "case.simulated_start", SIMULATED, after={"process": started.process, "inputs": started.inputs}, detail=started.key)
    if case.outcome:
        register.close_case(key, case.outcome, at=result.visits[-1][4] if result.visits else case.opened_at, actor=SIMULATED)
    return key


def _decider(step_result: dict[str, Any], index: int, total: int) -> Any:
    """The simulated decision comes with the last answer the simulator took."""

    def decide(records: list[AnswerRecord]) -> dict[str, Any] | None:
        return step_result if index == total and step_result.get("decision") != "timeout" else None

    return decide
