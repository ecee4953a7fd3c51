"""The state of one running case and the scope its templates and expressions see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .register.records import CaseRecord

CASE_ATTRIBUTES = frozenset(
    {"key", "title", "process", "version", "status", "outcome", "opened_at", "due_at", "url", "parent", "fields"}
)


@dataclass
class CaseState:
    """A case as the driver moves it: identity, inputs, results by step, the path taken.

    ``active`` is a set so that parallel branches (planned for v2) fit without a rewrite;
    in v1 it holds at most one step.
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

    @classmethod
    def from_record(cls, record: CaseRecord, *, url: str | None = None) -> CaseState:
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
