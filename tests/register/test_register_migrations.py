"""Migrations: run on first use, explicit upgrade, schema equal to the models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from aftercare.engine.errors import RegisterError
from aftercare.engine.register import (
    Register,
    current_revision,
    default_url,
    dispose,
    engine_for,
    head_revision,
    upgrade,
)
from aftercare.engine.register.migrate import VERSION_TABLE
from aftercare.engine.register.models import Base

from .conftest import TABLES



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
    assert {"ix_step_runs_overdue", "ix_step_runs_assignee_status"} <= indexes["step_runs"]
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
