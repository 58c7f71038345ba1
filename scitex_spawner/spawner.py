"""SciTeXSpawner: a user's notebook server as a SLURM job, tracked by the shared watcher.

Thin on purpose: profiles (:mod:`.profiles`), the batch script (:mod:`.script`),
SLURM (:mod:`.slurm`) and the port callback (:mod:`.callback`) live apart and
are tested apart.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from batchspawner import SlurmSpawner
from jupyterhub.spawner import Spawner
from prometheus_client import Histogram
from tornado import web
from traitlets import Dict, Float, Instance, Integer, List, Type, Unicode, default, validate

from .callback import install_handlers
from .institutions import (
    USERNAME_RE,
    Institution,
    InstitutionDirectory,
    load_institutions,
)
from .profiles import (
    Profile,
    ResolvedResources,
    UserOptionsError,
    load_profiles,
    resolve_user_options,
)
from .script import BatchJobSpec, render_batch_script
from .slurm import JobView, QueueWatcher, SlurmClient, SlurmError

install_handlers()

SPAWN_DURATION = Histogram(
    "scitex_spawn_duration_seconds",
    "Seconds from submission to a ready notebook server, by profile",
    ["profile"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)


class SpawnFailed(web.HTTPError):
    """A start that cannot go on; the message is shown to the user as is."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(status, reason=message, log_message=message)


