"""Prefect events of a case's life (DESIGN.md "Prefect events"), for Prefect Automations.

Each fact is built here as an :class:`AftercareEvent` (pure: a name, the case as the
resource, the process, step, people and the case's flow run as related resources, a
payload) and sent with Prefect's ``emit_event`` by :func:`emit`. docs/events.md lists them.

Once per fact: every event has a deterministic id (a uuid5 of its kind, the case with the
moment it opened, the step, visit, person and what tells two such facts apart), and Prefect's
server keeps one event per id (its publisher drops a repeat for 5 minutes, its triggers for
30, its events table for good). On top of that the flows emit where the register says the
fact is new (a step begun by this execution, an answer recorded, a breach marked first, a
cancel done), so a replay of a case's run hours later does not make an automation act twice.

Emitting never fails a case: without a Prefect API (no ``PREFECT_API_URL``: a run on
nothing, never a temporary server of its own) nothing is sent, and any error is logged.
Events go out on Prefect's own background worker, which drains at process exit.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aftercare.engine.clock import UTC
from aftercare.engine.team import TeamSpec
from aftercare.engine.waiting import parse_row

log = logging.getLogger(__name__)

CASE_OPENED = "aftercare.case.opened"
STEP_WAITING = "aftercare.step.waiting"
STEP_ANSWERED = "aftercare.step.answered"
ANSWER_REFUSED = "aftercare.answer.refused"
STEP_OVERDUE = "aftercare.step.overdue"
STEP_WITHDRAWN = "aftercare.step.withdrawn"
CASE_CLOSED = "aftercare.case.closed"
CASE_CANCELLED = "aftercare.case.cancelled"
CASE_OVERDUE = "aftercare.case.overdue"
"""Beyond DESIGN.md's eight: the case's own ``sla.due`` passed while it was open."""
EVENTS = (CASE_OPENED, STEP_WAITING, STEP_ANSWERED, ANSWER_REFUSED, STEP_OVERDUE, CASE_OVERDUE, STEP_WITHDRAWN, CASE_CLOSED, CASE_CANCELLED)

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://aftercare.example/events")
"""The namespace of the events' uuid5 ids (fixed: changing it would make every id new)."""

ID = "prefect.resource.id"
NAME = "prefect.resource.name"
ROLE = "prefect.resource.role"


