"""Projects: git repositories under ``<user_root>/projects``, synced with Gitea.

- :mod:`.manager`: :class:`ProjectManager`, list, create, import and status of a user's
  projects, and the entry to sync;
- :mod:`.sync`: the sync of one project (commit, fetch, rebase, push), which never loses work;
- :mod:`.config`: :class:`ProjectsConfig`, the extension's ``gitea_*``/``git_*``/``project*``
  settings, and the manager built from them;
- :mod:`.repo`: what the manager and sync share: git run in one project, its status, config
  and remote, and :class:`ProjectError` (an error with the HTTP status to answer).
"""

from .config import ProjectsConfig
from .manager import ProjectManager
from .repo import NO_GITEA_MESSAGE, ProjectError

__all__ = ["NO_GITEA_MESSAGE", "ProjectError", "ProjectManager", "ProjectsConfig"]
