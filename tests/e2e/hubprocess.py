"""A real JupyterHub (with configurable-http-proxy) in a subprocess, for end-to-end tests.

Each hub gets its own ports, state directory, data root and job tag, so tests
never touch the demo's hub or each other's jobs.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from scitex_hub.slurm import SlurmClient
from tests.services import PREFIX, SLURM_CONF, VENV_PYTHON, slurm_env

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "jupyterhub_config" / "jupyterhub_config.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(name: str) -> str | None:
    """With ``SCITEX_TEST_DB_URL`` (a PostgreSQL URL, e.g. ``postgres.sh url``), a new
    empty database ``name`` on that server and its URL; else None (SQLite).
    The databases are dropped when the test process ends."""
    server = os.environ.get("SCITEX_TEST_DB_URL")
    if not server:
        return None
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # names are ours: e2e_<hex>
        conn.execute(f'CREATE DATABASE "{name}"')
    atexit.register(_drop_database, dsn, name)
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_database(dsn: str, name: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_settings(root: Path, hub_id: str) -> dict[str, Any]:
    """The demo's site file, moved into ``root`` with fresh ports (and a fresh
    PostgreSQL database when ``SCITEX_TEST_DB_URL`` is set)."""
    settings = yaml.safe_load((REPO / "jupyterhub_config" / "scitex.yaml").read_text())
    settings = yaml.safe_load(
        yaml.safe_dump(settings).replace("${SCITEX_DEV_DIR:-/var/lib/scitex-dev}", str(root))
    )
    port, hub_port, api_port = free_port(), free_port(), free_port()
    settings["hub"].update(
        bind_url=f"http://127.0.0.1:{port}",
        hub_bind_url=f"http://127.0.0.1:{hub_port}",
        proxy_api_url=f"http://127.0.0.1:{api_port}",
        db_url=fresh_database(hub_id.replace("-", "_"))
        or f"sqlite:///{root}/hub/jupyterhub.sqlite",
        state_dir=f"{root}/hub",
        proxy_command=[f"{PREFIX}/bin/configurable-http-proxy"],
    )
    settings["data_root"] = f"{root}/data"
    settings["slurm"].update(conf=SLURM_CONF, hub_id=hub_id, poll_interval=2)
    settings["notebook"]["python"] = VENV_PYTHON
    # The scitex hub service, on a port of its own (hubs of several tests run at once).
    settings["service"] = {"url": f"http://127.0.0.1:{free_port()}"}
    # A fourth researcher, so tests can fill the node with four servers.
    settings["institutions"]["demo-u"]["users"].append("erin")
    return settings


@dataclass
class Hub:
    settings: dict[str, Any]
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    # Added to the hub's fixed environment (e.g. JUPYTERHUB_CRYPT_KEY).
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "hub" / "jupyterhub.log"

    @property
    def url(self) -> str:
        return str(self.settings["hub"]["bind_url"])

    @property
    def hub_id(self) -> str:
        return str(self.settings["slurm"]["hub_id"])

    def write_config(self) -> Path:
        path = self.root / "scitex.yaml"
        path.write_text(yaml.safe_dump(self.settings))
        return path

    def command(self, config: Path) -> list[str]:
        return [str(Path(VENV_PYTHON).parent / "jupyterhub"), "-f", str(ENTRY), "--debug"]

    def environment(self, config: Path) -> dict[str, str]:
        return {
            "PATH": f"{PREFIX}/bin:{Path(VENV_PYTHON).parent}:/usr/local/bin:/usr/bin:/bin",
            "SCITEX_CONFIG": str(config),
            "LANG": "C.UTF-8",
            "HOME": "/root",
            **self.env,
        }

    def start(self, timeout: float = 60) -> None:
        (self.root / "hub").mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the hub process writes it
        self.proc = subprocess.Popen(
            self.command(config),
            cwd=self.root / "hub",
            env=self.environment(config),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/hub/api", timeout=2).ok:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"the hub did not answer within {timeout} s:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop_proxy(self) -> None:
        pid_file = self.root / "hub" / "jupyterhub-proxy.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            pid_file.unlink()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def jobs(self) -> dict[str, dict[str, str]]:
        """This hub's jobs in the SLURM queue: ``{job_id: {user, state, comment}}``."""
        # The hub's own framed reader: tests queue jobs with crafted names and comments
        # (newlines, separators), which would break a split of plain squeue output. In a
        # thread of its own: Playwright's sync API runs an event loop in the test's.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            queue = pool.submit(asyncio.run, SlurmClient(slurm_conf=SLURM_CONF).queue()).result()
        return {
            job.job_id: {"user": job.user, "state": job.state, "comment": job.comment}
            for job in queue.values()
            if self.owns_job(job.name, job.comment)
        }

    def owns_job(self, name: str, comment: str) -> bool:
        """Whether a queued job (by its name and comment) is this hub's: its tag."""
        return comment.startswith(f"scitex:hub={self.hub_id}:")

    def cancel_all_jobs(self) -> None:
        ids = list(self.jobs())
        if ids:
            subprocess.run(["scancel", *ids], env=slurm_env(), check=False, timeout=20)

    def close(self) -> None:
        """A test module's end: its jobs cancelled, the hub and its proxy stopped and its
        directory removed. The hub is stopped even if cancelling fails (a leaked hub
        would outlive the test run)."""
        try:
            self.cancel_all_jobs()
        finally:
            self.kill()
            self.stop_proxy()
            shutil.rmtree(self.root, ignore_errors=True)


