"""Names no job or server may run as: the deny list and system accounts.

Checked at sign-in (scitex_spawner.auth) and again by the service before it runs
anything as a user (a token outlives a rule change).
"""

from __future__ import annotations

import pwd
from collections.abc import Collection

__all__ = ["name_refusal"]


def name_refusal(username: str, denied: Collection[str], min_uid: int) -> str | None:
    """Why ``username`` may not sign in (nor start a job), or None.

    Refused: a name in ``denied``; an existing Unix account whose UID is below
    ``min_uid`` (root, daemon, www-data, postgres: system accounts). A name with no Unix
    account here is not refused by this rule (LDAP and OIDC sites whose accounts live
    elsewhere); its server then fails to start with a message saying so.
    """
    if username in denied:
        return f"the name {username} is reserved on this hub (an administrator or service account)"
    try:
        uid = pwd.getpwnam(username).pw_uid
    except KeyError:
        return None
    if uid < min_uid:
        return (
            f"{username} is a system account on this hub's machine (UID {uid}; people's "
            f"accounts start at UID {min_uid})"
        )
    return None
