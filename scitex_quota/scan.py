"""Walking a user's tree: what it takes on disk, in total and per project.

Space is counted as ``du`` counts it: allocated blocks (``st_blocks * 512``), each
hard-linked inode once, symlinks not followed, other filesystems not entered (``du -x``).
Allocated space rather than file length is what a filesystem quota charges: a 10-byte
file takes a whole block, and a sparse file takes less than its length.

The walk (:mod:`scitex_quota.walk`) opens each directory once, relative to its parent's
descriptor and never through a symlink, and stats its entries relative to it
(``fstatat``): the kernel resolves one name per file instead of a whole path, root can
run it in users' trees, and depth has no ``PATH_MAX`` limit. Top-level directories
(and each project) are walked as separate units, which threads can share: that pays
off on network filesystems where a stat waits on the server; on a local disk the walk
is CPU-bound and one thread is fastest.

GNU ``du`` walks the same tree faster (C, no interpreter lock). :func:`du_scan` runs one
``du`` over the whole tree; :func:`parallel_du_scan` splits the tree into the same units
and runs several ``du -s`` processes at once, so the walk (on a warm cache, mostly
system-call CPU time) uses several cores. Each ``du`` counts a hard-linked inode once
among the units *it* walks; an inode linked from units walked by two processes is
counted by both (see :func:`parallel_du_scan`). GNU ``du`` also walks by descriptor
(fts), so it counts trees deeper than ``PATH_MAX`` too; it prints a line on stderr for
each entry it cannot read, and those make the measurement *incomplete*.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from scitex_safefs import DIR_FLAGS

from .command import CommandResult, CommandRunner, QuotaCommandError, run_command
from .walk import ScanCancelled, Tally, read_dir, walk

__all__ = ["ScanCancelled", "ScanResult", "du_scan", "parallel_du_scan", "scan_tree"]

_T = TypeVar("_T")


@dataclass
class ScanResult:
    """Totals of one walk. ``files`` counts every entry seen (files, directories, links).

    ``errors`` counts what could not be read (a directory, an entry): with any, the
    total is a lower bound and the measurement is :attr:`incomplete`.
    """

    used_bytes: int
    files: int
    errors: int
    projects: dict[str, int] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        return self.errors > 0


@dataclass
class _Unit:
    """A directory walked as a whole: a top-level directory, or one project."""

    project: str | None
    # Walked from here by name (the walk), or by path (du, which runs as the user).
    parent_fd: int
    name: str
    path: str
    # The directory's own blocks and link count (its subdirectories + 2 on most
    # filesystems: a free hint of its size, used to start big units first).
    blocks: int
    nlink: int


@dataclass
class _TopLevel:
    root: str
    dev: int
    top: Tally
    units: list[_Unit]
    fds: list[int]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _top_level(root: str, projects_dir: str) -> _TopLevel:
    """Count ``root``'s own entries (and those of its projects directory); list the units.

    The tally covers everything above the units (including the units' own directory
    blocks). The root (and projects directory) stay open for the units' walks: close().
    """
    root = os.path.realpath(root)
    root_fd = os.open(root, DIR_FLAGS)
    listing = _TopLevel(root, 0, Tally(), [], [root_fd])
    try:
        root_st = os.fstat(root_fd)
        dev = listing.dev = root_st.st_dev
        top = listing.top
        top.blocks = root_st.st_blocks

        def visit_level(fd: int, path: str, project_level: bool) -> None:
            for name in read_dir(fd, dev, top):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since it was listed
                if not project_level and name == projects_dir:
                    try:
                        projects_fd = os.open(name, DIR_FLAGS, dir_fd=fd)
                        listing.fds.append(projects_fd)
                        visit_level(projects_fd, f"{path}/{name}", True)
                    except OSError:
                        # Unreadable: its own blocks count, as du counts them.
                        top.errors += 1
                    continue
                project = name if project_level else None
                unit = _Unit(project, fd, name, f"{path}/{name}", st.st_blocks, st.st_nlink)
                listing.units.append(unit)

        visit_level(root_fd, root, False)
    except BaseException:
        listing.close()
        raise
    return listing


def scan_tree(
    root: str,
    *,
    projects_dir: str = "projects",
    threads: int = 1,
    cancel: threading.Event | None = None,
    only_projects: bool = False,
) -> ScanResult:
    """Walk ``root`` and return its allocated bytes, with a subtotal per project.

    Projects are the real (not symlinked) directories directly under
    ``root/projects_dir``. With ``only_projects`` nothing else is walked (the total is
    then meaningless; the quota-tool backends use it for the project subtotals).
    Blocking: call it from a worker thread.
    """
    listing = _top_level(root, projects_dir)
    try:
        dev, top, units = listing.dev, listing.top, listing.units
        if only_projects:
            units = [unit for unit in units if unit.project is not None]
        if threads > 1 and len(units) > 1:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scitex-scan") as pool:
                tallies = list(pool.map(lambda u: walk(u.parent_fd, u.name, dev, cancel), units))
        else:
            tallies = [walk(unit.parent_fd, unit.name, dev, cancel) for unit in units]
    finally:
        listing.close()

    linked: dict[tuple[int, int], int] = dict(top.linked)
    total_blocks, files, errors = top.blocks, top.files, top.errors
    projects: dict[str, int] = {}
    for unit, tally in zip(units, tallies, strict=True):
        total_blocks += tally.blocks
        files += tally.files
        errors += tally.errors
        linked.update(tally.linked)
        if unit.project is not None:
            projects[unit.project] = (unit.blocks + tally.blocks + sum(tally.linked.values())) * 512
    total_blocks += sum(linked.values())
    return ScanResult(used_bytes=total_blocks * 512, files=files, errors=errors, projects=projects)


# Batches per du process slot: enough that a slot finishing early picks up more work
# (unit sizes are unknown until walked), few enough that starting du (about 1.5 ms
# each) stays small next to the walk.
BATCHES_PER_JOB = 4
# Paths per du command line at most: a root with very many directories must not pass
# the kernel's limit on argument size.
MAX_BATCH = 512


def du_batches(units: Sequence[_T], jobs: int) -> list[list[_T]]:
    """Consecutive batches of ``units``, about ``BATCHES_PER_JOB`` per job, in order."""
    size = max(1, min(MAX_BATCH, math.ceil(len(units) / (jobs * BATCHES_PER_JOB))))
    return [list(units[i : i + size]) for i in range(0, len(units), size)]


def _du_errors(result: CommandResult, du_command: str) -> int:
    """The entries a du run could not read (its stderr lines); raises when it failed.

    du exits 1 when some entries could not be read but still prints the totals.
    """
    if result.returncode not in (0, 1):
        raise QuotaCommandError(
            f"{du_command} exited with status {result.returncode}: {result.stderr.strip()[:300]}"
        )
    return sum(1 for line in result.stderr.splitlines() if line.strip())


def _du_records(stdout: str) -> Iterator[tuple[int, str]]:
    """(bytes, path) of each ``du -B1 -0`` record."""
    for record in stdout.split("\0"):
        size, sep, path = record.lstrip("\n").partition("\t")
        if sep and size.isdigit():
            yield int(size), path


def _parse_du_s(stdout: str, paths: Sequence[str], du_command: str) -> dict[int, int]:
    """Bytes per index into ``paths`` from ``du -B1 -0 -s -- paths...``.

    du prints one record per argument, in argument order, and none for an argument it
    could not stat (vanished since it was listed): match the records to the arguments in
    order. du prints names as raw bytes, which the runner decodes with replacement:
    compare against the arguments decoded the same way.
    """
    keys = [os.fsencode(p).decode("utf-8", errors="replace") for p in paths]
    sizes: dict[int, int] = {}
    i = 0
    for size, path in _du_records(stdout):
        while i < len(keys) and keys[i] != path:
            i += 1
        if i == len(keys):
            raise QuotaCommandError(f"{du_command} printed a path it was not given: {path!r}")
        sizes[i] = size
        i += 1
    return sizes


async def parallel_du_scan(
    root: str,
    *,
    projects_dir: str = "projects",
    jobs: int = 2,
    du_command: str = "du",
    timeout: float = 3600.0,
    runner: CommandRunner = run_command,
) -> ScanResult:
    """The totals of :func:`du_scan` (hard links aside: below) from ``jobs`` ``du`` at once.

    The tree is split as :func:`scan_tree` splits it: ``root``'s own entries (and its
    projects directory's) are counted here, in a worker thread; each other top-level
    directory and each project is a unit. Units go in :func:`du_batches` (in order of
    their directory's link count, a free hint of their size: big ones first), and
    ``jobs`` workers each run ``du -x -B1 -0 -s -- <batch>``, then take the next batch.
    ``timeout`` bounds the whole walk.

    Hard links: each ``du`` counts an inode once among the units it walks (and a unit's
    subtotal leaves out an inode an earlier unit of the same batch counted, as one
    ``du`` does). An inode linked from units in different batches, or from a loose file
    in ``root`` and a unit, is counted once per batch (or loose-file pass) that reaches
    it: the total errs high, never low, by those inodes. Telling which inodes those are
    takes a stat of every file (du cannot print inode numbers), i.e. a second walk;
    :func:`du_scan` (one process) counts each once.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    listing = await asyncio.to_thread(_top_level, root, projects_dir)
    # du walks by path (as the user, in the notebook server): only the listing is needed.
    listing.close()
    root, top, units = listing.root, listing.top, listing.units
    units.sort(key=lambda unit: (-unit.nlink, unit.path))
    batches = du_batches(range(len(units)), jobs)
    sizes: dict[int, int] = {}
    errors = top.errors
    # Workers share one iterator: each takes the next batch when its du exits.
    pending = iter(batches)

    async def worker() -> None:
        nonlocal errors
        for batch in pending:
            paths = [units[i].path for i in batch]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            result = await runner([du_command, "-x", "-B1", "-0", "-s", "--", *paths], remaining)
            errors += _du_errors(result, du_command)
            for j, size in _parse_du_s(result.stdout, paths, du_command).items():
                sizes[batch[j]] = size

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(jobs, len(batches)))]
    try:
        await asyncio.gather(*tasks)
    except TimeoutError:
        raise QuotaCommandError(
            f"{du_command} walks of {root} did not finish within {timeout:g} s"
        ) from None
    finally:
        # One worker failed or we were cancelled: stop the others (run_command kills
        # their du) before returning.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Each du counts its unit's directory itself: take those blocks off the top tally.
    own_blocks = sum(unit.blocks for unit in units)
    total = (top.blocks - own_blocks + sum(top.linked.values())) * 512 + sum(sizes.values())
    projects = {
        unit.project: sizes[i]
        for i, unit in enumerate(units)
        if unit.project is not None and i in sizes
    }
    return ScanResult(used_bytes=total, files=0, errors=errors, projects=projects)


async def du_scan(
    root: str,
    *,
    projects_dir: str = "projects",
    du_command: str = "du",
    timeout: float = 3600.0,
    runner: CommandRunner = run_command,
) -> ScanResult:
    """The same totals through GNU ``du -x -B1 -0 --max-depth=2`` (one walk, in a subprocess)."""
    root = await asyncio.to_thread(os.path.realpath, root)
    argv = [du_command, "-x", "-B1", "-0", "--max-depth=2", "--", root]
    result = await runner(argv, timeout)
    errors = _du_errors(result, du_command)
    total: int | None = None
    projects: dict[str, int] = {}
    projects_prefix = os.path.join(root, projects_dir) + "/"
    for size, path in _du_records(result.stdout):
        if path == root:
            total = size
        elif path.startswith(projects_prefix) and "/" not in path[len(projects_prefix) :]:
            # du lists symlinked directories nowhere, so only real project dirs appear.
            projects[path[len(projects_prefix) :]] = size
    if total is None:
        raise QuotaCommandError(f"{du_command} printed no total for {root}")
    return ScanResult(used_bytes=total, files=0, errors=errors, projects=projects)
