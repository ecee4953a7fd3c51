"""A waiting step handed on and a case's comments, on both backends (the row lock of a hand-on matters on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from aftercare.engine.errors import AnswerError
from aftercare.engine.register import WAIT_PERSON, CaseRecord, Register

from .conftest import T0


def test_a_hand_on_replaces_the_people_and_is_audited(register: Register, open_case: Callable[..., CaseRecord]) -> None:
    key = open_case().key
    register.begin_step(key, "triage", 1, started_at=T0, eligible=["li.na", "liu.yang"], wait_kind=WAIT_PERSON)
    done = register.reassign_step(key, "triage", 1, eligible=["huang.lei", "liu.yang"], by="li.na", reason="on leave", at=T0 + timedelta(hours=1))
    assert (done.before.eligible, done.after.eligible) == (("li.na", "liu.yang"), ("huang.lei", "liu.yang"))
    assert register.step_run(key, "triage", 1).eligible == ("huang.lei", "liu.yang")  # type: ignore[union-attr]
    audit = [e for e in register.audit_events(key) if e.event == "step.reassigned"]
    assert [(e.actor, e.before, e.after, e.detail) for e in audit] == [(
        "li.na", {"step": "triage", "visit": 1, "eligible": ["li.na", "liu.yang"]}, {"step": "triage", "visit": 1, "eligible": ["huang.lei", "liu.yang"]},
        "triage #1 from li.na, liu.yang to huang.lei, liu.yang: on leave",
    )]
    assert done.audit == audit[0]


def test_a_decided_step_is_not_handed_on(register: Register, open_case: Callable[..., CaseRecord]) -> None:
    key = open_case().key
    register.begin_step(key, "triage", 1, started_at=T0, eligible=["li.na"], wait_kind=WAIT_PERSON)
    register.complete_step(key, "triage", 1, {"decision": "approve"}, T0 + timedelta(minutes=5))
    with pytest.raises(AnswerError, match="is done; only a waiting step is handed on"):
        register.reassign_step(key, "triage", 1, eligible=["liu.yang"], by="li.na")
    with pytest.raises(AnswerError, match="at least one person"):
        register.reassign_step(key, "triage", 1, eligible=[], by="li.na")


def test_comments_in_order_and_in_the_timeline(register: Register, open_case: Callable[..., CaseRecord]) -> None:
    key = open_case().key
    register.add_comment(key, by="huang.lei", text="  room 3  ", at=T0 + timedelta(minutes=2))
    register.add_comment(key, by="li.na", text="thanks", at=T0 + timedelta(minutes=1))
    assert [(c.actor, c.detail) for c in register.comments(key)] == [("li.na", "thanks"), ("huang.lei", "room 3")]
    lines = [entry.summary for entry in register.timeline(key).entries if entry.kind == "case.comment"]
    assert lines == ["case.comment by li.na: thanks", "case.comment by huang.lei: room 3"]
    with pytest.raises(AnswerError, match="the comment is empty"):
        register.add_comment(key, by="li.na", text=" ")
