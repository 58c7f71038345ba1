"""``python -m scitex_spawner.hub_jobs HUB_ID``: the ids of the notebook-server jobs that
hub submitted, one a line, for scripts that cancel them as root (``make demo-down``).

Read through the framed ``squeue`` (no job name or comment can end a field or forge a
line) and only where the tag names the job's owner: a job a user tagged by hand is hers,
and cancelling it touches nobody else's. ``SLURM_CONF`` comes from the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping

from scitex_hub.slurm import QueuedJob, SlurmClient, SlurmError, tagged_for_owner


def hub_job_ids(jobs: Mapping[str, QueuedJob], hub_id: str) -> list[str]:
    tag = f"scitex:hub={hub_id}:"
    return sorted(job_id for job_id, job in jobs.items() if tagged_for_owner(job, tag))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m scitex_spawner.hub_jobs HUB_ID", file=sys.stderr)
        return 2
    client = SlurmClient(slurm_conf=os.environ.get("SLURM_CONF", ""))
    try:
        jobs = asyncio.run(client.queue())
    except SlurmError as e:
        print(f"hub_jobs: {e}", file=sys.stderr)
        return 1
    for job_id in hub_job_ids(jobs, args[0]):
        print(job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
