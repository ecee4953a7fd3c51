"""Deadlines on a business calendar: reminders count working periods, an SLA waits while the case's clock stands still."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aftercare.engine.library import load_library
from aftercare.engine.loader import Library
from aftercare.engine.register import STEP_WAITING, WAIT_PERSON, CaseRecord, Register, dispose
from aftercare.notifications import escalate_overdue, next_reminder, send_reminders

SHANGHAI = timezone(timedelta(hours=8))
TEAM = """team:
  people:
    ann: {name: Ann, email: ann@example.com}
  roles:
    lead: [ann]
  calendars:
    office:
      timezone: Asia/Shanghai
      hours: {mon-fri: ["09:00-12:00", "13:30-18:00"]}
      holidays: CN
  calendar: office
"""
PROCESS = """process: calendar-check
title: Calendar check
version: 1
key: CAL
sla: {due: 2bd, escalate_to: role:lead, pause_while: [confirm]}
steps:
  - id: triage
    type: form
    assignee: role:lead
    remind_every: 4bh
  - id: confirm
    type: approval
    assignee: role:lead
  - {id: done, type: end, outcome: done}
"""


def sh(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


@pytest.fixture
def folder(tmp_path: Path) -> Library:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "team.yaml").write_text(TEAM, encoding="utf-8")
    (tmp_path / "lib" / "calendar-check.yaml").write_text(PROCESS, encoding="utf-8")
    return load_library(tmp_path / "lib")


@pytest.fixture
def register(tmp_path: Path) -> Iterator[Register]:
    url = f"sqlite:///{tmp_path}/r.db"
    yield Register(url=url)
    dispose(url)


def _open(register: Register, library: Library, at: datetime, due: datetime) -> CaseRecord:
    definition = library.get("calendar-check")
    return register.open_case(
        process="calendar-check", version=1, definition_hash=definition.digest, key_prefix="CAL", title="check",
        inputs={}, due_at=due, opened_at=at,
    )


def test_reminders_count_working_periods(register: Register, folder: Library) -> None:
    case = _open(register, folder, sh(2026, 9, 30, 9, 0), sh(2026, 10, 9, 9, 0))
    register.begin_step(case.key, "triage", 1, started_at=sh(2026, 9, 30, 9, 0), eligible=["ann"], wait_kind=WAIT_PERSON, status=STEP_WAITING)
    # 7.5 working hours on 09-30, then National Day: one period of 4bh by 10-01 10:00 (wall-clock would say 6)
    assert send_reminders(register, folder, sh(2026, 10, 1, 10, 0)).reminded == ["CAL-0001/triage#1:1"]
    assert send_reminders(register, folder, sh(2026, 10, 7, 17, 0)).reminded == []
    assert next_reminder(register, folder, case.key, "triage", 1, sh(2026, 10, 1, 10, 0)) == sh(2026, 10, 8, 9, 30)
    assert send_reminders(register, folder, sh(2026, 10, 8, 9, 30)).reminded == ["CAL-0001/triage#1:2"]


def test_an_sla_is_not_escalated_while_the_clock_stands_still(register: Register, folder: Library) -> None:
    due = sh(2026, 9, 30, 9, 0)
    case = _open(register, folder, sh(2026, 9, 28, 9, 0), due)
    register.complete_step(case.key, "triage", 1, {"by": "ann"}, sh(2026, 9, 28, 10, 0), started_at=sh(2026, 9, 28, 9, 0))
    register.begin_step(case.key, "confirm", 1, started_at=sh(2026, 9, 28, 10, 0), eligible=["ann"], wait_kind=WAIT_PERSON, status=STEP_WAITING)
    assert escalate_overdue(register, folder, due + timedelta(hours=1)).cases == []  # waiting at confirm: paused
    register.complete_step(case.key, "confirm", 1, {"decision": "approve", "by": "ann"}, due + timedelta(hours=2))
    assert escalate_overdue(register, folder, due + timedelta(hours=2)).cases == [case.key]
