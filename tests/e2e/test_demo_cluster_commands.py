"""`make demo-cluster` itself, with the shipped deploy/dev/scitex-cluster.yaml unchanged:
the same researcher's day as test_demo_commands.py, with alice's server and her compute
job on the compute nodes (network namespaces, docs/cluster.md). Then
`make demo-cluster-down`.

The cluster demo shares port 8000 and the hub's state directory with `make demo`: a
running single-node demo hub is not the one to test (missing: skipped outside CI). A
running cluster demo is kept and left running. `make demo-cluster-down` stops the
single-node SLURM and the multi-node cluster: each is started again when it was running
before (the single-node one for the rest of the suite; the cluster as test_cluster.py
leaves it).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from tests.e2e.hubprocess import REPO, hub_of_site_file
from tests.e2e.test_demo_commands import (
    SLURM_SH,
    Demo,
    a_researchers_day,
    answers,
    is_up,
    make,
    output_of,
    printed_password,
    running_demo,
    start_again,
)
from tests.services import missing

pytestmark = pytest.mark.e2e

SITE_FILE = REPO / "deploy" / "dev" / "scitex-cluster.yaml"
CLUSTER_SH = REPO / "deploy" / "dev" / "cluster.sh"


@pytest.fixture(scope="module")
def demo(services: str) -> Iterator[Demo]:
    for tool in ("ip", "nsenter"):
        if not shutil.which(tool):
            missing("make demo-cluster", f"{tool} is not installed")
    running = running_demo()
    if running == "":
        missing("make demo-cluster", "the single-node demo hub runs on port 8000 (make demo-down)")
    kept = running is not None
    if kept and running != str(SITE_FILE):
        missing("make demo-cluster", f"another demo hub ({running}) runs on port 8000")
    slurm_was_up = is_up("bash", str(SLURM_SH), "status")
    cluster_was_up = is_up("bash", str(CLUSTER_SH), "status")
    hub = hub_of_site_file(SITE_FILE)
    started = time.monotonic()
    r = make("demo-cluster")
    took = time.monotonic() - started
    assert r.returncode == 0, f"make demo-cluster failed:\n{output_of(r)}\n{hub.log_tail()}"
    demo = Demo(hub, printed_password(r.stdout), {"make demo-cluster": took})
    try:
        assert answers(hub.url), f"make demo-cluster succeeded but {hub.url} does not answer"
        yield demo
    finally:
        if not kept:
            started = time.monotonic()
            down = make("demo-cluster-down", timeout=300)
            demo.seconds["make demo-cluster-down"] = time.monotonic() - started
            problems = [
                start_again("bash", str(SLURM_SH), "start") if slurm_was_up else "",
                start_again("bash", str(CLUSTER_SH), "start") if cluster_was_up else "",
            ]
            assert down.returncode == 0, f"make demo-cluster-down failed:\n{output_of(down)}"
            assert not answers(hub.url), "make demo-cluster-down left the hub answering"
            assert not is_up("bash", str(CLUSTER_SH), "status") or cluster_was_up
            assert not any(problems), problems
        print("seconds:", {k: round(v, 1) for k, v in demo.seconds.items()})


def test_a_researchers_day_in_make_demo_cluster(demo: Demo) -> None:
    # Alice's institution's first profile in the cluster file ("any") lets SLURM choose.
    job = a_researchers_day(demo, nodes={"c1", "c2"})
    print(f"job {job['id']} on {job['node']}: {job['state']}")
