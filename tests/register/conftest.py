"""Fixtures: a fresh register on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.register import CaseRecord, Register, dispose, engine_for, upgrade
from tests.fixtures.postgres import pg_register_database

# The real PostgreSQL of the test machine; unreachable means failing tests, never skipped ones.

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
TABLES = (
    "answer_codes",
    "audit_events",
    "notifications",
    "approvals",
    "step_runs",
    "key_counters",
    "cases",
    "definitions",
)


@pytest.fixture(scope="session")
def pg_shared_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session, dropped at its end."""
    with pg_register_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, never migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'register.db'}"
        yield url
        dispose(url)
        return
    with pg_register_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def register_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty register on each backend.

    SQLite gets a new file, migrated on first use. PostgreSQL shares the session's
    database, emptied before each test: creating a database costs ~0.3 s, which
    over every test would dominate the suite (migrations are tested on fresh
    databases through ``fresh_url``).
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'register.db'}"
        yield url
        dispose(url)
        return
    url = request.getfixturevalue("pg_shared_url")
    with engine_for(url).begin() as connection:
        for table in TABLES:  # children first; DELETE is far quicker than TRUNCATE here
            connection.exec_driver_sql(f"DELETE FROM {table}")
    yield url


@pytest.fixture
def register(register_url: str) -> Iterator[Register]:
    """A Register on a fresh database (migrated on first use)."""
    reg = Register(register_url)
    yield reg
    reg.close()


@pytest.fixture
def open_case(register: Register) -> Callable[..., CaseRecord]:
    """Open an issue case with sensible defaults; keyword arguments override them."""

    def _open(**overrides: Any) -> CaseRecord:
        arguments: dict[str, Any] = {
            "process": "issue-resolution",
            "version": 1,
            "definition_hash": "sha256:abc",
            "key_prefix": "ISS",
            "title": "Printer jams",
            "inputs": {"title": "Printer jams", "severity": "high"},
            "opened_at": T0,
        }
        arguments.update(overrides)
        return register.open_case(**arguments)

    return _open
