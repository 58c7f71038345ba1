"""Compute jobs: a project's script as a SLURM batch job in the compute image, as the user.

The notebook server (its own token, with the custom scope ``custom:scitex:jobs``) calls
``/services/scitex/api/jobs``; this service validates the request like a profile (the
institution's partitions and limits, a per-user maximum of queued jobs), builds the batch
script with the pure builders (``scitex_hub.jobspecs.compute.build_compute_job``, then
``render_batch_script``) and submits it through the site's submit prefix, so the job belongs to
the user. The notebook server holds no SLURM credentials.

SLURM is the record of live jobs: a job is ours when its comment starts with
``scitex-job:hub=<hub_id>:`` and SLURM says the user owns it. Listing, the job limit,
cancelling and the log all start from one ``squeue --user=<name>``; nobody else's jobs are
asked for. SLURM forgets a job a few minutes after it ends (``MinJobAge``), so the service
also records each job in ``scitex_compute_jobs``: at submission, and how it ended the first
time it is seen ended. The listing is SLURM's live jobs plus that history; a recorded job
SLURM forgot before its end was seen is listed as ``UNKNOWN``. Logs stay in
``<project>/.scitex/jobs/<id>.log``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jupyterhub.services.auth import HubOAuth
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from tornado import web
from traitlets import Dict, Instance, Integer, List, Set, Unicode, default, validate
from traitlets.config import LoggingConfigurable

import scitex_safefs as safefs
from scitex_hub.container import Bind, RuntimeChoice, resolve_container_runtime
from scitex_hub.db import store as db
from scitex_hub.db.models import ComputeJobRecord, utcnow
from scitex_hub.institutions import USERNAME_RE, Institution, InstitutionDirectory
from scitex_hub.jobspecs.compute import JobRequestError, JobSite, build_compute_job, job_comment
from scitex_hub.names import name_refusal
from scitex_hub.profiles import Profile, UserOptionsError, resolve_user_options
from scitex_hub.scopes import JOBS_SCOPE
from scitex_hub.script import render_batch_script
from scitex_hub.slurm import (
    JOB_ID_RE,
    FinishedJob,
    QueueEntry,
    SlurmClient,
    SlurmError,
    parse_slurm_time,
    slurm_reason,
    slurm_time,
    slurm_time_text,
)

from .handlers import APIError, APIHandler, ServiceContext, requires_jobs_scope
from .job_paths import locate_script

__all__ = [
    "JOBS_SCOPE",
    "ComputeJobs",
    "Job",
    "JobRequest",
    "JobRequestError",
    "jobs_handlers",
    "parse_job_request",
]

PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# One path component of a script; '.' and '..' are refused apart.
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.+-]{1,255}")
MAX_SCRIPT_LENGTH = 1024
REQUEST_KEYS = frozenset({"project", "script", "resources"})
# Exit codes of ended jobs kept in memory (each one asked of SLURM once).
MAX_REMEMBERED = 10000
# A recorded job SLURM no longer knows whose end the service never saw (it was down).
UNKNOWN_STATE = "UNKNOWN"
UNKNOWN_REASON = "SLURM forgot the job before the service saw it end"
# squeue fields; SlurmClient.squeue frames them so no name or comment can forge a record.


@dataclass(frozen=True)
class JobRequest:
    project: str
    # Relative to the project, '/'-separated, no '.' or '..' components.
    script: str
    resources: Mapping[str, Any]


def parse_job_request(body: bytes) -> JobRequest:
    """``{"project", "script", "resources"?}`` -> :class:`JobRequest`; the form only (the
    paths are checked against the filesystem by :meth:`ComputeJobs.locate`)."""
    usage = 'send {"project": <name>, "script": <path in the project>, "resources": {...}}'
    try:
        data = json.loads(body or b"")
    except ValueError:
        raise JobRequestError(f"The body is not JSON: {usage}") from None
    if not isinstance(data, dict):
        raise JobRequestError(f"The body must be a JSON object: {usage}")
    unknown = sorted(set(data) - REQUEST_KEYS)
    if unknown:
        raise JobRequestError(f"Unknown keys {', '.join(unknown)}: {usage}")
    project, script = data.get("project"), data.get("script")
    resources = data.get("resources") or {}
    if not isinstance(project, str) or not project:
        raise JobRequestError(f"No project: {usage}")
    if not PROJECT_RE.fullmatch(project) or project.endswith(".git"):
        raise JobRequestError(f"{project!r} is not a project name")
    if not isinstance(script, str) or not script:
        raise JobRequestError(f"No script: {usage}")
    if not isinstance(resources, dict):
        raise JobRequestError('resources must be an object such as {"cpus": 2}')
    return JobRequest(project, check_script_path(script), resources)


def check_script_path(script: str) -> str:
    """A relative path inside the project: no NUL, no absolute path, no '..'; 400 otherwise."""
    if "\0" in script:
        raise JobRequestError("The script path contains a NUL byte")
    if script.startswith("/"):
        raise JobRequestError(f"The script must be a path relative to the project, not {script!r}")
    if len(script) > MAX_SCRIPT_LENGTH:
        raise JobRequestError(f"The script path is longer than {MAX_SCRIPT_LENGTH} characters")
    parts = script.split("/")
    if ".." in parts:
        raise JobRequestError(f"The script {script!r} leads outside the project ('..')")
    parts = [p for p in parts if p not in ("", ".")]
    if not parts or not all(_COMPONENT_RE.fullmatch(p) for p in parts):
        raise JobRequestError(
            f"The script path {script!r} may hold letters, digits, _ . + - and / only"
        )
    return "/".join(parts)


@dataclass(frozen=True)
class Job:
    """One of the user's jobs: as SLURM lists it now (``live``), else as recorded."""

    entry: QueueEntry
    finished: FinishedJob | None = None
    live: bool = True
    # Where its project is (recorded at submission); None: the user's institution now.
    institution: str | None = None


