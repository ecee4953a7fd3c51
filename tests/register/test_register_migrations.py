"""Migrations: run on first use, explicit upgrade, schema equal to the models."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from aftercare.engine.errors import RegisterError
from aftercare.engine.register import (
    WAIT_PERSON,
    WAIT_TIMER,
    AnswerRecord,
    Register,
    current_revision,
    default_url,
    dispose,
    engine_for,
    head_revision,
    upgrade,
)
from aftercare.engine.register.column_types import UTCDateTime, json_type
from aftercare.engine.register.database import Database
from aftercare.engine.register.migrate import VERSION_TABLE, alembic_config
from aftercare.engine.register.models import Base

from .conftest import T0, TABLES


def test_first_use_runs_the_migrations(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    register = Register(fresh_url)

    assert register.cases() == []

    assert current_revision(fresh_url) == head_revision()
    tables = set(inspect(engine_for(fresh_url)).get_table_names())
    assert set(TABLES) | {VERSION_TABLE} <= tables
    assert "alembic_version" not in tables  # leaves Prefect's table name alone


def test_without_auto_migration_the_schema_is_missing(fresh_url: str) -> None:
    register = Register(fresh_url, migrate=False)
    with pytest.raises(RegisterError, match="the register at .* failed"):
        register.cases()
    assert register.migrate() == head_revision()
    assert register.cases() == []


def test_processes_migrating_at_once_take_turns(fresh_url: str) -> None:
    # Separate processes (alembic's context is process-global, so threads take turns
    # on an in-process lock): the database's own lock (BEGIN IMMEDIATE on SQLite, an
    # advisory lock on PostgreSQL) must serialize them.
    code = "import sys; from aftercare.engine.register import upgrade; upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, fresh_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    assert current_revision(fresh_url) == head_revision()


def test_a_recreated_database_is_migrated_again(tmp_path: Path) -> None:
    path = tmp_path / "register.db"
    url = f"sqlite:///{path}"
    Register(url).cases()
    dispose(url)
    path.unlink()
    assert Register(url).cases() == []


def test_explicit_upgrade_is_idempotent(fresh_url: str) -> None:
    assert upgrade(fresh_url) == head_revision()
    assert upgrade(fresh_url) == head_revision()
    assert current_revision(fresh_url) == head_revision()


def test_migrated_schema_matches_the_models(fresh_url: str) -> None:
    upgrade(fresh_url)
    with engine_for(fresh_url).connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_indexes_for_the_dashboard_exist(fresh_url: str) -> None:
    upgrade(fresh_url)
    inspector = inspect(engine_for(fresh_url))
    indexes = {
        table: {index["name"] for index in inspector.get_indexes(table)}
        for table in ("cases", "step_runs", "notifications")
    }
    assert {"ix_cases_open_process_status", "ix_cases_closed_process_times"} <= indexes["cases"]
    assert {"ix_step_runs_overdue", "ix_step_runs_wait_kind_status"} <= indexes["step_runs"]
    assert "ix_step_runs_assignee_status" not in indexes["step_runs"]
    assert "ix_notifications_status_next_attempt_at" in indexes["notifications"]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'register.db'}"
    Register(url).cases()
    with engine_for(url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_default_url_is_a_file_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERCARE_DATABASE_URL", raising=False)
    url = default_url()
    assert url.startswith("sqlite:///") and url.endswith("register.db")
    assert "aftercare" in url

    monkeypatch.setenv("AFTERCARE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert default_url() == "postgresql+psycopg://u@h/db"
    assert Register().url == "postgresql+psycopg://u@h/db"  # nothing connects yet


# The tables at revision 0002, as the code of that time wrote them.
_OLD_CASES = sa.table(
    "cases",
    *(sa.column(name) for name in ("id", "key", "process", "version", "definition_hash", "title", "status")),
    sa.column("inputs", json_type()),
    sa.column("fields", json_type()),
    sa.column("opened_at", UTCDateTime()),
)
_OLD_STEP_RUNS = sa.table(
    "step_runs",
    *(sa.column(name) for name in ("id", "case_id", "step_id", "visit", "status", "assignee")),
    sa.column("result", json_type()),
    sa.column("started_at", UTCDateTime()),
    sa.column("finished_at", UTCDateTime()),
    sa.column("due_at", UTCDateTime()),
)
_OLD_APPROVALS = sa.table(
    "approvals",
    *(sa.column(name) for name in ("id", "step_run_id", "person", "decision", "comment")),
    sa.column("fields", json_type()),
    sa.column("answered_at", UTCDateTime()),
)
_OLD_AUDIT = sa.table(
    "audit_events",
    *(sa.column(name) for name in ("id", "case_id", "event", "actor", "detail")),
    sa.column("at", UTCDateTime()),
    sa.column("after", json_type()),
)
HOUR = timedelta(hours=1)
TIMED_OUT_AT = T0 + HOUR + timedelta(seconds=5)


def migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    """Move the register at ``url`` to ``revision`` with the package's own scripts."""
    database = Database(url)
    config = alembic_config(url)
    with database.write_connection() as connection:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def old_register(url: str) -> None:
    """A register at revision 0002 holding cases as the old code left them, some waiting now."""
    migrate_to(url, "0002")
    case_ids = {"ISS-0001": 1, "ISS-0002": 2, "ISS-0003": 3, "ISS-0004": 4}
    with engine_for(url).begin() as connection:
        connection.execute(sa.insert(_OLD_CASES), [
            {"id": case_id, "key": key, "process": "issue-resolution", "version": 1, "definition_hash": "sha256:abc",
             "title": key, "status": "open", "inputs": {}, "fields": {}, "opened_at": T0}
            for key, case_id in case_ids.items()
        ])
        connection.execute(sa.insert(_OLD_STEP_RUNS), [
            # ISS-0001 took an automatic step, then waits at a human step: one answer, one refused.
            {"id": 10, "case_id": 1, "step_id": "intake", "visit": 1, "status": "done", "assignee": None,
             "result": {"ok": True}, "started_at": T0, "finished_at": T0, "due_at": None},
            {"id": 11, "case_id": 1, "step_id": "triage", "visit": 1, "status": "active",
             "assignee": "li.na,wang.wei", "result": None, "started_at": T0, "finished_at": None,
             "due_at": T0 + 4 * HOUR},
            # ISS-0002 waits at a wait step's timer.
            {"id": 20, "case_id": 2, "step_id": "cool-down", "visit": 1, "status": "waiting", "assignee": None,
             "result": None, "started_at": T0, "finished_at": None, "due_at": T0 + timedelta(days=7)},
            # ISS-0003's verify timed out (a references-style assignee); ISS-0004's verify did not.
            {"id": 30, "case_id": 3, "step_id": "verify", "visit": 1, "status": "active",
             "assignee": "person:zhang.san, li.na", "result": None, "started_at": T0, "finished_at": None,
             "due_at": T0 + HOUR},
            {"id": 40, "case_id": 4, "step_id": "verify", "visit": 1, "status": "active", "assignee": "wang.wei",
             "result": None, "started_at": T0, "finished_at": None, "due_at": T0 + HOUR},
        ])
        connection.execute(sa.insert(_OLD_APPROVALS), [
            {"step_run_id": 11, "person": "li.na", "decision": "approve", "comment": "ok",
             "fields": {"priority": "P2"}, "answered_at": T0 + HOUR},
        ])
        refused = "zhang.san may not answer step 'triage'"
        connection.execute(sa.insert(_OLD_AUDIT), [
            {"case_id": 1, "event": "case.opened", "actor": "aftercare", "detail": None, "at": T0, "after": {"status": "open"}},
            # The flow refused an answer it took from a pause: that wait is used up.
            {"case_id": 1, "event": "answer.refused", "actor": "zhang.san", "detail": refused, "at": T0 + 2 * HOUR,
             "after": {"step": "triage", "visit": 1, "key": "triage-v1-a1"}},
            # The CLI refused one before any pause took it, and a refusal of another visit: neither counts.
            {"case_id": 1, "event": "answer.refused", "actor": "zhang.san", "detail": refused, "at": T0 + 2 * HOUR,
             "after": {"step": "triage", "visit": 1, "via": "cli"}},
            {"case_id": 1, "event": "answer.refused", "actor": "zhang.san", "detail": refused, "at": T0 + 2 * HOUR,
             "after": {"step": "triage", "visit": 2, "key": "triage-v2-a0"}},
            {"case_id": 3, "event": "step.timed_out", "actor": "aftercare", "detail": "verify #1: due passed",
             "at": TIMED_OUT_AT, "after": {"step": "verify", "visit": 1}},
            # A second mark of the same visit (the sweep and the run both wrote one): the first counts.
            {"case_id": 3, "event": "step.timed_out", "actor": "aftercare", "detail": "verify #1: due passed",
             "at": TIMED_OUT_AT + HOUR, "after": {"step": "verify", "visit": 1}},
        ])


