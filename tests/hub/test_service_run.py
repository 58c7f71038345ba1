"""The service as the hub runs it: its config from apply_services, its usage scanner, and
``python -m scitex_service`` as a real process (migrates, syncs, scans, listens)."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import Engine
from traitlets.config import Config

from jupyterhub_config.apply import apply_services
from jupyterhub_config.service_config import service_config
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_hub.db import current_revision, get_engine, head_revision, upgrade
from scitex_hub.db import store as db
from scitex_hub.db.engine import dispose_engine
from scitex_quota import scan_tree
from scitex_service.scanner import UsageScanner, user_dirs
from tests.e2e.hubprocess import free_port
from tests.hub.dbhelpers import sqlite_url
from tests.hub.servicehelpers import service_environment
from tests.hub.test_config import DEMO

REPO = Path(__file__).resolve().parents[2]


# ---- apply_services --------------------------------------------------------------------


def test_apply_services_registers_the_managed_service(tmp_path: Path) -> None:
    site = tmp_path / "scitex.yaml"
    site.write_text("data_root: ${SITE_ROOT:-/srv}/data\nhub: {state_dir: ${SITE_STATE}}\n")
    environ = {
        "SCITEX_CONFIG": str(site),
        "SITE_ROOT": "/shared",
        "SITE_STATE": "/var/hub",
        "SCITEX_DEMO_PASSWORD": "not for the service",
        "PGPASSFILE": "/etc/scitex/secrets/pgpass",
        "PGSSLMODE": "verify-full",
    }
    data = copy.deepcopy(DEMO)
    data["hub"]["db_url"] = "postgresql+psycopg://hub:pw@db/hub"
    data["service"] = {"url": "http://127.0.0.1:8123"}
    settings = parse_settings(data)
    c = Config()
    apply_services(c, settings, environ)
    assert c.JupyterHub.services == [
        {
            "name": "scitex",
            "url": "http://127.0.0.1:8123",
            "command": [sys.executable, "-m", "scitex_service"],
            "environment": {
                # libpq reads the password file and TLS mode from these, as the hub does.
                "PGPASSFILE": "/etc/scitex/secrets/pgpass",
                "PGSSLMODE": "verify-full",
                "SCITEX_DB_URL": "postgresql+psycopg://hub:pw@db/hub",
                # The service reads no site file (nor the variables it uses): its settings.
                "SCITEX_SERVICE_CONFIG": json.dumps(
                    service_config(settings), separators=(",", ":")
                ),
            },
            "oauth_no_confirm": True,
            # A browser's token for the service carries the admin scope its user holds.
            "oauth_client_allowed_scopes": ["custom:scitex:admin"],
            "display": True,
            "info": {"description": "Storage quotas, usage and spawn records"},
        }
    ]
    assert c.JupyterHub.load_roles == [
        {
            "name": "scitex-service",
            "description": "The scitex hub service: look up users and institutions",
            "scopes": ["list:users", "read:users", "list:groups", "read:groups"],
            "services": ["scitex"],
        },
        {
            "name": "scitex-hub-admin",
            "description": "Administer every institution in the scitex service",
            "scopes": ["custom:scitex:admin"],
            "users": ["admin"],
        },
        {
            "name": "user",
            "scopes": ["self", "access:services!service=scitex", "custom:scitex:jobs!user"],
        },
    ]
    # Defined here too: the hub refuses a client that names an undefined scope.
    assert "custom:scitex:admin" in c.JupyterHub.custom_scopes
    # The notebook server's token never carries the admin scope (code in a notebook reads it).
    assert not [s for s in c.Spawner.server_token_scopes if s.startswith("custom:scitex:admin")]
    assert c.SqlSpawnStore.db_url == "postgresql+psycopg://hub:pw@db/hub"
    # The database URL travels in the environment, never on the command line.
    assert all("pw@" not in word for word in c.JupyterHub.services[0]["command"])
    # Nor in the service's settings (it has its own variable).
    assert "pw@" not in c.JupyterHub.services[0]["environment"]["SCITEX_SERVICE_CONFIG"]


def test_apply_services_adds_to_what_is_there() -> None:
    c = Config()
    c.JupyterHub.services = [{"name": "cull-idle", "command": ["cull"]}]
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", "read:groups"]},
        {"name": "scitex-admin-demo-u", "scopes": ["read:users!group=demo-u"]},
    ]
    apply_services(c, parse_settings(DEMO), {})
    assert [s["name"] for s in c.JupyterHub.services] == ["cull-idle", "scitex"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == [
        "self",
        "read:groups",
        "access:services!service=scitex",
        "custom:scitex:jobs!user",
    ]
    assert set(roles) == {"user", "scitex-admin-demo-u", "scitex-service", "scitex-hub-admin"}
    # Applying twice (a config reloaded) does not duplicate anything.
    apply_services(c, parse_settings(DEMO), {})
    assert [s["name"] for s in c.JupyterHub.services] == ["cull-idle", "scitex"]
    assert [r["name"] for r in c.JupyterHub.load_roles].count("scitex-service") == 1
    assert [r["name"] for r in c.JupyterHub.load_roles].count("scitex-hub-admin") == 1
    assert roles["user"]["scopes"].count("access:services!service=scitex") == 1


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8090", "http://127.0.0.1", "http://127.0.0.1:8090/x", "8090"]
)
def test_the_service_url_is_checked(url: str) -> None:
    data = copy.deepcopy(DEMO)
    data["service"] = {"url": url}
    with pytest.raises(ValueError, match=re.escape("service.url: must be http://HOST:PORT")):
        parse_settings(data)


# ---- the scanner ---------------------------------------------------------------------------


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "demo-u" / "alice" / "projects" / "p1").mkdir(parents=True)
    (root / "demo-u" / "alice" / "projects" / "p1" / "a.bin").write_bytes(os.urandom(200_000))
    (root / "demo-u" / "alice" / "notes.txt").write_text("x" * 5000)
    (root / "demo-u" / "bob").mkdir()
    (root / "other-u" / "carol").mkdir(parents=True)
    (root / "other-u" / "carol" / "c.bin").write_bytes(os.urandom(70_000))
    # Not users: a file, a name no user can have, a symlink to someone's directory.
    (root / "demo-u" / "README").write_text("not a user")
    (root / "demo-u" / "Not A User").mkdir()
    (root / "demo-u" / "mallory").symlink_to(root / "other-u" / "carol")
    return root


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = sqlite_url(tmp_path)
    upgrade(url)
    yield get_engine(url)
    dispose_engine(url)


def test_user_dirs_are_real_directories_named_like_users(data_root: Path) -> None:
    assert [u for u, _ in user_dirs(str(data_root), "demo-u")] == ["alice", "bob"]
    assert list(user_dirs(str(data_root), "no-such-u")) == []


def test_one_pass_measures_every_user_as_scan_tree_does(data_root: Path, engine: Engine) -> None:
    scanner = UsageScanner(engine, str(data_root), ["demo-u", "other-u"], batch=2)
    assert scanner.scan_once() == 3
    latest = db.latest_usage_of(engine, ["demo-u", "other-u"])
    measured = {(i, u): r.used_bytes for i, rows in latest.items() for u, r in rows.items()}
    assert measured == {
        ("demo-u", "alice"): scan_tree(str(data_root / "demo-u" / "alice")).used_bytes,
        ("demo-u", "bob"): scan_tree(str(data_root / "demo-u" / "bob")).used_bytes,
        ("other-u", "carol"): scan_tree(str(data_root / "other-u" / "carol")).used_bytes,
    }
    assert measured[("demo-u", "alice")] >= 205_000


def test_the_scanner_thread_runs_each_interval_and_stops(data_root: Path, engine: Engine) -> None:
    scanner = UsageScanner(engine, str(data_root), ["demo-u"], interval=0.2)
    scanner.start()
    try:
        assert scanner.wait_for_pass(1, timeout=10), "no second pass within 10 s"
    finally:
        scanner.stop()
    assert scanner.passes >= 2
    passes = scanner.passes
    time.sleep(0.4)
    assert scanner.passes == passes


def test_the_scanner_survives_a_database_failure(data_root: Path, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "never-migrated.sqlite")
    scanner = UsageScanner(get_engine(url), str(data_root), ["demo-u"], interval=0.1)
    scanner.start()
    try:
        assert scanner.wait_for_pass(1, timeout=10)
    finally:
        scanner.stop()
        dispose_engine(url)


# ---- the process ------------------------------------------------------------------------------


def site_file(tmp_path: Path, data_root: Path, db_url: str, port: int) -> Path:
    data: dict[str, Any] = copy.deepcopy(DEMO)
    data["data_root"] = str(data_root)
    data["hub"]["db_url"] = db_url
    data["service"] = {"url": f"http://127.0.0.1:{port}", "usage_scan_interval": 0.5}
    path = tmp_path / "scitex.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def service_env(site: Path) -> dict[str, str]:
    """What the hub's configuration gives the service for the site file ``site``."""
    return service_environment(parse_settings(yaml.safe_load(site.read_text())))


