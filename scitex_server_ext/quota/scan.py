"""The ``scan`` backend: a cached background walk of the user's tree.

What is counted, and how the walk goes, is :mod:`scitex_quota.scan` (shared with the
hub's usage scanner); this module adds the settings and the timer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from datetime import datetime, timezone
from typing import Any

from traitlets import Enum, Int, TraitError, Unicode, default, validate

# The walk itself is shared with the hub's usage scanner: see scitex_quota.scan.
from scitex_quota.scan import ScanCancelled, ScanResult, du_scan, parallel_du_scan, scan_tree
from scitex_quota.usage import ProjectUsage, Usage

from .base import QuotaBackend

__all__ = [
    "ScanCancelled",
    "ScanQuotaBackend",
    "ScanResult",
    "du_scan",
    "parallel_du_scan",
    "scan_tree",
]


class ScanQuotaBackend(QuotaBackend):
    """Usage from a periodic walk of the user's tree (works on any filesystem)."""

    source = "scan"

    engine = Enum(
        ["auto", "python", "du"],
        default_value="auto",
        config=True,
        help="""What walks the tree: ``python`` (os.scandir with fstatat, in a worker
        thread of the server) or ``du`` (GNU ``du``, in subprocesses: the same numbers,
        faster (C), and the walk never competes with the server for the interpreter
        lock; ``du_jobs`` of them at once). ``auto``: ``du`` when ``du_command`` is
        found, else ``python``.""",
    )

    threads = Int(
        1,
        config=True,
        help="""Threads for the ``python`` engine: top-level directories and projects are
        walked in parallel. On a local disk the walk is CPU-bound and one thread is
        fastest (bench/quota_scan.py); on NFS, Lustre or GPFS, where each stat waits on
        the network, 4-8 threads overlap those waits.""",
    )

    du_command = Unicode(
        "du", config=True, help="The ``du`` executable for the ``du`` engine (GNU coreutils)."
    )

    du_timeout = Int(
        3600, config=True, help="Seconds after which a ``du`` walk is killed and counted as failed."
    )

    du_jobs = Int(
        config=True,
        help="""``du`` processes walking at once (``du`` engine). With more than one, each
        top-level directory and each project is a unit; batches of units go to
        ``du -x -B1 -0 -s``, up to ``du_jobs`` at a time, which spreads the walk over
        cores (on a warm cache a walk is mostly system-call CPU time). One runs a single
        ``du -x -B1 -0 --max-depth=2`` over the whole tree. The totals are the same,
        except that a file hard-linked from units walked by different processes is
        counted by each (the total errs high; ``1`` counts it once). Default: the CPUs
        this process may use, at most 4.""",
    )

    @default("du_jobs")
    def _default_du_jobs(self) -> int:
        # The CPUs this process may run on (a SLURM job's allocation), not the node's.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(cpus or 1, 4))

    @validate("du_jobs")
    def _check_du_jobs(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(
                f"ScanQuotaBackend.du_jobs must be at least 1 (1: one du process), got {value}"
            )
        return value

    @validate("threads")
    def _check_threads(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"ScanQuotaBackend.threads must be at least 1, got {value}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cancel = threading.Event()

    @property
    def effective_engine(self) -> str:
        if self.engine == "auto":
            return "du" if shutil.which(self.du_command) else "python"
        return str(self.engine)

    async def measure(self) -> Usage:
        if self.effective_engine == "du" and self.du_jobs > 1:
            result = await parallel_du_scan(
                self.root,
                projects_dir=self.projects_dir,
                jobs=self.du_jobs,
                du_command=self.du_command,
                timeout=float(self.du_timeout),
            )
        elif self.effective_engine == "du":
            result = await du_scan(
                self.root,
                projects_dir=self.projects_dir,
                du_command=self.du_command,
                timeout=float(self.du_timeout),
            )
        else:
            result = await asyncio.to_thread(
                scan_tree,
                self.root,
                projects_dir=self.projects_dir,
                threads=self.threads,
                cancel=self._cancel,
            )
        if result.errors:
            self.log.warning(
                "Usage scan of %s: %d entries could not be read: the measurement is "
                "incomplete (a lower bound)",
                self.root,
                result.errors,
            )
        return Usage(
            used_bytes=result.used_bytes,
            measured_at=datetime.now(timezone.utc),
            source=self.source,
            projects=tuple(
                ProjectUsage(name, size) for name, size in sorted(result.projects.items())
            ),
            files=result.files or None,
            errors=result.errors,
        )

    async def stop(self) -> None:
        # A walk in a worker thread cannot be cancelled from outside; it checks this flag.
        self._cancel.set()
        try:
            await super().stop()
        finally:
            self._cancel = threading.Event()
