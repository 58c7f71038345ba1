"""Alembic environment for our tables (run programmatically: scitex_hub.db.migrate).

Our version table is ``scitex_alembic_version``: JupyterHub keeps its own revision in
``alembic_version`` in the same database, and neither may see the other's tables.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from scitex_hub.db.engine import make_engine
from scitex_hub.db.models import Base

VERSION_TABLE = "scitex_alembic_version"

config = context.config


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Compare and migrate only our tables, never JupyterHub's.
    if type_ == "table":
        return bool(name) and str(name).startswith("scitex_") and name != VERSION_TABLE
    return True


def configure(connection: Connection | None = None, **extra: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        # SQLite cannot ALTER most things: rebuild tables in batch mode there.
        render_as_batch=(connection is None or connection.dialect.name == "sqlite"),
        **extra,
    )


def run_offline() -> None:
    """``upgrade --sql``: print the DDL for a DBA instead of running it."""
    configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # Shared by the caller, who holds the transaction (and the migration lock).
        configure(connection)
        context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as connection:
            configure(connection)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
