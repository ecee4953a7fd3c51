"""Definitions kept by hash, and attaching the flow run that drives a case."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aftercare.engine.errors import NotFoundError
from aftercare.engine.register import CaseRecord, Register

OpenCase = Callable[..., CaseRecord]


def test_a_definition_is_saved_once_by_hash(register: Register) -> None:
    register.save_definition("a" * 64, "issue-resolution", 1, "process: issue-resolution\n")
    register.save_definition("a" * 64, "issue-resolution", 1, "changed\n")
    assert register.definition_text("a" * 64) == "process: issue-resolution\n"
    with pytest.raises(NotFoundError):
        register.definition_text("b" * 64)


def test_attaching_a_run_links_it_to_the_case(register: Register, open_case: OpenCase) -> None:
    case = open_case()
    attached = register.attach_run(case.key, "run-1")
    assert attached.flow_run_id == "run-1"
    assert register.case_for_run("run-1") == attached
    assert register.attach_run(case.key, "run-1") == attached
    assert [e.event for e in register.audit_events(case.key)] == ["case.opened", "case.run_attached"]
