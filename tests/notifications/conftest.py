"""Fixtures of the notification tests: a register on a SQLite file, the test library, channels and a clock."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.case import CaseState
from aftercare.engine.library import load_library
from aftercare.engine.loader import Library
from aftercare.engine.register import CaseRecord, Register, dispose
from aftercare.notifications import ChannelRouter, MessageTemplates, RetryPolicy, template_sources
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.smtp import SmtpSink

DATA = Path(__file__).parent / "data"
LIBRARY = DATA / "library"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
FAST = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=10), factor=2.0, max_delay=timedelta(minutes=5))
"""Retries the tests can step through with an injected clock: +10 s, +20 s, then failed."""


@pytest.fixture
def register(tmp_path: Path) -> Iterator[Register]:
    url = f"sqlite:///{tmp_path}/r.db"
    register = Register(url=url)
    try:
        yield register
    finally:
        dispose(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_register(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Register]:
    """The register on a SQLite file and on a fresh PostgreSQL database (claims differ: locks vs SKIP LOCKED)."""
    from tests.fixtures.postgres import pg_register_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/r.db"
        yield Register(url=url)
        dispose(url)
        return
    with pg_register_database() as url:
        yield Register(url=url)


@pytest.fixture(scope="session")
def library() -> Library:
    return load_library(LIBRARY, template_sources([LIBRARY]))


@pytest.fixture(scope="session")
def templates(library: Library) -> MessageTemplates:
    return MessageTemplates.for_library(library)


@pytest.fixture
def console() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def channels(smtp_sink: SmtpSink, http_listener: HttpListener, console: io.StringIO) -> ChannelRouter:
    """Mail to the real SMTP sink, ``${HOOK_HOST}`` to the real HTTP listener, the console to a buffer."""
    return ChannelRouter(
        smtp_url=smtp_sink.url,
        environ={"HOOK_HOST": f"127.0.0.1:{http_listener.port}"},
        console=console,
        smtp_timeout=5,
    )


def open_case(register: Register, library: Library, *, title: str = "打印机离线 Printer offline", at: datetime = T0,
              reporter: str = "li.na", flow_run_id: str | None = None) -> CaseRecord:
    spec = library.get("notify-support-request").spec
    return register.open_case(
        process=spec.process, version=spec.version, definition_hash="test", key_prefix=spec.key, title=title,
        inputs={"title": title, "reporter": reporter, "details": "第一行\nsecond <line>"}, opened_at=at,
        due_at=at + timedelta(days=2), flow_run_id=flow_run_id,
    )


def scope_of(case: CaseRecord, now: datetime, results: dict[str, Any] | None = None, url: str | None = None) -> dict[str, Any]:
    state = CaseState(key=case.key, process=case.process, version=case.version, title=case.title, inputs=dict(case.inputs),
                      opened_at=case.opened_at, due_at=case.due_at, url=url)
    state.results.update(results or {})
    return state.scope(now)
