"""A compute job from JupyterLab: a project's script as a SLURM batch job, built by a pure
function from validated values (tested by exact equality).

The scitex service validates a submission (the project and script on disk, the resources
against the institution's profiles) and calls :func:`build_compute_job`; the spec renders
through :func:`scitex_hub.script.render_batch_script`. In the container the project is at
``/project`` (the job's working directory) and the user's data at ``/data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..container import ENV_PREFIX, Bind, ContainerSpec, container_argv
from ..profiles import ResolvedResources
from ..script import BatchJobSpec

__all__ = [
    "CONTAINER_PROJECT_DIR",
    "JOB_TAG",
    "JobRequestError",
    "JobSite",
    "build_compute_job",
    "job_comment",
]

# Compute jobs' comments start with this (notebook servers' with "scitex").
JOB_TAG = "scitex-job"
# Where the project is inside the container, and the job's working directory.
CONTAINER_PROJECT_DIR = "/project"


class JobRequestError(ValueError):
    """A submission that cannot be run; the message says why (HTTP 400)."""


@dataclass(frozen=True)
class JobSite:
    """The site's settings for compute jobs, with the container runtime resolved."""

    hub_id: str
    data_root: str
    # "apptainer" | "singularity" | "none"
    runtime: str = "none"
    # Absolute (container.resolve_container_runtime): the job's PATH is not the hub's.
    executable: str = ""
    image: str = ""
    binds: tuple[Bind, ...] = ()
    unsquash: bool = False
    # How a script is run, by its extension.
    interpreters: tuple[tuple[str, tuple[str, ...]], ...] = (
        (".sh", ("bash",)),
        (".py", ("python3",)),
    )
    projects_dir: str = "projects"
    log_subdir: str = ".scitex/jobs"

    @property
    def tag_prefix(self) -> str:
        return f"{JOB_TAG}:hub={self.hub_id}:"

    def interpreter(self, script: str) -> tuple[str, ...]:
        for suffix, argv in self.interpreters:
            if script.endswith(suffix):
                return argv
        known = ", ".join(suffix for suffix, _ in self.interpreters)
        raise JobRequestError(f"The script {script!r} must end in {known}")

    def data_dir(self, institution: str, user: str) -> str:
        return os.path.join(self.data_root, institution, user)

    def project_dir(self, institution: str, user: str, project: str) -> str:
        return os.path.join(self.data_dir(institution, user), self.projects_dir, project)


def job_comment(site: JobSite, user: str, project: str) -> str:
    return f"{site.tag_prefix}user={user}:project={project}"


def build_compute_job(
    site: JobSite,
    *,
    user: str,
    institution: str,
    project: str,
    script: str,
    resources: ResolvedResources,
) -> BatchJobSpec:
    """The batch job for one submission: pure, from validated values only.

    In the container the project is at ``/project`` (the job's working directory) and
    the user's data at ``/data``; nothing else of the user's files. Output and errors go
    to ``<project>/<log_subdir>/<job id>.log``.
    """
    project_dir = site.project_dir(institution, user, project)
    command = [*site.interpreter(script), script]
    exports: tuple[tuple[str, str], ...] = (
        ("SCITEX_PROJECT", project),
        ("SCITEX_SCRIPT", script),
    )
    forward: tuple[str, ...] = ()
    prefix = ""
    if site.runtime != "none":
        spec = ContainerSpec(
            runtime=site.runtime,
            executable=site.executable,
            image=site.image,
            data_dir=site.data_dir(institution, user),
            binds=(*site.binds, Bind(project_dir, CONTAINER_PROJECT_DIR, read_only=False)),
            gpus=resources.gpus > 0,
            unsquash=site.unsquash and site.image.endswith(".sif"),
        )
        # The runtime starts in /data; env moves into the project (argv, no shell).
        command = container_argv(spec, ["env", f"--chdir={CONTAINER_PROJECT_DIR}", *command])
        forward = ("SCITEX_PROJECT", "SCITEX_SCRIPT")
        prefix = ENV_PREFIX[site.runtime]
    return BatchJobSpec(
        job_name=script,
        comment=job_comment(site, user, project),
        **resources.batch_fields(),
        output_path=os.path.join(project_dir, site.log_subdir, "%j.log"),
        workdir=project_dir,
        command=tuple(command),
        exports=exports,
        forward_env=forward,
        forward_env_prefix=prefix,
    )
