"""The admin guide's single-server install, run on this machine (without systemd).

deploy/baremetal/install.sh installs into a temporary prefix, config and state
directory; then the test does what the guide tells the admin: edit the site file
(who may sign in; here also test ports and the dev SLURM), start the two
services as their units say (same ExecStart, EnvironmentFile, Environment,
WorkingDirectory), sign in, spawn. With ``SCITEX_TEST_DB_URL`` the hub's
database is PostgreSQL with the password in a pgpass file, as the guide shows.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy.engine import URL, make_url

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import REPO, Hub, free_port, fresh_database
from tests.services import SLURM_CONF, missing

pytestmark = pytest.mark.e2e

INSTALL = REPO / "deploy" / "baremetal" / "install.sh"


def read_unit(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a systemd unit, by key (keys may repeat)."""
    unit: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            unit.setdefault(key.strip(), []).append(value.strip())
    return unit


def unit_environment(unit: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for env_file in unit.get("EnvironmentFile", []):
        for line in Path(env_file).read_text().splitlines():
            key, value = line.split("=", 1)
            env[key] = value
    for assignment in unit.get("Environment", []):
        key, value = assignment.split("=", 1)
        env[key] = value
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


class Installed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = root / "opt"
        self.config_dir = root / "etc"
        self.state_dir = root / "var"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, unit_name: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a service the way its installed unit does."""
        unit = read_unit(self.prefix / "share" / "systemd" / unit_name)
        env = unit_environment(unit)
        argv = unit["ExecStart"][0].split()
        cwd = unit.get("WorkingDirectory", ["/"])[0]
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=open(log, "ab"),  # noqa: SIM115 - the service process writes it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture(scope="module")
def installed(services: str) -> Iterator[tuple[Installed, dict[str, Any]]]:
    for tool in ("npm", "openssl"):
        if not shutil.which(tool):
            missing(tool, f"{tool} is not installed (deploy/dev/install-system.sh)")
    if not os.access("/usr/bin/python3", os.X_OK):
        missing("python3", "/usr/bin/python3 is missing")
    root = Path(tempfile.mkdtemp(prefix="scitex-baremetal-", dir="/tmp"))
    # The jobs run the venv's Python as alice: every level must be traversable.
    root.chmod(0o755)
    inst = Installed(root)
    site: dict[str, Any] | None = None
    # Everything the install leaves is removed, also when a step fails.
    try:
        args = [
            "bash", str(INSTALL),
            "--prefix", str(inst.prefix),
            "--config-dir", str(inst.config_dir),
            "--state-dir", str(inst.state_dir),
            "--slurm-conf", SLURM_CONF,
            "--no-systemd",
        ]  # fmt: skip
        hub_id = "bm-" + os.urandom(3).hex()
        args += ["--hub-id", hub_id]
        postgres = fresh_database(hub_id.replace("-", "_"))
        if postgres:
            # The guide's PostgreSQL way: a URL without password, the password in a file.
            url = make_url(postgres)
            password_file = root / "db-password"
            password_file.write_text(str(url.password))
            password_file.chmod(0o600)
            args += [
                "--db-url",
                URL.create(
                    url.drivername,
                    username=url.username,
                    host=url.host,
                    port=url.port,
                    database=url.database,
                ).render_as_string(),
                "--db-password-file",
                str(password_file),
            ]
        started = time.monotonic()
        out = subprocess.run(args, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        info = {
            "install_seconds": time.monotonic() - started,
            "postgres": bool(postgres),
            "db_url": postgres,
        }

        # The admin's edit: who may sign in, and (for this machine) free ports and a
        # quick queue poll.
        site_file = inst.config_dir / "scitex.yaml"
        site = yaml.safe_load(site_file.read_text())
        site["institutions"]["lab"]["users"] = ["alice"]
        site["hub"].update(
            bind_url=f"http://127.0.0.1:{free_port()}",
            hub_bind_url=f"http://127.0.0.1:{free_port()}",
            proxy_api_url=f"http://127.0.0.1:{free_port()}",
        )
        site["slurm"]["poll_interval"] = 2
        site["profiles"]["default"].update(cpus={"default": 1, "max": 2}, memory="512MiB")
        site_file.write_text(yaml.safe_dump(site))
        info["site"] = site
        yield inst, info
    finally:
        inst.stop_all()
        if site is not None:
            Hub(settings=site, root=root).cancel_all_jobs()
        shutil.rmtree(root, ignore_errors=True)


def test_install_writes_private_secrets_and_valid_units(
    installed: tuple[Installed, dict[str, Any]],
) -> None:
    inst, info = installed
    secrets = inst.config_dir / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    expected = {"configproxy_auth_token", "jupyterhub_crypt_key", "hub.env", "proxy.env"}
    if info["postgres"]:
        expected.add("pgpass")
    assert {p.name for p in secrets.iterdir()} == expected
    for path in secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    cookie = inst.state_dir / "hub" / "jupyterhub_cookie_secret"
    assert stat.S_IMODE(cookie.stat().st_mode) == 0o600
    hub_env = dict(line.split("=", 1) for line in (secrets / "hub.env").read_text().splitlines())
    proxy_env = dict(
        line.split("=", 1) for line in (secrets / "proxy.env").read_text().splitlines()
    )
    assert hub_env["CONFIGPROXY_AUTH_TOKEN"] == proxy_env["CONFIGPROXY_AUTH_TOKEN"]
    assert len(hub_env["JUPYTERHUB_CRYPT_KEY"]) == 64
    site_text = (inst.config_dir / "scitex.yaml").read_text()
    assert hub_env["CONFIGPROXY_AUTH_TOKEN"] not in site_text
    if info["postgres"]:
        assert hub_env["PGPASSFILE"] == str(secrets / "pgpass")
        password = (inst.root / "db-password").read_text()
        assert password not in site_text, "the database password leaked into the site file"
    # The site file is world-readable (the proxy's user reads it) and holds no secret.
    assert stat.S_IMODE((inst.config_dir / "scitex.yaml").stat().st_mode) == 0o644
    # The units: the proxy separately, the hub told not to start one.
    units = inst.prefix / "share" / "systemd"
    proxy_unit = read_unit(units / "scitex-proxy.service")
    hub_unit = read_unit(units / "scitex-hub.service")
    assert proxy_unit["EnvironmentFile"] == [str(secrets / "proxy.env")]
    assert hub_unit["EnvironmentFile"] == [str(secrets / "hub.env")]
    assert (
        "--ConfigurableHTTPProxy.should_start=False"
        in (inst.prefix / "bin" / "scitex-hub").read_text()
    )
    if shutil.which("systemd-analyze"):
        out = subprocess.run(
            ["systemd-analyze", "verify", *map(str, units.glob("*.service"))],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr


def test_installed_services_sign_in_and_spawn(
    installed: tuple[Installed, dict[str, Any]], services: str
) -> None:
    inst, info = installed
    site = info["site"]
    logs = inst.state_dir / "hub"
    proxy = inst.start("scitex-proxy.service", logs / "proxy.log")
    public = site["hub"]["bind_url"]
    _wait_for(lambda: _answers(public + "/"), proxy, logs / "proxy.log", "the proxy")
    hub_proc = inst.start("scitex-hub.service", logs / "jupyterhub.log")
    _wait_for(lambda: _ok(public + "/hub/api"), hub_proc, logs / "jupyterhub.log", "the hub")

    hub = Hub(settings=site, root=inst.state_dir)
    alice = signed_in(hub, "alice", services)
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "default"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    status = alice.api("GET", "/user/alice/api/status")
    assert status.status_code == 200, status.text
    # alice's job, tagged with this install's hub id, runs the installed venv's Python.
    jobs = hub.jobs()
    assert [job["user"] for job in jobs.values()] == ["alice"]
    session = alice.api("GET", "/user/alice/scitex/api/session")
    assert session.status_code == 200, session.text
    assert session.json()["user"] == "alice"
    if info["postgres"]:
        # The hub's state is in PostgreSQL, reached with the pgpass file.
        import psycopg

        url = make_url(info["db_url"]).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM users")]
        assert names == ["alice"]

    r = alice.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (202, 204), r.text
    alice.wait_stopped()

    # The proxy outlives a hub restart (its own service): the upgrade path.
    os.killpg(hub_proc.pid, signal.SIGTERM)
    hub_proc.wait(30)
    assert proxy.poll() is None
    upgrade = subprocess.run(
        [str(inst.prefix / "bin" / "scitex-hub"), "upgrade-db"],
        env=unit_environment(read_unit(inst.prefix / "share" / "systemd" / "scitex-hub.service")),
        cwd=inst.state_dir / "hub",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    if (REPO / "scitex_spawner" / "db").is_dir():
        # Our own tables are migrated by the same command.
        assert "scitex tables at revision" in upgrade.stdout, upgrade.stdout + upgrade.stderr
    hub_proc = inst.start("scitex-hub.service", logs / "jupyterhub.log")
    _wait_for(lambda: _ok(public + "/hub/api"), hub_proc, logs / "jupyterhub.log", "the hub")
    assert alice.api("GET", "/hub/api/users/alice").status_code == 200


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def _wait_for(check: Any, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} did not answer in 60 s:\n{log.read_text()[-3000:]}")
