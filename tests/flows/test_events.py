"""flows/events.py: the events' resources, related resources, payloads and ids; emitting to a real Prefect server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from aftercare.engine.clock import UTC, utc_now
from aftercare.engine.team import TeamSpec
from aftercare.flows import events
from tests.fixtures.prefect_server import PrefectServer

TEAM = TeamSpec.model_validate(
    {"team": {"people": {"li.na": {"name": "李娜 Li Na", "email": "li.na@example.com"}, "liu.yang": {"name": "Liu Yang", "email": "l@example.com"}}}}
)
OPENED = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    key: str = "ISS-0007"
    process: str = "issue-resolution"
    version: int = 3
    title: str = "Login fails"
    opened_at: datetime = OPENED


def _subject(case: Case | None = None, run: str | None = "6c0e3a5e-0000-4000-8000-000000000001") -> events.Subject:
    return events.Subject(case or Case(), run, TEAM, "ISS-0001")


def _roles(event: events.AftercareEvent) -> dict[str, str]:
    return {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event.related}


def test_a_waiting_step_names_the_case_process_step_people_and_run() -> None:
    due = OPENED + timedelta(hours=4)
    event = events.step_waiting(
        _subject(), "triage", 2, title="Triage ISS-0007", kind="approval", eligible=["li.na", "liu.yang"], started_at=OPENED, due_at=due
    )
    assert event.event == "aftercare.step.waiting"
    assert event.resource == {
        "prefect.resource.id": "aftercare.case.ISS-0007",
        "prefect.resource.name": "ISS-0007 · Login fails",
        "aftercare.case": "ISS-0007",
        "aftercare.process": "issue-resolution",
    }
    step = next(r for r in event.related if r["prefect.resource.role"] == "step")
    assert step == {
        "prefect.resource.id": "aftercare.step.ISS-0007.triage", "prefect.resource.role": "step",
        "prefect.resource.name": "Triage ISS-0007", "aftercare.step": "triage", "aftercare.visit": "2",
    }
    people = [r for r in event.related if r["prefect.resource.role"] == "assignee"]
    assert [(p["prefect.resource.id"], p["prefect.resource.name"]) for p in people] == [
        ("aftercare.person.li.na", "李娜 Li Na"), ("aftercare.person.liu.yang", "Liu Yang")
    ]
    roles = _roles(event)
    assert roles["process"] == "aftercare.process.issue-resolution"
    assert roles["flow-run"] == "prefect.flow-run.6c0e3a5e-0000-4000-8000-000000000001"
    assert roles["parent-case"] == "aftercare.case.ISS-0001"
    assert event.payload == {
        "case": "ISS-0007", "process": "issue-resolution", "version": 3, "title": "Login fails", "step": "triage", "visit": 2,
        "step_title": "Triage ISS-0007", "type": "approval", "assignees": ["li.na", "liu.yang"], "started": OPENED.isoformat(), "due": due.isoformat(),
    }
    assert event.occurred == OPENED


def test_an_instance_of_a_for_each_step_is_its_step_with_the_instance_number() -> None:
    event = events.step_answered(
        _subject(), "scores[2]", 1, person="li.na", decision="submit", comment=None, fields={"score": 4}, answered_at=OPENED, decided=None
    )
    step = next(r for r in event.related if r["prefect.resource.role"] == "step")
    assert step["prefect.resource.id"] == "aftercare.step.ISS-0007.scores"
    assert step["aftercare.instance"] == "2"
    assert event.payload["step"] == "scores" and event.payload["instance"] == 2
    assert _roles(event)["answerer"] == "aftercare.person.li.na"
    assert event.payload["fields"] == {"score": 4} and event.payload["decided"] is None


def test_ids_are_the_same_for_the_same_fact_and_differ_for_another() -> None:
    def waiting(subject: events.Subject, visit: int = 1) -> uuid.UUID:
        return events.step_waiting(subject, "triage", visit, title="t", kind="approval", eligible=["li.na"], started_at=OPENED, due_at=None).id

    assert waiting(_subject()) == waiting(_subject(run=None))  # a second emitter without the run says the same fact
    assert waiting(_subject()) != waiting(_subject(), visit=2)
    # Two registers on one server may each have ISS-0007: they opened at other moments.
    assert waiting(_subject()) != waiting(_subject(Case(opened_at=OPENED + timedelta(seconds=1))))
    # Sub-second precision of the stored moment does not matter (SQLite and PostgreSQL keep it differently).
    assert waiting(_subject()) == waiting(_subject(Case(opened_at=OPENED.replace(microsecond=0))))

    def answered(person: str) -> uuid.UUID:
        return events.step_answered(_subject(), "triage", 1, person=person, decision="approve", comment=None, fields={},
                                    answered_at=OPENED, decided=None).id

    assert answered("li.na") != answered("liu.yang")

    def refused(at: datetime) -> uuid.UUID:
        return events.answer_refused(_subject(), "triage", 1, person="liu.yang", reason="no", via="cli", at=at).id

    assert refused(OPENED) != refused(OPENED + timedelta(seconds=5))  # refused twice: two facts

    def overdue(due: datetime, at: datetime) -> uuid.UUID:
        return events.step_overdue(_subject(), "triage", 1, due_at=due, at=at, eligible=["li.na"]).id

    assert overdue(OPENED, OPENED) == overdue(OPENED, OPENED + timedelta(minutes=5))  # one breach, whoever notices it
    assert overdue(OPENED, OPENED) != overdue(OPENED + timedelta(hours=1), OPENED + timedelta(hours=1))  # a new due: a new breach
    kinds = {
        events.case_opened(_subject(), inputs={}).id, events.case_closed(_subject(), outcome="resolved", closed_at=OPENED).id,
        events.case_cancelled(_subject(), by="li.na", reason="dup", at=OPENED).id,
    }
    assert len(kinds) == 3


def test_payloads_of_the_case_events() -> None:
    closed = events.case_closed(_subject(), outcome="resolved", closed_at=OPENED + timedelta(hours=2))
    assert closed.payload["outcome"] == "resolved" and closed.payload["cycle_time"] == 7200.0
    cancelled = events.case_cancelled(_subject(), by="li.na", reason="duplicate", at=OPENED, withdrawn=["triage"])
    assert cancelled.payload["by"] == "li.na" and cancelled.payload["withdrawn"] == ["triage"]
    assert _roles(cancelled)["actor"] == "aftercare.person.li.na"
    by_ui = events.case_cancelled(_subject(), by="prefect-ui", reason="cancelled in the Prefect UI", at=OPENED)
    assert "actor" not in _roles(by_ui)  # prefect-ui is no person of the team
    overdue = events.step_overdue(_subject(), "triage", 1, due_at=OPENED, at=OPENED + timedelta(seconds=90), eligible=["li.na"],
                                  escalate_to=["huang.lei"])
    assert overdue.payload["overdue_seconds"] == 90.0 and overdue.payload["escalate_to"] == ["huang.lei"]
    opened = events.case_opened(_subject(), inputs={"title": "Login fails"}, due_at=OPENED + timedelta(days=3))
    assert opened.payload["inputs"] == {"title": "Login fails"} and opened.payload["parent"] == "ISS-0001"


def test_without_a_prefect_api_nothing_is_sent_and_no_server_starts() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        before = dict(EventsWorker._instances)
        assert events.emit(events.case_opened(_subject(), inputs={})) is False
        assert dict(EventsWorker._instances) == before


# --- on a real server ----------------------------------------------------------------------------


def read_case_events(server: PrefectServer, case_key: str, *, until: Callable[[list[Any]], bool], timeout: float = 90.0) -> list[Any]:
    """The aftercare events of a case, oldest first, once ``until(events)`` holds (the server stores them in batches)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    deadline = time.monotonic() + timeout
    while True:
        with server.client() as client:
            page = client.read_events(
                filter=EventFilter(
                    occurred=EventOccurredFilter(since=utc_now() - timedelta(hours=1), until=utc_now() + timedelta(minutes=1)),
                    event=EventNameFilter(prefix=["aftercare."]),
                    resource=EventResourceFilter(id=[f"aftercare.case.{case_key}"]),
                ),
                limit=50,  # the server's most
            )
        found = sorted(page.events, key=lambda e: (e.occurred, events.EVENTS.index(e.event)))  # a cancel's withdrawals share its moment
        if until(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"events of {case_key} after {timeout} s: {[e.event for e in found]}")
        time.sleep(0.5)


