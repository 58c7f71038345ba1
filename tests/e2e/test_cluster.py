"""Beyond one machine: a hub on the login node and servers on two compute nodes.

A second, independent SLURM cluster (deploy/dev/cluster.sh: slurmctld on the
host, one slurmd per network namespace c1 at 10.77.0.11 and c2 at 10.77.0.12;
node names the host cannot resolve) with a real hub, proxy, PAM and Apptainer.
The hub's API listens on the bridge address so jobs on the nodes reach it.

Servers land where their profile pins them (a node feature, a partition) and
are reached through the proxy at the node's address; a compute job submitted
from a server on one node runs on the node its profile names; a node lost under a
running server (slurmd killed, or its link cut) stops that server with the
reason, the user starts again on a healthy node, and nothing of the old job
is left on the node when it returns.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.hubprocess import REPO, Hub, HubUser, new_hub
from tests.e2e.test_apptainer import APPTAINER, TEST_IMAGE, container_settings
from tests.services import DEV_DIR, missing, require_executable

pytestmark = pytest.mark.e2e

CLUSTER_SH = REPO / "deploy" / "dev" / "cluster.sh"
CLUSTER_CONF = os.path.join(DEV_DIR, "cluster", "slurm.conf")
HOST_ADDR = "10.77.0.1"
NODE_ADDR = {"c1": "10.77.0.11", "c2": "10.77.0.12"}
POLL = 1.0  # the test hub's queue poll interval (seconds)

_RESOURCES = {"cpus": 1, "memory": "512MiB", "runtime": "01:00:00"}
# One profile per way of choosing where a server runs.
PROFILES = {
    "intel": {
        "display_name": "Intel nodes (feature)",
        "partition": "compute",
        "constraint": "intel",
        **_RESOURCES,
    },
    "edge": {"display_name": "The edge partition (one node)", "partition": "edge", **_RESOURCES},
    "any": {"display_name": "Any compute node", "partition": "compute", **_RESOURCES},
}

T = TypeVar("T")
ENDED = "node down, job NODE_FAIL"


def cluster_sh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout
    )


def cluster_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_CONF": CLUSTER_CONF}


def slurm(*argv: str) -> str:
    return subprocess.run(
        list(argv), env=cluster_env(), capture_output=True, text=True, timeout=30, check=True
    ).stdout


def slurm_config() -> dict[str, str]:
    """``scontrol show config`` of the cluster, as key -> value."""
    config = {}
    for line in slurm("scontrol", "show", "config").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def seconds(value: str) -> float:
    return float(value.split()[0])


def node_state(node: str) -> str:
    return slurm("sinfo", "-h", "-N", "-n", node, "-o", "%T").split("\n", 1)[0].strip()


def job_state(job_id: str) -> str:
    match = re.search(r"JobState=(\S+)", slurm("scontrol", "-o", "show", "job", job_id))
    return match.group(1) if match else ""


def hub_jobs(hub: Hub) -> dict[str, dict[str, str]]:
    """This hub's jobs on the cluster: ``{job_id: {user, state, node}}``."""
    jobs = {}
    for line in slurm("squeue", "-h", "-a", "-o", "%i|%u|%T|%N|%k").splitlines():
        job_id, user, state, node, comment = line.split("|", 4)
        if comment.startswith(f"scitex:hub={hub.hub_id}:"):
            jobs[job_id] = {"user": user, "state": state, "node": node}
    return jobs


