"""The register fixtures of tests/register (a SQLite file and PostgreSQL), for the report's tests."""

from tests.register.conftest import pg_shared_url, register, register_url

__all__ = ["pg_shared_url", "register", "register_url"]
