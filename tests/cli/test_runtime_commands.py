"""The runtime commands as a user runs them: run (embedded Prefect), answer, cases, show, outbox, db, init, simulate --record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aftercare.engine.register import Register

ROOT = Path(__file__).resolve().parents[2]
AFTERCARE = [sys.executable, "-m", "aftercare.flows.cli"]
INPUTS = ROOT / "processes/examples/issue-inputs.yaml"
ANSWERS = ROOT / "processes/examples/issue-answers.yaml"


def aftercare(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFTERCARE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def register_of(env: dict[str, str]) -> Register:
    return Register(env["AFTERCARE_DATABASE_URL"])


def test_run_with_scripted_answers_on_the_embedded_server(user_env: dict[str, str]) -> None:
    done = aftercare(user_env, "run", "issue-resolution", "--inputs", str(INPUTS), "--answers", str(ANSWERS), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "resolved"
    assert result["path"] == [
        "acknowledge", "triage", "route", "alert-urgent", "resolve", "tell-reporter", "verify", "log", "kb-needed",
        "open-kb-entry", "resolved",
    ]
    register = register_of(user_env)
    case = register.case(result["case"])
    assert case.outcome == "resolved" and case.flow_run_id
    answers = {(a.step_id, a.person): a.comment for a in register.timeline(case.key).answers}
    assert answers[("verify", "huang.lei")].startswith("验证通过")
    assert set(answers) == {("triage", "li.na"), ("resolve", "liu.yang"), ("verify", "huang.lei")}
    keys = [m.idempotency_key for m in register.messages(case_key=case.key)]
    assert keys and len(keys) == len(set(keys))
    child = register.cases(process="knowledge-capture")
    assert [c.parent_key for c in child] == [case.key]

    shown = aftercare(user_env, "show", case.key)
    assert shown.returncode == 0 and "huang.lei answered verify #1: approve" in shown.stdout
    listed = aftercare(user_env, "cases", "--status", "closed")
    assert case.key in listed.stdout and "resolved" in listed.stdout
    outbox = aftercare(user_env, "outbox")
    assert outbox.returncode == 0 and "nothing pending or failed" in outbox.stdout


def test_run_refuses_an_answer_from_someone_the_step_does_not_name(user_env: dict[str, str], tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("triage: {decision: approve, by: wang.fang, priority: P3, owner: liu.yang}\n", encoding="utf-8")
    done = aftercare(user_env, "run", "issue-resolution", "--inputs", str(INPUTS), "--answers", str(answers))
    assert done.returncode == 1
    assert "'wang.fang' may not answer step 'triage': its assignee names li.na" in done.stderr
    assert "Traceback" not in done.stderr
    register = register_of(user_env)
    events = register.audit_events("ISS-0001")
    assert any(e.event == "answer.refused" and e.actor == "wang.fang" for e in events)
    # Nothing is left looking alive: the case failed with the reason, its waiting step too.
    case = register.case("ISS-0001")
    assert (case.status, case.outcome, case.is_open) == ("failed", "failed", False)
    [triage] = [run for run in register.step_runs("ISS-0001") if run.step_id == "triage"]
    assert triage.status == "failed" and "was refused" in (triage.result or {}).get("error", "")
    shown = aftercare(user_env, "show", "ISS-0001")
    assert "case.failed" in shown.stdout and "the scripted answer to 'triage' was refused" in shown.stdout


def test_a_run_that_fails_in_a_step_leaves_its_case_failed_with_the_reason(user_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    (folder / "team.yaml").write_text((ROOT / "processes/team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "meet.yaml").write_text(
        "process: meet\ntitle: Meet\nversion: 1\nkey: MEE\ninputs:\n  when: {type: string}\nsteps:\n"
        "  - {id: note, type: notify, to: [role:support-lead], message: 'Meeting {{ inputs.when }}'}\n"
        "  - {id: meeting, type: wait, until: '{{ inputs.when }}'}\n"
        "  - {id: done, type: end, outcome: held}\n",
        encoding="utf-8",
    )
    (tmp_path / "inputs.yaml").write_text("when: soon\n", encoding="utf-8")
    done = aftercare(user_env, "run", str(folder / "meet.yaml"), "--inputs", str(tmp_path / "inputs.yaml"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "until gave 'soon', not a date or datetime" in done.stderr.strip().splitlines()[-1]
    register = register_of(user_env)
    case = register.case("MEE-0001")
    assert (case.status, case.is_open) == ("failed", False)
    steps = {run.step_id: run for run in register.step_runs("MEE-0001")}
    assert steps["note"].status == "done" and steps["meeting"].status == "failed"
    assert "until gave 'soon'" in (steps["meeting"].result or {})["error"]
    assert register.open_steps() == []


def test_answer_from_another_shell_while_run_waits(user_env: dict[str, str], tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    text = ANSWERS.read_text(encoding="utf-8")
    answers.write_text(text[: text.index("verify:")], encoding="utf-8")  # nobody scripted for verify
    run = subprocess.Popen(
        [*AFTERCARE, "run", "issue-resolution", "--inputs", str(INPUTS), "--answers", str(answers), "--json"],
        env=user_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        register = register_of(user_env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            cases = register.cases(process="issue-resolution")
            if cases and cases[0].current_step == "verify":
                break
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            time.sleep(0.5)
        else:
            pytest.fail("the case never reached verify")
        refused = aftercare(user_env, "answer", "ISS-0001", "verify", "--as", "li.na", "--approve")
        assert refused.returncode == 1 and "'li.na' may not answer step 'verify'" in refused.stderr
        given = aftercare(user_env, "answer", "ISS-0001", "verify", "--as", "huang.lei", "--approve", "--comment", "好的 fine")
        assert given.returncode == 0, given.stderr
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["outcome"] == "resolved"
    verify = [a for a in register_of(user_env).timeline("ISS-0001").answers if a.step_id == "verify"]
    assert [(a.person, a.comment) for a in verify] == [("huang.lei", "好的 fine")]


def test_simulate_record_writes_the_case_to_the_register(user_env: dict[str, str]) -> None:
    done = aftercare(
        user_env, "simulate", "processes/issue-resolution.yaml", "--inputs", str(INPUTS), "--answers", str(ANSWERS), "--record", "--json"
    )
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)["case"]
    timeline = register_of(user_env).timeline(key)
    assert timeline.case.outcome == "resolved" and timeline.case.fields["simulated"] is True
    assert [s.step_id for s in timeline.steps][:3] == ["acknowledge", "triage", "route"]
    assert {a.person for a in timeline.answers} == {"li.na", "liu.yang", "huang.lei"}
    assert not register_of(user_env).messages(case_key=key)  # simulated messages are never sent


def test_db_upgrade_and_init(user_env: dict[str, str], tmp_path: Path) -> None:
    upgraded = aftercare(user_env, "db", "upgrade")
    assert upgraded.returncode == 0 and "register at revision" in upgraded.stdout
    folder = tmp_path / "ours"
    assert aftercare(user_env, "init", str(folder)).returncode == 0
    assert (folder / "team.yaml").is_file() and (folder / "aftercare.schema.json").is_file()
    assert "# yaml-language-server: $schema=./aftercare.schema.json" in (folder / "issue-resolution.yaml").read_text(encoding="utf-8")
    validated = aftercare(user_env, "validate", str(folder))
    assert validated.returncode == 0, validated.stderr