def _quorum_two(answers: list[AnswerRecord]) -> dict[str, object] | None:
    approvals = [a.person for a in answers if a.decision == "approve"]
    return {"decision": "approve", "by": approvals} if len(approvals) >= 2 else None


def test_0003_gives_a_live_register_typed_step_facts(fresh_url: str) -> None:
    old_register(fresh_url)
    assert current_revision(fresh_url) == "0002"

    assert upgrade(fresh_url) == head_revision()

    register = Register(fresh_url)
    triage = register.step_run("ISS-0001", "triage", 1)
    assert triage is not None
    assert (triage.eligible, triage.wait_kind, triage.timed_out_at, triage.pause_attempt) == (
        ("li.na", "wang.wei"), WAIT_PERSON, None, 2,
    )
    assert (triage.status, triage.due_at) == ("active", T0 + 4 * HOUR)
    # Its answer survived the column's removal (a copied table would have taken it along).
    assert [(a.person, a.fields) for a in register.answers("ISS-0001", "triage", 1)] == [("li.na", {"priority": "P2"})]
    intake = register.step_run("ISS-0001", "intake", 1)
    assert intake is not None
    assert (intake.eligible, intake.wait_kind, intake.timed_out_at, intake.pause_attempt) == ((), None, None, 0)

    timer = register.step_run("ISS-0002", "cool-down", 1)
    assert timer is not None
    assert (timer.eligible, timer.wait_kind, timer.timed_out_at, timer.pause_attempt) == ((), WAIT_TIMER, None, 0)

    timed_out = register.step_run("ISS-0003", "verify", 1)
    assert timed_out is not None
    assert (timed_out.eligible, timed_out.wait_kind, timed_out.timed_out_at, timed_out.pause_attempt) == (
        ("zhang.san", "li.na"), WAIT_PERSON, TIMED_OUT_AT, 0,
    )
    other = register.step_run("ISS-0004", "verify", 1)
    assert other is not None
    assert (other.eligible, other.wait_kind, other.timed_out_at) == (("wang.wei",), WAIT_PERSON, None)

    # The typed facts answer the queries that used to split strings and scan audit rows.
    assert [(s.case_key, s.step_id) for s in register.open_steps(person="wang.wei")] == [
        ("ISS-0001", "triage"), ("ISS-0004", "verify"),
    ]
    assert [c.key for c in register.cases(person="li.na")] == ["ISS-0003", "ISS-0001"]
    assert [s.case_key for s in register.open_steps(wait_kind=WAIT_TIMER)] == ["ISS-0002"]
    overdue = register.overdue_steps(T0 + timedelta(days=8), wait_kind=WAIT_TIMER)
    assert [s.case_key for s in overdue] == ["ISS-0002"]
    assert register.mark_timed_out(timed_out.id, T0 + 3 * HOUR) is False  # marked before the upgrade
    assert register.mark_timed_out(other.id, T0 + 3 * HOUR) is True

    # The waiting case goes on: the second approval decides, the waits count on.
    outcome = register.answer("ISS-0001", "triage", 1, person="wang.wei", decision="approve",
                              decide=_quorum_two, pause_attempt=3)
    assert (outcome.decision, outcome.step.pause_attempt) == ("approve", 3)
    assert outcome.step.result == {"decision": "approve", "by": ["li.na", "wang.wei"]}

    inspector = inspect(engine_for(fresh_url))
    assert "assignee" not in {column["name"] for column in inspector.get_columns("step_runs")}
    indexes = {index["name"] for index in inspector.get_indexes("step_runs")}
    assert "ix_step_runs_assignee_status" not in indexes
    assert {"ix_step_runs_wait_kind_status", "ix_step_runs_overdue", "ix_step_runs_status_due_at"} <= indexes
    with engine_for(fresh_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_0003_downgrades_to_the_joined_assignee(fresh_url: str) -> None:
    old_register(fresh_url)
    upgrade(fresh_url)

    migrate_to(fresh_url, "0002", down=True)

    assert current_revision(fresh_url) == "0002"
    with engine_for(fresh_url).connect() as connection:
        rows = connection.execute(sa.text("SELECT id, assignee FROM step_runs ORDER BY id")).all()
        approvals = connection.execute(sa.text("SELECT count(*) FROM approvals")).scalar_one()
    assert [tuple(row) for row in rows] == [
        (10, None), (11, "li.na,wang.wei"), (20, None), (30, "zhang.san,li.na"), (40, "wang.wei"),
    ]
    assert approvals == 1
    columns = {column["name"] for column in inspect(engine_for(fresh_url)).get_columns("step_runs")}
    assert not {"eligible", "wait_kind", "timed_out_at", "pause_attempt"} & columns
    assert upgrade(fresh_url) == head_revision()
    triage = Register(fresh_url).step_run("ISS-0001", "triage", 1)
    assert triage is not None and triage.eligible == ("li.na", "wang.wei")
