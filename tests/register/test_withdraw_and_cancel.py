"""Withdrawn steps and cancelled cases: once only, audited, the linked cases waited for cancelled too, left alone by every sweep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from aftercare.engine.errors import AnswerError, NotFoundError
from aftercare.engine.register import (
    CASE_CANCELLED,
    CASE_QUEUED,
    STEP_WITHDRAWN,
    WAIT_PERSON,
    WAIT_TIMER,
    CaseRecord,
    Register,
)

from .conftest import T0
from .test_register_cases import run_at_once

OpenCase = Callable[..., CaseRecord]
LATER = T0 + timedelta(hours=2)


def _waiting(register: Register, key: str, step_id: str, *people: str, due: timedelta | None = None) -> None:
    register.begin_step(
        key, step_id, 1, started_at=T0, eligible=list(people), wait_kind=WAIT_PERSON, status="waiting",
        due_at=T0 + due if due is not None else None,
    )


class TestWithdrawStep:
    def test_an_open_step_is_withdrawn_once_with_its_reason(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        _waiting(register, case.key, "tech-review", "li.na")
        withdrawn = register.withdraw_step(case.key, "tech-review", 1, reason="the join 'reviewed' fired", at=LATER, actor="runner")
        assert withdrawn is not None
        assert (withdrawn.status, withdrawn.result, withdrawn.finished_at, withdrawn.is_open) == (
            STEP_WITHDRAWN, {"withdrawn": True}, LATER, False,
        )
        assert withdrawn.eligible == ("li.na",)  # who waited is kept: they are told
        again = register.withdraw_step(case.key, "tech-review", 1, reason="replayed", at=LATER + timedelta(hours=1))
        assert again is None
        assert register.step_run(case.key, "tech-review", 1) == withdrawn
        events = [e for e in register.audit_events(case.key) if e.event == "step.withdrawn"]
        assert [(e.actor, e.detail, e.after) for e in events] == [
            ("runner", "tech-review #1 withdrawn: the join 'reviewed' fired", {"step": "tech-review", "visit": 1, "status": "withdrawn"}),
        ]

    def test_a_step_never_begun_is_written_withdrawn(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        withdrawn = register.withdraw_step(case.key, "customer-review", 2, reason="an end in another branch", at=LATER)
        assert withdrawn is not None and (withdrawn.status, withdrawn.visit, withdrawn.started_at) == (STEP_WITHDRAWN, 2, LATER)
        assert register.withdraw_step(case.key, "customer-review", 2, reason="again") is None
        assert register.step_runs(case.key) == [withdrawn]
        assert len([e for e in register.audit_events(case.key) if e.event == "step.withdrawn"]) == 1
        # a replay that completes the step later keeps the withdrawal
        assert register.complete_step(case.key, "customer-review", 2, {"decision": "approve"}, LATER) == withdrawn

    def test_a_finished_step_is_not_withdrawn(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        done = register.complete_step(case.key, "log", 1, {"status": "resolved"}, T0)
        assert register.withdraw_step(case.key, "log", 1, reason="too late") is None
        assert register.step_run(case.key, "log", 1) == done

    def test_an_unknown_case_is_not_found(self, register: Register) -> None:
        with pytest.raises(NotFoundError, match="no case 'ISS-0404'"):
            register.withdraw_step("ISS-0404", "triage", 1, reason="x")

    def test_ten_withdrawals_at_once_withdraw_once(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        _waiting(register, case.key, "triage", "li.na")
        results, errors = run_at_once(10, lambda i: register.withdraw_step(case.key, "triage", 1, reason=f"call {i}"))
        assert errors == []
        assert len([r for r in results if r is not None]) == 1
        assert len([e for e in register.audit_events(case.key) if e.event == "step.withdrawn"]) == 1


class TestCancelCase:
    def test_a_waiting_case_is_cancelled_with_its_steps_withdrawn(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        register.complete_step(case.key, "acknowledge", 1, {"sent": 1}, T0)
        _waiting(register, case.key, "tech-review", "li.na", "wang.wei")
        _waiting(register, case.key, "customer-review", "huang.lei")
        outcome = register.cancel_case(case.key, by="li.na", reason="duplicate of ISS-0001", at=LATER)
        assert (outcome.case.status, outcome.case.outcome, outcome.case.closed_at, outcome.case.is_open) == (
            CASE_CANCELLED, CASE_CANCELLED, LATER, False,
        )
        assert [(run.step_id, run.status, run.result, run.eligible) for run in outcome.withdrawn] == [
            ("tech-review", STEP_WITHDRAWN, {"withdrawn": True}, ("li.na", "wang.wei")),
            ("customer-review", STEP_WITHDRAWN, {"withdrawn": True}, ("huang.lei",)),
        ]
        assert outcome.children == () and outcome.every() == (outcome,)
        assert register.case(case.key) == outcome.case
        assert {run.step_id: run.status for run in register.step_runs(case.key)} == {
            "acknowledge": "done", "tech-review": STEP_WITHDRAWN, "customer-review": STEP_WITHDRAWN,
        }
        events = [(e.event, e.actor, e.detail) for e in register.audit_events(case.key) if e.event != "case.opened"]
        assert events == [
            ("step.withdrawn", "li.na", "tech-review #1 withdrawn: duplicate of ISS-0001"),
            ("step.withdrawn", "li.na", "customer-review #1 withdrawn: duplicate of ISS-0001"),
            ("case.cancelled", "li.na", "duplicate of ISS-0001"),
        ]
        [cancelled] = [e for e in register.audit_events(case.key) if e.event == "case.cancelled"]
        assert cancelled.before is not None and cancelled.after is not None
        assert (cancelled.before["status"], cancelled.after["status"], cancelled.after["outcome"]) == ("open", "cancelled", "cancelled")
        assert "cancelled" in register.statuses()

    def test_a_second_cancel_is_refused_in_one_line_and_writes_nothing(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        _waiting(register, case.key, "triage", "li.na")
        register.cancel_case(case.key, by="li.na", reason="first")
        before = register.audit_events(case.key)
        with pytest.raises(AnswerError) as refused:
            register.cancel_case(case.key, by="wang.wei", reason="second")
        assert str(refused.value) == f"{case.key} is already cancelled (outcome cancelled); nothing to cancel"
        assert register.audit_events(case.key) == before

    def test_closed_and_failed_cases_are_refused(self, register: Register, open_case: OpenCase) -> None:
        closed, failed = open_case(), open_case()
        register.close_case(closed.key, "resolved")
        register.fail_case(failed.key, "boom")
        with pytest.raises(AnswerError, match=rf"^{closed.key} is closed \(outcome resolved\); nothing to cancel$"):
            register.cancel_case(closed.key, by="li.na", reason="x")
        with pytest.raises(AnswerError, match=rf"^{failed.key} is failed \(outcome failed\); nothing to cancel$"):
            register.cancel_case(failed.key, by="li.na", reason="x")
        with pytest.raises(NotFoundError, match="no case 'ISS-9999'"):
            register.cancel_case("ISS-9999", by="li.na", reason="x")

    def test_two_cancels_at_once_cancel_once(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        _waiting(register, case.key, "triage", "li.na")
        results, errors = run_at_once(6, lambda i: register.cancel_case(case.key, by=f"p{i}", reason=f"r{i}"))
        assert len(results) == 1 and len(errors) == 5
        assert all(isinstance(error, AnswerError) for error in errors), errors
        assert len([e for e in register.audit_events(case.key) if e.event == "case.cancelled"]) == 1
        assert len([e for e in register.audit_events(case.key) if e.event == "step.withdrawn"]) == 1

    def test_the_linked_cases_it_waits_for_are_cancelled_too(self, register: Register, open_case: OpenCase) -> None:
        parent = open_case()
        # an earlier start step that did not wait: its case goes on
        register.complete_step(parent.key, "follow-up", 1, {"cases": ["IMP-0001"]}, T0)
        free = open_case(key_prefix="IMP", process="improvement-cycle", parent_key=parent.key, started_by_step="follow-up")
        # a start step waiting for two linked cases (for_each), one of them already closed
        register.begin_step(parent.key, "fix-findings", 1, started_at=T0, status="waiting")
        child = open_case(parent_key=parent.key, started_by_step="fix-findings", idempotency_key="c1")
        done = open_case(parent_key=parent.key, started_by_step="fix-findings", idempotency_key="c2")
        queued = open_case(parent_key=parent.key, started_by_step="fix-findings", idempotency_key="c3", status=CASE_QUEUED)
        register.close_case(done.key, "resolved")
        # the waited-for child waits itself for a grandchild, and at a person
        register.begin_step(child.key, "deeper", 1, started_at=T0, status="waiting")
        grandchild = open_case(parent_key=child.key, started_by_step="deeper")
        _waiting(register, child.key, "triage", "liu.yang")
        _waiting(register, grandchild.key, "verify", "huang.lei")

        outcome = register.cancel_case(parent.key, by="li.na", reason="customer withdrew", at=LATER)
        assert [c.case.key for c in outcome.children] == [child.key, queued.key]
        assert [o.case.key for o in outcome.every()] == [parent.key, child.key, grandchild.key, queued.key]
        assert [run.step_id for run in outcome.withdrawn] == ["fix-findings"]
        assert [run.step_id for run in outcome.children[0].withdrawn] == ["deeper", "triage"]
        assert [run.step_id for run in outcome.children[0].children[0].withdrawn] == ["verify"]
        for key in (parent.key, child.key, grandchild.key, queued.key):
            assert (register.case(key).status, register.case(key).outcome) == (CASE_CANCELLED, CASE_CANCELLED)
        assert register.case(free.key).is_open and register.case(done.key).outcome == "resolved"
        [event] = [e for e in register.audit_events(child.key) if e.event == "case.cancelled"]
        assert (event.actor, event.detail) == ("li.na", f"{parent.key} was cancelled: customer withdrew")
        [event] = [e for e in register.audit_events(grandchild.key) if e.event == "case.cancelled"]
        assert event.detail == f"{child.key} was cancelled: {parent.key} was cancelled: customer withdrew"
        assert register.cases(status=CASE_QUEUED) == []  # nothing left for the housekeeping run to launch


class TestSweepsLeaveCancelledCasesAlone:
    def test_no_overdue_step_reminder_sla_or_open_step_is_left(self, register: Register, open_case: OpenCase) -> None:
        case = open_case(due_at=T0 + timedelta(hours=1), flow_run_id="run-1")
        other = open_case(due_at=T0 + timedelta(hours=1), flow_run_id="run-2")
        _waiting(register, case.key, "triage", "li.na", due=timedelta(minutes=30))
        register.begin_step(case.key, "cool-down", 1, started_at=T0, due_at=T0 + timedelta(minutes=5), wait_kind=WAIT_TIMER, status="waiting")
        _waiting(register, other.key, "triage", "li.na", due=timedelta(minutes=30))
        now = T0 + timedelta(days=1)
        assert {run.case_key for run in register.overdue_steps(now)} == {case.key, other.key}
        assert register.open_case_runs() == {"run-1": case.key, "run-2": other.key}

        register.cancel_case(case.key, by="li.na", reason="not needed", at=T0 + timedelta(minutes=10))
        assert [run.case_key for run in register.overdue_steps(now)] == [other.key]
        assert register.overdue_steps(now, wait_kind=WAIT_TIMER) == []
        assert [c.key for c in register.overdue_cases(now)] == [other.key]
        assert [run.case_key for run in register.open_steps()] == [other.key]
        assert register.open_steps(person="li.na") == [run for run in register.open_steps() if run.case_key == other.key]
        assert [c.key for c in register.cases(person="li.na")] == [other.key]
        assert register.open_case_runs() == {"run-2": other.key}
        assert register.cancelled_case_runs(T0) == {"run-1": case.key}
        assert register.cancelled_case_runs(T0 + timedelta(hours=1)) == {}

    def test_a_step_begun_after_the_cancel_by_a_late_replay_is_never_due(self, register: Register, open_case: OpenCase) -> None:
        case = open_case()
        register.cancel_case(case.key, by="li.na", reason="x", at=T0)
        _waiting(register, case.key, "verify", "huang.lei", due=timedelta(minutes=1))
        assert register.overdue_steps(T0 + timedelta(days=1)) == []
        assert register.open_steps() == []