def processes_in_node(node: str, user: str) -> list[str]:
    """Command lines of ``user``'s processes in ``node``'s network namespace."""
    target = os.stat(f"/run/netns/scitex-{node}").st_ino
    uid = pwd.getpwnam(user).pw_uid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid or os.stat(entry / "ns" / "net").st_ino != target:
                continue
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def no_processes_in_node(node: str, user: str) -> bool:
    return not processes_in_node(node, user)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port_on(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(services: str) -> Iterator[dict[str, str]]:
    for tool in ("ip", "nsenter"):
        if not shutil.which(tool):
            missing("the multi-node cluster", f"{tool} is not installed")
    require_executable(APPTAINER, "Apptainer")
    if not os.path.isdir(TEST_IMAGE):
        missing("the Apptainer test image", f"{TEST_IMAGE} (containers/build.sh test-sandbox)")
    was_running = cluster_sh("status").returncode == 0
    started = cluster_sh("start")
    if started.returncode != 0:
        # No network namespaces or bridges here (no CAP_NET_ADMIN, ...).
        missing("the multi-node cluster", f"cluster.sh start failed:\n{started.stderr[-2000:]}")
    try:
        # The point of the exercise: the hub cannot resolve the node names.
        for node in NODE_ADDR:
            with pytest.raises(OSError):
                socket.getaddrinfo(node, None)
        yield slurm_config()
    finally:
        if not was_running:
            stopped = cluster_sh("stop")
            assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def hub(cluster: dict[str, str]) -> Iterator[Hub]:
    hub_api = f"http://{HOST_ADDR}:{free_port_on(HOST_ADDR)}"
    hub = new_hub(
        slurm={"conf": CLUSTER_CONF, "poll_interval": POLL},
        # The nodes reach the login node on the bridge only: the hub's API there, and the
        # scitex service beside it (servers call it for compute jobs; with hub_connect_url
        # that is where they are sent). The proxy stays on loopback, as in the demo.
        hub={
            "bind_url": f"http://127.0.0.1:{free_port_on('127.0.0.1')}",
            "hub_bind_url": hub_api,
            "hub_connect_url": hub_api,
        },
        container=container_settings(),
        service={"url": f"http://{HOST_ADDR}:{free_port_on(HOST_ADDR)}"},
        profiles=PROFILES,
    )
    for institution in hub.settings["institutions"].values():
        institution["profiles"] = list(PROFILES)
    hub.start()
    yield hub
    # Its notebook jobs (scitex:hub=...) and compute jobs (scitex-job:hub=...).
    ids = [
        line.split("|", 1)[0]
        for line in slurm("squeue", "-h", "-a", "-o", "%i|%k").splitlines()
        if f":hub={hub.hub_id}:" in line
    ]
    if ids:
        subprocess.run(["scancel", *ids], env=cluster_env(), check=False, timeout=30)
    hub.kill()
    hub.stop_proxy()
    shutil.rmtree(hub.root, ignore_errors=True)


def spawn(user: HubUser, profile: str, timeout: float = 120) -> tuple[list[str], float]:
    """Start ``user``'s server with ``profile``; the progress messages the spawn page
    shows, and the seconds from the request to the server being ready."""
    return user.start_watching_progress({"profile": profile}, timeout)


def node_of(messages: list[str]) -> str:
    """The node the spawn page named ("Job N running on node X; ...")."""
    for message in messages:
        match = re.search(r"running on node (\S+?);", message)
        if match:
            return match.group(1)
    raise AssertionError(f"no node in the progress messages: {messages}")


def check_reachable(user: HubUser, node: str) -> None:
    """Through the hub's proxy to the server at the node's address."""
    r = user.api("GET", f"/user/{user.name}/api/status")
    assert r.status_code == 200, r.text
    session = user.api("GET", f"/user/{user.name}/scitex/api/session")
    assert session.status_code == 200, session.text
    assert session.json()["node"] == node
    # The server runs in the node's namespace: reachable only at its address.
    assert any("scitex_server_ext.singleuser" in c for c in processes_in_node(node, user.name))


def test_servers_on_different_nodes_through_the_proxy(
    hub: Hub, alice: HubUser, bob: HubUser
) -> None:
    results: dict[str, tuple[list[str], float]] = {}
    threads = [
        threading.Thread(target=lambda u=u, p=p: results.__setitem__(u.name, spawn(u, p)))
        for u, p in ((alice, "intel"), (bob, "edge"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    # The feature pins alice to c1, the one-node partition pins bob to c2, and
    # the spawn page says so.
    assert node_of(results["alice"][0]) == "c1"
    assert node_of(results["bob"][0]) == "c2"
    jobs = {job["user"]: job for job in hub_jobs(hub).values()}
    assert jobs["alice"]["node"] == "c1" and jobs["bob"]["node"] == "c2"
    check_reachable(alice, "c1")
    check_reachable(bob, "c2")
    # The hub reached them at NodeAddr (the names do not resolve here).
    log = hub.log_text()
    assert "Server listening on c1:" in log and "Server listening on c2:" in log
    for name, (_, took) in results.items():
        print(f"spawn-to-ready {name} ({node_of(results[name][0])}): {took:.2f} s")


def put(user: HubUser, path: str, content: str | None = None) -> None:
    model: dict[str, Any] = (
        {"type": "directory"}
        if content is None
        else {"type": "file", "format": "text", "content": content}
    )
    r = user.api("PUT", f"/user/{user.name}/api/contents/{path}", json=model)
    assert r.status_code in (200, 201), r.text


# Prints the address the job's network sees (a UDP connect sends nothing).
WHERE_SH = (
    "#!/bin/bash\nset -e\n"
    "python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    f's.connect(("{HOST_ADDR}", 9)); print("addr=" + s.getsockname()[0])\'\n'
    "echo done > result.txt\n"
)


def test_compute_job_from_a_server_lands_on_a_compute_node(hub: Hub, alice: HubUser) -> None:
    if not alice.server_model().get("ready"):
        assert node_of(spawn(alice, "intel")[0]) == "c1"
    for path in ("projects", "projects/cj"):
        put(alice, path)
    put(alice, "projects/cj/where.sh", WHERE_SH)
    # From alice's server on c1, through the scitex service, pinned to c2 by partition.
    r = alice.api(
        "POST",
        "/user/alice/scitex/api/jobs",
        json={"project": "cj", "script": "where.sh", "resources": {"profile": "edge"}},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    def finished() -> dict[str, Any]:
        r = alice.api("GET", "/user/alice/scitex/api/jobs")
        assert r.status_code == 200, r.text
        jobs = [j for j in r.json()["jobs"] if j["id"] == job_id]
        return jobs[0] if jobs and jobs[0]["state"] in ("COMPLETED", "FAILED") else {}

    job = wait_for(finished, 60, f"compute job {job_id} to finish", step=0.5)
    assert job["state"] == "COMPLETED", job
    assert job["node"] == "c2", job
    project = hub.root / "data" / "demo-u" / "alice" / "projects" / "cj"
    assert (project / "result.txt").read_text() == "done\n"
    log = (project / ".scitex" / "jobs" / f"{job_id}.log").read_text()
    assert f"addr={NODE_ADDR['c2']}" in log, log


def lose_node(
    hub: Hub, users: list[HubUser], node: str, how: str, config: dict[str, str]
) -> dict[str, float]:
    """Lose ``node`` under ``users``' running servers; return the timeline."""
    job_ids = {job["user"]: job_id for job_id, job in hub_jobs(hub).items()}
    for user in users:
        assert hub_jobs(hub)[job_ids[user.name]]["node"] == node
    t0 = time.monotonic()
    r = cluster_sh(how, node)
    assert r.returncode == 0, r.stderr
    timeline: dict[str, float] = {}
    stopped: set[str] = set()
    deadline = t0 + 90
    while len(stopped) < len(users) and time.monotonic() < deadline:
        now = time.monotonic() - t0
        if node_state(node).endswith("*"):
            timeline.setdefault("node not responding", now)
        for user in users:
            # slurmctld sets the node down and ends its jobs in the same step.
            if ENDED not in timeline and job_state(job_ids[user.name]) == "NODE_FAIL":
                timeline[ENDED] = now
            if user.name not in stopped and not user.server_model():
                stopped.add(user.name)
                timeline[f"{user.name}'s server stopped"] = time.monotonic() - t0
        time.sleep(0.2)
    print(f"node loss ({how} {node}):", {k: round(v, 1) for k, v in timeline.items()})
    assert stopped == {u.name for u in users}, f"still running: {timeline}\n{hub.log_tail()}"

    slurmd_timeout = seconds(config["SlurmdTimeout"])
    # SLURM's part: slurmctld pings every SlurmdTimeout/3 and declares a node dead
    # at the round after its last answer is SlurmdTimeout older than the round
    # before; rounds slip while a ping waits up to MessageTimeout (measured: 14 to
    # 20 s after the loss with SlurmdTimeout=10). The hub's part, checked on its
    # own below: one watcher poll plus JupyterHub's own poll of the spawner.
    bound = 2 * slurmd_timeout + seconds(config["MessageTimeout"]) + 2 * POLL + 2
    for user in users:
        took = timeline[f"{user.name}'s server stopped"]
        assert took <= bound, f"{user.name} stopped after {took:.1f} s (bound {bound:.1f} s)"
        assert took - timeline[ENDED] <= 2 * POLL + 1.5, timeline
        # The reason is kept and shown on the spawn page.
        assert job_state(job_ids[user.name]) == "NODE_FAIL"
        page = user.session.get(f"{hub.url}/hub/spawn/{user.name}", timeout=30)
        assert page.status_code == 200
        assert "Your last server stopped: the node running the job failed" in page.text
        assert "NODE_FAIL" in page.text
        # Its processes are still on the lost node (slurmd's death does not
        # end them): they must be gone once the node returns.
        assert processes_in_node(node, user.name), f"nothing of {user.name} left on {node}?"
    return timeline


def restore_and_check_clean(node: str, users: list[HubUser]) -> float:
    t0 = time.monotonic()
    r = cluster_sh("restore-node", node)
    assert r.returncode == 0, r.stderr
    back = time.monotonic() - t0
    assert node_state(node) in ("idle", "mixed")
    # The node tells slurmctld which jobs it still runs; those that ended
    # (NODE_FAIL) are killed (SIGTERM, SIGKILL after KillWait).
    for user in users:
        wait_for(
            functools.partial(no_processes_in_node, node, user.name),
            30,
            f"{user.name}'s old job to be gone from {node}",
        )
    took = time.monotonic() - t0
    print(f"{node} back after {back:.1f} s, old jobs gone after {took:.1f} s")
    return took


def test_slurmd_killed_under_a_server(
    hub: Hub, cluster: dict[str, str], alice: HubUser, bob: HubUser
) -> None:
    # (Each test also runs alone: it starts what an earlier one left running.)
    if not alice.server_model().get("ready"):
        assert node_of(spawn(alice, "intel")[0]) == "c1"
    if not bob.server_model().get("ready"):
        assert node_of(spawn(bob, "edge")[0]) == "c2"
    lose_node(hub, [alice], "c1", "kill-node", cluster)
    # bob's server on the other node is untouched.
    check_reachable(bob, "c2")
    # Starting again lands on the healthy node.
    messages, _ = spawn(alice, "any")
    assert node_of(messages) == "c2"
    check_reachable(alice, "c2")
    restore_and_check_clean("c1", [alice])
    # alice's new server on c2 did not notice any of it.
    check_reachable(alice, "c2")


def test_link_cut_under_two_servers(
    hub: Hub, cluster: dict[str, str], alice: HubUser, bob: HubUser
) -> None:
    for user in (alice, bob):
        if not user.server_model().get("ready"):
            assert node_of(spawn(user, "edge")[0]) == "c2"
    lose_node(hub, [alice, bob], "c2", "cut-link", cluster)
    messages, _ = spawn(alice, "any")
    assert node_of(messages) == "c1"
    check_reachable(alice, "c1")
    restore_and_check_clean("c2", [alice, bob])
    # bob's partition has its node back.
    assert node_of(spawn(bob, "edge")[0]) == "c2"
    check_reachable(bob, "c2")
