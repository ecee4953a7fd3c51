"""Answers: one decision per step under concurrency, quorum and veto via the caller's rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from aftercare.engine.errors import AnswerError, NotFoundError
from aftercare.engine.register import AnswerRecord, CaseRecord, Register

from .conftest import T0
from .test_register_cases import run_at_once

OpenCase = Callable[..., CaseRecord]


def quorum(n: int) -> Callable[[list[AnswerRecord]], str | None]:
    """The router's rule in small: the first rejection vetoes, else ``n`` approvals decide."""

    def decide(answers: list[AnswerRecord]) -> str | None:
        if any(a.decision == "reject" for a in answers):
            return "reject"
        if sum(a.decision == "approve" for a in answers) >= n:
            return "approve"
        return None

    return decide


def slow(decide: Callable[[list[AnswerRecord]], str | None]) -> Callable[[list[AnswerRecord]], str | None]:
    """Widen the race window: hold the transaction open while deciding."""

    def wrapped(answers: list[AnswerRecord]) -> str | None:
        time.sleep(0.05)
        return decide(answers)

    return wrapped


@pytest.fixture
def waiting_case(register: Register, open_case: OpenCase) -> CaseRecord:
    case = open_case()
    register.begin_step(case.key, "triage", 1, started_at=T0, status="waiting")
    return case


def test_a_quorum_one_answer_decides(register: Register, waiting_case: CaseRecord) -> None:
    outcome = register.answer(
        waiting_case.key, "triage", 1, person="li.na", decision="approve", comment="looks right",
        fields={"priority": "P2"}, answered_at=T0 + timedelta(hours=1), decide=quorum(1),
    )
    assert outcome.decided and outcome.decision == "approve"
    assert outcome.step.status == "done"
    assert outcome.step.finished_at == T0 + timedelta(hours=1)
    result = outcome.step.result
    assert result is not None
    assert result["priority"] == "P2"
    assert (result["decision"], result["decided_by"], result["comment"]) == (
        "approve", "li.na", "looks right",
    )
    assert [a["person"] for a in result["answers"]] == ["li.na"]
    assert register.step_run(waiting_case.key, "triage", 1) == outcome.step


def test_quorum_two_waits_for_a_second_person(
    register: Register, waiting_case: CaseRecord
) -> None:
    key = waiting_case.key
    first = register.answer(key, "triage", 1, person="li.na", decision="approve",
                            answered_at=T0, decide=quorum(2))
    assert not first.decided and first.step.status == "waiting"
    with pytest.raises(AnswerError, match="li.na already answered step 'triage' of ISS-0001"):
        register.answer(key, "triage", 1, person="li.na", decision="approve", decide=quorum(2))
    second = register.answer(key, "triage", 1, person="wang.wei", decision="approve",
                             fields={"priority": "P1"}, answered_at=T0 + timedelta(minutes=5),
                             decide=quorum(2))
    assert second.decision == "approve"
    assert [a.person for a in second.answers] == ["li.na", "wang.wei"]
    assert [a.person for a in register.answers(key, "triage", 1)] == ["li.na", "wang.wei"]


def test_a_rejection_vetoes(register: Register, waiting_case: CaseRecord) -> None:
    key = waiting_case.key
    register.answer(key, "triage", 1, person="li.na", decision="approve", decide=quorum(2))
    outcome = register.answer(key, "triage", 1, person="wang.wei", decision="reject",
                              comment="not a bug", decide=quorum(2))
    assert outcome.decision == "reject"
    assert outcome.step.result is not None and outcome.step.result["comment"] == "not a bug"


def test_a_decided_step_refuses_more_answers_and_audits_the_refusal(
    register: Register, waiting_case: CaseRecord
) -> None:
    key = waiting_case.key
    register.answer(key, "triage", 1, person="li.na", decision="approve", decide=quorum(1))
    with pytest.raises(AnswerError, match=r"wang.wei cannot answer step 'triage' of ISS-0001: "
                                          r"it is already decided \(approve\)"):
        register.answer(key, "triage", 1, person="wang.wei", decision="reject", decide=quorum(1))
    assert len(register.answers(key, "triage", 1)) == 1
    refused = [e for e in register.audit_events(key) if e.event == "answer.refused"]
    assert [(e.actor, e.detail) for e in refused] == [
        ("wang.wei", "wang.wei cannot answer step 'triage' of ISS-0001: it is already decided (approve)")
    ]


def test_two_people_answering_at_once_yield_one_decision(
    register: Register, open_case: OpenCase
) -> None:
    for round_ in range(3):
        case = open_case()
        register.begin_step(case.key, "triage", 1, started_at=T0, status="waiting")
        people = ["li.na", "wang.wei"]
        results, errors = run_at_once(
            2,
            lambda i: register.answer(case.key, "triage", 1, person=people[i], decision="approve",
                                      decide=slow(quorum(1))),
        )
        assert len(results) == 1, f"round {round_}: {results} {errors}"
        assert len(errors) == 1 and isinstance(errors[0], AnswerError)
        assert "already decided" in str(errors[0])
        assert len(register.answers(case.key, "triage", 1)) == 1
        decided = [e for e in register.audit_events(case.key) if e.event == "step.decided"]
        assert len(decided) == 1


def test_no_visit_means_the_latest(register: Register, open_case: OpenCase) -> None:
    case = open_case()
    register.begin_step(case.key, "verify", 1, started_at=T0, status="waiting")
    register.answer(case.key, "verify", 1, person="li.na", decision="reject", decide=quorum(1))
    register.begin_step(case.key, "verify", 2, started_at=T0 + timedelta(days=1), status="waiting")
    outcome = register.answer(case.key, "verify", None, person="li.na", decision="approve",
                              decide=quorum(1))
    assert (outcome.step.visit, outcome.decision) == (2, "approve")
    assert [a.decision for a in register.answers(case.key, "verify")] == ["approve"]
    assert [a.decision for a in register.answers(case.key, "verify", 1)] == ["reject"]


def test_answering_a_step_not_reached_is_not_found(
    register: Register, waiting_case: CaseRecord
) -> None:
    with pytest.raises(NotFoundError, match="no run of step 'verify'"):
        register.answer(waiting_case.key, "verify", 1, person="li.na", decision="approve",
                        decide=quorum(1))


def test_an_error_in_decide_records_nothing(register: Register, waiting_case: CaseRecord) -> None:
    def broken(answers: list[AnswerRecord]) -> str | None:
        raise RuntimeError("router bug")

    with pytest.raises(RuntimeError, match="router bug"):
        register.answer(waiting_case.key, "triage", 1, person="li.na", decision="approve",
                        decide=broken)
    assert register.answers(waiting_case.key, "triage", 1) == []
