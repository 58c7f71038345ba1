"""``python -m scitex_hub.db upgrade|current [--db-url URL]``: our tables' schema.

The database defaults to the site file's ``hub.db_url`` (``$SCITEX_CONFIG``). The URL
may also come from ``$SCITEX_DB_URL``; it is never printed (it may hold a password).
"""

from __future__ import annotations

import argparse
import os
import sys

from .migrate import current_revision, head_revision, upgrade


def _db_url(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("SCITEX_DB_URL"):
        return os.environ["SCITEX_DB_URL"]
    from jupyterhub_config.settings import load_settings

    return load_settings().hub.db_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scitex_hub.db", description=__doc__)
    parser.add_argument("action", choices=["upgrade", "current"])
    parser.add_argument("--db-url", help="SQLAlchemy URL (default: the site file's hub.db_url)")
    args = parser.parse_args(argv)
    from jupyterhub_config.settings import SettingsError

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