def test_the_service_process_migrates_syncs_scans_and_listens(
    tmp_path: Path, data_root: Path
) -> None:
    db_url = sqlite_url(tmp_path)
    port = free_port()
    config = site_file(tmp_path, data_root, db_url, port)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **service_env(config),
        # What the hub gives a managed service.
        "JUPYTERHUB_SERVICE_NAME": "scitex",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/scitex/",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_API_TOKEN": "not-checked-here",
        "JUPYTERHUB_CLIENT_ID": "service-scitex",
    }
    log = tmp_path / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scitex_service"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/services/scitex/api/usage", timeout=2
                )
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer is not None, log.read_text()
        # No token: refused without asking the hub.
        assert answer.status_code == 403
        assert "Authentication required" in answer.json()["message"]
        assert current_revision(db_url) == head_revision()
        engine = get_engine(db_url)
        assert [r.id for r in db.list_institutions(engine)] == ["demo-u", "other-u"]
        while time.monotonic() < deadline and db.latest_usage(engine, "alice", "demo-u") is None:
            time.sleep(0.1)
        usage = db.latest_usage(engine, "alice", "demo-u")
        assert usage is not None, log.read_text()
        assert usage.used_bytes == scan_tree(str(data_root / "demo-u" / "alice")).used_bytes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        dispose_engine(db_url)
    assert f"scitex tables at revision {head_revision()}" in log.read_text()


