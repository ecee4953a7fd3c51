"""Step runs: replay-safe begin and complete, atomic messages, overdue steps escalated once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from aftercare.engine.errors import NotFoundError, RegisterError
from aftercare.engine.register import WAIT_PERSON, WAIT_TIMER, CaseRecord, MessageDraft, Register
from aftercare.engine.register.models import Notification

from .conftest import T0
from .test_register_cases import run_at_once

OpenCase = Callable[..., CaseRecord]


def draft(recipient: str, key: str) -> MessageDraft:
    return MessageDraft(
        recipient=recipient,
        channel="email",
        subject="ISS-0001 resolved",
        body="The printer works again.",
        idempotency_key=key,
    )


class TestBeginAndComplete:
    def test_begin_is_idempotent_and_moves_the_case(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        first = register.begin_step(
            case.key, "triage", 1, started_at=T0, due_at=T0 + timedelta(hours=4),
            eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON, status="waiting",
        )
        again = register.begin_step(case.key, "triage", 1, started_at=T0 + timedelta(hours=1), eligible=["zhang.san"])
        assert again == first
        assert (first.status, first.eligible, first.wait_kind, first.is_open) == (
            "waiting", ("li.na", "wang.wei"), "person", True,
        )
        assert (first.timed_out_at, first.pause_attempt) == (None, 0)
        assert register.case(case.key).current_step == "triage"
        assert register.step_runs(case.key) == [first]

    def test_a_step_completed_twice_is_stored_once(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        register.begin_step(case.key, "log", 1, started_at=T0)
        first = register.complete_step(
            case.key, "log", 1, {"status": "resolved"}, T0 + timedelta(minutes=1)
        )
        replay = register.complete_step(
            case.key, "log", 1, {"status": "something else"}, T0 + timedelta(minutes=5)
        )
        assert replay == first
        assert (first.status, first.result) == ("done", {"status": "resolved"})
        assert first.finished_at == T0 + timedelta(minutes=1)
        assert register.step_runs(case.key) == [first]

    def test_completing_a_step_never_begun_begins_it(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        run = register.complete_step(case.key, "route", 1, {"next": "hotfix"}, T0)
        assert (run.started_at, run.finished_at, run.status) == (T0, T0, "done")
        assert register.step_run(case.key, "route", 1) == run
    def test_a_record_step_changes_its_case_with_its_result_once(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        values = {"severity": "high", "status": "fixing"}
        first = register.complete_step(
            case.key, "classify", 1, values, T0, case_fields={"severity": "high"}, case_status="fixing"
        )
        replay = register.complete_step(
            case.key, "classify", 1, values, T0 + timedelta(minutes=5), case_fields={"severity": "low"}, case_status="x"
        )
        assert replay == first
        record = register.case(case.key)
        assert (record.fields, record.status, record.current_step) == ({"severity": "high"}, "fixing", "classify")
        [updated] = [e for e in register.audit_events(case.key) if e.event == "case.updated"]
        assert updated.after == {"status": "fixing", "fields": {"severity": "high"}}
        assert updated.at == T0

    def test_a_case_change_that_fails_leaves_the_step_open(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        register.begin_step(case.key, "classify", 1, started_at=T0)
        with pytest.raises(ValueError):
            register.complete_step(case.key, "classify", 1, {}, T0, case_fields={"bad": object()})
        [run] = register.step_runs(case.key)
        assert run.is_open
        assert register.case(case.key).fields == {}

        assert register.step_run(case.key, "route", 2) is None

    def test_loops_make_visits(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        for visit in (1, 2):
            register.complete_step(
                case.key, "resolve", visit, {"fix": f"try {visit}"}, T0 + timedelta(hours=visit)
            )
        runs = register.step_runs(case.key)
        assert [(r.step_id, r.visit, r.result) for r in runs] == [
            ("resolve", 1, {"fix": "try 1"}),
            ("resolve", 2, {"fix": "try 2"}),
        ]

    def test_messages_are_written_with_the_result_and_only_once(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        messages = [draft("li.na", "ISS-0001/tell/1/li.na"), draft("wang.wei", "ISS-0001/tell/1/wang.wei")]
        register.complete_step(case.key, "tell", 1, {"sent": 2}, T0, messages=messages)
        register.complete_step(case.key, "tell", 1, {"sent": 2}, T0, messages=messages)
        stored = register.messages(case_key=case.key)
        assert [(m.recipient, m.step_id, m.visit, m.status) for m in stored] == [
            ("li.na", "tell", 1, "pending"),
            ("wang.wei", "tell", 1, "pending"),
        ]

    def test_a_failing_completion_writes_neither_result_nor_messages(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        bad = MessageDraft("li.na", "email", "s", "b", "k", html=None)
        with pytest.raises(ValueError, match="result of step 'tell' cannot be stored as JSON"):
            register.complete_step(case.key, "tell", 1, {"bad": object()}, T0, messages=[bad])
        with pytest.raises(RegisterError):  # the database refuses: no case 999
            with register._write() as session:  # noqa: SLF001 - reaching the constraint
                session.add(Notification(
                    case_id=999, recipient="x", channel="email", subject="s", body="b",
                    idempotency_key="k", status="pending", attempts=0,
                    next_attempt_at=T0, created_at=T0,
                ))
        assert register.step_run(case.key, "tell", 1) is None
        assert register.messages() == []

    def test_statuses_are_checked(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        with pytest.raises(ValueError):
            register.begin_step(case.key, "triage", 1, started_at=T0, status="done")
        with pytest.raises(ValueError):
            register.complete_step(case.key, "triage", 1, {}, T0, status="waiting")

    def test_update_step_changes_open_steps_only(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        register.begin_step(case.key, "triage", 1, started_at=T0)
        waiting = register.update_step(
            case.key, "triage", 1, status="waiting", eligible=["li.na"], wait_kind=WAIT_PERSON
        )
        assert (waiting.status, waiting.eligible, waiting.wait_kind) == ("waiting", ("li.na",), "person")
        kept = register.update_step(case.key, "triage", 1, due_at=T0 + timedelta(hours=1))
        assert (kept.eligible, kept.wait_kind) == (("li.na",), "person")  # not given: unchanged
        cleared = register.update_step(case.key, "triage", 1, eligible=(), wait_kind=None)
        assert (cleared.eligible, cleared.wait_kind) == ((), None)
        with pytest.raises(ValueError, match="use complete_step"):
            register.update_step(case.key, "triage", 1, status="done")
        done = register.complete_step(case.key, "triage", 1, {"decision": "approve"}, T0)
        assert register.update_step(case.key, "triage", 1, status="waiting", due_at=None) == done
        with pytest.raises(NotFoundError, match="no run of step 'verify'"):
            register.update_step(case.key, "verify", 1, status="waiting")

    def test_unknown_case_is_not_found(self, register: Register) -> None:
        with pytest.raises(NotFoundError):
            register.begin_step("ISS-0404", "triage", 1, started_at=T0)

    def test_open_steps_of_a_person(self, register: Register, open_case: OpenCase) -> None:
        a, b, c = open_case(), open_case(), open_case()
        register.begin_step(a.key, "triage", 1, started_at=T0, eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON)
        register.begin_step(b.key, "triage", 1, started_at=T0, eligible=["wang.wei"], wait_kind=WAIT_PERSON)
        register.begin_step(c.key, "cool-down", 1, started_at=T0, wait_kind=WAIT_TIMER, status="waiting")
        register.complete_step(b.key, "triage", 1, {}, T0)
        assert [s.case_key for s in register.open_steps()] == [a.key, c.key]
        assert [s.case_key for s in register.open_steps("li.na")] == [a.key]
        assert [s.case_key for s in register.open_steps(person="wang.wei")] == [a.key]  # b's step is done
        # Whole ids only: neither a part of one nor the old "person:" reference matches.
        assert register.open_steps("li") == []
        assert register.open_steps("person:li.na") == []
        assert register.open_steps("zhang.san") == []

    def test_a_person_id_that_looks_like_json_matches_only_itself(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        register.begin_step(case.key, "triage", 1, started_at=T0, eligible=['o"brien', "李娜"], wait_kind=WAIT_PERSON)
        assert [s.eligible for s in register.open_steps('o"brien')] == [('o"brien', "李娜")]
        assert [s.case_key for s in register.open_steps("李娜")] == [case.key]
        assert register.open_steps('"') == []

    def test_open_steps_by_wait_kind(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        human = register.begin_step(case.key, "triage", 1, started_at=T0, eligible=["li.na"], wait_kind=WAIT_PERSON)
        timer = register.begin_step(case.key, "cool-down", 1, started_at=T0, wait_kind=WAIT_TIMER, status="waiting")
        register.begin_step(case.key, "log", 1, started_at=T0)
        assert register.open_steps(wait_kind=WAIT_PERSON) == [human]
        assert register.open_steps(wait_kind=WAIT_TIMER) == [timer]
        assert register.open_steps("li.na", wait_kind=WAIT_TIMER) == []
        assert len(register.open_steps()) == 3

    def test_eligible_and_wait_kind_are_checked(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        with pytest.raises(TypeError, match="not the string 'li.na'"):
            register.begin_step(case.key, "triage", 1, started_at=T0, eligible="li.na")
        with pytest.raises(ValueError, match="not 'people'"):
            register.begin_step(case.key, "triage", 1, started_at=T0, wait_kind="people")
        with pytest.raises(ValueError, match="not 'human'"):
            register.open_steps(wait_kind="human")
        assert register.step_runs(case.key) == []
        run = register.begin_step(case.key, "triage", 1, started_at=T0, eligible=["li.na", "li.na", "wang.wei"])
        assert run.eligible == ("li.na", "wang.wei")


class TestEscalation:
    def test_an_overdue_step_is_escalated_once(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        due = T0 + timedelta(hours=4)
        run = register.begin_step(case.key, "triage", 1, started_at=T0, due_at=due, status="waiting")
        register.begin_step(case.key, "other", 1, started_at=T0)  # no deadline
        assert register.overdue_steps(due - timedelta(seconds=1)) == []
        overdue = register.overdue_steps(due + timedelta(minutes=1))
        assert [(s.id, s.step_id) for s in overdue] == [(run.id, "triage")]

        assert register.mark_escalated(run.id, due + timedelta(minutes=1)) is True
        assert register.mark_escalated(run.id, due + timedelta(minutes=2)) is False
        assert register.overdue_steps(due + timedelta(hours=1)) == []
        stored = register.step_run(case.key, "triage", 1)
        assert stored is not None and stored.escalated_at == due + timedelta(minutes=1)
        assert [e.event for e in register.audit_events(case.key)][-1] == "step.escalated"

    def test_a_new_deadline_is_a_new_breach(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        run = register.begin_step(
            case.key, "triage", 1, started_at=T0, due_at=T0 + timedelta(hours=1), status="waiting"
        )
        assert register.mark_escalated(run.id, T0 + timedelta(hours=2))
        register.update_step(case.key, "triage", 1, due_at=T0 + timedelta(hours=3))
        assert [s.id for s in register.overdue_steps(T0 + timedelta(hours=4))] == [run.id]

    def test_overdue_steps_by_wait_kind(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        due = T0 + timedelta(hours=1)
        human = register.begin_step(case.key, "triage", 1, started_at=T0, due_at=due, eligible=["li.na"], wait_kind=WAIT_PERSON)
        timer = register.begin_step(case.key, "cool-down", 1, started_at=T0, due_at=due, wait_kind=WAIT_TIMER, status="waiting")
        later = due + timedelta(minutes=1)
        assert [s.id for s in register.overdue_steps(later, wait_kind=WAIT_PERSON)] == [human.id]
        assert [s.id for s in register.overdue_steps(later, wait_kind=WAIT_TIMER)] == [timer.id]
        assert {s.id for s in register.overdue_steps(later)} == {human.id, timer.id}

    def test_finished_steps_are_never_overdue(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        run = register.begin_step(
            case.key, "triage", 1, started_at=T0, due_at=T0 + timedelta(hours=1), status="waiting"
        )
        register.complete_step(case.key, "triage", 1, {"decision": "approve"}, T0)
        assert register.overdue_steps(T0 + timedelta(days=1)) == []
        assert register.mark_escalated(run.id, T0 + timedelta(days=1)) is False


class TestTimeout:
    def test_a_step_is_marked_timed_out_by_the_first_caller_only(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        due = T0 + timedelta(hours=4)
        run = register.begin_step(case.key, "triage", 1, started_at=T0, due_at=due, eligible=["li.na"], wait_kind=WAIT_PERSON)
        assert register.mark_timed_out(run.id, due + timedelta(seconds=5)) is True
        assert register.mark_timed_out(run.id, due + timedelta(seconds=9), actor="li.na") is False
        stored = register.step_run(case.key, "triage", 1)
        assert stored is not None
        assert (stored.timed_out_at, stored.is_open) == (due + timedelta(seconds=5), True)
        timed_out = [e for e in register.audit_events(case.key) if e.event == "step.timed_out"]
        assert [(e.actor, e.at, e.after, e.detail) for e in timed_out] == [
            ("aftercare", due + timedelta(seconds=5), {"step": "triage", "visit": 1}, "triage #1: due passed"),
        ]

    def test_callers_at_once_mark_a_step_once(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        run = register.begin_step(case.key, "triage", 1, started_at=T0, eligible=["li.na"], wait_kind=WAIT_PERSON)
        results, errors = run_at_once(4, lambda i: register.mark_timed_out(run.id, T0 + timedelta(seconds=i)))
        assert errors == []
        assert sorted(results) == [False, False, False, True]  # type: ignore[type-var]
        assert sum(e.event == "step.timed_out" for e in register.audit_events(case.key)) == 1

    def test_a_finished_step_is_not_marked(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        run = register.begin_step(case.key, "triage", 1, started_at=T0, eligible=["li.na"], wait_kind=WAIT_PERSON)
        register.complete_step(case.key, "triage", 1, {"decision": "approve"}, T0)
        assert register.mark_timed_out(run.id, T0 + timedelta(days=1)) is False
        assert register.mark_timed_out(run.id + 1000, T0) is False  # no such step run
        stored = register.step_run(case.key, "triage", 1)
        assert stored is not None and stored.timed_out_at is None
        assert all(e.event != "step.timed_out" for e in register.audit_events(case.key))
