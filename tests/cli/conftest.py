"""Fixtures of the command-line tests: a user's environment of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no Prefect server configured, a register and data dir of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCARE_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        XDG_DATA_HOME=str(tmp_path / "data"),
        AFTERCARE_DATABASE_URL=f"sqlite:///{tmp_path / 'register.db'}",
        AFTERCARE_PROCESSES=str(ROOT / "processes"),
    )
    return env