class SciTeXSpawner(SlurmSpawner):
    """Starts each notebook server as a SLURM job on behalf of its user.

    Replaces batchspawner's shell-string commands, raw-template batch script and
    per-user ``squeue`` with argv commands, a pure script builder fed only by
    validated values, and one shared :class:`~scitex_spawner.slurm.QueueWatcher`.
    """

    # ---- site settings -------------------------------------------------------

    profiles = Dict(
        help="""Resource profiles users choose from: ``{name: profile}``.

        Each profile has ``display_name``, ``partition`` (or ``partitions``: a
        list to choose from), ``cpus``, ``memory``, ``runtime`` and ``gpus``
        (a value, or ``{default, min, max}`` for a range users may pick in),
        and optionally ``image``, ``constraint`` and ``qos``. Validated when the
        hub starts; an error names the profile and the field.""",
    ).tag(config=True)

    institutions = Dict(
        help="""Institutions (tenants): ``{id: {name, users, ldap_groups, domains,
        storage_quota, profiles, slurm_account, gitea_org, admins}}``.

        A user's institution is their one JupyterHub group that names an
        institution; it decides their data directory, the profiles they may use,
        and the SLURM account of their jobs.""",
    ).tag(config=True)

    data_root = Unicode(
        help="""Root of users' data: each user's directory is
        ``<data_root>/<institution>/<user>``, created mode 0700 and owned by the
        user before their first job.""",
    ).tag(config=True)

    notebook_python = Unicode(
        help="""The Python that runs the notebook server inside the job (it must have
        jupyterhub, jupyter_server and scitex_server_ext). Default: the hub's own.""",
    ).tag(config=True)

    submit_prefix = List(
        Unicode(),
        help="""Command prefix that runs SLURM commands as the user; ``{username}`` is
        replaced. Default: ``runuser -u {username} --`` when the hub runs as root,
        else ``sudo -n -u {username} --``.""",
    ).tag(config=True)

    slurm_client_class = Type(
        SlurmClient,
        klass=SlurmClient,
        help="The SLURM client class (argv commands); swap it to adapt a site or in tests.",
    ).tag(config=True)

    hub_id = Unicode(
        "scitex",
        help="""Tag of this hub's jobs (in the job comment), so a restarted hub can tell
        its own jobs, and several hubs can share a cluster.""",
    ).tag(config=True)

    queue_poll_interval = Float(
        10.0,
        help="Seconds between the shared watcher's polls (one squeue for all jobs).",
    ).tag(config=True)

    queue_wait_timeout = Integer(
        24 * 3600,
        help="""Seconds a job may wait in the queue before the spawn gives up and cancels
        it. Waiting in the queue is not a failure: this is set apart from
        ``startup_timeout``.""",
    ).tag(config=True)

    startup_timeout = Integer(
        300,
        help="Seconds from the job running to the notebook server reporting its port.",
    ).tag(config=True)

    stop_timeout = Float(
        30.0, help="Seconds stop() waits for SLURM to confirm the job has ended."
    ).tag(config=True)

    log_subdir = Unicode(
        ".scitex/logs",
        help="Directory (relative to the user's data directory) for the jobs' output files.",
    ).tag(config=True)

    # ---- state ---------------------------------------------------------------

    job_id = Unicode()
    job_node = Unicode()
    resources = Instance(ResolvedResources, allow_none=True)
    exit_reason = Unicode(help="Why the last job ended, when SLURM ended it; shown to the user.")
    slurm = Instance(SlurmClient)
    # Set by start(); read by progress() and the port callback.
    _events: list[dict[str, Any]] = []
    _port_future: asyncio.Future[int] | None = None

    @default("slurm")
    def _default_slurm(self) -> SlurmClient:
        return self.slurm_client_class(parent=self)

    @default("notebook_python")
    def _default_notebook_python(self) -> str:
        return sys.executable

    @default("submit_prefix")
    def _default_submit_prefix(self) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "{username}", "--"]
        return ["sudo", "-n", "-u", "{username}", "--"]

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        # JupyterHub's one limit covers the whole start; ours are enforced inside.
        return self.queue_wait_timeout + self.startup_timeout + 60

    @default("poll_interval")
    def _default_poll_interval(self) -> float:
        return self.queue_poll_interval

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        return 120

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return lambda spawner, options: spawner.resolve_resources(options)

    @validate("profiles")
    def _validate_profiles(self, proposal: Any) -> dict[str, Profile]:
        try:
            return load_profiles(proposal["value"])
        except ValueError as e:
            raise ValueError(f"SciTeXSpawner.profiles: {e}") from None

    @validate("institutions")
    def _validate_institutions(self, proposal: Any) -> dict[str, Institution]:
        try:
            return load_institutions(proposal["value"])
        except ValueError as e:
            raise ValueError(f"SciTeXSpawner.institutions: {e}") from None

    @validate("data_root")
    def _validate_data_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not os.path.isabs(value) or any(c.isspace() for c in value):
            raise ValueError(
                f"SciTeXSpawner.data_root must be an absolute path without spaces: {value!r}"
            )
        return value.rstrip("/") or "/"

    # ---- identity ------------------------------------------------------------

    @property
    def watcher(self) -> QueueWatcher:
        return QueueWatcher.shared(
            self.slurm, self.job_tag_prefix, interval=self.queue_poll_interval, parent=self
        )

    @property
    def job_tag_prefix(self) -> str:
        return f"scitex:hub={self.hub_id}:"

    def job_tag(self) -> str:
        return f"{self.job_tag_prefix}user={self.user.name}:server={self.name or '-'}"

    def institution_id(self) -> str | None:
        groups = [g.name for g in getattr(self.user, "groups", [])]
        return InstitutionDirectory(self.institutions).of_groups(groups)

    def institution(self) -> tuple[str, Institution]:
        key = self.institution_id()
        if key is None:
            raise SpawnFailed(
                f"{self.user.name} belongs to no institution on this hub, so no server can "
                "start. Ask your institution's administrator to add you.",
                status=403,
            )
        return key, self.institutions[key]

    def user_data_dir(self, institution_id: str) -> str:
        return os.path.join(self.data_root, institution_id, self.user.name)

    def format_prefix(self) -> list[str]:
        if not USERNAME_RE.match(self.user.name):
            raise SpawnFailed(f"username {self.user.name!r} is not allowed for jobs", 403)
        return [part.replace("{username}", self.user.name) for part in self.submit_prefix]

    # ---- user options ----------------------------------------------------------

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Form fields arrive as lists of strings; give them the REST shape.

        Numbers are converted strictly, so both routes meet the same validation.
        """
        options: dict[str, Any] = {}
        for key, values in formdata.items():
            value = values[0] if values else ""
            if value == "":
                continue
            if key in ("cpus", "gpus"):
                options[key] = int(value) if value.isdigit() else value
            else:
                options[key] = value
        return options

    def resolve_resources(self, options: dict[str, Any] | None) -> ResolvedResources:
        """Validate what the user asked for; HTTP 400 naming the field if it is wrong."""
        _, institution = self.institution()
        try:
            self.resources = resolve_user_options(
                options, self.profiles, institution.profiles, institution.slurm_account
            )
        except UserOptionsError as e:
            # JupyterHub keeps user_options for the next start; refused ones must
            # not stick, or every later plain "start" fails the same way.
            no_options: dict[str, Any] = {}
            self.user_options = no_options
            orm_spawner = getattr(self, "orm_spawner", None)
            if orm_spawner is not None:
                orm_spawner.user_options = dict(no_options)
            raise web.HTTPError(400, reason=str(e), log_message=str(e)) from None
        return self.resources

    # ---- the job -----------------------------------------------------------------

    def notebook_command(self) -> list[str]:
        return [self.notebook_python, "-m", "scitex_server_ext.singleuser", *self.get_args()]

    def build_job_spec(self, institution_id: str, resources: ResolvedResources) -> BatchJobSpec:
        data_dir = self.user_data_dir(institution_id)
        institution = self.institutions[institution_id]
        return BatchJobSpec(
            job_name=f"scitex-nb-{self.user.name}",
            comment=self.job_tag(),
            partition=resources.partition,
            account=resources.account,
            qos=resources.qos,
            constraint=resources.constraint,
            cpus=resources.cpus,
            memory_mib=max(1, resources.memory_bytes // 1024**2),
            time_limit_seconds=resources.runtime_seconds,
            gpus=resources.gpus,
            output_path=os.path.join(data_dir, self.log_subdir, "notebook-%j.log"),
            workdir=data_dir,
            command=tuple(self.notebook_command()),
            exports=(
                ("SCITEX_PROFILE", resources.profile),
                ("SCITEX_INSTITUTION", institution_id),
                ("SCITEX_USER_ROOT", data_dir),
                ("SCITEX_QUOTA_LIMIT_BYTES", str(institution.storage_quota)),
            ),
        )

    def job_environment(self) -> dict[str, str]:
        """Exactly the environment sbatch (and so the job) gets: no hub secrets."""
        env = self.get_env()
        env.update(self.slurm.base_env())
        return {str(k): str(v) for k, v in env.items()}

    async def ensure_data_dir(self, institution_id: str) -> str:
        path = self.user_data_dir(institution_id)
        await asyncio.to_thread(_make_user_dir, path, self.user.name, self.log_subdir)
        return path

    # ---- start / stop / poll -------------------------------------------------------

    def _event(self, message: str, progress: int) -> None:
        self.log.info("%s: %s", self._log_name, message)
        self._events.append({"progress": progress, "message": message})

    def receive_port(self, port: int) -> None:
        """Called by the port callback with a validated port."""
        future = self._port_future
        if future is None or future.done():
            raise RuntimeError("no start of this server is waiting for a port")
        future.set_result(port)

    async def start(self) -> str:
        self._events = []
        self._port_future = None
        self.exit_reason = ""
        started = time.monotonic()
        institution_id, _ = self.institution()
        resources = self.resolve_resources(self.user_options)
        await self.ensure_data_dir(institution_id)

        script = render_batch_script(self.build_job_spec(institution_id, resources))
        self._port_future = asyncio.get_running_loop().create_future()
        try:
            self.job_id = await self.slurm.submit(
                script, prefix=self.format_prefix(), env=self.job_environment()
            )
        except SlurmError as e:
            raise SpawnFailed(f"SLURM refused the job: {e}") from e
        self.watcher.track(self.job_id)
        self._event(f"Submitted SLURM job {self.job_id} ({resources.profile})", 10)
        # Persist the job id now: a hub that dies from here on finds the job again.
        self.db.commit()

        try:
            node = await self._wait_until_running()
            self.job_node = node
            address = self.watcher.node_address(node)
            self._event(f"Job {self.job_id} running on node {node}; server starting", 60)
            try:
                port = await asyncio.wait_for(
                    asyncio.shield(self._port_future), timeout=self.startup_timeout
                )
            except asyncio.TimeoutError:
                raise SpawnFailed(
                    f"The notebook server in job {self.job_id} did not start within "
                    f"{self.startup_timeout} s; see the job log in your data directory "
                    f"({self.log_subdir}/notebook-{self.job_id}.log)"
                ) from None
            self._event(f"Server on {node} reported port {port}; waiting for it to listen", 75)
            await self._wait_listening(
                address, port, deadline=time.monotonic() + self.startup_timeout
            )
        except BaseException:
            await self._cancel_quietly()
            raise
        self._event(f"Server listening on {node}:{port}; connecting", 90)
        SPAWN_DURATION.labels(profile=resources.profile).observe(time.monotonic() - started)
        return f"http://{address}:{port}"

    async def _wait_until_running(self) -> str:
        deadline = time.monotonic() + self.queue_wait_timeout
        last_reason = None
        with self.watcher.hurry():
            while True:
                view = self.watcher.view(self.job_id)
                if view.status == "queued" and view.queued is not None:
                    job = view.queued
                    if job.running and job.node:
                        return job.node
                    if job.pending and job.reason != last_reason:
                        last_reason = job.reason
                        when = (
                            f", expected start {job.start_time}"
                            if job.start_time not in ("", "N/A")
                            else ""
                        )
                        self._event(
                            f"Job {self.job_id} pending in the queue ({job.reason}{when})", 30
                        )
                elif view.status == "finished" and view.finished is not None:
                    self.exit_reason = view.finished.describe()
                    raise SpawnFailed(
                        f"Job {self.job_id} ended before the server started: {self.exit_reason}"
                    )
                if time.monotonic() > deadline:
                    raise SpawnFailed(
                        f"Job {self.job_id} waited {self.queue_wait_timeout} s in the queue "
                        f"({last_reason or 'no reason given'}); it was cancelled"
                    )
                await self.watcher.next_cycle(timeout=max(1.0, self.queue_poll_interval))

    async def _wait_listening(self, address: str, port: int, deadline: float) -> None:
        """Probe the port until it accepts connections.

        JupyterHub's own check backs off exponentially (0.2 s, 0.4 s, ...), so
        returning only once the server listens saves seconds per spawn; a TCP
        connect every 0.1 s costs nothing.
        """
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 2)
            except (OSError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise SpawnFailed(
                        f"The notebook server in job {self.job_id} reported port {port} but "
                        f"did not listen within {self.startup_timeout} s"
                    ) from None
                view = self.watcher.view(self.job_id)
                if view.status == "finished" and view.finished is not None:
                    self.exit_reason = view.finished.describe()
                    raise SpawnFailed(
                        f"Job {self.job_id} ended while the server started: {self.exit_reason}"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return

    async def _cancel_quietly(self) -> None:
        if not self.job_id:
            return
        try:
            await self.slurm.cancel(self.job_id, prefix=self.format_prefix())
        except (SlurmError, web.HTTPError) as e:
            self.log.warning("Could not cancel job %s after a failed start: %s", self.job_id, e)

    async def poll(self) -> int | None:
        """None while SLURM has the job queued or running, or cannot say (unknown)."""
        if not self.job_id:
            return 0
        watcher = self.watcher
        if self.job_id not in watcher.tracked:
            # First look after a hub restart: wait for one cycle that includes us.
            watcher.track(self.job_id)
            await watcher.next_cycle(timeout=self.slurm.command_timeout + 5)
        view: JobView = watcher.view(self.job_id)
        if view.status == "finished" and view.finished is not None:
            self.exit_reason = view.finished.describe()
            self.log.info("%s: job %s: %s", self._log_name, self.job_id, self.exit_reason)
            watcher.untrack(self.job_id)
            self.clear_state()
            return 1
        return None

    async def stop(self, now: bool = False) -> None:
        if not self.job_id:
            return
        job_id = self.job_id
        try:
            await self.slurm.cancel(job_id, prefix=self.format_prefix())
        except SlurmError as e:
            self.log.warning("scancel of job %s failed: %s", job_id, e)
        if now:
            return
        deadline = time.monotonic() + self.stop_timeout
        with self.watcher.hurry():
            while time.monotonic() < deadline:
                if self.watcher.view(job_id).status == "finished":
                    self.watcher.untrack(job_id)
                    return
                await self.watcher.next_cycle(timeout=self.stop_timeout)
        self.log.warning("Job %s not confirmed ended within %s s", job_id, self.stop_timeout)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        sent = 0
        while True:
            events = self._events
            for event in events[sent:]:
                yield event
            sent = len(events)
            await asyncio.sleep(0.5)

    # ---- state ---------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = Spawner.get_state(self)
        if self.job_id:
            state["job_id"] = self.job_id
            state["job_node"] = self.job_node
        if self.resources is not None:
            state["resources"] = self.resources.as_dict()
        if self.exit_reason:
            state["exit_reason"] = self.exit_reason
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        Spawner.load_state(self, state)
        self.job_id = state.get("job_id", "")
        self.job_node = state.get("job_node", "")
        self.exit_reason = state.get("exit_reason", "")

    def clear_state(self) -> None:
        Spawner.clear_state(self)
        self.job_id = ""
        self.job_node = ""


def _make_user_dir(path: str, username: str, log_subdir: str) -> None:
    """``<data_root>/<institution>/<user>``: mode 0700, owned by the user.

    Only root can give a directory away; a hub not running as root needs the
    site to create it (and says so).
    """
    account = pwd.getpwnam(username)
    parent = os.path.dirname(path)
    if os.geteuid() != 0:
        if not os.path.isdir(path):
            raise SpawnFailed(
                f"Your data directory {path} does not exist and the hub cannot create it; "
                "ask your administrator."
            )
        return
    os.makedirs(parent, mode=0o755, exist_ok=True)
    for directory in (path, os.path.join(path, log_subdir)):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    # Walk down from the user's directory so every level is theirs and private.
    current = path
    for part in ["", *log_subdir.split("/")]:
        current = os.path.join(current, part) if part else current
        st = os.lstat(current)
        if st.st_uid != account.pw_uid or st.st_gid != account.pw_gid:
            os.chown(current, account.pw_uid, account.pw_gid, follow_symlinks=False)
        if st.st_mode & 0o777 != 0o700:
            os.chmod(current, 0o700)
