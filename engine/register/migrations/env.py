"""Alembic environment of the register: migrates the connection the caller passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

# Any constant works; it only has to differ from other applications' advisory locks.
_PG_MIGRATION_LOCK = 0x41465443  # "AFTC"

config = context.config
version_table = config.get_main_option("version_table") or "aftercare_register_version"
# aftercare.engine.register.migrate passes the models' metadata (for autogenerate)
# and its own connection, so this file imports nothing of the package.
target_metadata = config.attributes.get("target_metadata")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes migrating a fresh database at once take turns.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration as SQL (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=version_table,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the caller's connection, or open one on the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = create_engine(url)
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
