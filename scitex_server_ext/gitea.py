"""The Gitea API client: it lives in :mod:`scitex_gitea.client` (shared with the hub's
provisioning); this module keeps the notebook side's import path."""

from scitex_gitea.client import (  # noqa: F401
    NOTEBOOK_TOKEN_SCOPES,
    GiteaClient,
    GiteaError,
    GiteaOrg,
    GiteaRepo,
    GiteaTeam,
    GiteaToken,
    GiteaUser,
    _seg,
)

__all__ = [
    "NOTEBOOK_TOKEN_SCOPES",
    "GiteaClient",
    "GiteaError",
    "GiteaOrg",
    "GiteaRepo",
    "GiteaTeam",
    "GiteaToken",
    "GiteaUser",
]
