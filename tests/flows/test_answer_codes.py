"""The answer code in the Prefect form: a masked field the run checks against the register before it takes an answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.answers import HumanPlan
from aftercare.engine.case import CaseState
from aftercare.engine.loader import parse_definition
from aftercare.engine.register import Register, dispose
from aftercare.engine.spec import HumanStep
from aftercare.engine.team import TeamSpec
from aftercare.flows.resume_form import ResumeForm
from aftercare.flows.run_input import answer_model, code_from_input, input_payload

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
PEOPLE = {"li.na": {"name": "Li Na", "email": "li.na@example.com"}, "liu.yang": {"name": "Liu Yang", "email": "liu.yang@example.com"}}
PLAN = HumanPlan(eligible=("li.na", "liu.yang"), title="Cost review", description="", started_at=T0, due_at=None, escalate_to=())
DEFINITION = """\
process: cost-review
title: A cost review
version: 1
key: CST
steps:
  - {id: review, type: approval, assignee: [person:li.na, person:liu.yang]}
"""


def _team(codes: bool = True) -> TeamSpec:
    return TeamSpec.model_validate({"team": {"people": PEOPLE, "answer_codes": codes}})


@pytest.fixture
def step(tmp_path: Path) -> HumanStep:
    (tmp_path / "cost-review.yaml").write_text(DEFINITION, encoding="utf-8")
    spec, _ = parse_definition(tmp_path / "cost-review.yaml")
    found: HumanStep = spec.step("review")  # type: ignore[assignment]
    return found


@pytest.fixture
def register(tmp_path: Path) -> Iterator[Register]:
    url = f"sqlite:///{tmp_path}/r.db"
    yield Register(url)
    dispose(url)


def test_the_form_asks_for_the_code_as_a_masked_field_only_when_codes_are_on(step: HumanStep) -> None:
    schema = answer_model(step, PLAN, _team()).model_json_schema()
    assert schema["properties"]["answer_code"] == {
        "title": "Answer code", "description": "The code in the message that told you this step waits for you",
        "type": "string", "format": "password", "writeOnly": True,
    }
    assert "answer_code" in schema["required"]
    assert "answer_code" not in answer_model(step, PLAN, _team(codes=False)).model_json_schema()["properties"]
    payload = input_payload(step, by="li.na", decision="approve", comment=None, fields={}, code="K7PM-Q2XD")
    received = answer_model(step, PLAN, _team()).model_validate(payload)
    assert code_from_input(received) == "K7PM-Q2XD" and "K7PM" not in repr(received)


def _form(register: Register, step: HumanStep, sent: list[tuple[str, str]]) -> ResumeForm:
    record = register.open_case(process="cost-review", version=1, definition_hash="h", key_prefix="CST", title="Q3", inputs={}, opened_at=T0)
    register.begin_step(record.key, "review", 1, started_at=T0, status="waiting", eligible=list(PLAN.eligible))
    case = CaseState.from_record(record)
    form = ResumeForm(register, _team(), case, step, 1, PLAN, suspend=True, resend=lambda person, kind: sent.append((person, kind)))
    form.recorded()
    return form


def _try(form: ResumeForm, person: str, code: str) -> bool:
    form.recorded()  # as the wait does before each pause: the attempt the register has
    form.attempt = form.run.pause_attempt  # type: ignore[union-attr]
    return form._code_accepted(person, code)


def test_wrong_codes_are_refused_in_the_form_and_the_fifth_sends_a_new_one(register: Register, step: HumanStep) -> None:
    sent: list[tuple[str, str]] = []
    form = _form(register, step, sent)
    key = form.case.key
    code = register.issue_answer_code(key, "review", 1, "li.na")
    assert code is not None
    assert [_try(form, "li.na", "WRONG-0000") for _ in range(4)] == [False] * 4
    assert form.note == "The last answer was refused: wrong answer code for li.na (4 of 5 tries)" and sent == []
    assert not _try(form, "li.na", "WRONG-0000")
    assert sent == [("li.na", "waiting-code-a5")]
    assert not _try(form, "li.na", code)  # void now
    renewed = register.issue_answer_code(key, "review", 1, "li.na")  # what the new waiting message's delivery does
    assert renewed is not None and _try(form, "li.na", renewed) and form.operator is None
    assert register.step_run(key, "review", 1).pause_attempt == 6  # type: ignore[union-attr]


def test_an_operator_token_is_taken_and_its_os_user_goes_with_the_answer(register: Register, step: HumanStep) -> None:
    form = _form(register, step, [])
    token = register.issue_operator_token(form.case.key, "review", 1, "liu.yang", os_user="ops")
    assert _try(form, "liu.yang", token) and form.operator == "ops"
    recorded: Any = register.answer(form.case.key, "review", 1, person="liu.yang", decision="approve", decide=lambda rows: None, operator=form.operator)
    assert recorded.answer.operator == "ops"
