"""Folders of small definitions, the ``aftercare`` command in a subprocess, fresh PostgreSQL registers.

The definitions' process ids start with ``dt-`` so their deployments never collide with
those of other tests that serve the shipped library on the same session server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from tests.fixtures.postgres import pg_register_database

T = TypeVar("T")


TEAM = """\
team:
  people:
    li.na: {name: Li Na, email: li.na@example.com, notify: [console]}
    wang.wei: {name: Wang Wei, email: wang.wei@example.com, notify: [console]}
  roles:
    support-lead: [li.na]
    approvers: [li.na, wang.wei]
"""


def aftercare_command() -> list[str]:
    """The installed ``aftercare`` console script, run by this interpreter."""
    return [sys.executable, str(Path(sys.executable).with_name("aftercare"))]


def prefect_command() -> list[str]:
    """The installed ``prefect`` command."""
    return [sys.executable, str(Path(sys.executable).with_name("prefect"))]


def write_processes(folder: Path, definitions: Mapping[str, str], team: str = TEAM) -> Path:
    """A processes folder: ``team.yaml`` and one ``NAME.yaml`` per definition."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(team, encoding="utf-8")
    for name, text in definitions.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def run_command(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 120.0, cwd: Path | None = None) -> str:
    """Run a command to its end; its output, or a failure that shows it."""
    done = subprocess.run(
        list(argv), env=dict(env), cwd=str(cwd) if cwd else None, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done.stdout


def wait_until(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5, explain: Callable[[], str] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` (and ``explain()``) if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            pytest.fail(f"no {what} within {timeout:.0f} s{detail}", pytrace=False)
        time.sleep(interval)


@pytest.fixture
def pg_register_url() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh PostgreSQL database for the register, dropped afterwards."""
    with pg_register_database("aftercare_deploy") as url:
        yield url
