"""Submitting a compute job as the user, cancelling it, and reading its log.

The request is validated like a profile (the institution's partitions and limits, a
per-user maximum of queued jobs), the batch script built with the pure builders
(``scitex_hub.jobspecs.compute.build_compute_job``, then ``render_batch_script``) and
submitted through ``SlurmClient.as_user``, so the job belongs to the user. Logs stay in
``<project>/.scitex/jobs/<id>.log`` and are read without following a link of the user's.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

import scitex_safefs as safefs
from scitex_hub.db import store as db
from scitex_hub.db.models import utcnow
from scitex_hub.institutions import Institution
from scitex_hub.jobspecs.compute import build_compute_job
from scitex_hub.profiles import UserOptionsError, resolve_user_options
from scitex_hub.script import render_batch_script
from scitex_hub.slurm import QueueEntry, SlurmError

from ..handlers import APIError
from .history import JobHistory, job_model
from .paths import locate_script
from .request import PROJECT_RE, JobRequest, JobRequestError

__all__ = ["ComputeJobs"]


class ComputeJobs(JobHistory):
    """Submits, lists and cancels users' compute jobs; reads their logs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # One submission per user at a time: the job limit is counted, then used.
        self._locks: dict[str, asyncio.Lock] = {}

    def locate(self, institution: str, user: str, request: JobRequest) -> None:
        """Check on disk that the project is a real directory and the script a regular file
        inside it, never through a link (.paths: the service may run as root). Blocking."""
        data_dir = self.site.data_dir(institution, user)
        try:
            locate_script(data_dir, self.site.projects_dir, request.project, request.script, user)
        except ValueError as e:
            raise JobRequestError(str(e)) from None

    def job_environment(self, user: str) -> dict[str, str]:
        """What sbatch (and so the job) gets: no secret of the service's."""
        env = self.slurm.base_env()
        try:
            home = pwd.getpwnam(user).pw_dir
        except KeyError:
            raise APIError(403, f"{user} has no account on the cluster") from None
        env.update({"HOME": home, "USER": user, "LOGNAME": user})
        return env

    async def run_as_user(self, user: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.prefix(user),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self.slurm.command_timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise APIError(503, f"{argv[0]} did not finish in time") from None
        if proc.returncode != 0:
            message = err.decode(errors="replace").strip()[:300]
            raise APIError(409, f"Cannot prepare the job's log directory: {message}")

    async def submit(
        self,
        user: str,
        institution_id: str,
        institution: Institution,
        request: JobRequest,
        engine: Engine | None = None,
    ) -> dict[str, Any]:
        try:
            resources = resolve_user_options(
                request.resources,
                self.profiles,
                institution.profiles,
                institution.slurm_account,
            )
        except UserOptionsError as e:
            raise APIError(400, f"resources.{e}") from None
        try:
            await asyncio.to_thread(self.locate, institution_id, user, request)
            spec = build_compute_job(
                self.site,
                user=user,
                institution=institution_id,
                project=request.project,
                script=request.script,
                resources=resources,
            )
        except (JobRequestError, ValueError) as e:
            raise APIError(400, str(e)) from None
        script = render_batch_script(spec)
        # The account lookup may ask a directory service (LDAP): off the loop.
        env = await asyncio.to_thread(self.job_environment, user)
        lock = self._locks.setdefault(user, asyncio.Lock())
        async with lock:
            active = [j for j in await self.user_jobs(user) if not j.final]
            if len(active) >= self.max_queued_per_user:
                raise APIError(
                    429,
                    f"{user} already has {len(active)} jobs queued or running, the most this "
                    f"site allows ({self.max_queued_per_user}); wait for one to end or cancel "
                    "one",
                )
            # sbatch needs the output directory before the job starts; created by the
            # user (never by root in a directory the user controls).
            log_dir = os.path.dirname(spec.output_path)
            await self.run_as_user(user, ["mkdir", "-p", "-m", "0700", "--", log_dir], env)
            try:
                job_id = await self.slurm.submit(script, prefix=self.prefix(user), env=env)
            except SlurmError as e:
                raise APIError(400, f"SLURM refused the job: {e}") from None
        if engine is not None:
            try:
                await asyncio.to_thread(
                    db.insert_compute_job,
                    engine,
                    hub_id=self.site.hub_id,
                    job_id=job_id,
                    user=user,
                    institution=institution_id,
                    project=request.project,
                    script=request.script,
                    resources=resources.as_dict(),
                    submitted_at=utcnow(),
                )
            except SQLAlchemyError as e:
                # The job runs: say so (201), and that it leaves the list with SLURM's memory.
                self.log.error("Job %s of %s submitted but not recorded: %s", job_id, user, e)
        self.log.info(
            "Job %s of %s submitted: %s/%s (%s)",
            job_id,
            user,
            request.project,
            request.script,
            resources.profile,
        )
        return {
            "id": job_id,
            "project": request.project,
            "script": request.script,
            "state": "PENDING",
            "reason": "",
            "node": "",
            "resources": resources.as_dict(),
            "log": f"{self.site.projects_dir}/{request.project}/{self.site.log_subdir}/"
            f"{job_id}.log",
        }

    async def cancel(self, user: str, job_id: str, engine: Engine | None = None) -> dict[str, Any]:
        job = await self.find(user, job_id, engine)
        if job.entry.final:
            raise APIError(409, f"Job {job_id} has already ended ({job.entry.state})")
        if not job.live:
            raise APIError(
                409,
                f"Job {job_id} has ended: SLURM no longer knows it and its end was not recorded",
            )
        try:
            await self.slurm.cancel(job_id, prefix=self.prefix(user))
        except SlurmError as e:
            raise APIError(503, f"scancel failed: {e}") from None
        self.log.info("Job %s of %s cancelled by its owner", job_id, user)
        return job_model(job.entry) | {"cancel_requested": True}

    # -- the log -------------------------------------------------------------------------

    def read_log(self, institution: str, user: str, job: QueueEntry) -> dict[str, Any]:
        """The end of ``<project>/<log_subdir>/<id>.log``: only a regular file the user
        owns, opened a component at a time from her data directory, never through a link
        (the service may run as root: scitex_safefs). Blocking."""
        if not PROJECT_RE.fullmatch(job.project):
            raise APIError(404, f"Job {job.job_id} names no project")
        relative = f"{self.site.projects_dir}/{job.project}/{self.site.log_subdir}/{job.job_id}.log"
        answer: dict[str, Any] = {"id": job.job_id, "path": relative, "state": job.state}
        try:
            fd = safefs.open_file_in_tree(self.site.data_dir(institution, user), relative)
        except FileNotFoundError:
            return answer | {"log": "", "truncated": False, "exists": False}
        except OSError as e:  # safefs.UnsafePath too: "<relative> is a symbolic link"
            raise APIError(404, f"Cannot read the log of job {job.job_id}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != pwd.getpwnam(user).pw_uid:
                raise APIError(404, f"The log of job {job.job_id} is not {user}'s file")
            start = max(0, st.st_size - self.log_tail_bytes)
            f.seek(start)
            data = f.read(self.log_tail_bytes)
        return answer | {
            "log": data.decode(errors="replace"),
            "truncated": start > 0,
            "exists": True,
        }
