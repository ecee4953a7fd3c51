"""Alembic environment of the register: migrates the connection the caller passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from aftercare.engine.register.database import Database
from aftercare.engine.register.models import Base

# Any constant works; it only has to differ from other applications' advisory locks.
_PG_MIGRATION_LOCK = 0x41465443  # "AFTC"

config = context.config
version_table = config.get_main_option("version_table") or "aftercare_register_version"


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        version_table=version_table,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if context.get_context().dialect.name == "postgresql":
            context.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration as SQL (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
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
    database = Database(config.get_main_option("sqlalchemy.url"))
    with database.write_connection() as own:
        _run(own)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
