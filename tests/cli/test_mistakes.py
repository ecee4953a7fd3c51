"""A mistyped process, case, step or person: one line naming it, the near match suggested, exit 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from aftercare.engine.clock import utc_now
from aftercare.engine.register import WAIT_PERSON, Register
from aftercare.notifications import load_checked_library
from tests.fixtures.smtp import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
AFTERCARE = [sys.executable, "-m", "aftercare.flows.cli"]
INPUTS = ROOT / "processes/examples/issue-inputs.yaml"


@pytest.fixture
def waiting_case(user_env: dict[str, str]) -> str:
    """ISS-0001 of the shipped issue-resolution, waiting at triage for li.na (as a run leaves it)."""
    definition = load_checked_library(ROOT / "processes").get("issue-resolution")
    register = Register(user_env["AFTERCARE_DATABASE_URL"])
    case = register.open_case(
        process="issue-resolution", version=definition.spec.version, definition_hash=definition.digest, key_prefix="ISS",
        title="Printer offline", inputs={"title": "Printer offline"}, flow_run_id="9a0d1c3e-0000-4000-8000-000000000001",
    )
    register.begin_step(case.key, "triage", 1, started_at=utc_now(), eligible=["li.na"], wait_kind=WAIT_PERSON)
    register.close()
    return case.key


def aftercare(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run([*AFTERCARE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr.strip()


def test_a_mistyped_process(user_env: dict[str, str]) -> None:
    assert aftercare(user_env, "run", "issue-resolutoin", "--inputs", str(INPUTS)) == (
        1, f"aftercare run: no process 'issue-resolutoin' in {ROOT / 'processes'}; did you mean 'issue-resolution'?"
    )


def test_a_mistyped_case(user_env: dict[str, str], waiting_case: str) -> None:
    assert aftercare(user_env, "show", "ISS-001") == (1, "aftercare show: no case 'ISS-001' in the register; did you mean 'ISS-0001'?")
    code, said = aftercare(user_env, "answer", "ISS-0010", "triage", "--as", "li.na", "--approve")
    assert (code, said) == (1, "aftercare answer: no case 'ISS-0010' in the register; did you mean 'ISS-0001'?")


def test_a_mistyped_step(user_env: dict[str, str], waiting_case: str) -> None:
    assert aftercare(user_env, "answer", waiting_case, "traige", "--as", "li.na", "--approve") == (
        1, "aftercare answer: issue-resolution has no step 'traige'; did you mean 'triage'?"
    )


def test_a_mistyped_person_is_refused_and_audited_before_any_server_is_needed(user_env: dict[str, str], waiting_case: str) -> None:
    code, said = aftercare(user_env, "answer", waiting_case, "triage", "--as", "li.nna", "--approve", "priority=P2", "owner=liu.yang")
    assert (code, said) == (1, "aftercare answer: 'li.nna' may not answer step 'triage': its assignee names li.na; did you mean 'li.na'?")
    events = Register(user_env["AFTERCARE_DATABASE_URL"]).audit_events(waiting_case)
    assert [(e.event, e.actor, e.after) for e in events if e.event == "answer.refused"] == [
        ("answer.refused", "li.nna", {"step": "triage", "visit": 1, "via": "cli"})
    ]


def test_a_mistyped_process_filter(user_env: dict[str, str], waiting_case: str) -> None:
    assert aftercare(user_env, "cases", "--process", "issue-resolutoin") == (
        1, "aftercare cases: no case of process 'issue-resolutoin' in the register; did you mean 'issue-resolution'?"
    )


def test_outbox_retry_retries_now_what_waits_out_a_backoff(user_env: dict[str, str], waiting_case: str, smtp_sink: SmtpSink) -> None:
    """`aftercare outbox retry` once the mail server is back: the message is sent now, not after its backoff."""
    register = Register(user_env["AFTERCARE_DATABASE_URL"])
    now = utc_now()
    message = register.enqueue(case_key=waiting_case, step_id="triage", visit=1, recipient="person:li.na", channel="email:li.na@example.com",
                               subject="Triage waits", body="Please triage.", idempotency_key="retry-now-test")
    [claimed] = register.due_messages(utc_now(), 10)
    register.mark_attempt_failed(claimed.id, "connection refused", now + timedelta(minutes=30))
    user_env["AFTERCARE_SMTP_URL"] = smtp_sink.url
    code, _ = aftercare(user_env, "outbox", "retry")
    assert code == 0
    assert [m.subject for m in smtp_sink.wait_for(1)] == ["Triage waits"]
    [delivered] = register.messages(case_key=waiting_case)
    assert (delivered.id, delivered.status) == (message.id, "delivered")


def test_inputs_are_checked_before_a_run_starts(user_env: dict[str, str], tmp_path: Path) -> None:
    """A required input missing (it opened a case titled "PydanticUndefined") or one too many (a Prefect ParameterBindError dump)."""
    missing = tmp_path / "missing.yaml"
    missing.write_text("severity: high\nreporter: huang.lei\n", encoding="utf-8")
    assert aftercare(user_env, "run", "issue-resolution", "--inputs", str(missing)) == (
        1, "aftercare run: inputs of issue-resolution: input 'title' is required"
    )
    extra = tmp_path / "extra.yaml"
    extra.write_text("title: Printer\nreporter: huang.lei\ncolour: red\nseverty: high\n", encoding="utf-8")
    code, said = aftercare(user_env, "run", "issue-resolution", "--inputs", str(extra))
    assert (code, said) == (1, "aftercare run: inputs of issue-resolution: unknown input 'colour'; unknown input 'severty'; did you mean 'severity'?")
    assert Register(user_env["AFTERCARE_DATABASE_URL"]).cases() == []


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("foo://x", "the register URL foo://x is not one Aftercare can use (Can't load plugin: sqlalchemy.dialects:foo)"),
        ("::::", "the register URL '::::' is not one Aftercare can use (Could not parse SQLAlchemy URL from given URL string)"),
        ("postgresql+psycopg://postgres:secret@127.0.0.1:1/x", "the register at postgresql+psycopg://postgres:***@127.0.0.1:1/x failed: connection failed"),
    ],
)
def test_a_register_url_that_does_not_work(user_env: dict[str, str], url: str, said: str) -> None:
    user_env["AFTERCARE_DATABASE_URL"] = url
    for command in (["cases"], ["db", "upgrade"]):
        code, told = aftercare(user_env, *command)
        assert code == 1 and len(told.splitlines()) == 1 and said in told


def test_a_file_that_is_not_a_register_and_a_register_from_elsewhere(user_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n", encoding="utf-8")
    user_env["AFTERCARE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'notes.db'}"
    assert aftercare(user_env, "cases") == (1, f"aftercare cases: the register at sqlite:///{tmp_path / 'notes.db'} failed: file is not a database")
    user_env["AFTERCARE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'other.db'}"
    register = Register(user_env["AFTERCARE_DATABASE_URL"])
    register.cases()
    with register._write() as session:  # another tool (or a newer Aftercare) moved the revision
        session.execute(sa.text("UPDATE aftercare_register_version SET version_num = 'zzz9'"))
    register.close()
    code, said = aftercare(user_env, "db", "upgrade")
    assert code == 1 and "is at a revision this Aftercare does not know (Can't locate revision identified by 'zzz9')" in said


def test_other_mistakes_of_the_command_line(user_env: dict[str, str], waiting_case: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    assert aftercare(user_env, "init", str(tmp_path / "a-file")) == (
        1, f"aftercare init: {tmp_path / 'a-file'} is a file, not a folder; give a folder to start (or a new name)"
    )
    code, said = aftercare(user_env, "cases", "--limit", "-5")
    assert code == 2 and said.endswith("argument --limit: -5 is not between 1 and 10000")
    assert aftercare(user_env, "cases", "--status", "opne") == (1, "aftercare cases: no case in status 'opne' in the register; did you mean 'open'?")
    user_env["PREFECT_API_URL"] = "http://127.0.0.1:1/api"
    code, said = aftercare(user_env, "answer", waiting_case, "triage", "--as", "li.na", "--approve", "priority=P2", "owner=liu.yang")
    assert code == 1 and said.startswith("aftercare answer: cannot reach the Prefect server (http://127.0.0.1:1/api/") and "PREFECT_API_URL" in said