@pytest.mark.prefect_server
@pytest.mark.timeout(240)
def test_an_event_sent_twice_is_stored_once(prefect_server: PrefectServer) -> None:
    from prefect.events.worker import EventsWorker

    case = Case(key=f"EVU-{uuid.uuid4().hex[:6]}", opened_at=utc_now())
    opened = events.case_opened(_subject(case), inputs={"title": "x"})
    waiting = events.step_waiting(_subject(case), "triage", 1, title="Triage", kind="approval", eligible=["li.na"],
                                  started_at=utc_now(), due_at=None)
    assert events.emit(opened) and events.emit(waiting)
    assert not events.emit(opened)  # this process sent it already
    EventsWorker.drain_all(timeout=30)
    events.forget_sent()  # as another process (a replay, a second emitter) would
    assert events.emit(opened)
    EventsWorker.drain_all(timeout=30)
    time.sleep(6)  # the server persists events in batches (every 5 s): let a duplicate have its chance
    found = read_case_events(prefect_server, case.key, until=lambda stored: len(stored) >= 2)
    assert [(e.event, e.id) for e in found] == [("aftercare.case.opened", opened.id), ("aftercare.step.waiting", waiting.id)]
    stored = found[1]
    assert stored.resource.id == f"aftercare.case.{case.key}"
    assert {r.role: r.id for r in stored.related}["step"] == f"aftercare.step.{case.key}.triage"
    assert stored.payload["assignees"] == ["li.na"]


