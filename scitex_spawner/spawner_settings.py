"""SciTeXSpawner's site settings (``c.SciTeXSpawner.*``) and their checks, apart from how a
start runs (spawner.py).

A base class of :class:`~.spawner.SciTeXSpawner`: traitlets applies
``c.SciTeXSpawner.<name>`` to the traits a class inherits, and docs/configuration.md
lists them under ``SciTeXSpawner``. A plain ``HasTraits``, so it adds no configuration
section of its own.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    HasTraits,
    Integer,
    List,
    Type,
    Unicode,
    default,
    validate,
)

from scitex_hub.container import parse_binds
from scitex_hub.institutions import Institution, load_institutions
from scitex_hub.profiles import Profile, load_profiles
from scitex_hub.slurm import SlurmClient

from .records import SpawnStore, SqlSpawnStore


class SciTeXSpawnerSettings(HasTraits):
    """What a site sets for every notebook server: profiles, institutions, where data
    lives, SLURM and container settings. Checked when the hub starts; an error names
    the key."""

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

    @default("notebook_python")
    def _default_notebook_python(self) -> str:
        return sys.executable

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
        parse_binds(proposal["value"], "SciTeXSpawner.container_binds")
        return list(proposal["value"])

    @validate("data_root")
    def _validate_data_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not os.path.isabs(value) or any(c.isspace() for c in value):
            raise ValueError(
                f"SciTeXSpawner.data_root must be an absolute path without spaces: {value!r}"
            )
        return value.rstrip("/") or "/"
