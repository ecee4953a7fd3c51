"""The case artifact's diagram: the definition the case runs, its steps marked from the register's step runs (SQLite file)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aftercare.engine.case import CaseState
from aftercare.engine.graph import mermaid
from aftercare.engine.library import load_library
from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.flows.artifacts import step_marks, timeline_markdown

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def register(tmp_path: Path) -> Register:
    return Register(f"sqlite:///{tmp_path / 'register.db'}")


def _open(register: Register, process: str, folder: Path = ROOT / "processes", *, stored: bool = True) -> str:
    definition = load_library(folder).get(process)
    if stored:
        register.save_definition(definition.digest, process, definition.spec.version, definition.path.read_text(encoding="utf-8"))
    record = register.open_case(process=process, version=definition.spec.version, definition_hash=definition.digest,
                                key_prefix=definition.spec.key, title="Printer offline", inputs={"title": "Printer offline"}, opened_at=T0)
    return record.key


def _done(register: Register, key: str, step: str, visit: int = 1, at: int = 0) -> None:
    register.begin_step(key, step, visit, started_at=T0 + timedelta(minutes=at))
    register.complete_step(key, step, visit, {"ok": True}, T0 + timedelta(minutes=at + 1))


def test_the_artifact_draws_the_case_s_process_with_done_and_waiting_steps(register: Register) -> None:
    key = _open(register, "issue-resolution")
    _done(register, key, "acknowledge")
    register.begin_step(key, "triage", 1, started_at=T0 + timedelta(minutes=2), eligible=["li.na"], wait_kind=WAIT_PERSON)
    text = timeline_markdown(register, CaseState.from_record(register.case(key)), {})
    block = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    spec = load_library(ROOT / "processes").get("issue-resolution").spec
    assert block + "\n" == mermaid(spec, {"acknowledge": "done", "triage": "waiting"})
    lines = block.splitlines()
    assert "    class n_acknowledge done" in lines and "    class n_triage waiting" in lines
    assert text.index("```mermaid") < text.index("| when (UTC) |")  # the picture, then the timeline
    assert "step triage #1 started" in text


def test_a_revisited_step_takes_its_latest_visit_and_the_rest_keep_theirs(register: Register) -> None:
    key = _open(register, "issue-resolution")
    for at, step in enumerate(("acknowledge", "triage", "route", "resolve", "tell-reporter", "verify", "reopen")):
        _done(register, key, step, at=2 * at)
    register.begin_step(key, "resolve", 2, started_at=T0 + timedelta(hours=1), eligible=["li.na"], wait_kind=WAIT_PERSON)
    marks = step_marks(register.step_runs(key))
    assert marks == {"acknowledge": "done", "triage": "done", "route": "done", "resolve": "waiting", "tell-reporter": "done",
                     "verify": "done", "reopen": "done"}


def test_instances_withdrawn_failed_running_and_linked_cases(register: Register) -> None:
    library = load_library(ROOT / "processes")
    key = _open(register, "project-evaluation")
    spec = library.get("project-evaluation").spec
    for_each = next(step.id for step in spec.steps if getattr(step, "for_each", None))
    register.begin_step(key, for_each, 1, started_at=T0)
    register.begin_step(key, f"{for_each}[1]", 1, started_at=T0, eligible=["li.na"], wait_kind=WAIT_PERSON)
    register.complete_step(key, f"{for_each}[1]", 1, {"score": 4}, T0 + timedelta(hours=1))
    register.begin_step(key, f"{for_each}[2]", 1, started_at=T0, eligible=["wang.wei"], wait_kind=WAIT_PERSON)
    assert step_marks(register.step_runs(key), spec)[for_each] == "waiting"  # one instance still open
    register.withdraw_step(key, f"{for_each}[2]", 1, reason="wait: any", at=T0 + timedelta(hours=2))
    register.complete_step(key, for_each, 1, {"completed": 1}, T0 + timedelta(hours=2))
    assert step_marks(register.step_runs(key), spec)[for_each] == "done"  # one answered, one withdrawn: done

    other = _open(register, "maintenance-check")
    check = library.get("maintenance-check").spec
    waited = next(step.id for step in check.steps if step.type == "start" and getattr(step, "wait", None) is not None)
    register.begin_step(other, waited, 1, started_at=T0)
    register.begin_step(other, check.steps[0].id, 1, started_at=T0)
    register.begin_step(other, check.steps[1].id, 1, started_at=T0, eligible=["li.na"], wait_kind=WAIT_PERSON)
    register.withdraw_step(other, check.steps[1].id, 1, reason="cancelled", at=T0 + timedelta(minutes=5))
    register.complete_step(other, check.steps[2].id, 1, {"error": "boom"}, T0, started_at=T0, status="failed")
    marks = step_marks(register.step_runs(other), check)
    assert marks[waited] == "waiting"  # a start with wait waits for its linked cases
    assert marks[check.steps[0].id] == "current"  # an automatic step running
    assert marks[check.steps[1].id] == "withdrawn"
    assert marks[check.steps[2].id] == "current"  # failed: where the case stopped
    assert step_marks(register.step_runs(other))[waited] == "current"  # without the definition it is just running


def test_a_case_whose_definition_text_is_gone_keeps_its_timeline(register: Register) -> None:
    key = _open(register, "issue-resolution", stored=False)
    _done(register, key, "acknowledge")
    text = timeline_markdown(register, CaseState.from_record(register.case(key)), {})
    assert "```mermaid" not in text and "step acknowledge #1 started" in text
