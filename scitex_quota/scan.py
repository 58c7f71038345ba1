"""Walking a user's tree: what it takes on disk, in total and per project.

Space is counted as ``du`` counts it: allocated blocks (``st_blocks * 512``), each
hard-linked inode once, symlinks not followed, other filesystems not entered (``du -x``).
Allocated space rather than file length is what a filesystem quota charges: a 10-byte
file takes a whole block, and a sparse file takes less than its length.

The walk opens each directory once and stats its entries relative to that directory
descriptor (``fstatat``), so the kernel resolves one name per file instead of a whole
path. Top-level directories (and each project) are walked as separate units, which
threads can share: that pays off on network filesystems where a stat waits on the
server; on a local disk the walk is CPU-bound and one thread is fastest.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .command import CommandRunner, QuotaCommandError, run_command

__all__ = ["ScanCancelled", "ScanResult", "du_scan", "scan_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ScanCancelled(Exception):
    """The walk was stopped through its cancel event."""


@dataclass
class ScanResult:
    """Totals of one walk. ``files`` counts every entry seen (files, directories, links)."""

    used_bytes: int
    files: int
    errors: int
    projects: dict[str, int] = field(default_factory=dict)


@dataclass
class _Tally:
    blocks: int = 0
    files: int = 0
    errors: int = 0
    # Inodes with more than one link, counted once over the whole walk (as du does).
    linked: dict[tuple[int, int], int] = field(default_factory=dict)


def _walk(top: str, dev: int, cancel: threading.Event | None) -> _Tally:
    """Blocks under ``top`` (not ``top`` itself), without crossing to another filesystem."""
    tally = _Tally()
    blocks = files = errors = 0
    linked = tally.linked
    # Paths, not open descriptors, wait on the stack: a directory with many
    # subdirectories would otherwise exhaust the descriptor limit.
    stack = [top]
    while stack:
        if cancel is not None and cancel.is_set():
            raise ScanCancelled(top)
        path = stack.pop()
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError:
            errors += 1
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        # Vanished between readdir and stat, or unreadable.
                        errors += 1
                        continue
                    files += 1
                    if entry.is_dir(follow_symlinks=False):
                        if st.st_dev != dev:
                            continue
                        blocks += st.st_blocks
                        stack.append(path + "/" + entry.name)
                    elif st.st_nlink > 1:
                        linked[(st.st_dev, st.st_ino)] = st.st_blocks
                    else:
                        blocks += st.st_blocks
        except OSError:
            errors += 1
        finally:
            os.close(fd)
    tally.blocks, tally.files, tally.errors = blocks, files, errors
    return tally


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
    root = os.path.realpath(root)
    root_st = os.lstat(root)
    if not stat.S_ISDIR(root_st.st_mode):
        raise NotADirectoryError(root)
    dev = root_st.st_dev
    top = _Tally(blocks=root_st.st_blocks)
    # (project name or None, directory, the directory's own blocks)
    units: list[tuple[str | None, str, int]] = []

    def visit_level(path: str, project_level: bool) -> None:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    top.errors += 1
                    continue
                top.files += 1
                if entry.is_dir(follow_symlinks=False):
                    if st.st_dev != dev:
                        continue
                    top.blocks += st.st_blocks
                    if not project_level and entry.name == projects_dir:
                        visit_level(entry.path, True)
                    else:
                        units.append(
                            (entry.name if project_level else None, entry.path, st.st_blocks)
                        )
                elif st.st_nlink > 1:
                    top.linked[(st.st_dev, st.st_ino)] = st.st_blocks
                else:
                    top.blocks += st.st_blocks

    visit_level(root, False)
    if only_projects:
        units = [unit for unit in units if unit[0] is not None]
    if threads > 1 and len(units) > 1:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scitex-scan") as pool:
            tallies = list(pool.map(lambda u: _walk(u[1], dev, cancel), units))
    else:
        tallies = [_walk(path, dev, cancel) for _, path, _ in units]

    linked: dict[tuple[int, int], int] = dict(top.linked)
    total_blocks, files, errors = top.blocks, top.files, top.errors
    projects: dict[str, int] = {}
    for (project, _, own_blocks), tally in zip(units, tallies, strict=True):
        total_blocks += tally.blocks
        files += tally.files
        errors += tally.errors
        linked.update(tally.linked)
        if project is not None:
            projects[project] = (own_blocks + tally.blocks + sum(tally.linked.values())) * 512
    total_blocks += sum(linked.values())
    return ScanResult(used_bytes=total_blocks * 512, files=files, errors=errors, projects=projects)


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
    # du exits 1 when some entries could not be read but still prints the totals.
    if result.returncode not in (0, 1):
        raise QuotaCommandError(
            f"{du_command} exited with status {result.returncode}: {result.stderr.strip()[:300]}"
        )
    total: int | None = None
    projects: dict[str, int] = {}
    projects_prefix = os.path.join(root, projects_dir) + "/"
    for record in result.stdout.split("\0"):
        size, sep, path = record.lstrip("\n").partition("\t")
        if not sep or not size.isdigit():
            continue
        if path == root:
            total = int(size)
        elif path.startswith(projects_prefix) and "/" not in path[len(projects_prefix) :]:
            name = path[len(projects_prefix) :]
            # du lists symlinked directories nowhere, so only real project dirs appear.
            projects[name] = int(size)
    if total is None:
        raise QuotaCommandError(f"{du_command} printed no total for {root}")
    errors = sum(1 for line in result.stderr.splitlines() if line.strip())
    return ScanResult(used_bytes=total, files=0, errors=errors, projects=projects)
