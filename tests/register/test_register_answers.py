"""Answers: one decision per step under concurrency, quorum and veto via the caller's rule."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest

from aftercare.engine.errors import AnswerError, NotFoundError
from aftercare.engine.register import AnswerRecord, CaseRecord, Register

from .conftest import T0
from .test_register_cases import run_at_once

OpenCase = Callable[..., CaseRecord]


Decide = Callable[[list[AnswerRecord]], Mapping[str, Any] | None]


def quorum(n: int) -> Decide:
    """The engine's rule in small: the first rejection vetoes, else ``n`` approvals decide.

    Like the engine it returns the step's whole result, which the register stores as given.
    """

    def decide(answers: list[AnswerRecord]) -> dict[str, Any] | None:
        if any(a.decision == "reject" for a in answers):
            decision = "reject"
        elif sum(a.decision == "approve" for a in answers) >= n:
            decision = "approve"
        else:
            return None
        last = answers[-1]
        return {"decision": decision, "decided_by": last.person, "comment": last.comment,
                "answers": [a.person for a in answers]}

    return decide


def slow(decide: Decide) -> Decide:
    """Widen the race window: hold the transaction open while deciding."""

    def wrapped(answers: list[AnswerRecord]) -> Mapping[str, Any] | None:
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
    # The result is what decide returned, exactly: the register adds nothing of its own.
    assert outcome.step.result == {
        "decision": "approve", "decided_by": "li.na", "comment": "looks right", "answers": ["li.na"],
    }
    assert [(a.person, a.fields) for a in outcome.answers] == [("li.na", {"priority": "P2"})]
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
    assert [(e.actor, e.after, e.detail) for e in refused] == [
        ("wang.wei", {"step": "triage", "visit": 1},
         "wang.wei cannot answer step 'triage' of ISS-0001: it is already decided (approve)")
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
    def broken(answers: list[AnswerRecord]) -> Mapping[str, Any] | None:
        raise RuntimeError("router bug")

    with pytest.raises(RuntimeError, match="router bug"):
        register.answer(waiting_case.key, "triage", 1, person="li.na", decision="approve",
                        decide=broken)
    assert register.answers(waiting_case.key, "triage", 1) == []


def test_a_result_without_a_decision_records_nothing(
    register: Register, waiting_case: CaseRecord
) -> None:
    with pytest.raises(ValueError, match="a decided step's result is a mapping holding 'decision'"):
        register.answer(waiting_case.key, "triage", 1, person="li.na", decision="approve",
                        decide=lambda answers: {"outcome": "approve"})
    assert register.answers(waiting_case.key, "triage", 1) == []
    run = register.step_run(waiting_case.key, "triage", 1)
    assert run is not None and run.is_open


class TestPauseAttempts:
    def test_an_answer_raises_the_pause_attempt_in_its_transaction(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        key = waiting_case.key
        first = register.answer(key, "triage", 1, person="li.na", decision="approve",
                                decide=quorum(3), pause_attempt=2)
        assert first.step.pause_attempt == 2
        # A lower count (a replay's late write) never takes it back.
        second = register.answer(key, "triage", 1, person="wang.wei", decision="approve",
                                 decide=quorum(3), pause_attempt=1)
        assert second.step.pause_attempt == 2
        third = register.answer(key, "triage", 1, person="zhang.san", decision="approve",
                                decide=quorum(3), pause_attempt=3)
        assert (third.decision, third.step.pause_attempt) == ("approve", 3)
        run = register.step_run(key, "triage", 1)
        assert run is not None and run.pause_attempt == 3

    def test_an_answer_without_a_count_leaves_it(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        outcome = register.answer(waiting_case.key, "triage", 1, person="li.na", decision="approve",
                                  decide=quorum(2))
        assert outcome.step.pause_attempt == 0

    def test_a_refused_answer_counts_the_wait_it_used_and_is_audited_once(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        key = waiting_case.key
        register.answer(key, "triage", 1, person="li.na", decision="approve", decide=quorum(2), pause_attempt=1)
        with pytest.raises(AnswerError):
            register.answer(key, "triage", 1, person="li.na", decision="approve", decide=quorum(2), pause_attempt=2)
        run = register.step_run(key, "triage", 1)
        assert run is not None and run.pause_attempt == 2
        assert len(register.answers(key, "triage", 1)) == 1
        refusals = [e for e in register.audit_events(key) if e.event == "answer.refused"]
        assert [(e.actor, e.after) for e in refusals] == [("li.na", {"step": "triage", "visit": 1})]

    def test_a_failing_decide_leaves_the_count(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        def broken(answers: list[AnswerRecord]) -> Mapping[str, Any] | None:
            raise RuntimeError("router bug")

        with pytest.raises(RuntimeError):
            register.answer(waiting_case.key, "triage", 1, person="li.na", decision="approve",
                            decide=broken, pause_attempt=4)
        run = register.step_run(waiting_case.key, "triage", 1)
        assert run is not None and run.pause_attempt == 0


class TestRefuseAnswer:
    def test_a_refusal_is_audited_and_counts_a_wait(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        key = waiting_case.key
        at = T0 + timedelta(hours=2)
        register.refuse_answer(key, "triage", 1, person="zhang.san", reason="zhang.san may not answer 'triage'",
                               via="ui", pause_attempt=1, at=at)
        run = register.step_run(key, "triage", 1)
        assert run is not None and (run.pause_attempt, run.is_open) == (1, True)
        [refused] = [e for e in register.audit_events(key) if e.event == "answer.refused"]
        assert (refused.actor, refused.at, refused.after, refused.detail) == (
            "zhang.san", at, {"step": "triage", "visit": 1, "via": "ui"}, "zhang.san may not answer 'triage'",
        )
        assert register.answers(key, "triage", 1) == []

    def test_a_refusal_without_a_count_or_via(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        key = waiting_case.key
        register.refuse_answer(key, "triage", 1, person="zhang.san", pause_attempt=3, reason="first")
        register.refuse_answer(key, "triage", None, person="zhang.san", reason="not eligible")
        register.refuse_answer(key, "triage", 1, person="zhang.san", reason="late", pause_attempt=2)
        run = register.step_run(key, "triage", 1)
        assert run is not None and run.pause_attempt == 3  # the highest count given
        refused = [e for e in register.audit_events(key) if e.event == "answer.refused"]
        assert [e.after for e in refused] == [{"step": "triage", "visit": 1}] * 3
        assert [e.detail for e in refused] == ["first", "not eligible", "late"]

    def test_refusing_an_answer_to_a_step_not_reached_is_not_found(
        self, register: Register, waiting_case: CaseRecord
    ) -> None:
        with pytest.raises(NotFoundError, match="no run of step 'verify'"):
            register.refuse_answer(waiting_case.key, "verify", 1, person="li.na", reason="x", pause_attempt=1)
        assert all(e.event != "answer.refused" for e in register.audit_events(waiting_case.key))
