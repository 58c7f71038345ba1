"""``python -m jupyterhub_config.db upgrade|current [--db-url URL]``: our tables' schema.

Here, beside the site file's loader (only ``jupyterhub_config`` reads the site file): the
database defaults to the site file's ``hub.db_url`` (``$SCITEX_CONFIG``). The URL
may also come from ``$SCITEX_DB_URL``; it is never printed (it may hold a password).
"""

from __future__ import annotations

import argparse
import os
import sys

from scitex_hub.db.migrate import current_revision, head_revision, upgrade

from .settings import SettingsError, load_settings


def _db_url(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("SCITEX_DB_URL"):
        return os.environ["SCITEX_DB_URL"]
    return load_settings().hub.db_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyterhub_config.db", description=__doc__)
    parser.add_argument("action", choices=["upgrade", "current"])
    parser.add_argument("--db-url", help="SQLAlchemy URL (default: the site file's hub.db_url)")
    args = parser.parse_args(argv)
    try:
        url = _db_url(args.db_url)
    except SettingsError as e:
        parser.exit(1, f"{parser.prog}: {e}\n")
    if args.action == "upgrade":
        print(f"scitex tables at revision {upgrade(url)}")
    else:
        print(f"scitex tables at revision {current_revision(url)} (newest: {head_revision()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
