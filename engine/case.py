"""The state of one running case and the scope its templates and expressions see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .durations import WorkingTime, due_after
from .errors import AnswerError
from .spec import ProcessSpec
from .values import coerce_all

CASE_ATTRIBUTES = frozenset(
    {"key", "title", "process", "version", "status", "outcome", "opened_at", "due_at", "url", "parent", "fields"}
)


TITLE_INPUTS = ("title", "topic")
"""The inputs that title a case, in order; without them the process's title does."""


def case_title(spec: ProcessSpec, inputs: Mapping[str, Any]) -> str:
    """A case's title: its ``title`` input, else its ``topic``, else the process's title."""
    for name in TITLE_INPUTS:
        if inputs.get(name):
            return str(inputs[name])
    return spec.title


@dataclass(frozen=True)
class Opening:
    """What a new case starts with: its inputs checked and typed, its title, its deadline."""

    inputs: dict[str, Any]
    title: str
    due_at: datetime | None


def opening(
    spec: ProcessSpec, given: Mapping[str, Any], people: Iterable[str], now: datetime, calendar: WorkingTime | None = None
) -> Opening:
    """Check a new case's inputs against the process's start form (defaults filled in); its due on ``calendar``.

    Raises:
        AnswerError: an input is missing, unknown or does not fit its type (every problem named).
    """
    try:
        inputs = coerce_all(spec.inputs, given, people)
    except ValueError as error:
        raise AnswerError(f"inputs of {spec.process}: {error}") from None
    due_at = due_after(now, spec.sla.due, calendar) if spec.sla else None
    return Opening(inputs=inputs, title=case_title(spec, inputs), due_at=due_at)


class CaseRow(Protocol):
    """A case as the register stores it (``CaseRecord``)."""

    @property
    def key(self) -> str: ...
    @property
    def process(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def inputs(self) -> dict[str, Any]: ...
    @property
    def opened_at(self) -> datetime: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def status(self) -> str: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def parent_key(self) -> str | None: ...
    @property
    def fields(self) -> dict[str, Any]: ...


@dataclass
class CaseState:
    """A case as the driver moves it: identity, inputs, results by step, the path taken.

    ``active`` is the router's position, a set of active steps (one per running branch).
    """

    key: str
    process: str
    version: int
    title: str
    inputs: dict[str, Any]
    opened_at: datetime
    due_at: datetime | None = None
    status: str = "open"
    outcome: str | None = None
    url: str | None = None
    parent: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    exits: list[tuple[str, str]] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    withdrawn: list[str] = field(default_factory=list)
    """The steps withdrawn while they waited (a join, an ``end`` in another branch, a cancel), each once."""

    @classmethod
    def from_record(cls, record: CaseRow, *, url: str | None = None) -> CaseState:
        """The state of a case as the register has it (results are filled in as steps replay)."""
        return cls(
            key=record.key,
            process=record.process,
            version=record.version,
            title=record.title,
            inputs=dict(record.inputs),
            opened_at=record.opened_at,
            due_at=record.due_at,
            status=record.status,
            outcome=record.outcome,
            url=url,
            parent=record.parent_key,
            fields=dict(record.fields),
        )

    def scope(self, now: datetime, **extra: Any) -> dict[str, Any]:
        """The names templates see: inputs, case, now, steps, and each step id."""
        case = {
            "key": self.key,
            "title": self.title,
            "process": self.process,
            "version": self.version,
            "status": self.status,
            "outcome": self.outcome,
            "opened_at": self.opened_at.isoformat(),
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "url": self.url,
            "parent": self.parent,
            "fields": dict(self.fields),
            **self.fields,
        }
        scope: dict[str, Any] = {"inputs": dict(self.inputs), "case": case, "now": now, "steps": dict(self.results)}
        for step_id, result in self.results.items():
            if step_id not in scope:
                scope[step_id] = result
        scope.update(extra)
        return scope

    def next_visit(self, step_id: str) -> int:
        """The visit number the step is about to have (1 the first time)."""
        return self.visits.get(step_id, 0) + 1
