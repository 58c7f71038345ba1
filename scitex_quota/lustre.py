"""Reading ``lfs quota`` output: usage and hard limit of a Lustre project (or user) quota.

The command is ``lfs quota -q -p <projid> <mount>`` (or ``-u <user>``). ``-q`` drops the
two header lines; what remains is one line per filesystem, in 1 KiB blocks::

         /lustre 5242880       0 10485760       -    1234       0       0       -

mount, kbytes, quota (soft), limit (hard), grace, files, quota, limit, grace. A mount
point longer than 15 characters ends its own line and the numbers follow on the next.
A ``*`` after a number marks a limit passed; a number in ``[]`` is one Lustre itself
calls inaccurate (an OST or MDT did not answer; ``lfs`` then also exits non-zero and
prints "Some errors happened ..."): such an answer is refused, and the last good value
stays in use.
"""

from __future__ import annotations

from .command import QuotaCommandError

__all__ = ["parse_lfs_quota"]

_FIELDS = 9  # mount + 4 block columns + 4 inode columns


def _number(token: str, what: str) -> int:
    if token.startswith("["):
        raise QuotaCommandError(f"lfs quota marks the {what} inaccurate ({token})")
    digits = token.rstrip("*")
    if not digits.isdigit():
        raise QuotaCommandError(f"lfs quota printed {token!r} where the {what} should be")
    return int(digits)


def parse_lfs_quota(stdout: str, mount: str | None = None) -> tuple[int, int | None]:
    """``(used_bytes, hard_limit_bytes)`` from ``lfs quota -q`` output (no ``-h``)."""
    rows: list[list[str]] = []
    pending: list[str] | None = None
    for raw in stdout.splitlines():
        tokens = raw.split()
        if not tokens:
            continue
        if pending is not None:
            # The numbers of a long mount point come on the next line.
            rows.append(pending + tokens)
            pending = None
        elif tokens[0].startswith("/") and len(tokens) == 1:
            pending = tokens
        elif tokens[0].startswith("/") and len(tokens) == _FIELDS:
            rows.append(tokens)
        elif raw.startswith("Some errors happened"):
            raise QuotaCommandError("lfs quota: " + raw.strip())
        # Anything else (headers without -q, "... is using default ... quota setting")
        # carries no numbers we need.
    if mount is not None and len(rows) > 1:
        rows = [r for r in rows if r[0].rstrip("/") == mount.rstrip("/")]
    if not rows:
        raise QuotaCommandError(
            "lfs quota printed no usage line" + (f" for {mount}" if mount else "")
        )
    if len(rows) > 1:
        raise QuotaCommandError("lfs quota printed several usage lines; set the mount point")
    row = rows[0]
    if len(row) != _FIELDS:
        raise QuotaCommandError(f"lfs quota usage line has {len(row)} fields, expected {_FIELDS}")
    used = _number(row[1], "usage") * 1024
    hard = _number(row[3], "hard limit") * 1024
    # 0 means "no limit" to lfs.
    return used, hard or None
