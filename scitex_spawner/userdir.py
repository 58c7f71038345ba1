"""A user's data directory, made before their first job: ``<data_root>/<institution>/<user>``
and its log directory, mode 0700 and the user's, made symlink-safe (:mod:`scitex_safefs`).

Blocking filesystem work: the spawner runs :func:`make_user_dir` in a worker thread.
"""

from __future__ import annotations

import os
import pwd

import scitex_safefs as safefs
from scitex_hub.container import CONTAINER_DATA_DIR

from .failures import SpawnFailed


def make_user_dir(path: str, username: str, log_subdir: str) -> None:
    """``path`` and ``path/log_subdir``, owned by ``username``, mode 0700. A hub not running
    as root cannot give them away: it only checks that ``path`` exists."""
    if os.geteuid() != 0:
        if not os.path.isdir(path):
            raise SpawnFailed(
                f"Your data directory {path} does not exist and the hub cannot create it; "
                "ask your administrator."
            )
        return
    try:
        account = pwd.getpwnam(username)
    except KeyError:
        raise SpawnFailed(
            f"There is no Unix account named {username} on the hub's machine, and your "
            "server runs as that account; ask your administrator.",
            403,
        ) from None
    try:
        safefs.make_user_tree(path, log_subdir, account.pw_uid, account.pw_gid)
    except safefs.UnsafePath as e:
        raise SpawnFailed(e.advice(path, CONTAINER_DATA_DIR)) from None
