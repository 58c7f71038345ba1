"""What tracking N servers costs the SLURM controller: RPCs per poll cycle, from `sdiag`.

Real jobs in the real SLURM (held, so they take no resources: cheap stand-ins for
notebook servers), polled by real spawner objects: N stock
`batchspawner.SlurmSpawner`s (one `squeue -j` each per cycle) against N
`SciTeXSpawner`s sharing one `QueueWatcher` (one `squeue` per cycle for all).

    python -m bench.slurm_rpc [--sizes 10 50 200] [--cycles 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

from bench.common import print_table, write_result
from tests.services import SLURM_CONF, slurm_env

TAG = "scitex:hub=bench-rpc:"


def sdiag_rpc_total() -> int:
    """All RPCs slurmctld has served, summed over message types."""
    out = subprocess.run(
        ["sdiag"], env=slurm_env(), capture_output=True, text=True, check=True, timeout=30
    ).stdout
    section = out.split("Remote Procedure Call statistics by message type", 1)[1]
    section = section.split("Remote Procedure Call statistics by user", 1)[0]
    return sum(int(n) for n in re.findall(r"count:(\d+)", section))


def submit_held(n: int) -> list[str]:
    """n held jobs as alice, tagged like our servers (the watcher filters on the tag)."""
    ids = []
    for i in range(n):
        out = subprocess.run(
            [
                "runuser",
                "-u",
                "alice",
                "--",
                "sbatch",
                "--parsable",
                "--hold",
                "--partition=batch",
                "--mem=16M",
                "--time=00:10:00",
                f"--comment={TAG}user=alice:server=bench{i}",
                "--job-name=scitex-bench",
                "--output=/dev/null",
                "--chdir=/tmp",
                "--wrap=sleep 600",
            ],
            env=slurm_env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        ids.append(out.strip().split(";")[0])
    return ids


def cancel(ids: list[str]) -> None:
    for start in range(0, len(ids), 100):
        subprocess.run(
            ["scancel", *ids[start : start + 100]], env=slurm_env(), check=False, timeout=60
        )


def fake_user(name: str) -> Any:
    return SimpleNamespace(name=name, groups=[], url=f"/user/{name}/", escaped_name=name)


async def measure_stock(job_ids: list[str], cycles: int) -> float:
    from batchspawner import SlurmSpawner

    spawners = []
    for job_id in job_ids:
        spawner = SlurmSpawner(
            user=fake_user("alice"), exec_prefix="", req_keepvars="", req_homedir="/tmp"
        )
        spawner.job_id = job_id
        spawners.append(spawner)
    before = sdiag_rpc_total()
    for _ in range(cycles):
        # The hub polls every spawner each poll interval.
        for spawner in spawners:
            status = await spawner.poll()
            assert status is None, f"stock lost job {spawner.job_id}: {spawner.job_status!r}"
    return (sdiag_rpc_total() - before) / cycles


async def measure_ours(job_ids: list[str], cycles: int) -> float:
    from scitex_hub.slurm import QueueWatcher
    from scitex_spawner import SciTeXSpawner

    QueueWatcher.reset_shared()
    spawners = []
    for job_id in job_ids:
        spawner = SciTeXSpawner(user=fake_user("alice"), hub_id="bench-rpc", data_root="/tmp")
        spawner.slurm.slurm_conf = SLURM_CONF
        # As servers that are up: a job id, a node and a port in their state.
        spawner.job_id, spawner.job_node, spawner.job_port = job_id, "localhost", 8888
        spawners.append(spawner)
    watcher = spawners[0].watcher
    for spawner in spawners:
        watcher.track(spawner.job_id)
    watcher.stop()  # cycles are driven by hand below, one per hub poll interval
    await watcher.poll_once()
    before = sdiag_rpc_total()
    for _ in range(cycles):
        await watcher.poll_once()
        for spawner in spawners:
            status = await spawner.poll()
            assert status is None, f"ours lost job {spawner.job_id}"
    QueueWatcher.reset_shared()
    return (sdiag_rpc_total() - before) / cycles


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["SLURM_CONF"] = SLURM_CONF  # stock batchspawner runs squeue with our environment
    rows = []
    result: dict[str, Any] = {"cycles": args.cycles, "sizes": {}}
    for n in args.sizes:
        started = time.monotonic()
        ids = submit_held(n)
        try:
            stock = asyncio.run(measure_stock(ids, args.cycles))
            ours = asyncio.run(measure_ours(ids, args.cycles))
        finally:
            cancel(ids)
        # sdiag also counts its own RPC and any other client's: a floor, not noise-free.
        result["sizes"][str(n)] = {
            "stock_rpcs_per_cycle": round(stock, 2),
            "scitex_rpcs_per_cycle": round(ours, 2),
            "ratio_scitex_over_stock": round(ours / stock, 4) if stock else None,
            "seconds": round(time.monotonic() - started, 1),
        }
        rows.append(
            [n, round(stock, 1), round(ours, 1), result["sizes"][str(n)]["ratio_scitex_over_stock"]]
        )
    write_result("slurm_rpc", result)
    print_table(
        "slurmctld RPCs per poll cycle (sdiag), N tracked jobs",
        ["N", "stock", "scitex", "ratio"],
        rows,
        footer="stock: one squeue per server; scitex: one squeue for all (+ sdiag's own call)",
    )
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
