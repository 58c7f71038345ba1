"""``python -m jupyterhub_config.health``: exit 0 when the hub answers its health check.

The Compose file's health check of the hub container: it asks the hub's API where the
site file binds it (``hub.hub_bind_url``; an all-interfaces bind is asked on loopback),
so it follows the site's addresses instead of a port written into the Compose file.
"""

from __future__ import annotations

import sys
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from .settings import SettingsError, load_settings

# Asked on loopback when the hub listens on every interface.
ALL_INTERFACES = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def health_url(hub_bind_url: str, base_url: str) -> str:
    """Where the hub's ``/hub/health`` answers, from its bind URL and base URL."""
    parts = urlsplit(hub_bind_url)
    host = parts.hostname or ""
    host = ALL_INTERFACES.get(host, host)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    base = "/" + "/".join(p for p in base_url.split("/") if p)
    path = (base.rstrip("/") + "/hub/health") if base != "/" else "/hub/health"
    return urlunsplit((parts.scheme or "http", netloc, path, "", ""))


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"hub health: invalid site file: {e}", file=sys.stderr)  # noqa: T201
        return 1
    url = health_url(settings.hub.hub_bind_url, settings.hub.base_url)
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - http(s) only
            return 0 if answer.status == 200 else 1
    except OSError as e:
        print(f"hub health: {url}: {e}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
