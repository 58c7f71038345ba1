"""``scitex/api/projects``: list, create, import, status and sync of the user's projects.

- ``GET scitex/api/projects``: the projects (name, branch, ahead, behind, dirty, remote);
- ``POST scitex/api/projects`` ``{"name", "org"?}``: a Gitea repository, cloned under
  ``projects/<name>``;
- ``POST scitex/api/projects/import`` ``{"clone_url"}``: clone a repository of the configured
  Gitea;
- ``GET scitex/api/projects/{name}/status``: git status summary;
- ``POST scitex/api/projects/{name}/sync``: commit, pull (rebase), push.

Errors are JSON ``{"message", "reason", ...}`` (written by ``handlers/base.py``); a sync
conflict adds ``conflicts`` (the paths), ``local_commit`` and ``upstream``. Without a Gitea,
import and sync answer 501 (see ``docs/gitea.md``).
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..projects import ProjectManager
from .base import SciTeXAPIHandler

# The name is validated by ProjectManager (400 with a reason), so the route takes any segment.
NAME = r"(?P<name>[^/]+)"


class ProjectsAPIHandler(SciTeXAPIHandler):
    @property
    def projects(self) -> ProjectManager:
        manager: ProjectManager = self.scitex["projects"]
        return manager

    def body_json(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, reason="Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, reason="Request body must be a JSON object")
        return body


class ProjectsHandler(ProjectsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        projects = await self.projects.list_projects()
        self.finish(json.dumps({"projects": projects}))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body_json()
        project = await self.projects.create(body.get("name"), body.get("org"))
        self.set_status(201)
        self.finish(json.dumps(project))


class ProjectImportHandler(ProjectsAPIHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body_json()
        project = await self.projects.import_(body.get("clone_url"))
        self.set_status(201)
        self.finish(json.dumps(project))


class ProjectStatusHandler(ProjectsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.finish(json.dumps(await self.projects.status(name)))


class ProjectSyncHandler(ProjectsAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        self.finish(json.dumps(await self.projects.sync(name)))


default_handlers = [
    (r"/scitex/api/projects", ProjectsHandler),
    (r"/scitex/api/projects/import", ProjectImportHandler),
    (rf"/scitex/api/projects/{NAME}/status", ProjectStatusHandler),
    (rf"/scitex/api/projects/{NAME}/sync", ProjectSyncHandler),
]
