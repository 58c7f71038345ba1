"""Reading ``xfs_quota`` output: usage and hard limit of an XFS project (or user) quota.

Two commands are understood (both in 1 KiB blocks, ``-b``, without header, ``-N``)::

    xfs_quota -x -c 'quota -p -N -b -v <projid>' <mount>
    xfs_quota -x -c 'report -p -b -N -n' <mount>

``quota`` prints one line per filesystem (the device name on a line of its own when it
is longer than 19 characters)::

    /dev/sdb1              1048576    5000000   10000000   00 [--------] /data

``report`` prints one line per id (``#<id>`` with ``-n``)::

    #1001          1048576    5000000   10000000     00 [--------]

``-v`` is added to ``quota`` on purpose: without it a project with zero usage and no
limits prints nothing, and an empty answer would be indistinguishable from "quotas are
not enabled here". With it, an empty answer is always an error.

Reading project quotas needs CAP_SYS_ADMIN: sites give the user a narrow ``sudo`` rule
(``command_prefix = ["sudo", "-n"]``) or run the notebook server's image with it.
"""

from __future__ import annotations

import re

from .command import QuotaCommandError

__all__ = ["parse_xfs_quota", "parse_xfs_report"]

# dev used soft hard warns [timer] mount   (numbers in KiB; the timer may contain spaces)
_QUOTA_LINE = re.compile(
    r"^(?P<dev>\S+)\s+(?P<used>\d+)\s+(?P<soft>\d+)\s+(?P<hard>\d+)\s+(?P<warns>\d+)\s+"
    r"\[(?P<timer>[^\]]*)\]\s+(?P<mount>.+?)\s*$"
)
# name-or-#id used soft hard warns [timer]
_REPORT_LINE = re.compile(
    r"^(?P<id>\S+)\s+(?P<used>\d+)\s+(?P<soft>\d+)\s+(?P<hard>\d+)\s+(?P<warns>\d+)\s+"
    r"\[(?P<timer>[^\]]*)\]\s*$"
)


def _limit(kib: str) -> int | None:
    value = int(kib) * 1024
    # 0 means "no limit" to xfs_quota.
    return value or None


def parse_xfs_quota(stdout: str, mount: str | None = None) -> tuple[int, int | None]:
    """``(used_bytes, hard_limit_bytes)`` from ``quota -N -b`` output.

    With ``mount`` given, only the line for that mount point counts (the command can
    list several filesystems).
    """
    # A device name longer than 19 characters ends its own line: join it to the numbers.
    joined: list[str] = []
    for raw in stdout.splitlines():
        line = raw.rstrip()
        if not line:
            continue
        if joined and raw[:1].isspace() and len(joined[-1].split()) == 1:
            joined[-1] = joined[-1] + " " + line.strip()
        else:
            joined.append(line.strip())
    matches = [m for m in (_QUOTA_LINE.match(line) for line in joined) if m]
    if mount is not None and len(matches) > 1:
        # A path inside the filesystem is echoed as its mount point, so filter only
        # when there is a choice to make.
        matches = [m for m in matches if m["mount"].rstrip("/") == mount.rstrip("/")]
    if not matches:
        raise QuotaCommandError(
            "xfs_quota printed no quota line"
            + (f" for {mount}" if mount else "")
            + ": are project quotas enabled (prjquota) and is a limit set for this project?"
        )
    if len(matches) > 1:
        raise QuotaCommandError("xfs_quota printed several quota lines; set the mount point")
    m = matches[0]
    return int(m["used"]) * 1024, _limit(m["hard"])


def parse_xfs_report(stdout: str, quota_id: str, *aliases: str) -> tuple[int, int | None]:
    """``(used_bytes, hard_limit_bytes)`` of ``quota_id`` from ``report -b -N [-n]`` output.

    ``quota_id`` (or one of ``aliases``) matches a ``#<id>`` column (``-n``) or a name
    (``/etc/projid``, ``/etc/passwd``).
    """
    wanted = {f for i in (quota_id, *aliases) for f in (i, f"#{i}")}
    for raw in stdout.splitlines():
        m = _REPORT_LINE.match(raw.strip())
        if m and m["id"] in wanted:
            return int(m["used"]) * 1024, _limit(m["hard"])
    raise QuotaCommandError(f"xfs_quota report has no line for {quota_id}")
