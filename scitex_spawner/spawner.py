"""SciTeXSpawner: a user's notebook server as a SLURM job, tracked by the shared watcher.

Thin on purpose, in kubespawner's shape: pure builders beside the spawner, each tested
apart. The site settings are :mod:`.spawner_settings`; the job spec is
:func:`scitex_hub.jobspecs.notebook.notebook_job_spec` (rendered by
:mod:`scitex_hub.script`); SLURM is :mod:`scitex_hub.slurm`; the waits of a start are
:mod:`.waits`, the data directory :mod:`.userdir`, the options form :mod:`.form`, the
port callback :mod:`.callback`, the quota gate and spawn records :mod:`.records`.

One file over 400 lines: what is left is JupyterHub's Spawner contract (options, start,
poll, stop, progress, state) and the order of a start, which reads best in one place.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from batchspawner import SlurmSpawner
from jupyterhub.spawner import Spawner
from prometheus_client import Histogram
from tornado import web
from traitlets import (
    Instance,
    Integer,
    List,
    Unicode,
    default,
    observe,
)

from scitex_hub.container import (
    Bind,
    ContainerError,
    RuntimeChoice,
    resolve_container_runtime,
)
from scitex_hub.institutions import (
    USERNAME_RE,
    Institution,
    InstitutionDirectory,
)
from scitex_hub.jobspecs.notebook import notebook_job_spec
from scitex_hub.profiles import (
    ResolvedResources,
    UserOptionsError,
    resolve_user_options,
)
from scitex_hub.script import BatchJobSpec, render_batch_script
from scitex_hub.slurm import JobView, QueueWatcher, SlurmClient, SlurmError

from .callback import batchspawner_route_open
from .failures import SpawnFailed
from .form import NO_INSTITUTION_FORM, options_from_formdata, render_options_form
from .records import SpawnRecorder, end_reason
from .spawner_settings import SciTeXSpawnerSettings
from .userdir import make_user_dir
from .waits import JobEnded, StartWaits

SPAWN_DURATION = Histogram(
    "scitex_spawn_duration_seconds",
    "Seconds from submission to a ready notebook server, by profile",
    ["profile"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)


class SciTeXSpawner(SciTeXSpawnerSettings, SlurmSpawner):
    """Starts each notebook server as a SLURM job on behalf of its user.

    Replaces batchspawner's shell-string commands, raw-template batch script and
    per-user ``squeue`` with argv commands, a pure script builder fed only by
    validated values, and one shared :class:`~scitex_hub.slurm.QueueWatcher`.
    """

    # ---- settings: the site's are SciTeXSpawnerSettings'; this one is deprecated ----

    submit_prefix = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="""Deprecated: set ``SlurmClient.run_as_prefix`` (the site file's
        ``slurm.submit_prefix`` does). A value given here is passed on to this spawner's
        SLURM client, with a warning.""",
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
            return NO_INSTITUTION_FORM
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
        return options_from_formdata(formdata)

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
        await asyncio.to_thread(make_user_dir, path, self.user.name, self.log_subdir)
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
        self._port_future = port_future = asyncio.get_running_loop().create_future()
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

        waits = StartWaits(self.watcher, self.job_id, self._event)
        try:
            node = await waits.until_running(self.queue_wait_timeout, self.queue_poll_interval)
            self.job_node = node
            self.spawn_records.running(node)
            address = self.watcher.node_address(node)
            self._event(f"Job {self.job_id} running on node {node}; server starting", 60)
            port = await waits.for_port(port_future, self.startup_timeout, self.log_subdir)
            self.job_port = port
            self._save_state()
            self._event(f"Server on {node} reported port {port}; waiting for it to listen", 75)
            await waits.until_listening(address, port, self.startup_timeout)
        except BaseException as e:
            if isinstance(e, JobEnded):
                self.exit_reason = e.exit_reason
            self.spawn_records.ended(end_reason(e))
            await self._cancel_quietly()
            raise
        self.spawn_records.ready()
        self._event(f"Server listening on {node}:{port}; connecting", 90)
        SPAWN_DURATION.labels(profile=resources.profile).observe(time.monotonic() - started)
        return f"http://{address}:{port}"

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
