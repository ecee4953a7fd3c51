"""``aftercare tasks``, ``reassign`` and ``comment`` on a register without a Prefect server: what they print, and mistakes told in one line."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.notifications import load_checked_library
from tests.cli.test_mistakes import AFTERCARE, ROOT

OPENED = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = subprocess.run([*AFTERCARE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr.strip()


@pytest.fixture
def two_cases(user_env: dict[str, str]) -> Register:
    """ISS-0001 waiting at triage for li.na (overdue), ISS-0002 at triage for li.na and liu.yang (due later, one answer in)."""
    definition = load_checked_library(ROOT / "processes").get("issue-resolution")
    register = Register(user_env["AFTERCARE_DATABASE_URL"])
    for title, due, eligible in (("Printer offline", OPENED + timedelta(hours=4), ["li.na"]),
                                 ("VPN drops", datetime(2099, 1, 1, tzinfo=timezone.utc), ["li.na", "liu.yang", "sarah.jones"])):
        case = register.open_case(
            process="issue-resolution", version=definition.spec.version, definition_hash=definition.digest, key_prefix="ISS",
            title=title, inputs={"title": title}, flow_run_id=None,
        )
        register.begin_step(case.key, "triage", 1, started_at=OPENED, due_at=due, eligible=eligible, wait_kind=WAIT_PERSON)
    register.answer("ISS-0002", "triage", 1, person="sarah.jones", decision="approve", comment="", fields={}, answered_at=OPENED,
                    decide=lambda rows: None)  # as a step that needs two approvals: one in, not decided
    return register


def test_tasks_for_a_person_overdue_first_in_the_calendars_time_zone(user_env: dict[str, str], two_cases: Register) -> None:
    code, out, err = run(user_env, "tasks", "--for", "li.na", "--json")
    assert (code, err) == (0, "")
    tasks = json.loads(out)
    for task in tasks:
        assert task.pop("age_seconds") >= 0 and task.pop("age")
    assert tasks == [
        {"case": "ISS-0001", "process": "issue-resolution", "case_title": "Printer offline", "step": "triage", "visit": 1,
         "title": "Triage ISS-0001: Printer offline", "who": ["li.na"], "due": "2026-12-01T05:00:00+00:00",
         "due_text": "2026-12-01 13:00 Asia/Shanghai", "overdue": True, "waiting_since": "2026-12-01T01:00:00+00:00", "link": None},
        {"case": "ISS-0002", "process": "issue-resolution", "case_title": "VPN drops", "step": "triage", "visit": 1,
         "title": "Triage ISS-0002: VPN drops", "who": ["li.na", "liu.yang"], "due": "2099-01-01T00:00:00+00:00",
         "due_text": "2099-01-01 08:00 Asia/Shanghai", "overdue": False, "waiting_since": "2026-12-01T01:00:00+00:00", "link": None},
    ]
    code, out, _ = run(user_env, "tasks", "--role", "engineering", "--overdue", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(user_env, "tasks", "--for", "sarah.jones")  # she answered: the step no longer waits for her
    assert (code, out) == (0, "nothing is waiting on people\n")


def test_reassign_hands_the_step_on_and_the_old_person_is_refused(user_env: dict[str, str], two_cases: Register) -> None:
    code, out, err = run(user_env, "reassign", "ISS-0001", "triage", "--to", "liu.yang", "--as", "li.na", "--reason", "on leave", "--json")
    assert code == 0, err
    said = json.loads(out)
    assert {k: said[k] for k in ("case", "step", "by", "reason", "from", "to", "form_rebuilt")} == {
        "case": "ISS-0001", "step": "triage", "by": "li.na", "reason": "on leave", "from": ["li.na"], "to": ["liu.yang"], "form_rebuilt": False,
    }
    assert said["messages"] == 2  # the new person's waiting message, the old person's "handed on"
    assert two_cases.step_run("ISS-0001", "triage", 1).eligible == ("liu.yang",)  # type: ignore[union-attr]
    code, _, err = run(user_env, "answer", "ISS-0001", "triage", "--as", "li.na", "--approve")
    assert (code, err) == (1, "aftercare answer: 'li.na' may not answer step 'triage': its assignee names liu.yang; did you mean 'liu.yang'?")
    code, out, _ = run(user_env, "show", "ISS-0001")
    assert "step.reassigned by li.na: triage #1 from li.na to liu.yang: on leave" in out
    kinds = sorted((m.recipient, m.idempotency_key.split("/")[3]) for m in two_cases.messages(case_key="ISS-0001"))
    assert [(who, kind.split("-")[0]) for who, kind in kinds] == [("person:li.na", "handed"), ("person:liu.yang", "reassigned")]
    # the escalate_to hands on a step whole
    code, out, err = run(user_env, "reassign", "ISS-0001", "triage", "--to", "sarah.jones", "--as", "zhang.wei")
    assert code == 0, err
    assert two_cases.step_run("ISS-0001", "triage", 1).eligible == ("sarah.jones",)  # type: ignore[union-attr]


def test_reassign_mistakes(user_env: dict[str, str], two_cases: Register) -> None:
    assert run(user_env, "reassign", "ISS-0001", "triage", "--to", "liu.yagn", "--as", "li.na")[::2] == (
        1, "aftercare reassign: --to 'liu.yagn' is not in the team; did you mean 'liu.yang'?")
    assert run(user_env, "reassign", "ISS-0001", "triage", "--to", "liu.yang", "--as", "chen.jie")[::2] == (
        1, "aftercare reassign: 'chen.jie' may not hand on step 'triage': its people (li.na) and its escalate_to (zhang.wei) may")
    assert run(user_env, "reassign", "ISS-0001", "traige", "--to", "liu.yang", "--as", "li.na")[::2] == (
        1, "aftercare reassign: issue-resolution has no step 'traige'; did you mean 'triage'?")
    assert run(user_env, "reassign", "ISS-0002", "triage", "--to", "liu.yang", "--as", "li.na")[::2] == (
        1, "aftercare reassign: 'liu.yang' may answer step 'triage' already (it waits for li.na, liu.yang, sarah.jones)")
    assert run(user_env, "reassign", "ISS-0003", "triage", "--to", "liu.yang", "--as", "li.na")[::2] == (
        1, "aftercare reassign: no case 'ISS-0003' in the register; did you mean 'ISS-0002'?")


def test_tasks_mistakes(user_env: dict[str, str], two_cases: Register) -> None:
    assert run(user_env, "tasks", "--for", "li.nna")[::2] == (1, "aftercare tasks: no person 'li.nna' in the team; did you mean 'li.na'?")
    assert run(user_env, "tasks", "--role", "suport")[::2] == (1, "aftercare tasks: no role 'suport' in the team; did you mean 'support'?")


def test_comments_are_kept_shown_and_decide_nothing(user_env: dict[str, str], two_cases: Register) -> None:
    assert run(user_env, "comment", "ISS-0001", "--as", "li.nan", "-m", "hi")[::2] == (
        1, "aftercare comment: --as 'li.nan' is not in the team; did you mean 'li.na'?")
    assert run(user_env, "comment", "ISS-0001", "--as", "li.na", "-m", "  ")[::2] == (
        1, "aftercare comment: the comment is empty: say something with -m TEXT")
    assert run(user_env, "comment", "ISS-0001", "--as", "huang.lei", "-m", "The printer is in room 3")[:2] == (
        0, "ISS-0001: comment from huang.lei kept\n")
    code, out, _ = run(user_env, "show", "ISS-0001")
    assert "case.comment by huang.lei: The printer is in room 3" in out
    assert two_cases.step_run("ISS-0001", "triage", 1).is_open  # type: ignore[union-attr]
    assert [(c.actor, c.detail) for c in two_cases.comments("ISS-0001")] == [("huang.lei", "The printer is in room 3")]
