"""What each automatic step leaves as its result (what later expressions read): one builder per step type.

The simulator and the Prefect flow both build results here; human steps' results are
:func:`aftercare.engine.answers.human_result`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .router import Exit
from .spec import EndStep


def call_result(output: Mapping[str, Any]) -> dict[str, Any]:
    """A call step that succeeded: its kind's output fields."""
    return dict(output)


def call_error(message: str) -> dict[str, Any]:
    """A call step whose last attempt failed: the message (``STEP.error``), which takes ``on_error``."""
    return {"error": message}


def decision_result(chosen: Exit) -> dict[str, Any]:
    """A decision step: the exit it took (``when[0]``, ``otherwise``) and where it leads."""
    return {"exit": chosen.label, "next": chosen.target}


def end_result(step: EndStep) -> dict[str, Any]:
    """An end step: the case's outcome."""
    return {"outcome": step.outcome}


def notify_result(addressed: Iterable[str], subject: str, sent_at: datetime, messages: int) -> dict[str, Any]:
    """A notify step: who it reached, the subject, when, and how many messages it queued.

    Args:
        addressed: the recipient of each message (``person:li.na``, ``role:on-call`` for a
            role's own channel, a channel URL named directly), in order; people are listed
            by id, each once.
        subject: the subject of the first message ("" when there was none).
        sent_at: when the messages were queued.
        messages: how many messages (one per recipient and channel).
    """
    recipients: list[str] = []
    for recipient in addressed:
        who = recipient.removeprefix("person:")
        if who not in recipients:
            recipients.append(who)
    return {"recipients": recipients, "subject": subject, "sent_at": sent_at.isoformat(), "messages": messages}


def record_result(values: Mapping[str, Any]) -> dict[str, Any]:
    """A record step: the values it wrote (``status`` included)."""
    return dict(values)


def start_result(process: str, cases: Iterable[str]) -> dict[str, Any]:
    """A start step: the process and the keys of the cases it opened (``case``: the first)."""
    keys = list(cases)
    return {"process": process, "cases": keys, "case": keys[0] if keys else None}


def wait_result(until: datetime, fired_at: datetime) -> dict[str, Any]:
    """A wait step: when it was to end and when it did."""
    return {"until": until.isoformat(), "fired_at": fired_at.isoformat()}
