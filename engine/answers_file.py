"""Answers files: people's answers scripted per step, read once for ``simulate``, ``run --answers`` and scenarios.

An answers file maps step ids to one answer or a list of answers, taken in order as the
case asks: ``{decision: approve|reject, by: PERSON, comment: ..., FIELD: VALUE}``, plus
``after: DURATION`` (when the answer comes, counted from the moment the step starts
waiting: the simulator advances its clock, ``aftercare run`` submits in that order without
sleeping) and ``timeout: true`` (nobody answers: the step's due passes). An answer scripted
after the due of a step with ``on_timeout`` is too late: the timeout wins, as at run time.
A ``call`` step is scripted too, never run: ``{output: {...}}`` or ``{error: "..."}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .answers import Submission
from .durations import parse_duration
from .errors import DefinitionError, Problem
from .spec import CallStep, ProcessSpec, StartStep, is_human
from .suggest import did_you_mean
from .yaml_source import PathKey, SourceDocument, format_path

ANSWER_KEYS = frozenset({"decision", "by", "comment", "after", "timeout"})
"""The keys of a scripted answer that are not the form's fields."""


@dataclass(frozen=True)
class ScriptedAnswer:
    """One scripted answer to a human step: what the person submits, and when (or that nobody does)."""

    submission: Submission
    after: timedelta | None = None
    timeout: bool = False
    outcome: str | None = None
    """For a ``start`` step with ``wait``: the outcome its next linked case ends with."""
    output: Mapping[str, Any] | None = None
    """For a ``call`` step: the output its kind returns this visit."""
    error: str | None = None
    """For a ``call`` step: the message its last attempt fails with this visit (it takes ``on_error``)."""


class ScriptedAnswers:
    """The answers of a file, a queue per step, taken in order as the case asks."""

    def __init__(self, queues: Mapping[str, list[ScriptedAnswer]] | None = None) -> None:
        self._queues = {step: list(answers) for step, answers in (queues or {}).items()}

    @classmethod
    def parse(
        cls, data: Any, spec: ProcessSpec, *, document: SourceDocument | None = None, at: PathKey = (), file: str = "answers"
    ) -> ScriptedAnswers:
        """Read answers given as data (a file's or a scenario's), checking them against the definition.

        Args:
            data: the mapping of step ids to answers (None: no answers).
            spec: the definition they answer.
            document: the YAML document the data came from, so problems point at lines.
            at: where the data sits in that document (a scenario's ``answers``).
            file: the name problems carry when there is no document.

        Raises:
            DefinitionError: every problem at once, each with its place: an unknown step,
                a step people do not answer, an answer that is not a mapping, a bad
                ``after`` or ``timeout``.
        """
        problems: list[Problem] = []

        def problem(path: PathKey, message: str) -> None:
            full = (*at, *path)
            if document is not None:
                problems.append(document.problem(full, message))
            else:
                problems.append(Problem(file, 0, 0, format_path(full), message))

        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            problem((), "answers must be a mapping of step ids to answers")
            raise DefinitionError(problems)
        queues: dict[str, list[ScriptedAnswer]] = {}
        for step_id, given in data.items():
            name = str(step_id)
            if name not in spec.step_ids:
                problem((step_id,), f"unknown step {name!r}{did_you_mean(name, spec.step_ids)}")
                continue
            step = spec.step(name)
            linked = isinstance(step, StartStep) and step.wait is not None
            called = isinstance(step, CallStep)
            if not is_human(step) and not linked and not called:
                problem((step_id,), f"step {name!r} is a {step.type} step; answers are for approval, form and checklist steps"
                        " (and a start step with wait: the outcomes of its cases; a call step: its output or error)")
                continue
            items = given if isinstance(given, list) else [given]
            queue: list[ScriptedAnswer] = []
            for index, item in enumerate(items):
                where: PathKey = (step_id, index) if isinstance(given, list) else (step_id,)
                reader = _ending if linked else _called if called else _answer
                scripted = reader(item, where, problem)
                if scripted is not None:
                    queue.append(scripted)
            queues[name] = queue
        if problems:
            raise DefinitionError(problems)
        return cls(queues)

    def steps(self) -> list[str]:
        """The steps that have answers left."""
        return [step for step, queue in self._queues.items() if queue]

    def peek(self, step_id: str) -> ScriptedAnswer | None:
        """The next answer for a step, left in place."""
        queue = self._queues.get(step_id)
        return queue[0] if queue else None

    def pop(self, step_id: str) -> ScriptedAnswer | None:
        """Take the next answer for a step (None when there is none left)."""
        queue = self._queues.get(step_id)
        return queue.pop(0) if queue else None

    def left(self) -> dict[str, int]:
        """How many answers each step has left (steps with none left out)."""
        return {step: len(queue) for step, queue in self._queues.items() if queue}