def job_model(entry: QueueEntry, finished: FinishedJob | None = None) -> dict[str, Any]:
    return {
        "id": entry.job_id,
        "project": entry.project,
        "script": entry.name,
        "state": entry.state,
        "reason": slurm_reason(entry.reason),
        "node": entry.node,
        "submitted_at": slurm_time(entry.submitted_at),
        "started_at": slurm_time(entry.start_time),
        "ended_at": slurm_time(entry.end_time) if entry.final else None,
        # "3:0": exit status 3, no signal (SLURM's notation); null while not ended.
        "exit_code": (finished.exit_code or None) if finished is not None else None,
    }


def recorded_job(row: ComputeJobRecord, site: JobSite) -> Job:
    """A job SLURM no longer lists, from its record: ended as recorded, else ``UNKNOWN``
    (never shown as still running: SLURM would list it)."""
    state = row.final_state or UNKNOWN_STATE
    entry = QueueEntry(
        job_id=row.job_id,
        name=row.script,
        user=row.user,
        state=state,
        reason=(row.reason or "") if row.final_state else UNKNOWN_REASON,
        node=row.node or "",
        submitted_at=slurm_time_text(row.submitted_at),
        start_time=slurm_time_text(row.started_at),
        end_time=slurm_time_text(row.ended_at),
        comment=job_comment(site, row.user, row.project),
    )
    return Job(entry, recorded_end(row), live=False, institution=row.institution)


def recorded_end(row: ComputeJobRecord) -> FinishedJob | None:
    """How a recorded job ended; None while its end has not been seen."""
    if row.final_state is None:
        return None
    return FinishedJob(row.job_id, row.final_state, row.reason or "", row.exit_code or "")


def _newest_first(job: Job) -> int:
    return int(job.entry.job_id.split("_")[0])