@pytest.mark.prefect_server
@pytest.mark.timeout(240)
def test_inside_the_cases_run_prefect_adds_the_run_and_elsewhere_nothing_of_another_run(prefect_server: PrefectServer) -> None:
    from prefect import flow
    from prefect.context import FlowRunContext
    from prefect.events.worker import EventsWorker

    case = Case(key=f"EVR-{uuid.uuid4().hex[:6]}", opened_at=utc_now())
    sent: dict[str, events.AftercareEvent] = {}

    @flow(name="aftercare-events-test", persist_result=False)
    def a_run(make: Callable[[str], events.AftercareEvent], name: str) -> str:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        sent[name] = make(str(context.flow_run.id))
        assert events.emit(sent[name])
        return str(context.flow_run.id)

    own_run = a_run(lambda run: events.case_opened(_subject(case, run), inputs={}), "own")
    other_run = a_run(lambda run: events.case_closed(_subject(case, own_run), outcome="done", closed_at=utc_now()), "other")
    EventsWorker.drain_all(timeout=30)
    found = {e.event: e for e in read_case_events(prefect_server, case.key, until=lambda stored: len(stored) >= 2)}
    own = found["aftercare.case.opened"]
    own_related = {r.id for r in own.related}
    assert f"prefect.flow-run.{own_run}" in own_related
    assert any(rid.startswith("prefect.flow.") for rid in own_related)  # Prefect's own: the run's flow
    other = found["aftercare.case.closed"]
    other_related = {r.id for r in other.related}
    assert f"prefect.flow-run.{own_run}" in other_related  # the case's run, named by us
    assert f"prefect.flow-run.{other_run}" not in other_related  # not the run that happened to send it
    assert not any(rid.startswith("prefect.flow.") for rid in other_related)


def test_a_case_past_its_sla_due_is_one_event_per_due() -> None:
    breach = events.case_overdue(_subject(), due_at=OPENED, at=OPENED + timedelta(minutes=5), escalate_to=["role:project-manager"])
    assert (breach.event, breach.resource["prefect.resource.id"]) == ("aftercare.case.overdue", "aftercare.case.ISS-0007")
    assert breach.payload["due"] == OPENED.isoformat() and breach.payload["overdue_seconds"] == 300.0
    assert breach.payload["escalate_to"] == ["role:project-manager"] and "process" in _roles(breach) and "step" not in _roles(breach)
    noticed_later = events.case_overdue(_subject(), due_at=OPENED, at=OPENED + timedelta(hours=1))
    moved = events.case_overdue(_subject(), due_at=OPENED + timedelta(hours=4), at=OPENED + timedelta(hours=5))  # sla.pause_while moved it
    assert breach.id == noticed_later.id != moved.id
    assert breach.id != events.step_overdue(_subject(), "triage", 1, due_at=OPENED, at=OPENED, eligible=["li.na"]).id
