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
from collections.abc import AsyncIterator, Iterable
from typing import Any

from batchspawner import SlurmSpawner
from jupyterhub.spawner import Spawner
from prometheus_client import Histogram
from tornado import web
from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    Instance,
    Integer,
    List,
    Type,
    Unicode,
    default,
    observe,
    validate,
)

import scitex_safefs as safefs
from scitex_hub.container import (
    CONTAINER_DATA_DIR,
    Bind,
    ContainerError,
    RuntimeChoice,
    resolve_container_runtime,
)
from scitex_hub.institutions import (
    USERNAME_RE,
    Institution,
    InstitutionDirectory,
    load_institutions,
)
from scitex_hub.jobspecs.notebook import notebook_job_spec
from scitex_hub.profiles import (
    Profile,
    ResolvedResources,
    UserOptionsError,
    load_profiles,
    resolve_user_options,
)
from scitex_hub.script import BatchJobSpec, render_batch_script
from scitex_hub.slurm import JobView, QueueWatcher, SlurmClient, SlurmError

from .callback import batchspawner_route_open
from .form import render_options_form
from .records import SpawnRecorder, SpawnStore, SqlSpawnStore, end_reason

# Seconds between probes of a reported port, first and at most (see _wait_listening).
PROBE_FIRST_INTERVAL = 0.02
PROBE_MAX_INTERVAL = 0.25

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
        # What JupyterHub's spawn page and progress stream show ("Spawn failed: ..."):
        # the message once, not str(HTTPError)'s "HTTP 500: message (message)".
        self.jupyterhub_message = message


