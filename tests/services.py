"""Checks that the real services tests need are there.

Outside CI a missing service skips the test (a laptop without SLURM can still
run the unit tests). In CI (``CI=true``) it fails: a green CI run must mean the
end-to-end tests ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

PREFIX = os.environ.get("SCITEX_PREFIX", "/opt/scitex")
DEV_DIR = os.environ.get("SCITEX_DEV_DIR", "/var/lib/scitex-dev")
SLURM_CONF = os.environ.get("SLURM_CONF", os.path.join(DEV_DIR, "slurm", "slurm.conf"))
VENV_PYTHON = os.path.join(PREFIX, "venv", "bin", "python")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(service: str, why: str) -> None:
    message = f"{service} is not available: {why}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: services must be there; run `make test`)")
    pytest.skip(message)


def slurm_env() -> dict[str, str]:
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SLURM_CONF": SLURM_CONF,
    }


def require_slurm() -> None:
    if not shutil.which("sinfo"):
        missing("SLURM", "sinfo is not installed")
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            env=slurm_env(),
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as e:
        missing("SLURM", f"sinfo failed: {e}")
    usable = ("idle", "mixed", "allocated", "completing", "planned", "reserved")
    if not any(state.strip().rstrip("*~#$@") in usable for state in out.split()):
        missing("SLURM", f"no usable node (sinfo says {out.strip()!r})")


def require_root() -> None:
    if os.geteuid() != 0:
        missing("root", "the end-to-end tests run the hub as root (PAM, runuser)")


def require_executable(path: str, what: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        missing(what, f"{path} is missing")


def _password(variable: str, file: str) -> str:
    password = os.environ.get(variable)
    if password:
        return password
    try:
        with open(os.path.join(DEV_DIR, file)) as f:
            return f.read().strip()
    except OSError:
        missing("demo users", f"no {variable} and no {file} file (run deploy/dev/users.sh)")
        raise  # unreachable: missing() raises


def demo_password() -> str:
    """The demo researchers' password (alice, bob, carol, dave, erin)."""
    return _password("SCITEX_DEMO_PASSWORD", "demo-password")


def demo_admin_password() -> str:
    """The hub admin's (``admin``) password: its own, never the researchers'."""
    return _password("SCITEX_DEMO_ADMIN_PASSWORD", "demo-admin-password")
