"""Spawn-to-ready: SciTeXSpawner vs stock batchspawner.SlurmSpawner, same SLURM, same run.

Two real hubs (JupyterHub + configurable-http-proxy + PAM) on this machine's
SLURM. Alice signs in to each; each round starts her server through the REST
API and times until the hub reports it ready *and* it answers through the
proxy, then stops it and waits until SLURM has no job left. Rounds alternate
between the hubs so both see the same machine.

    python -m bench.spawn [--rounds 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile, print_table, write_result
from tests.e2e.hubprocess import Hub, HubUser, free_port, new_hub
from tests.e2e.test_apptainer import container_settings
from tests.services import PREFIX, SLURM_CONF, VENV_PYTHON, demo_password

STOCK_CONFIG = """
c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_bind_url = {hub_bind_url!r}
c.ConfigurableHTTPProxy.api_url = {api_url!r}
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {state!r} + "/jupyterhub-proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {state!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {state!r} + "/cookie_secret"
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.SlurmSpawner.exec_prefix = "runuser -u {{username}} --"
c.SlurmSpawner.batchspawner_singleuser_cmd = {venv_bin!r} + "/batchspawner-singleuser"
c.SlurmSpawner.cmd = [{venv_bin!r} + "/jupyterhub-singleuser"]
c.SlurmSpawner.req_partition = "debug"
c.SlurmSpawner.req_nprocs = "1"
c.SlurmSpawner.req_memory = "512M"
c.SlurmSpawner.req_runtime = "01:00:00"
c.SlurmSpawner.environment = {{"SLURM_CONF": {slurm_conf!r}}}
c.Spawner.default_url = "/lab"
# The same server options as our demo site file, so both servers do the same work.
c.Spawner.args = {server_args!r}
"""


class StockHub(Hub):
    """Stock batchspawner in a hub of its own (it must not load our module)."""

    def write_config(self) -> Path:
        path = self.root / "stock_config.py"
        path.write_text(
            STOCK_CONFIG.format(
                bind_url=self.settings["hub"]["bind_url"],
                hub_bind_url=self.settings["hub"]["hub_bind_url"],
                api_url=self.settings["hub"]["proxy_api_url"],
                chp=f"{PREFIX}/bin/configurable-http-proxy",
                state=str(self.root / "hub"),
                venv_bin=str(Path(VENV_PYTHON).parent),
                slurm_conf=SLURM_CONF,
                server_args=list(self.settings.get("notebook", {}).get("args", [])),
            )
        )
        return path

    def command(self, config: Path) -> list[str]:
        return [str(Path(VENV_PYTHON).parent / "jupyterhub"), "-f", str(config)]

    def environment(self, config: Path) -> dict[str, str]:
        return {
            "PATH": f"{PREFIX}/bin:{Path(VENV_PYTHON).parent}:/usr/local/sbin:/usr/local/bin:"
            "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            # Stock batchspawner runs squeue/scancel with the hub's own environment.
            "SLURM_CONF": SLURM_CONF,
        }

    def owns_job(self, name: str, comment: str) -> bool:
        # Stock batchspawner tags nothing; its jobs carry its default job name.
        return name == "spawner-jupyterhub"


def one_spawn(user: HubUser) -> float:
    """Seconds from the start request to the server answering through the proxy."""
    started = time.perf_counter()
    r = user.api("POST", f"/hub/api/users/{user.name}/server", json={})
    if r.status_code not in (201, 202):
        raise RuntimeError(f"start failed: {r.status_code} {r.text}\n{user.hub.log_tail(30)}")
    while True:
        model = user.server_model()
        if model.get("ready"):
            status = user.api("GET", f"/user/{user.name}/api/status")
            if status.status_code == 200:
                break
        if time.perf_counter() - started > 300:
            raise RuntimeError(f"not ready in 300 s:\n{user.hub.log_tail()}")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    user.api("DELETE", f"/hub/api/users/{user.name}/server")
    user.wait_stopped(120)
    deadline = time.monotonic() + 60
    while user.hub.jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    return elapsed


def summarize(samples: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples),
        "p50_s": round(statistics.median(samples), 3),
        "p95_s": round(percentile(samples, 95), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    password = demo_password()

    ours = new_hub()
    # The same spawner with each server in Apptainer (the near-empty test image).
    contained = new_hub(container=container_settings())
    stock_root = Path(tempfile.mkdtemp(prefix="scitex-bench-stock-", dir="/tmp"))
    stock = StockHub(
        settings={
            "hub": {
                "bind_url": f"http://127.0.0.1:{free_port()}",
                "hub_bind_url": f"http://127.0.0.1:{free_port()}",
                "proxy_api_url": f"http://127.0.0.1:{free_port()}",
            },
            "slurm": {"hub_id": "stock"},
            "notebook": {"args": ours.settings["notebook"].get("args", [])},
        },
        root=stock_root,
    )
    hubs: dict[str, Hub] = {"scitex": ours, "scitex+apptainer": contained, "stock": stock}
    samples: dict[str, list[float]] = {name: [] for name in hubs}
    try:
        for hub in hubs.values():
            hub.start()
        users = {}
        for name, hub in hubs.items():
            user = HubUser(hub, "alice")
            if user.login(password).status_code != 302:
                raise RuntimeError(f"alice cannot sign in to the {name} hub")
            user.create_token()
            users[name] = user
            one_spawn(user)  # warm-up: first imports, first node contact
        for _ in range(args.rounds):
            for name in hubs:
                samples[name].append(one_spawn(users[name]))
    finally:
        for hub in hubs.values():
            hub.cancel_all_jobs()
            hub.kill()
            hub.stop_proxy()
            shutil.rmtree(hub.root, ignore_errors=True)

    result = {name: summarize(values) for name, values in samples.items()}
    result["ratio_p50_scitex_over_stock"] = round(
        result["scitex"]["p50_s"] / result["stock"]["p50_s"], 3
    )
    result["ratio_p95_scitex_over_stock"] = round(
        result["scitex"]["p95_s"] / result["stock"]["p95_s"], 3
    )
    result["ratio_p50_apptainer_over_none"] = round(
        result["scitex+apptainer"]["p50_s"] / result["scitex"]["p50_s"], 3
    )
    write_result("spawn", result)
    print_table(
        "Spawn to ready through the proxy (seconds), single-node SLURM",
        ["spawner", "n", "p50", "p95", "min", "max"],
        [
            [name, r["n"], r["p50_s"], r["p95_s"], r["min_s"], r["max_s"]]
            for name, r in ((n, result[n]) for n in hubs)
        ],
        footer=f"ratio scitex/stock: p50 {result['ratio_p50_scitex_over_stock']}, "
        f"p95 {result['ratio_p95_scitex_over_stock']}; "
        f"apptainer/none p50: {result['ratio_p50_apptainer_over_none']}",
    )
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