class CaseLike(Protocol):
    """What an event needs of a case: a register record or a run's case state."""

    @property
    def key(self) -> str: ...
    @property
    def process(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def opened_at(self) -> datetime: ...


@dataclass(frozen=True)
class AftercareEvent:
    """One Prefect event, ready for ``emit_event``."""

    event: str
    resource: dict[str, str]
    related: list[dict[str, str]]
    payload: dict[str, Any]
    occurred: datetime
    id: uuid.UUID
    case_run: str | None = None
    """The case's flow run: inside it Prefect adds the run's own related resources (flow, deployment, tags)."""


@dataclass(frozen=True)
class Subject:
    """The case an event is about, with its flow run and the team that names its people."""

    case: CaseLike
    flow_run_id: str | None = None
    team: TeamSpec | None = None
    parent: str | None = None

    def person(self, person: str, role: str) -> dict[str, str]:
        """A person as a related resource in a role (``assignee``, ``answerer``, ``actor``)."""
        name = self.team.display(person) if self.team is not None else person
        return {ID: f"aftercare.person.{person}", ROLE: role, NAME: name, "aftercare.person": person}


def _moment(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return _moment(value).isoformat() if value is not None else None


def event_id(kind: str, case: CaseLike, *parts: object) -> uuid.UUID:
    """The id of one fact: the same fact (a replay, a second emitter) gives the same id.

    The case's opening moment (to the second) is part of it: two registers on one Prefect
    server may each have a ``CHG-0001``.
    """
    opened = _moment(case.opened_at).isoformat(timespec="seconds")
    text = "|".join([kind, case.key, opened, *("" if part is None else str(part) for part in parts)])
    return uuid.uuid5(NAMESPACE, text)


def case_resource(case: CaseLike) -> dict[str, str]:
    """The case as an event's resource: ``aftercare.case.KEY``, named "KEY · title"."""
    return {
        ID: f"aftercare.case.{case.key}",
        NAME: f"{case.key} · {case.title}"[:200],
        "aftercare.case": case.key,
        "aftercare.process": case.process,
    }


def _related(subject: Subject, step: str | None = None, visit: int | None = None, title: str | None = None) -> list[dict[str, str]]:
    case = subject.case
    related = [
        {ID: f"aftercare.process.{case.process}", ROLE: "process", NAME: case.process, "aftercare.version": str(case.version)},
    ]
    if step is not None:
        base, instance = _split_row(step)
        resource = {ID: f"aftercare.step.{case.key}.{base}", ROLE: "step", NAME: title or base, "aftercare.step": base}
        if visit is not None:
            resource["aftercare.visit"] = str(visit)
        if instance is not None:
            resource["aftercare.instance"] = str(instance)
        related.append(resource)
    if subject.flow_run_id:
        related.append({ID: f"prefect.flow-run.{subject.flow_run_id}", ROLE: "flow-run", NAME: f"{case.key} · {case.title}"[:200]})
    if subject.parent:
        related.append({ID: f"aftercare.case.{subject.parent}", ROLE: "parent-case", NAME: subject.parent})
    return related


def _split_row(row: str) -> tuple[str, int | None]:
    """A register step id to (step, instance number): ``review[2]`` is instance 2 of ``review``, as the register names it."""
    base, index = parse_row(row)
    return base, None if index is None else index + 1


def _payload(subject: Subject, step: str | None = None, visit: int | None = None, **values: Any) -> dict[str, Any]:
    case = subject.case
    payload: dict[str, Any] = {"case": case.key, "process": case.process, "version": case.version, "title": case.title}
    if step is not None:
        base, instance = _split_row(step)
        payload["step"] = base
        if instance is not None:
            payload["instance"] = instance
    if visit is not None:
        payload["visit"] = visit
    payload.update(values)
    return payload


def _event(kind: str, subject: Subject, occurred: datetime, related: list[dict[str, str]], payload: dict[str, Any], *id_parts: object) -> AftercareEvent:
    return AftercareEvent(
        event=kind,
        resource=case_resource(subject.case),
        related=related,
        payload=payload,
        occurred=_moment(occurred),
        id=event_id(kind, subject.case, *id_parts),
        case_run=subject.flow_run_id,
    )


# --- the facts: DESIGN.md's eight, and case.overdue ------------------------------------------------


def case_opened(subject: Subject, *, inputs: Mapping[str, Any], due_at: datetime | None = None, started_by_step: str | None = None) -> AftercareEvent:
    """A case opened (its run took it up for the first time)."""
    payload = _payload(subject, inputs=dict(inputs), due=_iso(due_at), opened=_iso(subject.case.opened_at), parent=subject.parent, started_by_step=started_by_step)
    return _event(CASE_OPENED, subject, subject.case.opened_at, _related(subject), payload)


def step_waiting(
    subject: Subject, step: str, visit: int, *, title: str, kind: str, eligible: Sequence[str], started_at: datetime, due_at: datetime | None
) -> AftercareEvent:
    """A human step (or one ``for_each`` instance, ``step[i]``) began waiting for people."""
    related = [*_related(subject, step, visit, title), *(subject.person(person, "assignee") for person in eligible)]
    payload = _payload(subject, step, visit, step_title=title, type=kind, assignees=list(eligible), started=_iso(started_at), due=_iso(due_at))
    return _event(STEP_WAITING, subject, started_at, related, payload, step, visit)


def step_answered(
    subject: Subject, step: str, visit: int, *, person: str, decision: str, comment: str | None, fields: Mapping[str, Any],
    answered_at: datetime, decided: str | None,
) -> AftercareEvent:
    """A person's answer to a human step was recorded; ``decided`` is the step's decision when this answer settled it."""
    related = [*_related(subject, step, visit), subject.person(person, "answerer")]
    payload = _payload(subject, step, visit, person=person, decision=decision, comment=comment, fields=dict(fields), decided=decided)
    return _event(STEP_ANSWERED, subject, answered_at, related, payload, step, visit, person)


def answer_refused(subject: Subject, step: str, visit: int, *, person: str, reason: str, via: str, at: datetime) -> AftercareEvent:
    """An answer was refused (not someone the step names, a bad field, too late, answered already)."""
    related = [*_related(subject, step, visit), subject.person(person, "answerer")]
    payload = _payload(subject, step, visit, person=person, reason=reason, via=via)
    return _event(ANSWER_REFUSED, subject, at, related, payload, step, visit, person, _iso(at))


def step_overdue(
    subject: Subject, step: str, visit: int, *, due_at: datetime, at: datetime, eligible: Sequence[str], escalate_to: Sequence[str] = ()
) -> AftercareEvent:
    """A waiting human step's ``due`` passed (once per breach: a new due is a new breach)."""
    related = [*_related(subject, step, visit), *(subject.person(person, "assignee") for person in eligible)]
    overdue = max(0.0, (_moment(at) - _moment(due_at)).total_seconds())
    payload = _payload(subject, step, visit, due=_iso(due_at), overdue_seconds=round(overdue, 3), assignees=list(eligible), escalate_to=list(escalate_to))
    return _event(STEP_OVERDUE, subject, at, related, payload, step, visit, _iso(due_at))


def step_withdrawn(subject: Subject, step: str, visit: int, *, reason: str, at: datetime, eligible: Sequence[str] = ()) -> AftercareEvent:
    """A waiting step was withdrawn (a join went on, an ``end`` elsewhere, enough instances, a cancel)."""
    related = [*_related(subject, step, visit), *(subject.person(person, "assignee") for person in eligible)]
    payload = _payload(subject, step, visit, reason=reason, assignees=list(eligible))
    return _event(STEP_WITHDRAWN, subject, at, related, payload, step, visit)


def case_closed(subject: Subject, *, outcome: str, closed_at: datetime) -> AftercareEvent:
    """A case ended at an ``end`` step (or after its last step) with its outcome."""
    seconds = (_moment(closed_at) - _moment(subject.case.opened_at)).total_seconds()
    payload = _payload(subject, outcome=outcome, opened=_iso(subject.case.opened_at), closed=_iso(closed_at), cycle_time=round(seconds, 3))
    return _event(CASE_CLOSED, subject, closed_at, _related(subject), payload)


def case_overdue(subject: Subject, *, due_at: datetime, at: datetime, escalate_to: Sequence[str] = ()) -> AftercareEvent:
    """A case's ``sla.due`` passed while it was open (once per due: a due moved by ``sla.pause_while`` is a new breach)."""
    overdue = max(0.0, (_moment(at) - _moment(due_at)).total_seconds())
    payload = _payload(subject, due=_iso(due_at), overdue_seconds=round(overdue, 3), escalate_to=list(escalate_to))
    return _event(CASE_OVERDUE, subject, at, _related(subject), payload, _iso(due_at))


def case_cancelled(subject: Subject, *, by: str, reason: str, at: datetime, withdrawn: Iterable[str] = ()) -> AftercareEvent:
    """A case was cancelled (``aftercare cancel``, Cancel in the Prefect UI, or with the case that waited for it)."""
    related = _related(subject)
    if subject.team is not None and by in subject.team.people:  # not ``prefect-ui``, who is no person
        related.append(subject.person(by, "actor"))
    payload = _payload(subject, by=by, reason=reason, withdrawn=list(withdrawn), outcome="cancelled")
    return _event(CASE_CANCELLED, subject, at, related, payload)


# --- sending -----------------------------------------------------------------------------------


_SENT: OrderedDict[uuid.UUID, None] = OrderedDict()
"""Ids this process sent lately: Prefect's worker fails on an id queued twice (it keys its queue by id)."""
_REMEMBERED = 10_000
_lock = threading.Lock()


def emit(event: AftercareEvent) -> bool:
    """Send an event to the Prefect API of the calling thread; False when it was not sent (or sent already). Never raises."""
    try:
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            return False  # no server to tell; Prefect would start a temporary one of its own
        with _lock:
            if event.id in _SENT:
                return False
            _SENT[event.id] = None
            while len(_SENT) > _REMEMBERED:
                _SENT.popitem(last=False)
        return bool(contextvars.copy_context().run(_send, event))
    except Exception:  # noqa: BLE001 - an event is never worth a case
        log.warning("could not emit %s for %s", event.event, event.resource.get(ID), exc_info=True)
        return False


def forget_sent() -> None:
    """Forget which events this process sent (a test that sends one again, as another process would)."""
    with _lock:
        _SENT.clear()


def emit_all(events: Iterable[AftercareEvent]) -> int:
    """Send several events; how many were sent."""
    return sum(emit(event) for event in events)


def _send(event: AftercareEvent) -> bool:
    """In a copy of the caller's context: outside the case's own run, the run context is cleared first.

    Prefect's worker adds the current run (its flow, deployment, tags) as related
    resources; a timer run, a form run or a command must not pass for the case's run.
    """
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.events import emit_event

    current = FlowRunContext.get()
    run = getattr(current, "flow_run", None) if current is not None else None
    if run is None or event.case_run is None or str(run.id) != event.case_run:
        FlowRunContext.__var__.set(None)  # type: ignore[arg-type]  # this copy of the context only
        TaskRunContext.__var__.set(None)  # type: ignore[arg-type]
    sent = emit_event(
        event=event.event, resource=event.resource, related=event.related, payload=event.payload, occurred=event.occurred, id=event.id
    )
    return sent is not None


__all__ = [
    "ANSWER_REFUSED",
    "CASE_CANCELLED",
    "CASE_CLOSED",
    "CASE_OPENED",
    "CASE_OVERDUE",
    "EVENTS",
    "STEP_ANSWERED",
    "STEP_OVERDUE",
    "STEP_WAITING",
    "STEP_WITHDRAWN",
    "AftercareEvent",
    "Subject",
    "answer_refused",
    "case_cancelled",
    "case_closed",
    "case_opened",
    "case_overdue",
    "case_resource",
    "emit",
    "emit_all",
    "event_id",
    "forget_sent",
    "step_answered",
    "step_overdue",
    "step_waiting",
    "step_withdrawn",
]
