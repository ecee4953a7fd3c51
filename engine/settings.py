"""Configuration, read in one place: the ``AFTERCARE_*`` variables and the Prefect UI's address.

DESIGN.md "Configuration" is the contract: ``AFTERCARE_DATABASE_URL`` (the register),
``AFTERCARE_PROCESSES`` (the definitions folder), ``AFTERCARE_SMTP_URL`` (the mail
server); ``PREFECT_UI_URL`` and ``PREFECT_API_URL`` tell where the Prefect UI is, for
links in messages and artifacts. Every module that needs one of them asks here, and
the values are read from the environment at each call (a test or a command may set
them late), never cached in a module of its own.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

REGISTER_FILE = "register.db"


class Settings(BaseSettings):
    """What the environment configures; an empty variable counts as unset."""

    model_config = SettingsConfigDict(env_prefix="AFTERCARE_", extra="ignore", frozen=True)

    database_url: str | None = None
    """``AFTERCARE_DATABASE_URL``: the register's SQLAlchemy URL."""
    processes: Path = Path("processes")
    """``AFTERCARE_PROCESSES``: where ``run``, ``serve`` and ``answer`` find definitions and ``team.yaml``."""
    smtp_url: str | None = None
    """``AFTERCARE_SMTP_URL``: the mail server; unset, mail goes to the console."""
    prefect_ui_url: str | None = Field(default=None, validation_alias=AliasChoices("PREFECT_UI_URL"))
    """``PREFECT_UI_URL``: the Prefect UI's address, when it is not the API's without ``/api``."""
    prefect_api_url: str | None = Field(default=None, validation_alias=AliasChoices("PREFECT_API_URL"))
    """``PREFECT_API_URL``: the Prefect server runs go to."""
    debug: bool = False
    """``AFTERCARE_DEBUG``: a command that fails unexpectedly prints its traceback too."""

    @field_validator("database_url", "smtp_url", "prefect_ui_url", "prefect_api_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator("processes", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return Path("processes")
        return value


VARIABLES = ("AFTERCARE_DATABASE_URL", "AFTERCARE_PROCESSES", "AFTERCARE_SMTP_URL", "AFTERCARE_DEBUG", "PREFECT_UI_URL", "PREFECT_API_URL")


def current() -> Settings:
    """The settings as the environment gives them now (read again whenever a variable changed).

    Raises:
        ConfigurationError: a variable's value is not one Aftercare can use.
    """
    return _settings(tuple(os.environ.get(name) for name in VARIABLES))


@lru_cache(maxsize=16)
def _settings(values: tuple[str | None, ...]) -> Settings:
    # Reading and validating costs ~0.2 ms; the variables themselves are the cache key.
    try:
        return Settings()
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        name = "AFTERCARE_" + str(problem["loc"][0]).upper() if problem["loc"] else "a variable"
        raise ConfigurationError(f"{name}: {problem['msg']} (got {problem.get('input')!r})") from None


def database_url() -> str:
    """The register's URL: ``AFTERCARE_DATABASE_URL``, else a SQLite file in the user's data directory."""
    configured = current().database_url
    if configured:
        return configured
    return f"sqlite:///{Path(platformdirs.user_data_dir('aftercare')) / REGISTER_FILE}"


def processes_folder() -> Path:
    """The definitions folder (``AFTERCARE_PROCESSES``, default ``./processes``)."""
    return current().processes


def smtp_url() -> str | None:
    """The mail server's URL, None when mail goes to the console."""
    return current().smtp_url


def ui_url(api_url: str | None = None) -> str | None:
    """The Prefect UI's base address, the one source of every link into it.

    ``PREFECT_UI_URL`` when set; else the API's address without ``/api``: the API the
    caller talks to (``api_url``, which the Prefect layer passes, as Prefect may take it
    from a profile or an embedded server) or ``PREFECT_API_URL``. None when there is no
    server to link to.
    """
    settings = current()
    if settings.prefect_ui_url:
        return settings.prefect_ui_url.rstrip("/")
    api = (api_url or settings.prefect_api_url or "").strip().rstrip("/")
    if not api:
        return None
    return api[: -len("/api")] if api.endswith("/api") else api
