"""Cases: keys, replay-safe opening, updates with audit, closing, JSON and time zones."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from aftercare.engine.errors import NotFoundError
from aftercare.engine.register import WAIT_PERSON, CaseRecord, Register, engine_for
from aftercare.engine.register.keys import format_key
from aftercare.engine.register.models import KeyCounter

from .conftest import T0

OpenCase = Callable[..., CaseRecord]


def run_at_once(count: int, work: Callable[[int], object]) -> tuple[list[object], list[BaseException]]:
    """Run ``work(i)`` in ``count`` threads released together; collect results and errors."""
    barrier = threading.Barrier(count)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def target(i: int) -> None:
        barrier.wait()
        try:
            value = work(i)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            with lock:
                errors.append(error)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


class TestKeys:
    def test_keys_count_up_per_prefix(self, open_case: OpenCase) -> None:
        assert [open_case().key for _ in range(3)] == ["ISS-0001", "ISS-0002", "ISS-0003"]
        assert open_case(key_prefix="RSK", process="risk-management").key == "RSK-0001"
        assert open_case().key == "ISS-0004"

    def test_keys_grow_beyond_four_digits(
        self, register: Register, register_url: str, open_case: OpenCase
    ) -> None:
        open_case()
        with engine_for(register_url).begin() as connection:
            connection.execute(update(KeyCounter).values(last=9999))
        assert open_case().key == "ISS-10000"
        assert format_key("ISS", 42) == "ISS-0042"

    def test_a_bad_prefix_is_refused(self, open_case: OpenCase) -> None:
        with pytest.raises(ValueError, match="key prefix 'IS S'"):
            open_case(key_prefix="IS S")

    def test_twenty_threads_get_twenty_distinct_keys(self, open_case: OpenCase) -> None:
        results, errors = run_at_once(20, lambda i: open_case(title=f"case {i}").key)
        assert errors == []
        assert sorted(results) == [f"ISS-{n:04d}" for n in range(1, 21)]  # type: ignore[type-var]


class TestReplaySafeOpening:
    def test_same_idempotency_key_returns_the_first_case(
        self, register: Register, open_case: OpenCase
    ) -> None:
        first = open_case(idempotency_key="ISS-0001/follow-up/1")
        again = open_case(idempotency_key="ISS-0001/follow-up/1", title="replayed")
        assert again == first
        assert len(register.cases()) == 1
        assert [e.event for e in register.audit_events(first.key)] == ["case.opened"]

    def test_same_flow_run_returns_the_first_case(
        self, register: Register, open_case: OpenCase
    ) -> None:
        first = open_case(flow_run_id="run-1")
        assert open_case(flow_run_id="run-1") == first
        assert register.case_for_run("run-1") == first
        assert register.case_for_run("run-2") is None

    def test_concurrent_replays_open_one_case(
        self, register: Register, open_case: OpenCase
    ) -> None:
        results, errors = run_at_once(8, lambda i: open_case(idempotency_key="same").key)
        assert errors == []
        assert set(results) == {"ISS-0001"}
        assert len(register.cases()) == 1

    def test_a_child_case_links_to_its_parent(
        self, register: Register, open_case: OpenCase
    ) -> None:
        parent = open_case()
        child = open_case(
            process="improvement-cycle",
            key_prefix="IMP",
            parent_key=parent.key,
            started_by_step="follow-up",
            idempotency_key=f"{parent.key}/follow-up/1",
        )
        assert (child.parent_key, child.started_by_step) == (parent.key, "follow-up")
        assert register.case(child.key).parent_key == parent.key
        assert [c.key for c in register.timeline(parent.key).children] == [child.key]

    def test_an_unknown_parent_is_not_found(self, open_case: OpenCase) -> None:
        with pytest.raises(NotFoundError, match="ISS-0999"):
            open_case(parent_key="ISS-0999")


class TestLookups:
    def test_unknown_case_is_not_found(self, register: Register) -> None:
        with pytest.raises(NotFoundError, match="no case 'ISS-0042'"):
            register.case("ISS-0042")

    def test_cases_filter_by_status_process_and_person(
        self, register: Register, open_case: OpenCase
    ) -> None:
        a, b = open_case(), open_case()
        c = open_case(process="risk-management", key_prefix="RSK")
        register.update_case(b.key, status="waiting")
        register.begin_step(a.key, "triage", 1, started_at=T0, eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON)
        assert [x.key for x in register.cases()] == [c.key, b.key, a.key]
        assert [x.key for x in register.cases(status="waiting")] == [b.key]
        assert [x.key for x in register.cases(process="risk-management")] == [c.key]
        assert [x.key for x in register.cases(person="li.na")] == [a.key]
        assert [x.key for x in register.cases(limit=1)] == [c.key]
        register.close_case(c.key, "done")
        assert [x.key for x in register.cases(open_only=True)] == [b.key, a.key]


    def test_cases_of_a_person_are_those_with_an_open_step_they_may_answer(
        self, register: Register, open_case: OpenCase
    ) -> None:
        a, b, c = open_case(), open_case(), open_case()
        register.begin_step(a.key, "triage", 1, started_at=T0, eligible=["li.na", "wang.wei"], wait_kind=WAIT_PERSON)
        register.begin_step(b.key, "triage", 1, started_at=T0, eligible=["wang.wei"], wait_kind=WAIT_PERSON)
        register.begin_step(b.key, "verify", 1, started_at=T0, eligible=["wang.wei", "zhang.san"], wait_kind=WAIT_PERSON)
        register.begin_step(c.key, "triage", 1, started_at=T0, eligible=["zhang.san"], wait_kind=WAIT_PERSON)
        register.complete_step(c.key, "triage", 1, {"decision": "approve"}, T0)
        assert [x.key for x in register.cases(person="wang.wei")] == [b.key, a.key]  # b once
        assert [x.key for x in register.cases(person="zhang.san")] == [b.key]  # c's step is done
        assert [x.key for x in register.cases(person="wang.wei", process="risk-management")] == []
        assert register.cases(person="wang") == []


class TestUpdates:
    def test_fields_merge_and_the_audit_keeps_before_and_after(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        register.update_case(case.key, fields={"resolution": "new roller"}, status="resolved")
        updated = register.update_case(case.key, fields={"cost": 12}, actor="li.na")
        assert updated.fields == {"resolution": "new roller", "cost": 12}
        assert updated.status == "resolved"
        events = register.audit_events(case.key)
        assert [e.event for e in events] == ["case.opened", "case.updated", "case.updated"]
        assert events[1].before == {"status": "open", "fields": {}}
        assert events[1].after == {"status": "resolved", "fields": {"resolution": "new roller"}}
        assert events[2].actor == "li.na"

    def test_an_update_that_changes_nothing_is_not_audited(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        register.update_case(case.key, status="open", fields={})
        assert [e.event for e in register.audit_events(case.key)] == ["case.opened"]

    def test_closing_twice_keeps_the_first_close(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case()
        first = register.close_case(case.key, "resolved", at=T0 + timedelta(days=2))
        again = register.close_case(case.key, "rejected", at=T0 + timedelta(days=3))
        assert again == first
        assert (first.status, first.outcome, first.closed_at) == (
            "closed",
            "resolved",
            T0 + timedelta(days=2),
        )
        assert not first.is_open
        assert [e.event for e in register.audit_events(case.key)] == ["case.opened", "case.closed"]

    def test_sla_breach_is_escalated_once(self, register: Register, open_case: OpenCase) -> None:
        case = open_case(due_at=T0 + timedelta(days=3))
        assert register.overdue_cases(T0 + timedelta(days=2)) == []
        late = T0 + timedelta(days=4)
        assert [c.key for c in register.overdue_cases(late)] == [case.key]
        assert register.mark_case_escalated(case.key, late) is True
        assert register.mark_case_escalated(case.key, late) is False
        assert register.overdue_cases(late) == []
        # A new deadline is a new breach.
        register.update_case(case.key, due_at=T0 + timedelta(days=5))
        assert [c.key for c in register.overdue_cases(T0 + timedelta(days=6))] == [case.key]


class TestValues:
    def test_inputs_with_chinese_text_round_trip(
        self, register: Register, open_case: OpenCase
    ) -> None:
        inputs = {
            "title": "打印机卡纸",
            "details": "三楼的打印机每天卡纸两次。\n请尽快处理！",
            "tags": ["紧急", "设备"],
            "nested": {"负责人": "李娜", "count": 3, "ratio": 0.5, "ok": True, "none": None},
        }
        case = open_case(title="打印机卡纸", inputs=inputs)
        register.update_case(case.key, fields={"结论": "更换滚轮"})
        stored = register.case(case.key)
        assert stored.inputs == inputs
        assert stored.title == "打印机卡纸"
        assert stored.fields == {"结论": "更换滚轮"}

    def test_datetimes_come_back_aware_in_utc(
        self, register: Register, open_case: OpenCase
    ) -> None:
        shanghai = timezone(timedelta(hours=8))
        opened = datetime(2025, 3, 1, 17, 30, 15, 123456, tzinfo=shanghai)
        case = open_case(opened_at=opened, due_at=opened + timedelta(days=3))
        stored = register.case(case.key)
        assert stored.opened_at == opened
        assert stored.opened_at.tzinfo == timezone.utc
        assert stored.opened_at.hour == 9 and stored.opened_at.microsecond == 123456
        assert stored.due_at is not None and stored.due_at.utcoffset() == timedelta(0)
        events = register.audit_events(case.key)
        assert events[0].at.tzinfo == timezone.utc

    def test_naive_datetimes_are_refused(self, open_case: OpenCase) -> None:
        with pytest.raises(ValueError, match="opened_at must be timezone-aware"):
            open_case(opened_at=datetime(2025, 3, 1, 9, 0))

    def test_dates_in_inputs_are_stored_as_iso_text(
        self, register: Register, open_case: OpenCase
    ) -> None:
        case = open_case(inputs={"visit_on": datetime(2025, 3, 1, tzinfo=timezone.utc).date()})
        assert register.case(case.key).inputs == {"visit_on": "2025-03-01"}
