"""Compute jobs, notebook side: check the request here, submit through the scitex hub service.

The notebook server holds no SLURM credentials. It checks that the project exists and the
script lies inside it (symlinks resolved), then forwards the request to the scitex hub
service (``$SCITEX_SERVICE_URL``) with the server's own token (``$JUPYTERHUB_API_TOKEN``,
which carries the custom scope ``custom:scitex:jobs!user=<name>``). The service checks
everything again on the host, submits as the user and answers for the user's jobs only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from .paths import UnsafePath, resolve_inside

__all__ = ["JobsClient", "JobsConfig", "JobsError", "check_job_request"]

PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
JOB_ID_RE = re.compile(r"\d{1,20}(?:_\d{1,10})?")
REQUEST_KEYS = frozenset({"project", "script", "resources"})
NO_SERVICE_MESSAGE = (
    "Compute jobs are not available here: this server was not given the scitex service's "
    "URL (SCITEX_SERVICE_URL). Ask your administrator."
)


class JobsError(Exception):
    """A request the user should hear about, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> JobsError:
    return JobsError(400, message)


def check_job_request(body: Any, user_root: str, projects_dir: str) -> dict[str, Any]:
    """Validate ``{"project", "script", "resources"}`` against the user's files; blocking.

    Returns what is forwarded: the script as a path relative to the project with symlinks
    resolved, so the service sees the file the user meant.
    """
    usage = 'send {"project": <name>, "script": <path in the project>, "resources": {...}}'
    if not isinstance(body, dict):
        raise _bad(f"The body must be a JSON object: {usage}")
    unknown = sorted(set(body) - REQUEST_KEYS)
    if unknown:
        raise _bad(f"Unknown keys {', '.join(unknown)}: {usage}")
    project, script = body.get("project"), body.get("script")
    resources = body.get("resources") or {}
    if not isinstance(project, str) or not PROJECT_RE.fullmatch(project):
        raise _bad(f"{project!r} is not a project name: {usage}")
    if not isinstance(script, str) or not script.strip():
        raise _bad(f"No script: {usage}")
    if not isinstance(resources, dict):
        raise _bad('resources must be an object such as {"cpus": 2, "memory": "1GiB"}')
    if "\0" in script:
        raise _bad("The script path contains a NUL byte")
    if os.path.isabs(script):
        raise _bad(f"The script must be a path relative to the project, not {script!r}")
    if ".." in script.split("/"):
        raise _bad(f"The script {script!r} leads outside the project ('..')")
    try:
        project_dir = resolve_inside(user_root, os.path.join(projects_dir, project))
    except UnsafePath as e:
        raise _bad(f"Project {project!r}: {e.reason}") from None
    if not project_dir.is_dir():
        raise _bad(f"You have no project {project!r}")
    try:
        target = resolve_inside(project_dir, script)
    except UnsafePath:
        raise _bad(f"The script {script!r} leads outside project {project!r}") from None
    if target == project_dir or not target.is_file():
        raise _bad(f"No file {script!r} in project {project!r}")
    return {
        "project": project,
        "script": os.path.relpath(target, project_dir),
        "resources": resources,
    }


