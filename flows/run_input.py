"""The typed form a person answers a human step with in the Prefect UI (a RunInput per step)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from prefect.input import RunInput

from aftercare.engine.case import CaseState
from aftercare.engine.answers import HumanPlan
from aftercare.engine.answers import Answer
from aftercare.engine.spec import ApprovalStep, ChecklistStep, HumanStep
from aftercare.engine.team import TeamSpec

from .parameters import choice_enum, field_info, plain_value, python_type

PERSON_FIELD = "answering_as"
DECISION_FIELD = "decision"
COMMENT_FIELD = "comment"
CODE_FIELD = "answer_code"
ITEM_PREFIX = "item_"
RESERVED = (PERSON_FIELD, CODE_FIELD, DECISION_FIELD, COMMENT_FIELD)


def answer_model(step: HumanStep, plan: HumanPlan, team: TeamSpec) -> type[RunInput]:
    """A RunInput subclass for one human step: who answers (with their answer code), approve/reject, comment, the form's fields.

    The answer code is a ``SecretStr`` (JSON Schema ``format: password``): the Prefect UI
    that opens by default (/v2) shows it as a masked input; the classic UI as a text box.
    """
    people = list(team.people)
    fields: dict[str, Any] = {
        PERSON_FIELD: (
            choice_enum(f"{step.id} answering as", plan.eligible),
            pydantic.Field(..., title="Answering as", description="Who you are: one of the people this step names"),
        )
    }
    if team.answer_codes:
        fields[CODE_FIELD] = (
            pydantic.SecretStr,
            pydantic.Field(..., title="Answer code", description="The code in the message that told you this step waits for you"),
        )
    if isinstance(step, ApprovalStep):
        fields[DECISION_FIELD] = (
            choice_enum(f"{step.id} decision", ("approve", "reject")),
            pydantic.Field(..., title="Decision"),
        )
    if isinstance(step, ChecklistStep):
        verdict = choice_enum(f"{step.id} verdict", ("pass", "fail"))
        for item in step.items:
            fields[f"{ITEM_PREFIX}{item.id}"] = (verdict, pydantic.Field(..., title=item.label))
    for name, spec in step.form.items():
        fields[name] = field_info(name, spec, people, python_type(name, spec, people))
    fields[COMMENT_FIELD] = (str, pydantic.Field("", title="Comment", json_schema_extra={"format": "text"}))
    model_name = "".join(part.capitalize() for part in step.id.replace("_", "-").split("-")) + "Answer"
    return pydantic.create_model(model_name, __base__=RunInput, **fields)  # type: ignore[call-overload,no-any-return]


def describe(case: CaseState, step: HumanStep, plan: HumanPlan, team: TeamSpec, answers: Sequence[Answer], note: str = "") -> str:
    """The Markdown context shown above the form: the case, the step, the inputs, earlier answers."""
    lines = [f"## {case.key} · {plan.title}", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += [
        f"**Process:** {case.process} v{case.version}  ",
        f"**Case:** {case.title}  ",
        f"**Who may answer:** {', '.join(team.display(p) + f' ({p})' for p in plan.eligible)}  ",
    ]
    if isinstance(step, ApprovalStep) and step.quorum > 1:
        lines.append(f"**Quorum:** {step.quorum} approvals; one rejection decides  ")
    if plan.due_at:
        lines.append(f"**Due:** {plan.due_shown}  ")
    if note:
        lines += ["", f"> {note}"]
    lines += ["", "### Inputs", "", "| input | value |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in case.inputs.items()]
    earlier = [(step_id, result) for step_id, result in case.results.items() if result.get("by")]
    if earlier or answers:
        lines += ["", "### Earlier answers", ""]
        for step_id, result in earlier:
            lines.append(f"- **{step_id}**: {result.get('decision', '')} by {result.get('by')}" + (f" — {result['comment']}" if result.get("comment") else ""))
        for answer in answers:
            lines.append(f"- **{step.id}** (this step): {answer.decision} by {answer.by}" + (f" — {answer.comment}" if answer.comment else ""))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def answer_from_input(step: HumanStep, received: Any) -> tuple[str, str | None, str, dict[str, Any]]:
    """(person, decision, comment, fields) from a submitted RunInput."""
    data = received.model_dump() if hasattr(received, "model_dump") else dict(received)
    data = {key: plain_value(value) for key, value in data.items() if key != "metadata"}
    person = str(data.pop(PERSON_FIELD))
    decision = data.pop(DECISION_FIELD, None)
    comment = str(data.pop(COMMENT_FIELD, "") or "")
    fields: dict[str, Any] = {}
    items: dict[str, Any] = {}
    for name, value in data.items():
        if name.startswith(ITEM_PREFIX) and isinstance(step, ChecklistStep):
            items[name[len(ITEM_PREFIX):]] = value
        elif name in step.form:
            fields[name] = value
    if isinstance(step, ChecklistStep):
        fields["items"] = items
    return person, decision, comment, fields


def code_from_input(received: Any) -> str | None:
    """The answer code a submitted RunInput carries (None when the form asks for none)."""
    value = getattr(received, CODE_FIELD, None) if not isinstance(received, Mapping) else received.get(CODE_FIELD)
    if isinstance(value, pydantic.SecretStr):
        return value.get_secret_value()
    return None if value is None else str(value)


def input_payload(
    step: HumanStep, *, by: str, decision: str | None, comment: str | None, fields: Mapping[str, Any], code: str | None = None
) -> dict[str, Any]:
    """The ``run_input`` dict a script or ``aftercare answer`` submits through ``resume_flow_run`` (``code``: an operator's token)."""
    payload: dict[str, Any] = {PERSON_FIELD: by, COMMENT_FIELD: comment or ""}
    if code is not None:
        payload[CODE_FIELD] = code
    if isinstance(step, ApprovalStep):
        payload[DECISION_FIELD] = decision
    given = dict(fields)
    if isinstance(step, ChecklistStep):
        items = dict(given.pop("items", None) or {})
        for item in step.items:
            if item.id in given:
                items[item.id] = given.pop(item.id)
        for item_id, verdict in items.items():
            value = verdict if isinstance(verdict, str) else ("pass" if verdict else "fail")
            payload[f"{ITEM_PREFIX}{item_id}"] = value
    for name, value in given.items():
        payload[name] = plain_value(value)
    return payload

