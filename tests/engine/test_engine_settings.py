"""Configuration read in one place (engine.settings): the AFTERCARE_* variables and the UI's address."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftercare.engine import settings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_and_empty_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", "  ")
    monkeypatch.setenv("AFTERCARE_PROCESSES", "")
    assert settings.database_url().startswith("sqlite:///") and settings.database_url().endswith("/aftercare/register.db")
    assert settings.processes_folder() == Path("processes")
    assert settings.smtp_url() is None and settings.ui_url() is None


def test_a_variable_set_late_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.smtp_url() is None
    monkeypatch.setenv("AFTERCARE_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.setenv("AFTERCARE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/aftercare")
    assert settings.smtp_url() == "smtp://127.0.0.1:2525"
    assert settings.database_url() == "postgresql+psycopg://postgres@127.0.0.1/aftercare"


def test_the_ui_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.ui_url("http://127.0.0.1:4200/api/") == "http://127.0.0.1:4200"
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.internal:4200/api")
    assert settings.ui_url() == "http://prefect.internal:4200"
    assert settings.ui_url("http://127.0.0.1:9999/api") == "http://127.0.0.1:9999"  # the API the caller talks to wins
    monkeypatch.setenv("PREFECT_UI_URL", "https://prefect.example.com/")
    assert settings.ui_url("http://127.0.0.1:9999/api") == "https://prefect.example.com"