def test_an_invalid_site_file_stops_the_service_with_the_key(tmp_path: Path) -> None:
    """The site file is checked where it is read (the hub's configuration); the service
    checks its own configuration as it loads it, and stops naming the key."""
    bad = tmp_path / "scitex.yaml"
    bad.write_text(yaml.safe_dump({**DEMO, "service": {"usage_scan_interval": 0}}))
    with pytest.raises(SettingsError) as e:
        service_env(bad)
    assert "service.usage_scan_interval: Input should be greater than 0" in str(e.value)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**DEMO, "data_root": str(tmp_path)}))
    config = json.loads(service_env(good)["SCITEX_SERVICE_CONFIG"])
    config["UsageScanner"]["interval"] = 0
    result = subprocess.run(
        [sys.executable, "-m", "scitex_service"],
        cwd=REPO,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SCITEX_SERVICE_CONFIG": json.dumps(config),
            "SCITEX_DB_URL": sqlite_url(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "UsageScanner.interval must be > 0 seconds, got 0.0" in result.stderr


# ---- the service goes with its hub -------------------------------------------------------


async def test_the_service_stops_when_its_hub_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from scitex_service.app import SciTeXService

    parents = iter([4242, 4242, 1])  # the hub's pid, still there, then re-parented to init
    monkeypatch.setattr(os, "getppid", lambda: next(parents))
    app = SciTeXService(parent_check_interval=0.01)
    stop = asyncio.Event()
    await asyncio.wait_for(app.watch_hub(stop), 5)
    assert stop.is_set()


def test_exit_with_hub_is_on_when_the_hub_started_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scitex_service.app import SciTeXService

    monkeypatch.setenv("JUPYTERHUB_SERVICE_NAME", "scitex")
    assert SciTeXService().exit_with_hub is True
    monkeypatch.delenv("JUPYTERHUB_SERVICE_NAME")
    assert SciTeXService().exit_with_hub is False


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it has an empty cmdline)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except FileNotFoundError:
        return False


def test_a_killed_parent_takes_the_service_with_it(tmp_path: Path, data_root: Path) -> None:
    # A real parent process (standing in for the hub) starts the service and is SIGKILLed;
    # the orphaned service notices and exits on its own, freeing its port.
    port = free_port()
    config = site_file(tmp_path, data_root, sqlite_url(tmp_path), port)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **service_env(config),
        "JUPYTERHUB_SERVICE_NAME": "scitex",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/scitex/",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_API_TOKEN": "not-checked-here",
        "JUPYTERHUB_CLIENT_ID": "service-scitex",
    }
    starter = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'scitex_service',"
        " '--SciTeXService.parent_check_interval=0.2'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", starter], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    service_pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        answered = False
        while time.monotonic() < deadline and not answered:
            try:
                requests.get(f"http://127.0.0.1:{port}/services/scitex/api/usage", timeout=2)
                answered = True
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answered, "the service did not listen"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and running(service_pid):
            time.sleep(0.1)
        assert not running(service_pid), "the service kept running"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/services/scitex/api/usage", timeout=2)
    finally:
        if parent.poll() is None:
            parent.kill()
        try:
            os.kill(service_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