class ComputeJobs(LoggingConfigurable):
    """Submits, lists and cancels users' compute jobs; reads their logs."""

    site = Instance(JobSite, help="The site's job settings (from the site file).")
    institutions = Dict(help="The site's institutions: {id: Institution}.")
    profiles = Dict(help="The site's profiles: {name: Profile}.")
    slurm = Instance(SlurmClient)

    max_queued_per_user = Integer(
        10,
        help="""Jobs (pending or running) a user may have submitted through the service at
        once; one more is refused with 429 and a message.""",
    ).tag(config=True)

    denied_users = Set(
        Unicode(),
        help="Names no job runs as (the site's auth.denied_users, root, the Gitea admin).",
    ).tag(config=True)
    min_uid = Integer(
        1000, help="No job runs as an existing account below this UID (auth.min_uid)."
    ).tag(config=True)
    submit_prefix = List(
        Unicode(),
        help="""Command prefix that runs a command as the user; ``{username}`` is replaced.
        Runs ``mkdir`` (the log directory), ``sbatch`` and ``scancel``. Default:
        ``runuser -u {username} --`` as root, else ``sudo -n -u {username} --``.""",
    ).tag(config=True)

    log_tail_bytes = Integer(
        1024 * 1024,
        help="The log endpoint returns at most this many bytes: the end of the log.",
    ).tag(config=True)

    history_limit = Integer(
        help="""Recorded jobs (``scitex_compute_jobs``) a user's job list shows besides
        the jobs SLURM lists now: the newest this many. Older records stay in the database
        and their job and log can still be fetched by id.""",
    ).tag(config=True)

    @default("history_limit")
    def _default_history_limit(self) -> int:
        return 50

    @validate("history_limit")
    def _check_history_limit(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ValueError(f"ComputeJobs.history_limit must be at least 1, got {value}")
        return value

    @default("slurm")
    def _default_slurm(self) -> SlurmClient:
        return SlurmClient(parent=self)

    @default("submit_prefix")
    def _default_submit_prefix(self) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "{username}", "--"]
        return ["sudo", "-n", "-u", "{username}", "--"]

    @validate("max_queued_per_user")
    def _check_max(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ValueError(f"ComputeJobs.max_queued_per_user must be at least 1, got {value}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # One submission per user at a time: the job limit is counted, then used.
        self._locks: dict[str, asyncio.Lock] = {}
        # Exit codes of ended jobs (they never change), so each is asked for once.
        self._finished: dict[str, FinishedJob] = {}

    def prefix(self, user: str) -> list[str]:
        if not USERNAME_RE.match(user):
            raise APIError(403, f"user name {user!r} is not allowed for jobs")
        # The sign-in's name rules again (root, the deny list, system UIDs): a user who
        # signed in before a rule changed, or was made through the hub's API, still holds
        # a token; no job runs as such an account.
        why = name_refusal(user, self.denied_users, self.min_uid)
        if why:
            raise APIError(403, f"no job runs for {user}: {why}")
        return [part.replace("{username}", user) for part in self.submit_prefix]

    # -- reading the queue ----------------------------------------------------------------

    async def user_jobs(self, user: str) -> list[QueueEntry]:
        """This user's jobs submitted through the service (any hub_id of ours), newest first."""
        try:
            entries = await self.slurm.user_queue(user)
        except SlurmError as e:
            raise APIError(503, f"SLURM did not answer: {e}") from None
        jobs = [j for j in entries if j.comment.startswith(self.site.tag_prefix)]
        return sorted(jobs, key=lambda j: int(j.job_id.split("_")[0]), reverse=True)

    async def finished(self, entry: QueueEntry) -> FinishedJob | None:
        if not entry.final:
            return None
        if entry.job_id not in self._finished:
            try:
                record = await self.slurm.job_record(entry.job_id)
            except SlurmError as e:
                self.log.warning("No record of job %s: %s", entry.job_id, e)
                return None
            if record is None:
                return None
            self._finished[entry.job_id] = record
            while len(self._finished) > MAX_REMEMBERED:
                # SLURM forgot those long ago (MinJobAge): drop the oldest.
                self._finished.pop(next(iter(self._finished)))
        return self._finished[entry.job_id]

    async def settle(
        self, entry: QueueEntry, row: ComputeJobRecord | None, engine: Engine | None
    ) -> Job:
        """A job SLURM lists, with how it ended: from its record once recorded, else from
        SLURM (then recorded, once, so it outlives SLURM's memory)."""
        institution = row.institution if row is not None else None
        if not entry.final:
            return Job(entry, None, live=True, institution=institution)
        recorded = recorded_end(row) if row is not None else None
        if recorded is not None:
            return Job(entry, recorded, live=True, institution=institution)
        finished = await self.finished(entry)
        if finished is not None and engine is not None:
            await self.record_end(engine, entry, finished)
        return Job(entry, finished, live=True, institution=institution)

    async def record_end(self, engine: Engine, entry: QueueEntry, finished: FinishedJob) -> None:
        # PURGED: scontrol forgot it right after squeue listed it; the state is squeue's.
        exit_code = finished.exit_code if finished.state != "PURGED" else ""
        submitted_at = parse_slurm_time(entry.submitted_at)
        # SLURM's submission time replaces ours (a moment earlier): listed the same after.
        when = {"submitted_at": submitted_at} if submitted_at is not None else {}
        try:
            await asyncio.to_thread(
                db.end_compute_job,
                engine,
                hub_id=self.site.hub_id,
                job_id=entry.job_id,
                user=entry.user,
                final_state=entry.state,
                node=entry.node or None,
                started_at=parse_slurm_time(entry.start_time),
                ended_at=parse_slurm_time(entry.end_time),
                exit_code=exit_code or None,
                reason=slurm_reason(entry.reason) or None,
                **when,
                # A job submitted before the history existed: recorded from SLURM's view.
                submission={
                    "project": entry.project,
                    "script": entry.name,
                    "submitted_at": submitted_at or utcnow(),
                },
            )
        except SQLAlchemyError as e:
            # Shown from SLURM all the same; recorded at the next look.
            self.log.error("Cannot record the end of job %s: %s", entry.job_id, e)

    async def jobs_of(self, user: str, engine: Engine | None) -> list[Job]:
        """The user's jobs: SLURM's, and the newest ``history_limit`` recorded ones SLURM
        no longer lists; one per job id, newest first."""
        rows: list[ComputeJobRecord] = []
        if engine is not None:
            # Read before squeue: every record read was submitted before it ran, so one
            # squeue does not list is a job SLURM forgot, never one too new for it.
            rows = await asyncio.to_thread(
                db.compute_jobs_of,
                engine,
                hub_id=self.site.hub_id,
                user=user,
                limit=self.history_limit,
            )
        live = await self.user_jobs(user)
        records = {row.job_id: row for row in rows}
        older = [e.job_id for e in live if e.final and e.job_id not in records]
        if engine is not None and older:
            # Ended jobs past the history's newest (or from before it): are they recorded?
            for row in await asyncio.to_thread(
                db.compute_jobs_of, engine, hub_id=self.site.hub_id, user=user, job_ids=older
            ):
                records[row.job_id] = row
        jobs = [await self.settle(e, records.get(e.job_id), engine) for e in live]
        listed = {e.job_id for e in live}
        jobs += [recorded_job(row, self.site) for row in rows if row.job_id not in listed]
        return sorted(jobs, key=_newest_first, reverse=True)

    async def models(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        return [job_model(j.entry, j.finished) for j in jobs]

    async def find(self, user: str, job_id: str, engine: Engine | None = None) -> Job:
        """The user's job ``job_id``, live or recorded; 404 for anything else, another
        user's job included (the answer does not say whether it exists)."""
        if JOB_ID_RE.match(job_id):
            row = None
            if engine is not None:
                # Before squeue, as in jobs_of.
                row = await asyncio.to_thread(
                    db.get_compute_job, engine, hub_id=self.site.hub_id, user=user, job_id=job_id
                )
            for entry in await self.user_jobs(user):
                if entry.job_id == job_id:
                    return await self.settle(entry, row, engine)
            if row is not None:
                return recorded_job(row, self.site)
        raise APIError(404, f"{user} has no job {job_id}")

    # -- submitting ----------------------------------------------------------------------

    def locate(self, institution: str, user: str, request: JobRequest) -> None:
        """Check on disk that the project is a real directory and the script a regular file
        inside it, never through a link (job_paths: the service may run as root). Blocking."""
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


def jobs_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    from .job_options import job_options_handlers  # its handler derives from ours

    return [
        *job_options_handlers(prefix),
        (prefix + "api/jobs", JobsHandler),
        (prefix + r"api/jobs/([^/]+)", JobHandler),
        (prefix + r"api/jobs/([^/]+)/log", JobLogHandler),
    ]


def job_site_from(settings: Any, runtime: RuntimeChoice) -> JobSite:
    """The :class:`JobSite` of a validated site file (``jupyterhub_config.settings``)."""
    jobs = settings.jobs
    container = settings.container
    binds = jobs.extra_binds if jobs.extra_binds is not None else container.extra_binds
    return JobSite(
        hub_id=settings.slurm.hub_id,
        data_root=settings.data_root.rstrip("/") or "/",
        runtime=runtime.runtime,
        executable=runtime.executable,
        image=jobs.image or container.image or "",
        binds=tuple(Bind.parse(b) for b in binds),
        unsquash=container.unsquash,
        interpreters=((".sh", (jobs.bash,)), (".py", (jobs.python,))),
    )


def resolve_jobs_runtime(settings: Any) -> RuntimeChoice:
    """``container.runtime`` for compute jobs, decided as for notebook servers, with the
    compute image (``jobs.image``, else ``container.image``)."""
    return resolve_container_runtime(
        str(settings.container.runtime),
        settings.container.executable,
        settings.jobs.image or settings.container.image,
    )


def make_compute_jobs(settings: Any, profiles: Mapping[str, Profile], **kwargs: Any) -> ComputeJobs:
    runtime = resolve_jobs_runtime(settings)
    jobs = ComputeJobs(
        site=job_site_from(settings, runtime),
        institutions=dict(settings.institutions),
        profiles=dict(profiles),
        max_queued_per_user=settings.jobs.max_queued_per_user,
        history_limit=settings.jobs.history_limit,
        denied_users=set(settings.denied_users()),
        min_uid=settings.auth.min_uid,
        **kwargs,
    )
    if settings.slurm.conf:
        jobs.slurm.slurm_conf = settings.slurm.conf
    if settings.slurm.bin_dir:
        jobs.slurm.bin_dir = settings.slurm.bin_dir
    if settings.slurm.submit_prefix is not None:
        jobs.submit_prefix = list(settings.slurm.submit_prefix)
    if runtime.fallback_reason:
        jobs.log.warning(
            "Compute jobs run without a container: %s (container.runtime: auto)",
            runtime.fallback_reason,
        )
    return jobs
