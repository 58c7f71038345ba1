"""The ``lustre`` backend: usage and hard limit from ``lfs quota``.

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

from traitlets import Unicode

# The parser is shared with the hub: see scitex_quota.lustre.
from scitex_quota.lustre import parse_lfs_quota

from .command import CommandQuotaBackend

__all__ = ["LustreQuotaBackend", "parse_lfs_quota"]


class LustreQuotaBackend(CommandQuotaBackend):
    """Usage from Lustre project (or user) quotas."""

    source = "lustre"

    lfs_command = Unicode("lfs", config=True, help="The ``lfs`` executable (Lustre client).")

    def command(self) -> list[str]:
        flag = "-p" if self.quota_type == "project" else "-u"
        return [self.lfs_command, "quota", "-q", flag, self.quota_id, self.mount]

    def parse(self, stdout: str) -> tuple[int, int | None]:
        return parse_lfs_quota(stdout, self.mount)
