"""Step runs: replay-safe begin and complete, atomic messages, overdue steps escalated once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from aftercare.engine.errors import NotFoundError, RegisterError
from aftercare.engine.register import CaseRecord, MessageDraft, Register
from aftercare.engine.register.models import Notification

from .conftest import T0

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
            assignee="role:support-lead", status="waiting",
        )
        again = register.begin_step(case.key, "triage", 1, started_at=T0 + timedelta(hours=1))
        assert again == first
        assert (first.status, first.assignee, first.is_open) == ("waiting", "role:support-lead", True)
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
        waiting = register.update_step(case.key, "triage", 1, status="waiting", assignee="person:li.na")
        assert (waiting.status, waiting.assignee) == ("waiting", "person:li.na")
        with pytest.raises(ValueError, match="use complete_step"):
            register.update_step(case.key, "triage", 1, status="done")
        done = register.complete_step(case.key, "triage", 1, {"decision": "approve"}, T0)
        assert register.update_step(case.key, "triage", 1, status="waiting", due_at=None) == done
        with pytest.raises(NotFoundError, match="no run of step 'verify'"):
            register.update_step(case.key, "verify", 1, status="waiting")

    def test_unknown_case_is_not_found(self, register: Register) -> None:
        with pytest.raises(NotFoundError):
            register.begin_step("ISS-0404", "triage", 1, started_at=T0)

    def test_open_steps_by_assignee(self, register: Register, open_case: OpenCase) -> None:
        a, b = open_case(), open_case()
        register.begin_step(a.key, "triage", 1, started_at=T0, assignee="person:li.na")
        register.begin_step(b.key, "triage", 1, started_at=T0, assignee="person:wang.wei")
        register.complete_step(b.key, "triage", 1, {}, T0)
        assert [s.case_key for s in register.open_steps()] == [a.key]
        assert [s.case_key for s in register.open_steps("person:li.na")] == [a.key]
        assert register.open_steps("person:wang.wei") == []


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