@dataclass
class JobsClient:
    """Talks to the scitex hub service's jobs API with the server's own token."""

    service_url: str
    token: str
    user_root: str
    projects_dir: str = "projects"
    timeout: float = 30.0

    def _url(self, path: str) -> str:
        return self.service_url.rstrip("/") + "/api/jobs" + path

    async def _call(self, method: str, path: str = "", body: Any = None) -> Any:
        if not self.service_url:
            raise JobsError(501, NO_SERVICE_MESSAGE)
        request = HTTPRequest(
            self._url(path),
            method=method,
            headers={
                "Authorization": f"token {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            body=json.dumps(body) if body is not None else None,
            request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise self._error(e) from None
        except (OSError, asyncio.TimeoutError) as e:
            raise JobsError(502, f"Cannot reach the scitex service: {e}") from None
        if response.code == 204 or not response.body:
            return None
        return json.loads(response.body)

    def _error(self, e: HTTPClientError) -> JobsError:
        message = ""
        if e.response is not None and e.response.body:
            try:
                message = str(json.loads(e.response.body).get("message", ""))
            except (ValueError, AttributeError):
                message = ""
        if e.code == 599:
            return JobsError(504, f"The scitex service did not answer: {e.message}")
        if e.code in (301, 302, 303, 307):
            # A redirect is the hub's login page: the token was not accepted.
            return JobsError(502, "The scitex service did not accept this server's token")
        if 400 <= e.code < 500 or e.code == 503:
            # The service's own words: what was wrong with the request.
            return JobsError(e.code, message or f"The scitex service answered {e.code}")
        return JobsError(502, f"The scitex service failed ({e.code}): {message}")

    async def list(self) -> dict[str, Any]:
        reply = await self._call("GET")
        return {"jobs": list((reply or {}).get("jobs", []))}

    async def submit(self, body: Any) -> dict[str, Any]:
        request = await asyncio.to_thread(
            check_job_request, body, self.user_root, self.projects_dir
        )
        return dict(await self._call("POST", body=request))

    def _job_path(self, job_id: str, suffix: str = "") -> str:
        if not JOB_ID_RE.fullmatch(job_id):
            raise JobsError(404, f"{job_id!r} is not a job id")
        return f"/{job_id}{suffix}"

    async def get(self, job_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", self._job_path(job_id)))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(await self._call("DELETE", self._job_path(job_id)) or {"id": job_id})

    async def log(self, job_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", self._job_path(job_id, "/log")))

    def projects_path(self, root_dir: str) -> str | None:
        """The projects directory as the contents API (and so the file browser) names it:
        relative to the server's ``root_dir``; None when outside it. Blocking (realpath)."""
        projects = os.path.realpath(os.path.join(self.user_root, self.projects_dir))
        root = os.path.realpath(root_dir)
        if projects == root:
            return ""
        if not projects.startswith(root.rstrip(os.sep) + os.sep):
            return None
        return os.path.relpath(projects, root).replace(os.sep, "/")

    async def options(self, root_dir: str) -> dict[str, Any]:
        """The service's ``{"institution", "default_profile", "profiles", "script_suffixes"}``
        for this user, and where the projects are in the file browser (``projects_path``)."""
        reply = dict(await self._call("GET", "/options") or {})
        reply["projects_path"] = await asyncio.to_thread(self.projects_path, root_dir)
        return reply


class JobsConfig(Configurable):
    """The ``jobs_*`` settings of the extension (mixed into its ExtensionApp)."""

    jobs_service_url = Unicode(
        help="""The scitex hub service's URL (``.../services/scitex/``) for compute jobs.
        Default: ``$SCITEX_SERVICE_URL`` (set by the spawner). Empty: no jobs (501).""",
        config=True,
    )

    jobs_request_timeout = Float(
        30.0,
        help="Seconds a request to the scitex service may take.",
        config=True,
    )

    @default("jobs_service_url")
    def _default_jobs_service_url(self) -> str:
        return os.environ.get("SCITEX_SERVICE_URL", "")

    @validate("jobs_service_url")
    def _check_jobs_service_url(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", value):
            raise TraitError(f"jobs_service_url: {value!r} is not an http(s) URL")
        return value

    @validate("jobs_request_timeout")
    def _check_jobs_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(f"jobs_request_timeout must be positive, got {value}")
        return value

    def make_jobs_client(self, user_root: str, projects_dir: str) -> JobsClient:
        return JobsClient(
            service_url=self.jobs_service_url,
            # The server's own token (JupyterHub gives it): never logged, never on argv.
            token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            user_root=user_root,
            projects_dir=projects_dir,
            timeout=self.jobs_request_timeout,
        )
