"""``aftercare cancel`` without a Prefect server: who may cancel, one-line refusals, the linked cases, the people told once.

The served and Prefect-UI paths (a run stopped for good, the housekeeping run) are in
``tests/e2e/test_cancel.py``; here cases are put in the register as runs leave them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from aftercare.engine.clock import utc_now
from aftercare.engine.library import load_library
from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.engine.spec import ProcessSpec
from aftercare.flows.cancelling import PREFECT_UI_ACTOR, UI_REASON, cancelled_in_prefect, check_canceller, is_cancelled
from aftercare.flows.cli import main
from aftercare.notifications import load_checked_library
from aftercare.engine.errors import AnswerError
from tests.fixtures.smtp import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
HAS_CANCEL_BY = "cancel_by" in ProcessSpec.model_fields


@pytest.fixture
def env(user_env: dict[str, str], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The user's environment with a mail server, in this process (no Prefect import per call)."""
    for name in [name for name in os.environ if name.startswith("AFTERCARE_")]:
        monkeypatch.delenv(name)
    for name, value in user_env.items():
        if name.startswith(("AFTERCARE_", "XDG_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AFTERCARE_SMTP_URL", smtp_sink.url)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield user_env


def _register(env: dict[str, str]) -> Register:
    return Register(env["AFTERCARE_DATABASE_URL"])


def _waiting_case(register: Register, folder: Path, process: str = "issue-resolution", *, flow_run_id: str | None = None, **opened: str) -> str:
    """A case of a folder's definition waiting at its first human step for li.na and liu.yang, as a run leaves it."""
    definition = load_checked_library(folder).get(process)
    spec = definition.spec
    case = register.open_case(
        process=process, version=spec.version, definition_hash=definition.digest, key_prefix=spec.key, title="Printer offline",
        inputs={"title": "Printer offline"}, flow_run_id=flow_run_id, **opened,  # type: ignore[arg-type]
    )
    register.begin_step(case.key, "triage", 1, started_at=utc_now(), eligible=["li.na", "liu.yang"], wait_kind=WAIT_PERSON, status="waiting")
    return case.key


def _cancel(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["cancel", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out.strip(), err.strip()


def test_a_waiting_case_is_cancelled_with_the_linked_cases_it_waits_for(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], smtp_sink: SmtpSink
) -> None:
    register = _register(env)
    key = _waiting_case(register, ROOT / "processes")
    # the case also waits at a start step for a linked case, which waits at its own triage
    register.begin_step(key, "open-kb-entry", 1, started_at=utc_now(), status="waiting")
    child = _waiting_case(register, ROOT / "processes", parent_key=key, started_by_step="open-kb-entry")

    code, out, err = _cancel(capsys, key, "--as", "li.na", "--reason", "duplicate of ISS-0042")
    assert (code, err) == (0, "")
    assert out == f"{key} cancelled by li.na: duplicate of ISS-0042; withdrew triage, open-kb-entry; cancelled {child}"
    for each in (key, child):
        case = register.case(each)
        assert (case.status, case.outcome, case.is_open) == ("cancelled", "cancelled", False)
        assert is_cancelled(register, each)
    [event] = [e for e in register.audit_events(key) if e.event == "case.cancelled"]
    assert (event.actor, event.detail) == ("li.na", "duplicate of ISS-0042")
    # li.na and liu.yang waited at triage of both cases: one message each per case
    messages = register.messages()
    assert sorted((m.case_key, m.recipient) for m in messages) == sorted(
        (k, f"person:{p}") for k in (key, child) for p in ("li.na", "liu.yang")
    )
    assert all(m.status == "delivered" for m in messages)
    [child_mail] = [m for m in messages if m.case_key == child and m.recipient == "person:liu.yang"]
    assert f"原因：{key} was cancelled: duplicate of ISS-0042" in child_mail.body
    mails = smtp_sink.wait_for(4)
    assert sorted((mail.rcpt_tos[0], mail.subject) for mail in mails) == sorted(
        [("li.na@example.com", f"[{k}] 已取消：Printer offline") for k in (key, child)]
        + [("liu.yang@example.com", f"[{k}] 已取消：Printer offline") for k in (key, child)]
    )

    code, out, err = _cancel(capsys, key, "--as", "li.na", "--reason", "again")
    assert (code, err) == (1, f"aftercare cancel: {key} is already cancelled (outcome cancelled); nothing to cancel")
    assert len(register.messages()) == 4 and len(smtp_sink.messages) == 4


def test_json_names_the_withdrawn_steps_and_the_cases(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    key = _waiting_case(_register(env), ROOT / "processes")
    code, out, _ = _cancel(capsys, key, "--as", "liu.yang", "--reason", "  not  needed ", "--json")
    assert code == 0
    assert json.loads(out) == {
        "case": key, "status": "cancelled", "by": "liu.yang", "reason": "not needed", "withdrawn": ["triage"], "cancelled": [],
        "runs": {key: None}, "messages": 2, "problems": [],
    }


def test_mistakes_are_one_line_each(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    register = _register(env)
    key = _waiting_case(register, ROOT / "processes")
    assert _cancel(capsys, key, "--as", "li.nn", "--reason", "x")[::2] == (1, "aftercare cancel: unknown person 'li.nn'; did you mean 'li.na'?")
    assert _cancel(capsys, "ISS-001", "--as", "li.na", "--reason", "x")[::2] == (
        1, "aftercare cancel: no case 'ISS-001' in the register; did you mean 'ISS-0001'?"
    )
    assert _cancel(capsys, key, "--as", "li.na", "--reason", "  ")[::2] == (1, "aftercare cancel: --reason is empty: say why the case is cancelled")
    assert register.case(key).is_open
    refused = [e for e in register.audit_events(key) if e.event == "cancel.refused"]
    assert [(e.actor, e.detail) for e in refused] == [("li.nn", "unknown person 'li.nn'; did you mean 'li.na'?")]

    register.close_case(key, "resolved")
    assert _cancel(capsys, key, "--as", "li.na", "--reason", "x")[::2] == (
        1, f"aftercare cancel: {key} is closed (outcome resolved); nothing to cancel"
    )
    assert register.case(key).outcome == "resolved" and register.messages() == []


def test_without_a_team_file_it_says_where_it_looked(env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_PROCESSES", str(tmp_path / "nowhere"))
    code, _, err = _cancel(capsys, "ISS-0001", "--as", "li.na", "--reason", "x")
    assert code == 1 and err.startswith(f"aftercare cancel: no team.yaml in {tmp_path / 'nowhere'}")


def test_cancel_by_limits_who_may(tmp_path: Path) -> None:
    team = load_library(ROOT / "processes").team
    spec = SimpleNamespace(process="issue-resolution", cancel_by=("role:support-lead", "person:huang.lei"))
    check_canceller(spec, team, "li.na", "ISS-0001")  # type: ignore[arg-type]
    check_canceller(spec, team, "huang.lei", "ISS-0001")  # type: ignore[arg-type]
    with pytest.raises(AnswerError) as refused:
        check_canceller(spec, team, "liu.yang", "ISS-0001")  # type: ignore[arg-type]
    assert str(refused.value) == "'liu.yang' may not cancel ISS-0001: issue-resolution lets only role:support-lead, person:huang.lei cancel (cancel_by)"
    anyone = SimpleNamespace(process="issue-resolution")  # no cancel_by: any person of the team
    check_canceller(anyone, team, "liu.yang", "ISS-0001")  # type: ignore[arg-type]


@pytest.mark.skipif(not HAS_CANCEL_BY, reason="ProcessSpec has no cancel_by yet")
def test_cancel_by_in_a_definition_refuses_others_in_one_line(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    (folder / "team.yaml").write_text((ROOT / "processes/team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "guarded.yaml").write_text(
        "process: guarded\ntitle: Guarded\nversion: 1\nkey: GRD\ncancel_by: [role:support-lead]\ninputs:\n  title: {type: string}\nsteps:\n"
        "  - {id: triage, type: approval, assignee: 'person:liu.yang'}\n  - {id: done, type: end, outcome: done}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AFTERCARE_PROCESSES", str(folder))
    register = _register(env)
    key = _waiting_case(register, folder, "guarded")
    assert _cancel(capsys, key, "--as", "liu.yang", "--reason", "x")[::2] == (
        1, f"aftercare cancel: 'liu.yang' may not cancel {key}: guarded lets only role:support-lead cancel (cancel_by)"
    )
    assert register.case(key).is_open
    assert _cancel(capsys, key, "--as", "li.na", "--reason", "x")[0] == 0


def test_the_hook_cancels_the_case_of_a_run_cancelled_in_prefect_once(env: dict[str, str]) -> None:
    register = _register(env)
    key = _waiting_case(register, ROOT / "processes", flow_run_id="9a0d1c3e-0000-4000-8000-00000000c0de")
    run = SimpleNamespace(id="9a0d1c3e-0000-4000-8000-00000000c0de", tags=["process:issue-resolution"])
    cancelled_in_prefect(None, run, None)
    case = register.case(key)
    assert (case.status, case.outcome) == ("cancelled", "cancelled")
    [event] = [e for e in register.audit_events(key) if e.event == "case.cancelled"]
    assert (event.actor, event.detail) == (PREFECT_UI_ACTOR, UI_REASON)
    assert sorted(m.recipient for m in register.messages()) == ["person:li.na", "person:liu.yang"]
    cancelled_in_prefect(None, run, None)  # the runner's hook after the command's cancel: nothing more
    assert len(register.messages()) == 2
    assert len([e for e in register.audit_events(key) if e.event == "case.cancelled"]) == 1