class SciTeXSpawner(SlurmSpawner):
    """Starts each notebook server as a SLURM job on behalf of its user.

    Replaces batchspawner's shell-string commands, raw-template batch script and
    per-user ``squeue`` with argv commands, a pure script builder fed only by
    validated values, and one shared :class:`~scitex_hub.slurm.QueueWatcher`.
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
        default_value=None,
        allow_none=True,
        help="""Deprecated: set ``SlurmClient.run_as_prefix`` (the site file's
        ``slurm.submit_prefix`` does). A value given here is passed on to this spawner's
        SLURM client, with a warning.""",
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

    container_runtime = Enum(
        ["auto", "apptainer", "singularity", "none"],
        default_value="none",
        help="""How notebook servers are contained: ``apptainer`` or ``singularity`` (same
        command line), ``none`` (directly in the job), or ``auto``: Apptainer when the
        hub finds it and the image, else none (announced in the log and on the spawn
        page; meant for the demo).""",
    ).tag(config=True)

    container_executable = Unicode(
        "",
        help="Path of the apptainer/singularity command on the compute nodes. Empty: its name.",
    ).tag(config=True)

    container_image = Unicode(
        "",
        help="""The notebook image (a SIF file or a sandbox directory) for profiles that do not
        name their own ``image``.""",
    ).tag(config=True)

    container_binds = List(
        Unicode(),
        help="""Extra binds for every notebook container, as ``/src[:/dst[:ro|rw]]``
        (read-only unless ``rw``). ``/data`` is reserved for the user's data.""",
    ).tag(config=True)

    container_unsquash = Bool(
        False,
        help="""Pass ``--unsquash`` for SIF images: needed where users cannot mount a SIF
        (no usable /dev/fuse, no setuid); each start then unpacks the image.""",
    ).tag(config=True)

    log_subdir = Unicode(
        ".scitex/logs",
        help="Directory (relative to the user's data directory) for the jobs' output files.",
    ).tag(config=True)

    scitex_service_url = Unicode(
        "",
        help="""The scitex hub service's URL as notebook servers reach it (e.g.
        ``https://hub.example.edu/services/scitex/``), given to each server as
        ``SCITEX_SERVICE_URL``: its compute-jobs API. Empty: servers offer no jobs.""",
    ).tag(config=True)

    spawn_store_class = Type(
        SqlSpawnStore,
        klass=SpawnStore,
        help="""Where quota overrides and measured usage are read at start, and each spawn
        is recorded: ``SqlSpawnStore`` (our tables in the hub's database; see records.py)
        or ``SpawnStore`` (none: the institution's quota, nothing recorded).""",
    ).tag(config=True)

    # ---- state ---------------------------------------------------------------

    job_id = Unicode()
    job_node = Unicode()
    job_port = Integer(0)
    resources = Instance(ResolvedResources, allow_none=True)
    exit_reason = Unicode(help="Why the last job ended, when SLURM ended it; shown to the user.")
    start_notices = List(
        Unicode(),
        help="Said first in the next start's progress (set by auth_state_hook, e.g. no Gitea).",
    )
    slurm = Instance(SlurmClient)
    spawn_records = Instance(SpawnRecorder)
    # Set by start(); read by progress() and the port callback.
    _events: list[dict[str, Any]] = []
    _port_future: asyncio.Future[int] | None = None

    @default("slurm")
    def _default_slurm(self) -> SlurmClient:
        return self.slurm_client_class(parent=self)

    @default("spawn_records")
    def _default_spawn_records(self) -> SpawnRecorder:
        store = self.spawn_store_class(parent=self)
        return SpawnRecorder(
            store,
            hub_id=self.hub_id,
            user=self.user.name,
            server_name=self.name or "",
            log=self.log,
            parent=self,
        )

    @default("notebook_python")
    def _default_notebook_python(self) -> str:
        return sys.executable

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

    @default("options_form")
    def _default_options_form(self) -> Any:
        return lambda spawner: spawner.render_options_form()

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return lambda spawner, options: spawner.resolve_resources(options)

    @observe("submit_prefix")
    def _submit_prefix_moved(self, change: Any) -> None:
        # One run-as-user prefix for the spawner, the queue watcher and the service.
        if change.new is None:
            return
        self.log.warning(
            "SciTeXSpawner.submit_prefix is deprecated: set SlurmClient.run_as_prefix instead"
        )
        self.slurm.run_as_prefix = list(change.new)

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

    @validate("container_binds")
    def _validate_binds(self, proposal: Any) -> list[str]:
        for bind in proposal["value"]:
            try:
                Bind.parse(bind)
            except ValueError as e:
                raise ValueError(f"SciTeXSpawner.container_binds: {e}") from None
        return list(proposal["value"])

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
        """The prefix that runs this user's SLURM commands as them
        (:meth:`SlurmClient.as_user`), once the name passes the sign-in's rules."""
        if not USERNAME_RE.match(self.user.name):
            raise SpawnFailed(f"username {self.user.name!r} is not allowed for jobs", 403)
        # The sign-in's user-name rules again (auth.NameRules: root, auth.denied_users, UIDs
        # below auth.min_uid), for a user who signed in before a rule changed.
        rules = getattr(self.authenticator, "name_refusal", None)
        why = rules(self.user.name) if callable(rules) else None
        if why:
            raise SpawnFailed(f"no job runs for {self.user.name}: {why}", 403)
        return self.slurm.as_user(self.user.name)

    # ---- user options ----------------------------------------------------------

    def render_options_form(self) -> str:
        key = self.institution_id()
        if key is None:
            return (
                '<div class="alert alert-danger" role="alert">'
                "Your account belongs to no institution on this hub, so no server can start. "
                "Ask your institution's administrator to add you.</div>"
            )
        institution = self.institutions[key]
        notices = []
        if self.exit_reason:
            notices.append(f"Your last server stopped: {self.exit_reason}.")
        if self.container_runtime == "auto":
            # Whether the command exists only: the form renders on the hub's event loop,
            # and the image (often on a shared filesystem) is checked at start, off it.
            fallback = resolve_container_runtime(
                "auto",
                self.container_executable or None,
                self.container_image or None,
                exists=lambda _image: True,
            ).fallback_reason
            if fallback:
                notices.append(
                    f"No container runtime ({fallback}): your server runs directly in its "
                    "SLURM job, with the node's software."
                )
        return render_options_form(
            self.profiles,
            institution.profiles,
            institution_name=institution.name,
            notices=notices,
            previous=self.previous_choice(institution),
        )

    def previous_choice(self, institution: Institution) -> ResolvedResources | None:
        """The user's last options (JupyterHub keeps them), if today's profiles still
        allow them; a choice the admin has since narrowed is not offered again."""
        if not self.user_options:
            return None
        try:
            return resolve_user_options(
                self.user_options, self.profiles, institution.profiles, institution.slurm_account
            )
        except UserOptionsError:
            return None

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Form fields arrive as lists of strings; give them the REST shape.

        Numbers are converted strictly, so both routes meet the same validation.
        """
        options: dict[str, Any] = {}
        for key, values in formdata.items():
            value = values[0] if values else ""
            # Tornado's XSRF field (a scripted form post may send it): the hub has
            # checked it before the form reaches us; it is no resource option.
            if value == "" or key == "_xsrf":
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

    def build_job_spec(
        self,
        institution_id: str,
        resources: ResolvedResources,
        runtime: RuntimeChoice | None = None,
        env_names: Iterable[str] = (),
        quota_limit_bytes: int | None = None,
    ) -> BatchJobSpec:
        """The job for this start (:func:`scitex_hub.jobspecs.notebook.notebook_job_spec`
        with this spawner's settings); ``quota_limit_bytes``: the user's effective limit
        (0: none), default the institution's quota."""
        institution = self.institutions[institution_id]
        return notebook_job_spec(
            user=self.user.name,
            tag=self.job_tag(),
            institution_id=institution_id,
            quota_limit_bytes=(
                institution.storage_quota if quota_limit_bytes is None else quota_limit_bytes
            ),
            data_dir=self.user_data_dir(institution_id),
            resources=resources,
            command=self.notebook_command(),
            log_subdir=self.log_subdir,
            runtime=runtime,
            image=resources.image or self.container_image,
            binds=[Bind.parse(b) for b in self.container_binds],
            unsquash=self.container_unsquash,
            env_names=env_names,
        )

    async def resolve_runtime(self) -> RuntimeChoice:
        """The container runtime for this start (container.resolve_container_runtime:
        ``auto`` becomes apptainer or none; the command as an absolute path)."""
        try:
            choice = await asyncio.to_thread(
                resolve_container_runtime,
                self.container_runtime,
                self.container_executable or None,
                self.container_image or None,
            )
        except ContainerError as e:
            raise SpawnFailed(str(e)) from None
        if choice.fallback_reason:
            why = choice.fallback_reason
            self.log.warning("No container for %s: %s", self._log_name, why)
            self._event(
                f"No container runtime ({why}): your server runs directly in its SLURM job, "
                "with the node's software",
                15,
            )
        return choice

    def job_environment(self) -> dict[str, str]:
        """Exactly the environment sbatch (and so the job) gets: no hub secrets."""
        env = self.get_env()
        env.update(self.slurm.base_env())
        # sbatch's --no-requeue: SLURM requeues batch jobs whose node fails (its
        # default JobRequeue=1), and a requeued server would come back on another
        # node and port the hub does not know. It must end (NODE_FAIL) instead.
        env["SBATCH_NO_REQUEUE"] = "1"
        if self.scitex_service_url:
            env["SCITEX_SERVICE_URL"] = self.scitex_service_url
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
        for notice in self.start_notices:
            self._event(notice, 5)
        self._port_future = None
        self.exit_reason = ""
        self.job_port = 0
        started = time.monotonic()
        # The user-name rules first: nothing (not even the data directory) is made for a
        # name that may not run jobs.
        prefix = self.format_prefix()
        if batchspawner_route_open():
            # Fail closed: batchspawner's route would let this server's token set any of
            # this spawner's attributes (the configuration closes it: apply_spawner).
            self.log.error("batchspawner's /hub/api/batchspawner is open; no server starts")
            raise SpawnFailed(
                "This hub's configuration is incomplete (an unsafe API is open), so no "
                "server can start; ask your administrator."
            )
        institution_id, institution = self.institution()
        resources = self.resolve_resources(self.user_options)
        # The override or institution quota. Already over it: a notice for the spawn
        # page (the server starts so the user can clean up), or 403 where the site
        # refuses such starts (SpawnRecorder.over_quota).
        admission = await self.spawn_records.admit(institution_id, institution)
        if admission.notice:
            self._event(admission.notice, 5)
        await self.ensure_data_dir(institution_id)
        runtime = await self.resolve_runtime()

        await self._cancel_leftovers()
        env = self.job_environment()
        script = render_batch_script(
            self.build_job_spec(
                institution_id,
                resources,
                runtime,
                env_names=env,
                quota_limit_bytes=admission.limit_bytes,
            )
        )
        image = (resources.image or self.container_image) if runtime.runtime != "none" else None
        self.spawn_records.begun(institution_id, resources, image)
        self._port_future = asyncio.get_running_loop().create_future()
        try:
            self.job_id = await self.slurm.submit(script, prefix=prefix, env=env)
        except SlurmError as e:
            self.spawn_records.ended(f"SLURM refused the job: {e}")
            raise SpawnFailed(f"SLURM refused the job: {e}") from e
        self.spawn_records.submitted(self.job_id)
        self.watcher.track(self.job_id)
        self._event(f"Submitted SLURM job {self.job_id} ({resources.profile})", 10)
        # Persist the job id now: a hub that dies from here on finds the job again
        # (JupyterHub itself saves a spawner's state only when start() returns).
        self._save_state()

        try:
            node = await self._wait_until_running()
            self.job_node = node
            self.spawn_records.running(node)
            address = self.watcher.node_address(node)
            self._event(f"Job {self.job_id} running on node {node}; server starting", 60)
            port = await self._wait_for_port()
            self.job_port = port
            self._save_state()
            self._event(f"Server on {node} reported port {port}; waiting for it to listen", 75)
            await self._wait_listening(
                address, port, deadline=time.monotonic() + self.startup_timeout
            )
        except BaseException as e:
            self.spawn_records.ended(end_reason(e))
            await self._cancel_quietly()
            raise
        self.spawn_records.ready()
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
                        why = "" if job.reason in ("", "None") else f": {job.reason}"
                        self._event(f"Job {self.job_id} waiting in the queue{why}{when}", 30)
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

    async def _wait_for_port(self) -> int:
        """The port the server reports, while watching its job: a job that ends
        first fails the start at once, not after the whole start-up limit."""
        future = self._port_future
        if future is None:
            raise RuntimeError("start() creates the port future before waiting on it")
        log_hint = (
            f"see the job log in your data directory ({self.log_subdir}/notebook-{self.job_id}.log)"
        )
        deadline = time.monotonic() + self.startup_timeout
        with self.watcher.hurry():
            while True:
                try:
                    return await asyncio.wait_for(
                        asyncio.shield(future),
                        timeout=max(1.0, self.watcher.fast_interval * 2),
                    )
                except asyncio.TimeoutError:
                    pass
                view = self.watcher.view(self.job_id)
                if view.status == "finished" and view.finished is not None:
                    self.exit_reason = view.finished.describe()
                    raise SpawnFailed(
                        f"Job {self.job_id} ended before its server started: "
                        f"{self.exit_reason}; {log_hint}"
                    )
                if time.monotonic() > deadline:
                    raise SpawnFailed(
                        f"The notebook server in job {self.job_id} did not start within "
                        f"{self.startup_timeout} s; {log_hint}"
                    )

    async def _wait_listening(self, address: str, port: int, deadline: float) -> None:
        """Probe the port until it accepts connections.

        The server listens before it reports its port (scitex_server_ext.server_app), so
        the first probe normally succeeds; the probe stays for servers that report
        otherwise, and for a node the hub cannot reach, which it then reports in the
        user's words. A refused connect costs microseconds: probe every 20 ms at first,
        backing off to 0.25 s.
        """
        pause = PROBE_FIRST_INTERVAL
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
                await asyncio.sleep(pause)
                pause = min(pause * 1.25, PROBE_MAX_INTERVAL)
                continue
            writer.close()
            return

    def _save_state(self) -> None:
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is not None:
            orm_spawner.state = self.get_state()
            self.db.commit()

    async def _cancel_leftovers(self) -> None:
        """Cancel jobs of this very server that no record claims (a start interrupted
        by a hub crash), so a new start never runs two servers."""
        tag = self.job_tag()
        for job in list(self.watcher.jobs.values()):
            if job.comment == tag and job.job_id != self.job_id:
                self.log.warning("Cancelling leftover job %s of %s", job.job_id, self._log_name)
                try:
                    await self.slurm.cancel(job.job_id, prefix=self.format_prefix())
                except SlurmError as e:
                    self.log.warning("Could not cancel leftover job %s: %s", job.job_id, e)

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
            self.spawn_records.ended(self.exit_reason, job_id=self.job_id)
            watcher.untrack(self.job_id)
            self.clear_state()
            return 1
        if view.status == "queued" and not self.job_port and not self._spawn_pending:
            # A start the hub did not see through (it restarted meanwhile): its
            # server never reached the hub, so the job is cancelled, not adopted.
            self.exit_reason = "the hub restarted while your server was starting; start it again"
            self.log.warning("%s: job %s: %s", self._log_name, self.job_id, self.exit_reason)
            self.spawn_records.ended(self.exit_reason, job_id=self.job_id)
            await self._cancel_quietly()
            watcher.untrack(self.job_id)
            self.clear_state()
            return 1
        return None

    async def get_url(self) -> str:
        """Where a re-adopted server runs (after a hub restart): from our own state."""
        if self.job_node and self.job_port:
            return f"http://{self.watcher.node_address(self.job_node)}:{self.job_port}"
        return str(await super().get_url())

    async def stop(self, now: bool = False) -> None:
        if not self.job_id:
            return
        job_id = self.job_id
        self.spawn_records.ended("stopped", job_id=job_id)
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
            # Counted one by one: events added while one is being sent (each yield
            # waits for the page) are sent next, not skipped.
            while sent < len(self._events):
                event = self._events[sent]
                sent += 1
                yield event
            await asyncio.sleep(0.5)

    # ---- state ---------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = Spawner.get_state(self)
        if self.job_id:
            state["job_id"] = self.job_id
            state["job_node"] = self.job_node
            state["job_port"] = self.job_port
        if self.resources is not None:
            state["resources"] = self.resources.as_dict()
        if self.exit_reason:
            state["exit_reason"] = self.exit_reason
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        Spawner.load_state(self, state)
        self.job_id = state.get("job_id", "")
        self.job_node = state.get("job_node", "")
        self.job_port = int(state.get("job_port", 0) or 0)
        self.exit_reason = state.get("exit_reason", "")

    def clear_state(self) -> None:
        Spawner.clear_state(self)
        self.job_id = ""
        self.job_node = ""
        self.job_port = 0


def _make_user_dir(path: str, username: str, log_subdir: str) -> None:
    """``<data_root>/<institution>/<user>`` and its log directory: mode 0700, the user's,
    made symlink-safe (scitex_safefs). A hub not running as root cannot give them away."""
    if os.geteuid() != 0:
        if not os.path.isdir(path):
            raise SpawnFailed(
                f"Your data directory {path} does not exist and the hub cannot create it; "
                "ask your administrator."
            )
        return
    try:
        account = pwd.getpwnam(username)
    except KeyError:
        raise SpawnFailed(
            f"There is no Unix account named {username} on the hub's machine, and your "
            "server runs as that account; ask your administrator.",
            403,
        ) from None
    try:
        safefs.make_user_tree(path, log_subdir, account.pw_uid, account.pw_gid)
    except safefs.UnsafePath as e:
        raise SpawnFailed(e.advice(path, CONTAINER_DATA_DIR)) from None
