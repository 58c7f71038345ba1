"""Running a quota tool (``du``, ``xfs_quota``, ``lfs``) and finding a tree's filesystem."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["CommandResult", "CommandRunner", "QuotaCommandError", "mount_point_of", "run_command"]


class QuotaCommandError(RuntimeError):
    """A quota tool failed or printed something we could not read."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


# (argv, timeout seconds) -> result. Swappable so tests can replay recorded output.
CommandRunner = Callable[[Sequence[str], float], Awaitable[CommandResult]]


async def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run ``argv`` (no shell) with a C locale and return its output; kill it on timeout."""
    # A C locale keeps the tools' numbers and headers in the format the parsers expect.
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        # Timed out or cancelled: do not leave the tool running behind us.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return CommandResult(
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
    )


def mount_point_of(path: str) -> str:
    """The mount point of the filesystem holding ``path`` (walks up until the device changes)."""
    path = os.path.realpath(path)
    dev = os.stat(path).st_dev
    while path != "/":
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            break
        path = parent
    return path
