"""The names of our JupyterHub scopes, and how a token's scopes read: one place.

The configuration (``jupyterhub_config.apply``) defines the scopes and grants them in
roles; the scitex service decides every request by the calling token's scopes alone
(never by the caller's name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ADMIN_SCOPE",
    "CUSTOM_SCOPES",
    "DEFAULT_SERVER_TOKEN_SCOPES",
    "GROUP_FILTER",
    "JOBS_SCOPE",
    "admin_rights",
    "has_jobs_scope",
]

# Admin actions of the service (quota, usage, spawn records of other users): unfiltered
# for the hub's admins, with a !group=<institution> filter for an institution's admins.
ADMIN_SCOPE = "custom:scitex:admin"
# Compute jobs through the service (docs/jobs.md): granted to every user's role with a
# !user filter and requested for each notebook server's token, which submits for its user.
JOBS_SCOPE = "custom:scitex:jobs"
GROUP_FILTER = "!group="
USER_FILTER = "!user="
# JupyterHub 6's default server-token scopes (its "server" role), kept as they are.
# Never ADMIN_SCOPE: code in a notebook reads its server's token.
DEFAULT_SERVER_TOKEN_SCOPES = ("users:activity!user", "access:servers!server")

CUSTOM_SCOPES = {
    ADMIN_SCOPE: {
        "description": "Administer SciTeX resources (quota, projects, jobs) of users, "
        "limited by a !group=<institution> filter",
    },
    JOBS_SCOPE: {
        "description": "Submit, list and cancel one's own compute jobs through the scitex "
        "service (held by notebook servers' tokens, with a !user filter)",
    },
}


def admin_rights(scopes: Iterable[str]) -> frozenset[str] | None:
    """The institutions ``custom:scitex:admin`` in a token's scopes grants: ``None`` for
    all (unfiltered), else those of its ``!group=`` filters (empty: none). Any other
    filter (``!user=``, ``!server=``) grants nothing here."""
    groups = set()
    for scope in scopes:
        if scope == ADMIN_SCOPE:
            return None
        if scope.startswith(ADMIN_SCOPE + GROUP_FILTER):
            groups.add(scope[len(ADMIN_SCOPE + GROUP_FILTER) :])
    return frozenset(groups)


def has_jobs_scope(model: Mapping[str, Any]) -> bool:
    """Whether the hub's model of a calling token (its ``name`` and expanded ``scopes``)
    may run that user's jobs: the jobs scope unfiltered or filtered to the user."""
    name = model.get("name", "")
    return any(
        scope in (JOBS_SCOPE, f"{JOBS_SCOPE}{USER_FILTER}{name}")
        for scope in model.get("scopes", [])
    )
