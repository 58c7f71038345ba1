"""Compute jobs: a project's script as a SLURM batch job in the compute image, as the user.

The notebook server (its own token, with the custom scope ``custom:scitex:jobs``) calls
``/services/scitex/api/jobs``; the service validates the request like a profile, builds
the batch script with the pure builders (``scitex_hub.jobspecs.compute``) and submits it
as the user. The notebook server holds no SLURM credentials. See docs/jobs.md.

By job: :mod:`.request` (the body's form), :mod:`.paths` (the script on disk, never
through a link), :mod:`.settings` (the ``ComputeJobs`` configuration and the run-as
prefix), :mod:`.history` (SLURM's live jobs plus the service's records),
:mod:`.submission` (submit, cancel, read the log: :class:`ComputeJobs`),
:mod:`.handlers` and :mod:`.options` (the HTTP endpoints).
"""

from __future__ import annotations

from tornado import web

from scitex_hub.scopes import JOBS_SCOPE

from .handlers import JobHandler, JobLogHandler, JobsAPIHandler, JobsHandler
from .history import Job, job_model
from .options import job_options_handlers
from .request import JobRequest, JobRequestError, check_script_path, parse_job_request
from .submission import ComputeJobs

__all__ = [
    "JOBS_SCOPE",
    "ComputeJobs",
    "Job",
    "JobRequest",
    "JobRequestError",
    "JobsAPIHandler",
    "check_script_path",
    "job_model",
    "jobs_handlers",
    "parse_job_request",
]


def jobs_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """Routes under ``prefix`` (``/services/scitex/``); before the API's catch-all 404."""
    return [
        *job_options_handlers(prefix),
        (prefix + "api/jobs", JobsHandler),
        (prefix + r"api/jobs/([^/]+)", JobHandler),
        (prefix + r"api/jobs/([^/]+)/log", JobLogHandler),
    ]
