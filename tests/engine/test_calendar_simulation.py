"""The simulator on the shipped office calendar: ``--at``, escalations on the next working time, ``sla.pause_while``.

The shipped issue-resolution counts 4 working hours of triage, 2 of resolution, 3 of
verification and a 5-working-day SLA that stops while the reporter verifies; the team's
``office`` calendar is Shanghai, 09:00-12:00 and 13:30-18:00, with China's holidays.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.simulator import Simulator, SimulationResult
from aftercare.flows.cli import main
from aftercare.flows.cli.simulate import start_at
from aftercare.notifications import Composer, load_checked_library

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = timezone(timedelta(hours=8))
INPUTS = {"title": "Cannot find the audit log screen", "severity": "low", "reporter": "olivia.brown"}
ANSWERS: dict[str, Any] = {
    "triage": {"decision": "approve", "by": "li.na", "after": "3d", "priority": "P3", "owner": "liu.yang", "category": "usage"},
    "resolve": {"by": "liu.yang", "after": "1d", "root_cause": "Menu moved", "fix": "Sent a screenshot"},
    "verify": {"decision": "approve", "by": "olivia.brown", "after": "1d"},
}


def simulate(at: str, answers: dict[str, Any] = ANSWERS) -> SimulationResult:
    library = load_checked_library(ROOT / "processes")
    definition = library.get("issue-resolution")
    simulator = Simulator(definition.spec, library.team, answers, composer=Composer.for_library(library), start=start_at(at))
    return simulator.run(INPUTS)


def sh(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_opened_friday_evening_on_the_mid_autumn_festival() -> None:
    result = simulate("2026-09-25T17:00+08:00")
    assert result.path == ["acknowledge", "triage", "route", "resolve", "tell-reporter", "verify", "log", "kb-needed", "resolved"]
    assert result.plans[("triage", 1)].due_at == sh(2026, 9, 28, 14, 30)  # Monday: 3h before lunch, 1h after
    [escalation] = [m for m in result.messages if m.kind == "escalation"]
    assert (escalation.step, escalation.at, escalation.recipients) == ("triage", sh(2026, 9, 28, 14, 30), ["zhang.wei", "li.na"])
    assert "2026-09-28 14:30 Asia/Shanghai" in escalation.body
    assert result.plans[("resolve", 1)].due_at == sh(2026, 9, 30, 17, 0)  # 2bd from Monday 17:00
    assert result.plans[("verify", 1)].due_at == sh(2026, 10, 9, 17, 0)  # 3bd from Tuesday 17:00, across National Day


def test_pause_while_moves_the_case_due_by_the_working_time_paused() -> None:
    result = simulate("2026-09-25T17:00+08:00")
    assert result.opened_due == sh(2026, 10, 10, 9, 0)  # 5bd from Monday 09:00; Saturday 10-10 is a working day
    # verify waited from Tuesday 17:00 to Wednesday 17:00: 1h + 6.5h of working time
    assert result.due_moves == [("verify", 1, sh(2026, 10, 10, 18, 0))]
    assert result.case.due_at == sh(2026, 10, 10, 18, 0)


def test_a_wall_clock_opening_the_same_moment_in_another_offset() -> None:
    assert simulate("2026-09-25T09:00Z").plans[("triage", 1)].due_at == sh(2026, 9, 28, 14, 30)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_moved_due_in_the_register_via_show(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", f"sqlite:///{tmp_path / 'register.db'}")
    inputs, answers = tmp_path / "inputs.json", tmp_path / "answers.json"
    inputs.write_text(json.dumps(INPUTS), encoding="utf-8")
    answers.write_text(json.dumps(ANSWERS), encoding="utf-8")
    file = str(ROOT / "processes" / "issue-resolution.yaml")
    code, out, err = run(
        capsys, "simulate", file, "--inputs", str(inputs), "--answers", str(answers), "--at", "2026-09-25T17:00+08:00", "--record", "--json"
    )
    assert (code, err) == (0, "")
    key = json.loads(out)["case"]
    code, shown, err = run(capsys, "show", key)
    assert (code, err) == (0, "")
    lines = shown.splitlines()
    assert "  due       2026-10-10 10:00:00Z" in lines  # 18:00 in Shanghai: moved from 09:00 by verify's 7.5 working hours
    [moved] = [line for line in lines if "due_at" in line]
    assert "2026-10-10T01:00:00+00:00" in moved and "2026-10-10T10:00:00+00:00" in moved, moved


@pytest.mark.parametrize(("given", "said"), [
    ("2026-09-25 17:00", "aftercare simulate: --at '2026-09-25 17:00' has no UTC offset; say whose clock, such as 2026-09-25T17:00+08:00 or 2026-09-25T09:00Z\n"),
    ("friday 17:00", "aftercare simulate: --at 'friday 17:00' is not an ISO 8601 date-time with an offset, such as 2026-09-25T17:00+08:00\n"),
])
def test_a_bad_at_is_one_line_naming_it(capsys: pytest.CaptureFixture[str], given: str, said: str) -> None:
    code, out, err = run(capsys, "simulate", str(ROOT / "processes" / "issue-resolution.yaml"), "--at", given)
    assert (code, out, err) == (1, "", said)


class _Replay(Simulator):
    """A replay whose ``verify`` was decided while the run was away (a served answer): recorded, with its span."""

    def recorded(self, case: Any, step: Any, visit: int) -> dict[str, Any] | None:
        return {"decision": "approve", "by": "olivia.brown", "comment": ""} if step.id == "verify" else None

    def paused(self, case: Any, step_ids: Any) -> list[tuple[datetime, datetime]]:
        return [(sh(2026, 9, 29, 17, 0), sh(2026, 9, 30, 17, 0))]


def test_a_replay_moves_the_due_of_a_pause_decided_while_it_was_away() -> None:
    library = load_checked_library(ROOT / "processes")
    spec = library.get("issue-resolution").spec
    answers = {name: ANSWERS[name] for name in ("triage", "resolve")}
    replay = _Replay(spec, library.team, answers, composer=Composer.for_library(library), start=start_at("2026-09-25T17:00+08:00"))
    result = replay.run(INPUTS)
    assert result.due_moves == [("verify", 1, sh(2026, 10, 10, 18, 0))]
    assert result.case.due_at == sh(2026, 10, 10, 18, 0)


def test_the_prefect_ui_form_shows_the_due_in_the_calendar_zone() -> None:
    from aftercare.flows.run_input import describe

    result = simulate("2026-09-25T17:00+08:00")
    library = load_checked_library(ROOT / "processes")
    spec = library.get("issue-resolution").spec
    text = describe(result.case, spec.step("triage"), result.plans[("triage", 1)], library.team, [])  # type: ignore[arg-type]
    assert "**Due:** 2026-09-28 14:30 Asia/Shanghai  " in text.splitlines()


def test_a_wait_of_working_days() -> None:
    from aftercare.engine.calendars import calendar_of
    from aftercare.engine.runner import wait_until
    from aftercare.engine.spec import WaitStep

    library = load_checked_library(ROOT / "processes")
    calendar = calendar_of(library.get("issue-resolution").spec, library.team)
    step = WaitStep(id="cool-down", type="wait", duration="2bd")
    assert wait_until(step, {}, sh(2026, 10, 9, 10, 0), calendar) == sh(2026, 10, 12, 10, 0)  # Saturday 10-10 is worked
