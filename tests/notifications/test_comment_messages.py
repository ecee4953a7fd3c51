"""Comments on a case reach the next messages about it, in each recipient's language; they change nothing else."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from aftercare.engine.answers import plan_human_step
from aftercare.engine.calendars import calendar_of
from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.notifications import load_checked_library
from aftercare.notifications.escalation import case_scope
from aftercare.notifications.outbox import waiting_messages

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)


def test_the_next_message_lists_the_comments(tmp_path: Path) -> None:
    library = load_checked_library(ROOT / "processes")
    definition = library.get("issue-resolution")
    register = Register(f"sqlite:///{tmp_path / 'register.db'}")
    case = register.open_case(process="issue-resolution", version=definition.spec.version, definition_hash=definition.digest,
                              key_prefix="ISS", title="Printer offline", inputs={"title": "Printer offline"})
    run = register.begin_step(case.key, "triage", 1, started_at=AT, eligible=["li.na"], wait_kind=WAIT_PERSON)
    step = definition.spec.step("triage")
    scope = case_scope(register, case, AT)
    plan = plan_human_step(step, library.team, scope, started_at=AT, eligible=run.eligible, calendar=calendar_of(definition.spec, library.team))  # type: ignore[arg-type]
    before = waiting_messages(library.team, scope, step, plan, visit=1, recipients=["person:emma.clark", "person:li.na"])  # type: ignore[arg-type]
    assert all("Comments" not in m.body and "评论" not in m.body for m in before)
    register.add_comment(case.key, by="huang.lei", text="The printer is in room 3", at=AT)
    scope = case_scope(register, case, AT)
    english, chinese = waiting_messages(library.team, scope, step, plan, visit=1, recipients=["person:emma.clark", "person:li.na"])  # type: ignore[arg-type]
    assert "Comments:\n  2026-12-01 01:00 UTC huang.lei: The printer is in room 3\n" in english.body
    assert "评论：\n  2026-12-01 01:00 UTC huang.lei: The printer is in room 3\n" in chinese.body
    assert "huang.lei</strong>: The printer is in room 3" in (english.html or "")
    assert english.subject == before[0].subject and english.idempotency_key == before[0].idempotency_key
    register.close()
