"""Compute jobs' configuration: the site's job settings as traitlets (what
``jupyterhub_config.apply.apply_services`` writes under ``ComputeJobs``), the container
runtime resolved once, and the prefix that runs a command as the user.

The typed values (profiles) arrive as plain JSON and are validated back here; every
error names the setting (``ComputeJobs.<name>: ...``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from traitlets import (
    Bool,
    Dict,
    Enum,
    Instance,
    Integer,
    List,
    Set,
    Unicode,
    default,
    observe,
    validate,
)
from traitlets.config import LoggingConfigurable

from scitex_hub.container import RuntimeChoice, parse_binds, resolve_container_runtime
from scitex_hub.institutions import USERNAME_RE
from scitex_hub.jobspecs.compute import JobSite
from scitex_hub.names import name_refusal
from scitex_hub.profiles import Profile, load_profiles
from scitex_hub.slurm import SlurmClient

from ..configvalues import load_entries
from ..handlers import APIError

__all__ = ["JobSettings"]

HUB_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}\Z")
_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,16}\Z")
_COMMAND_RE = re.compile(r"^[A-Za-z0-9_./+-]+\Z")


class JobSettings(LoggingConfigurable):
    """The settings every part of :class:`~scitex_service.jobs.ComputeJobs` reads. Its
    section in a config is ``ComputeJobs``."""

    hub_id = Unicode(
        "scitex",
        help="""This hub's id (the site file's ``slurm.hub_id``): its compute jobs' comments
        start with ``scitex-job:hub=<hub_id>:``, and its records carry it.""",
    ).tag(config=True)

    data_root = Unicode(
        help="""Where users' data directories are, ``<data_root>/<institution>/<user>`` (the
        site file's ``data_root``); a project is ``<data dir>/projects/<name>``.""",
    ).tag(config=True)

    profiles = Dict(
        help="""The site's profiles, ``{name: profile}`` as the site file writes them (or
        as ``Profile.model_dump``); a job's resources are checked against those of the
        user's institution.""",
    ).tag(config=True)

    runtime = Enum(
        ["auto", "apptainer", "singularity", "none"],
        default_value="none",
        help="""How compute jobs are contained (the site file's ``container.runtime``),
        resolved once when the service starts: ``auto`` is Apptainer when the service
        finds it and the image, else none (a warning in the log).""",
    ).tag(config=True)

    executable = Unicode(
        "",
        help="""Path of the apptainer/singularity command on the compute nodes
        (``container.executable``). Empty: the command found on the service's PATH.""",
    ).tag(config=True)

    image = Unicode(
        "",
        help="The compute image, SIF or sandbox directory (``jobs.image``, else "
        "``container.image``).",
    ).tag(config=True)

    binds = List(
        Unicode(),
        help="""Binds for every job's container, ``/src[:/dst[:ro|rw]]`` (``jobs.extra_binds``,
        else ``container.extra_binds``). The project is bound at /project, the user's
        data at /data.""",
    ).tag(config=True)

    unsquash = Bool(
        False,
        help="Pass ``--unsquash`` for SIF images (``container.unsquash``).",
    ).tag(config=True)

    # Static defaults (this, history_limit), not @default: traitlets does not validate a
    # configured value equal to a trait's static default (0, {}), so that must be valid.
    interpreters = Dict(
        {".sh": ["bash"], ".py": ["python3"]},
        help="""How a script is run, by its ending: ``{".sh": ["bash"], ".py": ["python3"]}``
        (the site file's ``jobs.bash`` and ``jobs.python``), tried in this order.""",
    ).tag(config=True)

    max_queued_per_user = Integer(
        10,
        help="""Jobs (pending or running) a user may have submitted through the service at
        once; one more is refused with 429 and a message.""",
    ).tag(config=True)

    history_limit = Integer(
        50,
        help="""Recorded jobs (``scitex_compute_jobs``) a user's job list shows besides
        the jobs SLURM lists now: the newest this many. Older records stay in the database
        and their job and log can still be fetched by id.""",
    ).tag(config=True)

    denied_users = Set(
        Unicode(),
        help="Names no job runs as (the site's auth.denied_users, root, the Gitea admin).",
    ).tag(config=True)

    min_uid = Integer(
        1000, help="No job runs as an existing account below this UID (auth.min_uid)."
    ).tag(config=True)

    log_tail_bytes = Integer(
        1024 * 1024,
        help="The log endpoint returns at most this many bytes: the end of the log.",
    ).tag(config=True)

    # Runs sbatch, squeue, scancel, and the run-as prefix (SlurmClient.run_as_prefix).
    slurm = Instance(SlurmClient)

    @default("slurm")
    def _default_slurm(self) -> SlurmClient:
        return SlurmClient(parent=self)

    @validate("hub_id")
    def _check_hub_id(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not HUB_ID_RE.match(value):
            raise ValueError(
                f"ComputeJobs.hub_id must be 1-32 letters, digits, _ . or -, got {value!r}"
            )
        return value

    @validate("data_root")
    def _check_data_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not os.path.isabs(value) or any(c.isspace() for c in value):
            raise ValueError(
                f"ComputeJobs.data_root must be an absolute path without spaces: {value!r}"
            )
        return value.rstrip("/") or "/"

    @validate("profiles")
    def _check_profiles(self, proposal: Any) -> dict[str, Profile]:
        return load_entries("ComputeJobs.profiles", proposal["value"], load_profiles)

    @validate("executable", "image")
    def _check_absolute(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not os.path.isabs(value):
            name = proposal["trait"].name
            raise ValueError(f"ComputeJobs.{name} must be an absolute path, got {value!r}")
        return value

    @validate("binds")
    def _check_binds(self, proposal: Any) -> list[str]:
        parse_binds(proposal["value"], "ComputeJobs.binds")
        return list(proposal["value"])

    @validate("interpreters")
    def _check_interpreters(self, proposal: Any) -> dict[str, list[str]]:
        if not proposal["value"]:
            raise ValueError("ComputeJobs.interpreters: no script could run (give at least one)")
        checked: dict[str, list[str]] = {}
        for suffix, argv in proposal["value"].items():
            if not _SUFFIX_RE.match(str(suffix)):
                raise ValueError(f"ComputeJobs.interpreters: {suffix!r} is not a file ending")
            if (
                not isinstance(argv, (list, tuple))
                or not argv
                or not all(isinstance(a, str) and _COMMAND_RE.match(a) for a in argv)
            ):
                raise ValueError(
                    f"ComputeJobs.interpreters.{suffix}: must be a command (argv: names or "
                    f"paths without spaces), got {argv!r}"
                )
            checked[str(suffix)] = list(argv)
        return checked

    @validate("max_queued_per_user", "history_limit")
    def _check_at_least_one(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            name = proposal["trait"].name
            raise ValueError(f"ComputeJobs.{name} must be at least 1, got {value}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runtime: RuntimeChoice | None = None

    @observe("runtime", "executable", "image")
    def _runtime_changed(self, change: Any) -> None:
        self._runtime = None

    # -- derived ---------------------------------------------------------------------

    def resolve_runtime(self) -> RuntimeChoice:
        """The container runtime compute jobs use, decided as for notebook servers
        (``auto`` becomes apptainer or none; the command as an absolute path). Blocking:
        the service calls it once at start; raises ``ContainerError`` for an explicit
        runtime that is nowhere."""
        if self._runtime is None:
            runtime = resolve_container_runtime(
                self.runtime, self.executable or None, self.image or None
            )
            if runtime.fallback_reason:
                self.log.warning(
                    "Compute jobs run without a container: %s (container.runtime: auto)",
                    runtime.fallback_reason,
                )
            self._runtime = runtime
        return self._runtime

    @property
    def site(self) -> JobSite:
        """What the pure builders take (``scitex_hub.jobspecs.compute``)."""
        if not self.data_root:
            raise ValueError("ComputeJobs.data_root is not set")
        runtime = self.resolve_runtime()
        return JobSite(
            hub_id=self.hub_id,
            data_root=self.data_root,
            runtime=runtime.runtime,
            executable=runtime.executable,
            image=self.image,
            binds=parse_binds(self.binds, "ComputeJobs.binds"),
            unsquash=self.unsquash,
            interpreters=tuple((s, tuple(argv)) for s, argv in self.interpreters.items()),
        )

    def prefix(self, user: str) -> list[str]:
        """The prefix that runs a command as ``user`` (``SlurmClient.as_user``), after the
        sign-in's name rules; 403 for a name no job may run as."""
        if not USERNAME_RE.match(user):
            raise APIError(403, f"user name {user!r} is not allowed for jobs")
        # The sign-in's name rules again (root, the deny list, system UIDs): a user who
        # signed in before a rule changed, or was made through the hub's API, still holds
        # a token; no job runs as such an account.
        why = name_refusal(user, self.denied_users, self.min_uid)
        if why:
            raise APIError(403, f"no job runs for {user}: {why}")
        try:
            return self.slurm.as_user(user)
        except ValueError as e:
            raise APIError(403, f"no job runs for {user}: {e}") from None
