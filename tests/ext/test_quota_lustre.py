"""The lustre backend on recorded ``lfs quota`` output (no Lustre here).

The recordings follow lfs.c's printf formats: the title (dropped by ``-q``)
``%15s%8s %7s%8s%8s%8s %7s%8s%8s``; each row ``%15s`` (a longer mount point on a line of
its own), `` %7s%c %6s %7s %7s`` for blocks (KiB, ``*`` when over a limit, ``[..]`` when
inaccurate) and the same for files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from scitex_quota import CommandResult, QuotaCommandError, parse_lfs_quota
from scitex_server_ext.quota.base import UsageUnavailable
from scitex_server_ext.quota.lustre import LustreQuotaBackend

KiB = 1024

# lfs quota -q -p 1001 /lustre
PLAIN = "        /lustre 5242880       0 10485760       -    1234       0       0       -\n"
# Mount point longer than 15 characters.
LONG_MOUNT = (
    "/lustre/scratch01\n"
    "                5242880  9437184 10485760       -    1234       0       0       -\n"
)
# Over the hard limit.
OVER_HARD = "        /lustre 10485764* 9437184 10485760       -   88231       0       0       -\n"
# Over the soft limit, grace running.
IN_GRACE = "        /lustre 9500000* 9437184 10485760 6d23h59m58s   88231       0       0       -\n"
# No limit.
NO_LIMIT = "        /lustre       0       0       0       -       0       0       0       -\n"
# Project uses the default quota (lfs adds a line).
DEFAULT_QUOTA = PLAIN + "pid 1001 is using default block quota setting\n"
# Without -q, as pasted from a terminal.
WITH_TITLE = (
    "Disk quotas for prj 1001 (pid 1001):\n"
    "     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace\n" + PLAIN
)
# An OST did not answer: bracketed numbers, a warning line, and a non-zero exit.
INACCURATE = (
    "        /lustre [5242880]       0 [10485760]       -  [1234]       0       0       -\n"
    "Some errors happened when getting quota info. Some devices may be not working or "
    'deactivated. The data in "[]" is inaccurate.\n'
)


@pytest.mark.parametrize(
    ("stdout", "used", "limit"),
    [
        (PLAIN, 5242880 * KiB, 10485760 * KiB),
        (LONG_MOUNT, 5242880 * KiB, 10485760 * KiB),
        (OVER_HARD, 10485764 * KiB, 10485760 * KiB),
        (IN_GRACE, 9500000 * KiB, 10485760 * KiB),
        (NO_LIMIT, 0, None),
        (DEFAULT_QUOTA, 5242880 * KiB, 10485760 * KiB),
        (WITH_TITLE, 5242880 * KiB, 10485760 * KiB),
    ],
)
def test_parse(stdout: str, used: int, limit: int | None) -> None:
    mount = "/lustre/scratch01" if stdout is LONG_MOUNT else "/lustre"
    assert parse_lfs_quota(stdout, mount) == (used, limit)


def test_inaccurate_answers_are_refused() -> None:
    with pytest.raises(QuotaCommandError, match="inaccurate"):
        parse_lfs_quota(INACCURATE, "/lustre")


def test_nothing_to_read() -> None:
    with pytest.raises(QuotaCommandError, match="no usage line"):
        parse_lfs_quota("", "/lustre")
    with pytest.raises(QuotaCommandError):
        parse_lfs_quota("        /lustre 5242880 0 10485760\n", "/lustre")


class Recorder:
    def __init__(self, stdout: str, returncode: int = 0, stderr: str = "") -> None:
        self.result = CommandResult(returncode, stdout, stderr)
        self.calls: list[list[str]] = []

    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        return self.result


async def test_backend_project_quota(tmp_path: Path) -> None:
    (tmp_path / "projects" / "thesis").mkdir(parents=True)
    runner = Recorder(PLAIN)
    backend = LustreQuotaBackend(
        root=str(tmp_path), mount="/lustre", quota_id="1001", runner=runner
    )
    try:
        usage = await backend.usage()
    finally:
        await backend.stop()
    assert runner.calls == [["lfs", "quota", "-q", "-p", "1001", "/lustre"]]
    assert (usage.source, usage.used_bytes, usage.limit_bytes) == (
        "lustre",
        5242880 * KiB,
        10485760 * KiB,
    )
    assert [p.name for p in usage.projects] == ["thesis"]


async def test_backend_user_quota(tmp_path: Path) -> None:
    runner = Recorder(PLAIN)
    backend = LustreQuotaBackend(
        root=str(tmp_path), mount="/lustre", quota_type="user", quota_id="alice", runner=runner
    )
    await backend.measure()
    assert runner.calls == [["lfs", "quota", "-q", "-u", "alice", "/lustre"]]


async def test_backend_failure_is_unavailable(tmp_path: Path) -> None:
    runner = Recorder(INACCURATE, returncode=5)
    backend = LustreQuotaBackend(
        root=str(tmp_path), mount="/lustre", quota_id="1001", runner=runner
    )
    try:
        with pytest.raises(UsageUnavailable, match="status 5"):
            await backend.usage()
    finally:
        await backend.stop()


async def test_a_failure_after_success_keeps_the_last_good_value(tmp_path: Path) -> None:
    runner = Recorder(PLAIN)
    backend = LustreQuotaBackend(
        root=str(tmp_path), mount="/lustre", quota_id="1001", runner=runner
    )
    try:
        good = await backend.usage()
        runner.result = CommandResult(5, INACCURATE, "")
        with pytest.raises(QuotaCommandError):
            await backend.refresh()
        assert await backend.usage() is good
    finally:
        await backend.stop()
