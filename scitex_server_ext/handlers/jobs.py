"""``scitex/api/jobs``: compute jobs, forwarded to the scitex hub service (docs/jobs.md).

- ``GET scitex/api/jobs``: ``{"jobs": [{"id", "project", "script", "state", "reason", "node",
  "submitted_at", "started_at", "ended_at", "exit_code"}]}``, the user's jobs, newest first;
- ``POST scitex/api/jobs`` ``{"project", "script", "resources": {"cpus", "memory", "runtime",
  ...}}``: submit (201);
- ``GET scitex/api/jobs/options``: the resources the user may ask for, ``{"institution",
  "default_profile", "profiles": [{"name", "display_name", "description", "partitions",
  "cpus", "memory", "runtime", "gpus": {"default", "min", "max"}}], "script_suffixes",
  "projects_path"}`` (the service's answer, and where projects are in the file browser);
- ``GET scitex/api/jobs/{id}``: one job; ``DELETE``: cancel it;
- ``GET scitex/api/jobs/{id}/log``: ``{"id", "log", "truncated", "exists", "path", "state"}``.

Errors are JSON ``{"message", "reason"}`` (written by ``handlers/base.py``): 400 (bad request,
a script outside the project), 404 (no such job of yours), 409 (already ended), 429 (too many
jobs), 501 (no service).
"""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..jobs import JobsClient, JobsError
from .base import SciTeXAPIHandler


class JobsAPIHandler(SciTeXAPIHandler):
    @property
    def client(self) -> JobsClient:
        client: JobsClient = self.scitex["jobs"]
        return client


class JobsHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(await self.client.list()))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise JobsError(400, "The request body is not valid JSON") from None
        job = await self.client.submit(body)
        self.set_status(201)
        self.finish(json.dumps(job))


class JobOptionsHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        root_dir = str(self.settings.get("server_root_dir") or self.scitex["user_root"])
        self.finish(json.dumps(await self.client.options(root_dir)))


class JobHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.finish(json.dumps(await self.client.get(job_id)))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        self.finish(json.dumps(await self.client.cancel(job_id)))


class JobLogHandler(JobsAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.finish(json.dumps(await self.client.log(job_id)))


default_handlers = [
    (r"/scitex/api/jobs", JobsHandler),
    # Before jobs/{id}, which would take "options" for a job id.
    (r"/scitex/api/jobs/options", JobOptionsHandler),
    (r"/scitex/api/jobs/(?P<job_id>[^/]+)", JobHandler),
    (r"/scitex/api/jobs/(?P<job_id>[^/]+)/log", JobLogHandler),
]
