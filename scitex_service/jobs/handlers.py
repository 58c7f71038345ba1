"""``/services/scitex/api/jobs``: a user's compute jobs, for her notebook server's token.

Every method is :func:`~scitex_service.handlers.requires_jobs_scope`: a user's token that
holds ``custom:scitex:jobs`` for that user; the jobs are that user's. Anyone else's job
answers 404, as one that never was.
"""

from __future__ import annotations

import asyncio

from jupyterhub.services.auth import HubOAuth

from scitex_hub.institutions import Institution, InstitutionDirectory

from ..handlers import APIError, APIHandler, ServiceContext, requires_jobs_scope
from .request import JobRequestError, parse_job_request
from .submission import ComputeJobs

__all__ = ["JobHandler", "JobLogHandler", "JobsAPIHandler", "JobsHandler"]


class JobsAPIHandler(APIHandler):
    def initialize(  # type: ignore[override]
        self, context: ServiceContext, hub_auth: HubOAuth, jobs: ComputeJobs
    ) -> None:
        super().initialize(context, hub_auth)
        self.jobs = jobs

    async def institution(self, user: str) -> tuple[str, Institution]:
        model = await self.hub_user(user)
        key = InstitutionDirectory(self.context.institutions).of_groups(
            (model or {}).get("groups", [])
        )
        if key is None:
            raise APIError(403, f"{user} belongs to no institution on this hub: no jobs")
        return key, self.context.institutions[key]


class JobsHandler(JobsAPIHandler):
    """``GET api/jobs``: the caller's jobs; ``POST api/jobs``: submit one."""

    @requires_jobs_scope
    async def get(self) -> None:
        jobs = await self.jobs.jobs_of(self.caller().name, self.context.engine)
        self.send({"jobs": await self.jobs.models(jobs)})

    @requires_jobs_scope
    async def post(self) -> None:
        user = self.caller().name
        try:
            request = parse_job_request(self.request.body)
        except JobRequestError as e:
            raise APIError(400, str(e)) from None
        key, institution = await self.institution(user)
        self.send(
            await self.jobs.submit(user, key, institution, request, self.context.engine),
            status=201,
        )


class JobHandler(JobsAPIHandler):
    """``GET api/jobs/{id}``: one of the caller's jobs; ``DELETE``: cancel it."""

    @requires_jobs_scope
    async def get(self, job_id: str) -> None:
        job = await self.jobs.find(self.caller().name, job_id, self.context.engine)
        [model] = await self.jobs.models([job])
        self.send(model)

    @requires_jobs_scope
    async def delete(self, job_id: str) -> None:
        self.send(await self.jobs.cancel(self.caller().name, job_id, self.context.engine))


class JobLogHandler(JobsAPIHandler):
    """``GET api/jobs/{id}/log``: the end of the job's output."""

    @requires_jobs_scope
    async def get(self, job_id: str) -> None:
        user = self.caller().name
        job = await self.jobs.find(user, job_id, self.context.engine)
        # The project is where it was when submitted, whatever the user's institution now.
        key = job.institution or (await self.institution(user))[0]
        self.send(await asyncio.to_thread(self.jobs.read_log, key, user, job.entry))