def new_hub(env: dict[str, str] | None = None, **overrides: Any) -> Hub:
    root = Path(tempfile.mkdtemp(prefix="scitex-e2e-", dir="/tmp"))
    # Users' jobs read the data root; the hub's own state stays private.
    root.chmod(0o755)
    hub_id = "e2e-" + secrets.token_hex(3)
    settings = base_settings(root, hub_id)
    for key, value in overrides.items():
        # One level of merging: new_hub(slurm={"poll_interval": 1}) keeps the rest.
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return Hub(settings=settings, root=root, env=dict(env or {}))


def hub_of_site_file(site_file: Path) -> Hub:
    """A Hub for a hub this process did not start (the demo's, from `make demo`), read
    from its site file: its URL, job tag, data root and log. Not for start() or kill()."""
    from jupyterhub_config.settings import load_settings

    site = load_settings(site_file)
    state_dir = Path(site.hub.state_dir)
    settings = {
        "hub": {"bind_url": site.hub.bind_url},
        "slurm": {"hub_id": site.slurm.hub_id, "conf": site.slurm.conf},
        "data_root": site.data_root,
    }
    hub = Hub(settings=settings, root=state_dir.parent)
    hub.log_path = state_dir / "jupyterhub.log"
    return hub


class HubUser:
    """A person using the hub over HTTP: signs in with a password, then uses a token."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.session = requests.Session()
        self.token = ""

    def login(self, password: str) -> requests.Response:
        self.session.get(self.hub.url + "/hub/login", timeout=10)
        xsrf = self.session.cookies.get("_xsrf", "")
        return self.session.post(
            self.hub.url + "/hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            timeout=30,
            allow_redirects=False,
        )

    def create_token(self) -> str:
        xsrf = self.session.cookies.get("_xsrf", "")
        r = self.session.post(
            f"{self.hub.url}/hub/api/users/{self.name}/tokens",
            json={"note": "e2e", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf},
            timeout=10,
        )
        r.raise_for_status()
        self.token = r.json()["token"]
        return self.token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"token {self.token}")
        return requests.request(
            method,
            self.hub.url + path,
            headers=headers,
            timeout=kwargs.pop("timeout", 30),
            **kwargs,
        )

    def server_model(self) -> dict[str, Any]:
        r = self.api("GET", f"/hub/api/users/{self.name}")
        r.raise_for_status()
        return dict(r.json().get("servers", {}).get("", {}))

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model()
            if model.get("ready"):
                return model
            if not model.get("pending") and not model:
                raise AssertionError(f"{self.name}'s server is neither pending nor ready")
            time.sleep(0.5)
        raise AssertionError(
            f"{self.name}'s server not ready in {timeout} s:\n{self.hub.log_tail()}"
        )

    def wait_stopped(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.server_model():
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name}'s server did not stop in {timeout} s")

    def start_watching_progress(
        self, options: dict[str, Any], timeout: float = 120
    ) -> tuple[list[str], float]:
        """Start the server with ``options``; return the progress messages of its start
        (the spawn page's event stream, up to and including the ready event) and the
        seconds from the request to the server being ready."""
        started = time.monotonic()
        answer: dict[str, requests.Response] = {}

        def post() -> None:
            # Blocks until the server is ready or JupyterHub's slow-spawn timeout.
            answer["r"] = self.api(
                "POST", f"/hub/api/users/{self.name}/server", json=options, timeout=60
            )

        thread = threading.Thread(target=post)
        thread.start()
        messages: list[str] = []
        ready_at = None
        url = f"{self.hub.url}/hub/api/users/{self.name}/server/progress"
        deadline = started + timeout
        while ready_at is None and time.monotonic() < deadline:
            with requests.get(
                url, headers={"Authorization": f"token {self.token}"}, stream=True, timeout=timeout
            ) as r:
                if r.status_code in (400, 404):  # the POST has not reached the hub yet
                    time.sleep(0.02)
                    continue
                assert r.status_code == 200, r.text
                for line in r.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    messages.append(event.get("message", ""))
                    assert not event.get("failed"), (
                        f"{self.name}: {messages}\n{self.hub.log_tail()}"
                    )
                    if event.get("ready"):
                        ready_at = time.monotonic()
                        break
        thread.join(60)
        assert answer["r"].status_code in (201, 202), answer["r"].text
        assert ready_at is not None, f"{self.name}'s server not ready: {messages}"
        return messages, ready_at - started


def job_ids_of(hub: Hub, user: str) -> list[str]:
    return [job_id for job_id, job in hub.jobs().items() if job["user"] == user]


def read_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def processes_of(user: str, pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-u", user, "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def server_pids(hub: Hub, user: str) -> list[int]:
    """The notebook-server processes of ``user`` that belong to this hub (other
    hubs on the machine may run servers for the same user)."""
    port = hub.settings["hub"]["hub_bind_url"].rsplit(":", 1)[1].strip("/")
    pids = []
    for pid in processes_of(user, "scitex_server_ext.singleuser"):
        try:
            api_url = read_environ(pid).get("JUPYTERHUB_API_URL", "")
        except OSError:
            continue
        if f":{port}/" in api_url:
            pids.append(pid)
    return pids


def cmdlines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                lines.append(
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
    return lines


TOKEN_RE = re.compile(r"[0-9a-f]{32,}")
