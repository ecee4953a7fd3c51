"""A person's answer code in a waiting message: a mark when composed, the code itself only when sent.

The outbox keeps a message's body for retries, and the register must never hold a code in
clear. So a waiting message is stored with a mark (``[[answer-code:li.na]]``) where its
template shows ``answer_code``; the deliverer issues the code (``Register.issue_answer_code``,
which keeps only its salted hash and voids the person's last code) just before it sends, puts
it in the copy it sends, and forgets it. A retry of a failed send issues a fresh code, so
the code in the latest message a person got is the one that works. One delivery round
issues one code per person and step visit, whatever the number of that person's channels.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from aftercare.engine.register import MessageRecord

MARK = "[[answer-code:{person}]]"
_MARK = re.compile(r"\[\[answer-code:([A-Za-z0-9._@+-]+)\]\]")
VOID_TEXT = "(none: the step no longer waits for you)"
"""Shown instead of a code when the step was decided, or no longer names the person, before the message went out."""

Issue = Callable[[str, str, int, str], "str | None"]
"""(case, step, visit, person) → a new code, or None when the step no longer waits for that person."""


def mark(person: str) -> str:
    """The mark of ``person``'s code in a stored message."""
    return MARK.format(person=person)


def has_mark(message: MessageRecord) -> bool:
    """Whether a stored message waits for a code to be put in."""
    return bool(_MARK.search(message.body) or (message.html and _MARK.search(message.html)))


def with_codes(message: MessageRecord, issue: Issue, issued: dict[tuple[str, str, int, str], str | None]) -> MessageRecord:
    """The copy of ``message`` to send, its marks replaced by codes issued now (``issued`` remembers this round's)."""
    if message.case_key is None or message.step_id is None or message.visit is None:
        return message
    case_key, step_id, visit = message.case_key, message.step_id, message.visit

    def code(match: re.Match[str]) -> str:
        key = (case_key, step_id, visit, match.group(1))
        if key not in issued:
            issued[key] = issue(*key)
        return issued[key] or VOID_TEXT

    html = _MARK.sub(code, message.html) if message.html else message.html
    return dataclasses.replace(message, body=_MARK.sub(code, message.body), html=html)


__all__ = ["MARK", "VOID_TEXT", "has_mark", "mark", "with_codes"]
