"""A case's history merged into one time-ordered list, and its plain-text rendering."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .records import (
    WAIT_TIMER,
    AnswerRecord,
    AuditRecord,
    CaseRecord,
    MessageRecord,
    StepRunRecord,
    Timeline,
    TimelineEntry,
)

# Entries at the same instant keep a causal order: the case opens, a step starts,
# people answer, the step finishes, its messages go out, audit notes follow.
_KIND_ORDER = {
    "case": 0,
    "step.started": 1,
    "answer": 2,
    "step.finished": 3,
    "message": 4,
    "audit": 5,
}


def build_timeline(
    case: CaseRecord,
    steps: Iterable[StepRunRecord],
    answers: Iterable[AnswerRecord],
    messages: Iterable[MessageRecord],
    events: Iterable[AuditRecord],
    children: Iterable[CaseRecord] = (),
) -> Timeline:
    """Assemble a :class:`Timeline`, merging every record into time-ordered entries.

    Args:
        case: the case.
        steps: its step runs.
        answers: its answers.
        messages: its outbox messages.
        events: its audit events.
        children: cases its ``start`` steps opened.
    """
    steps, answers, messages, events = tuple(steps), tuple(answers), tuple(messages), tuple(events)
    children = tuple(children)
    entries: list[tuple[datetime, int, int, TimelineEntry]] = []

    def add(entry: TimelineEntry, kind: str, seq: int) -> None:
        entries.append((entry.at, _KIND_ORDER[kind], seq, entry))

    for step in steps:
        started = f"step {step.step_id} #{step.visit} started"
        waiting_for = _waiting_for(step)
        if waiting_for:
            started += f", waiting for {waiting_for}"
        if step.due_at:
            started += f", due {format_time(step.due_at)}"
        add(TimelineEntry(step.started_at, "step.started", started, step.step_id, step.visit),
            "step.started", step.id)
        if step.finished_at is not None:
            finished = f"step {step.step_id} #{step.visit} {step.status}"
            if step.result:
                finished += f": {_compact(_headline(step.result))}"
            add(TimelineEntry(step.finished_at, "step.finished", finished, step.step_id,
                              step.visit), "step.finished", step.id)
    for answer in answers:
        text = f"{answer.person} answered {answer.step_id} #{answer.visit}: {answer.decision}"
        if answer.comment:
            text += f" — {answer.comment!r}"
        if answer.fields:
            text += f" {_compact(answer.fields)}"
        if answer.operator:
            text += f" (at the operator's shell, as the OS user {answer.operator})"
        add(TimelineEntry(answer.answered_at, "answer", text, answer.step_id, answer.visit),
            "answer", answer.id)
    for message in messages:
        add(TimelineEntry(message.created_at, "message.queued",
                          f"message to {message.recipient} via {message.channel}: "
                          f"{message.subject!r} [{message.status}]",
                          message.step_id, message.visit), "message", message.id)
        if message.delivered_at is not None:
            add(TimelineEntry(message.delivered_at, "message.delivered",
                              f"delivered to {message.recipient} ({message.attempts} attempts)",
                              message.step_id, message.visit), "message", message.id)
        if message.failed_at is not None:
            add(TimelineEntry(message.failed_at, "message.failed",
                              f"gave up on {message.recipient}: {message.last_error}",
                              message.step_id, message.visit), "message", message.id)
    for event in events:
        text = f"{event.event} by {event.actor}"
        if event.detail:
            text += f": {event.detail}"
        elif event.event == "case.updated" and event.before is not None and event.after:
            text += ": " + _changes(event.before, event.after)
        kind = "case" if event.event == "case.opened" else "audit"
        add(TimelineEntry(event.at, event.event, text), kind, event.id)
    for child in children:
        add(TimelineEntry(child.opened_at, "case.child",
                          f"started {child.key} ({child.process}) from step "
                          f"{child.started_by_step}", child.started_by_step), "message", child.id)

    entries.sort(key=lambda item: item[:3])
    return Timeline(
        case=case,
        steps=steps,
        answers=answers,
        messages=messages,
        events=events,
        children=children,
        entries=tuple(entry for *_, entry in entries),
    )


def render_timeline(timeline: Timeline) -> str:
    """Plain text of a case and its history, for ``aftercare show CASE``.

    Args:
        timeline: what :meth:`Register.timeline` returned.
    """
    case = timeline.case
    lines = [
        f"{case.key}  {case.title}",
        f"  process   {case.process} v{case.version}",
        f"  status    {case.status}" + (f" ({case.outcome})" if case.outcome else ""),
        f"  opened    {format_time(case.opened_at)}",
    ]
    if case.closed_at:
        lines.append(f"  closed    {format_time(case.closed_at)}")
    if case.due_at:
        lines.append(f"  due       {format_time(case.due_at)}")
    if case.current_step and case.closed_at is None:
        lines.append(f"  step      {case.current_step}")
    if case.parent_key:
        lines.append(f"  parent    {case.parent_key} (step {case.started_by_step})")
    if case.inputs:
        lines.append(f"  inputs    {_compact(case.inputs)}")
    if case.fields:
        lines.append(f"  fields    {_compact(case.fields)}")
    lines.append("")
    for entry in timeline.entries:
        lines.append(f"{format_time(entry.at)}  {entry.summary}")
    return "\n".join(lines) + "\n"


def format_time(at: datetime) -> str:
    """``2025-03-01 09:30:00Z``: UTC to the second."""
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


def _waiting_for(step: StepRunRecord) -> str:
    # People when the step names them; else the timer of a wait step; else nothing.
    if step.eligible:
        return ", ".join(step.eligible)
    if step.wait_kind == WAIT_TIMER:
        return "the timer"
    return ""


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    return "; ".join(
        f"{name} {_compact(before.get(name), 60)} → {_compact(value, 60)}"
        for name, value in after.items()
    )


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    # The full list of answers is shown line by line already.
    return {k: v for k, v in result.items() if k != "answers"}


def _compact(value: object, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"