def _ending(item: Any, where: PathKey, problem: Any) -> ScriptedAnswer | None:
    """How a linked case a ``start`` step waits for ends: ``{outcome: resolved, after: 2d}``."""
    if not isinstance(item, Mapping) or not isinstance(item.get("outcome"), str) or set(item) - {"outcome", "after"}:
        problem(where, f"a linked case's ending is a mapping such as {{outcome: resolved, after: 2d}}, got {item!r}")
        return None
    after: timedelta | None = None
    if item.get("after") is not None:
        try:
            after = parse_duration(str(item["after"]))
        except ValueError as error:
            problem((*where, "after"), f"after: {error}")
            return None
    return ScriptedAnswer(Submission(by=""), after=after, outcome=str(item["outcome"]))


def _called(item: Any, where: PathKey, problem: Any) -> ScriptedAnswer | None:
    """What a call step's kind gives this visit: ``{output: {status: 201}}`` or ``{error: "503 from tracker"}``."""
    keys = set(item) if isinstance(item, Mapping) else set()
    output, error = (item.get("output"), item.get("error")) if isinstance(item, Mapping) else (None, None)
    if len(keys) == 1 and isinstance(output, Mapping):
        return ScriptedAnswer(Submission(by=""), output={str(name): value for name, value in output.items()})
    if len(keys) == 1 and isinstance(error, str) and error.strip():
        return ScriptedAnswer(Submission(by=""), error=error)
    hint = did_you_mean(str(next(iter(keys))), ("output", "error")) if len(keys) == 1 and not keys & {"output", "error"} else ""
    problem(where, f"a call step is scripted as {{output: {{FIELD: VALUE}}}} or {{error: MESSAGE}}, got {item!r}{hint}")
    return None


def _answer(item: Any, where: PathKey, problem: Any) -> ScriptedAnswer | None:
    if not isinstance(item, Mapping):
        problem(where, f"an answer must be a mapping such as {{decision: approve, by: PERSON}}, got {item!r}")
        return None
    fine = True
    by = item.get("by")
    if not item.get("timeout") and (not isinstance(by, str) or not by.strip()):
        problem(where, "an answer needs 'by': the person who answers")
        fine = False
    after: timedelta | None = None
    if item.get("after") is not None:
        try:
            after = parse_duration(str(item["after"]))
        except ValueError as error:
            problem((*where, "after"), f"after: {error}")
            fine = False
    timeout = item.get("timeout", False)
    if not isinstance(timeout, bool):
        problem((*where, "timeout"), f"timeout: expected true or false, got {timeout!r}")
        fine = False
    decision = item.get("decision")
    comment = item.get("comment")
    if not fine:
        return None
    fields = {str(name): value for name, value in item.items() if name not in ANSWER_KEYS}
    submission = Submission(
        by=str(by or "").strip(),
        decision=None if decision is None else str(decision),
        comment=None if comment is None else str(comment),
        fields=fields,
    )
    return ScriptedAnswer(submission, after=after, timeout=bool(timeout))


__all__ = ["ANSWER_KEYS", "ScriptedAnswer", "ScriptedAnswers"]
