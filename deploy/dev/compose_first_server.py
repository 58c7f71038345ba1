"""alice signs in through nginx on the Compose stack and starts her server; prints the time
from ``SCITEX_T0_MS`` (when ``make demo-compose`` started) to her server being ready.

Run by deploy/dev/compose.sh up. The password is the demo's (users.sh), read from its file.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import requests


def main() -> None:
    url = os.environ["SCITEX_COMPOSE_URL"]
    ca = os.environ["SCITEX_COMPOSE_CA"]
    t0 = int(os.environ["SCITEX_T0_MS"]) / 1000
    dev_dir = Path(os.environ.get("SCITEX_DEV_DIR", "/var/lib/scitex-dev"))
    password = os.environ.get("SCITEX_DEMO_PASSWORD") or (dev_dir / "demo-password").read_text()
    session = requests.Session()
    # Not session.verify: requests lets REQUESTS_CA_BUNDLE override that one.
    session.request = functools.partial(session.request, verify=ca)  # type: ignore[method-assign]
    session.get(f"{url}/hub/login", timeout=30)
    xsrf = session.cookies.get("_xsrf", "")
    r = session.post(
        f"{url}/hub/login",
        data={"username": "alice", "password": password.strip(), "_xsrf": xsrf},
        timeout=60,
        allow_redirects=False,
    )
    r.raise_for_status()
    headers = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
    r = session.post(
        f"{url}/hub/api/users/alice/server", json={"profile": "small"}, headers=headers, timeout=60
    )
    if r.status_code not in (201, 202, 400):  # 400: already running
        raise SystemExit(f"spawn failed: {r.status_code} {r.text[:300]}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        model = session.get(f"{url}/hub/api/users/alice", headers=headers, timeout=30).json()
        server = model.get("servers", {}).get("", {})
        if server.get("ready"):
            elapsed = time.time() - t0
            sys.stdout.write(
                f"First ready server (alice's): {elapsed:.1f} s after make demo-compose started\n"
            )
            return
        time.sleep(0.5)
    raise SystemExit("alice's server was not ready within 180 s")


if __name__ == "__main__":
    main()
