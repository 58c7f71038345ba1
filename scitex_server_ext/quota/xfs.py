"""The ``xfs`` backend: usage and hard limit from XFS quotas through ``xfs_quota``.

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

import contextlib
import pwd

from traitlets import Enum, Unicode

# The parsers are shared with the hub: see scitex_quota.xfs.
from scitex_quota.xfs import parse_xfs_quota, parse_xfs_report

from .command import CommandQuotaBackend

__all__ = ["XfsQuotaBackend", "parse_xfs_quota", "parse_xfs_report"]


class XfsQuotaBackend(CommandQuotaBackend):
    """Usage from XFS project (or user) quotas: exact, and one cheap call per interval."""

    source = "xfs"

    xfs_quota_command = Unicode(
        "xfs_quota", config=True, help="The ``xfs_quota`` executable (xfsprogs)."
    )

    query = Enum(
        ["quota", "report"],
        default_value="quota",
        config=True,
        help="""``quota`` asks for this one id (default); ``report`` lists every id on the
        filesystem and picks this one (for tools wrapped to allow only ``report``).""",
    )

    def command(self) -> list[str]:
        flag = "-p" if self.quota_type == "project" else "-u"
        if self.query == "report":
            inner = f"report {flag} -b -N -n"
        else:
            inner = f"quota {flag} -N -b -v {self.quota_id}"
        return [self.xfs_quota_command, "-x", "-c", inner, self.mount]

    def parse(self, stdout: str) -> tuple[int, int | None]:
        if self.query == "report":
            aliases: list[str] = []
            if self.quota_type == "user" and not self.quota_id.isdigit():
                # report -n prints uids; the setting may hold a user name.
                with contextlib.suppress(KeyError):
                    aliases.append(str(pwd.getpwnam(self.quota_id).pw_uid))
            return parse_xfs_report(stdout, self.quota_id, *aliases)
        return parse_xfs_quota(stdout, self.mount)
