"""The xfs backend on recorded ``xfs_quota`` output (this kernel has no quota support).

The recordings follow xfsprogs' printf formats (quota/quota.c ``quota_mount``,
quota/report.c ``report_mount``, quota/util.c ``time_to_string``): device ``%-19s``
(wrapped onto its own line past 20 characters), then `` %10llu %10llu %10llu   %02d %9s``
in KiB, then the mount point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from traitlets import TraitError

from scitex_quota import CommandResult, QuotaCommandError, parse_xfs_quota, parse_xfs_report
from scitex_server_ext.quota.base import UsageUnavailable
from scitex_server_ext.quota.xfs import XfsQuotaBackend

GiB = 1024**3

# xfs_quota -x -c 'quota -p -N -b -v 1001' /data
QUOTA_PLAIN = "/dev/sdb1              1048576   94371840  104857600   00 [--------] /data\n"
# A device name longer than 20 characters ends its own line.
QUOTA_LONG_DEVICE = (
    "/dev/mapper/scratch--vg-home--lv\n"
    "                     104857700   94371840  104857600   01 [--none--] /data\n"
)
# Soft limit passed, grace running; and the verbose timer form under a day.
QUOTA_GRACE = "/dev/sdc1             99000000   94371840  104857600   00  [6 days] /scratch\n"
QUOTA_GRACE_VERBOSE = (
    "/dev/sdb1             96000000   94371840  104857600   00 [0 days 23:15:02] /data\n"
)
# No limits set for the project.
QUOTA_NO_LIMIT = "/dev/sdb1                 2048          0          0   00 [--------] /data\n"
# Without a mount argument xfs_quota lists every XFS filesystem that has the id.
QUOTA_TWO_MOUNTS = QUOTA_PLAIN + QUOTA_GRACE
# With the header (no -N), as an operator would paste it.
QUOTA_WITH_HEADER = (
    "Disk quotas for Project alice (1001)\n"
    "Filesystem              Blocks      Quota      Limit  Warn/Time      Mounted on\n"
    + QUOTA_PLAIN
)

# xfs_quota -x -c 'report -p -b -N -n' /data
REPORT = (
    "#0                   0          0          0     00 [--------]\n"
    "#1001          1048576   94371840  104857600     00 [--------]\n"
    "#1002         99000000   94371840  104857600     00  [6 days]\n"
    "\n"
)
# Without -n: names from /etc/projid.
REPORT_NAMES = (
    "#0                   0          0          0     00 [--------]\n"
    "alice          1048576   94371840  104857600     00 [--------]\n"
    "\n"
)


@pytest.mark.parametrize(
    ("stdout", "used", "limit"),
    [
        (QUOTA_PLAIN, 1048576 * 1024, 100 * GiB),
        (QUOTA_LONG_DEVICE, 104857700 * 1024, 100 * GiB),
        (QUOTA_GRACE_VERBOSE, 96000000 * 1024, 100 * GiB),
        (QUOTA_NO_LIMIT, 2048 * 1024, None),
        (QUOTA_WITH_HEADER, 1048576 * 1024, 100 * GiB),
    ],
)
def test_parse_quota(stdout: str, used: int, limit: int | None) -> None:
    assert parse_xfs_quota(stdout, "/data") == (used, limit)


def test_parse_quota_picks_the_mount() -> None:
    assert parse_xfs_quota(QUOTA_TWO_MOUNTS, "/scratch") == (99000000 * 1024, 100 * GiB)
    assert parse_xfs_quota(QUOTA_TWO_MOUNTS, "/data/") == (1048576 * 1024, 100 * GiB)
    with pytest.raises(QuotaCommandError, match="several"):
        parse_xfs_quota(QUOTA_TWO_MOUNTS, None)


def test_parse_quota_single_line_for_a_path_inside_the_mount() -> None:
    # Asked about /data/alice, xfs_quota answers for its mount point /data.
    assert parse_xfs_quota(QUOTA_PLAIN, "/data/alice")[0] == 1048576 * 1024


def test_parse_quota_empty_is_an_error() -> None:
    # With -v a project with a record always prints; nothing means no quota here.
    with pytest.raises(QuotaCommandError, match="prjquota"):
        parse_xfs_quota("", "/data")
    with pytest.raises(QuotaCommandError):
        parse_xfs_quota("xfs_quota: cannot setup path for mount /data: No such device\n", "/data")


def test_parse_report() -> None:
    assert parse_xfs_report(REPORT, "1001") == (1048576 * 1024, 100 * GiB)
    assert parse_xfs_report(REPORT, "1002") == (99000000 * 1024, 100 * GiB)
    assert parse_xfs_report(REPORT_NAMES, "alice") == (1048576 * 1024, 100 * GiB)
    with pytest.raises(QuotaCommandError, match="no line for 1003"):
        parse_xfs_report(REPORT, "1003")
    # "#1001" must not match a prefix such as "#10010".
    with pytest.raises(QuotaCommandError):
        parse_xfs_report(REPORT.replace("#1001 ", "#10010"), "1001")


class Recorder:
    """A swappable runner: replays one recording and remembers the argv it was given."""

    def __init__(self, stdout: str, returncode: int = 0, stderr: str = "") -> None:
        self.result = CommandResult(returncode, stdout, stderr)
        self.calls: list[list[str]] = []

    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        return self.result


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    (root / "projects" / "alpha").mkdir(parents=True)
    (root / "projects" / "alpha" / "a.txt").write_bytes(b"a" * 10_000)
    (root / "projects" / "beta").mkdir()
    return root


async def test_backend_runs_quota_and_reports(root: Path) -> None:
    runner = Recorder(QUOTA_PLAIN)
    backend = XfsQuotaBackend(root=str(root), mount="/data", quota_id="1001", runner=runner)
    try:
        usage = await backend.usage()
    finally:
        await backend.stop()
    assert runner.calls == [["xfs_quota", "-x", "-c", "quota -p -N -b -v 1001", "/data"]]
    assert usage.source == "xfs"
    assert usage.used_bytes == 1048576 * 1024
    assert usage.limit_bytes == 100 * GiB
    # Per-project numbers come from a walk of projects/ (the tool knows only the total).
    sizes = {p.name: p.used_bytes for p in usage.projects}
    assert sorted(sizes) == ["alpha", "beta"]
    assert sizes["alpha"] >= 10_000


async def test_backend_report_mode_and_prefix(root: Path) -> None:
    runner = Recorder(REPORT)
    backend = XfsQuotaBackend(
        root=str(root),
        mount="/data",
        quota_id="1002",
        query="report",
        command_prefix=["sudo", "-n"],
        scan_projects=False,
        runner=runner,
    )
    usage = await backend.measure()
    assert runner.calls == [["sudo", "-n", "xfs_quota", "-x", "-c", "report -p -b -N -n", "/data"]]
    assert usage.used_bytes == 99000000 * 1024
    assert [(p.name, p.used_bytes) for p in usage.projects] == [("alpha", 0), ("beta", 0)]


async def test_backend_user_quota(root: Path) -> None:
    runner = Recorder(QUOTA_PLAIN)
    backend = XfsQuotaBackend(
        root=str(root), mount="/data", quota_type="user", quota_id="alice", runner=runner
    )
    await backend.measure()
    assert runner.calls[0][3] == "quota -u -N -b -v alice"


async def test_backend_failure_keeps_no_value(root: Path) -> None:
    runner = Recorder("", returncode=1, stderr="xfs_quota: cannot find project 1001\n")
    backend = XfsQuotaBackend(root=str(root), mount="/data", quota_id="1001", runner=runner)
    try:
        with pytest.raises(UsageUnavailable, match="cannot find project 1001"):
            await backend.usage()
    finally:
        await backend.stop()


async def test_backend_needs_an_id(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCITEX_QUOTA_PROJECT_ID", raising=False)
    backend = XfsQuotaBackend(root=str(root), mount="/data", runner=Recorder(QUOTA_PLAIN))
    with pytest.raises(QuotaCommandError, match="SCITEX_QUOTA_PROJECT_ID"):
        await backend.measure()


def test_project_id_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCITEX_QUOTA_PROJECT_ID", "4711")
    assert XfsQuotaBackend(root=str(root)).quota_id == "4711"


def test_quota_id_cannot_inject_commands(root: Path) -> None:
    # The id goes inside xfs_quota's -c string: only plain ids and names are accepted.
    for bad in ("1001; off -p", "1001' /etc", "-u root", "$(id)", "1001\n"):
        with pytest.raises(TraitError, match="quota_id"):
            XfsQuotaBackend(root=str(root), quota_id=bad)


def test_default_mount_is_the_mount_point_of_the_root(root: Path) -> None:
    mount = XfsQuotaBackend(root=str(root)).mount
    assert str(root.resolve()).startswith(mount)
    assert Path(mount).is_mount()
