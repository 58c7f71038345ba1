"""Schema upgrades of our tables, run programmatically: ``upgrade(db_url)``.

The scitex hub service upgrades when it starts (before it answers or writes anything);
admins can run ``python -m jupyterhub_config.db upgrade`` themselves. Two processes that
upgrade at once (two hubs on one PostgreSQL, a service restarted during an upgrade) are
serialized: an advisory lock on PostgreSQL, the write lock (``BEGIN IMMEDIATE``) on
SQLite. The one that waited then finds the schema current and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from .engine import make_engine

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade",
]

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "scitex_alembic_version"
# pg_advisory_xact_lock key: "scitex" in ASCII, so it is recognisable in pg_locks.
_PG_LOCK_KEY = 0x736369746578


def alembic_config(db_url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if db_url:
        # '%' is interpolation syntax in Alembic's config; URLs may hold it (passwords).
        config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    # SQLite: our engine began this transaction with BEGIN IMMEDIATE, which is the lock.


def upgrade(db_url: str, revision: str = "head") -> str | None:
    """Bring our tables in ``db_url`` to ``revision`` (default: the newest); returns it."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            _lock(connection)
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            return MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    finally:
        engine.dispose()


def current_revision(db_url: str) -> str | None:
    """The revision our tables in ``db_url`` are at (``None``: none of ours yet)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    finally:
        engine.dispose()
