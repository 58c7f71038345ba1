"""Databases for tests of our tables: a fresh SQLite file, or a fresh PostgreSQL database.

PostgreSQL is the real server of ``deploy/dev/postgres.sh`` (``make test`` starts it).
Without it the PostgreSQL cases skip, or fail in CI (``tests.services.missing``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.services import missing

REPO = Path(__file__).resolve().parents[2]
POSTGRES_SH = REPO / "deploy" / "dev" / "postgres.sh"


def sqlite_url(directory: Path, name: str = "hub.sqlite") -> str:
    return f"sqlite:///{directory / name}"


def postgres_url(name: str) -> str:
    """A new, empty database ``name`` on the dev PostgreSQL; its SQLAlchemy URL."""
    try:
        result = subprocess.run(
            ["bash", str(POSTGRES_SH), "createdb", name],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as e:
        missing("PostgreSQL", f"postgres.sh createdb failed: {e}")
        raise
    if result.returncode != 0:
        missing(
            "PostgreSQL",
            f"postgres.sh createdb {name} exited {result.returncode}: "
            f"{result.stderr.strip()[-300:]} (start it with `make postgres`)",
        )
    url = result.stdout.strip().splitlines()[-1]
    if not url.startswith("postgresql"):
        missing("PostgreSQL", "postgres.sh createdb printed no URL")
    return url


def drop_postgres(url: str) -> None:
    """Drop the database of ``url`` (made by :func:`postgres_url`), connecting to ``postgres``."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    dsn = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The name is ours (postgres_url's caller): scitex_t_<test>.
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
