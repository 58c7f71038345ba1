"""A user's notebook server as a SLURM batch job, built by a pure function from validated
values (tested by exact equality, like kubespawner's ``make_pod``).

The spawner validates the user's options (:mod:`scitex_hub.profiles`), resolves the
container runtime (:func:`scitex_hub.container.resolve_container_runtime`) and the quota,
and calls :func:`notebook_job_spec`; the spec renders through
:func:`scitex_hub.script.render_batch_script`. In a container the user's data directory
is at ``/data``; without one the server runs in the job with the node's software.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from ..container import (
    CONTAINER_DATA_DIR,
    ENV_PREFIX,
    Bind,
    ContainerSpec,
    RuntimeChoice,
    container_argv,
)
from ..profiles import ResolvedResources
from ..script import BatchJobSpec

__all__ = [
    "FORWARDED_ENV_NAMES",
    "FORWARDED_ENV_PREFIXES",
    "forwarded_env",
    "notebook_container",
    "notebook_job_spec",
]

# Variables handed into the container (by name; values stay in the job's environment).
FORWARDED_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_", "SCITEX_")
FORWARDED_ENV_NAMES = ("LANG", "LC_ALL")


def forwarded_env(env_names: Iterable[str]) -> tuple[str, ...]:
    """Which of the job's variables the container gets, sorted: the server's own
    (``JUPYTERHUB_*``, ``JPY_*``, ``SCITEX_*``) and the locale; nothing else of the job."""
    return tuple(
        name
        for name in sorted(env_names)
        if name.startswith(FORWARDED_ENV_PREFIXES) or name in FORWARDED_ENV_NAMES
    )


def notebook_container(
    runtime: RuntimeChoice,
    *,
    image: str,
    data_dir: str,
    binds: Sequence[Bind],
    unsquash: bool,
    gpus: int,
) -> ContainerSpec | None:
    """How the server is wrapped in a container, or None to run it directly in the job.

    ``unsquash`` applies to SIF images only (a sandbox directory needs no unpacking).
    """
    if runtime.runtime == "none":
        return None
    return ContainerSpec(
        runtime=runtime.runtime,
        executable=runtime.executable,
        image=image,
        data_dir=data_dir,
        binds=tuple(binds),
        gpus=gpus > 0,
        unsquash=unsquash and image.endswith(".sif"),
    )


def notebook_job_spec(
    *,
    user: str,
    tag: str,
    institution_id: str,
    quota_limit_bytes: int,
    data_dir: str,
    resources: ResolvedResources,
    command: Sequence[str],
    log_subdir: str,
    runtime: RuntimeChoice | None = None,
    image: str = "",
    binds: Sequence[Bind] = (),
    unsquash: bool = False,
    env_names: Iterable[str] = (),
) -> BatchJobSpec:
    """The batch job that runs ``command`` (the notebook server) for ``user``.

    ``tag``: the job's comment, by which a restarted hub finds its jobs. ``data_dir``:
    the user's ``<data_root>/<institution>/<user>``, the job's working directory and, in a
    container, ``/data``. ``quota_limit_bytes``: the user's effective limit (0: none).
    ``runtime`` None or ``none``: no container (``image``, ``binds`` and ``unsquash`` are
    then unused). ``env_names``: the job's environment variables, by name; the container
    gets those meant for it (:func:`forwarded_env`).
    """
    container = notebook_container(
        runtime or RuntimeChoice("none"),
        image=image,
        data_dir=data_dir,
        binds=binds,
        unsquash=unsquash,
        gpus=resources.gpus,
    )
    argv = list(command)
    forward: tuple[str, ...] = ()
    if container is not None:
        argv = container_argv(container, argv)
        forward = forwarded_env(env_names)
    return BatchJobSpec(
        job_name=f"scitex-nb-{user}",
        comment=tag,
        **resources.batch_fields(),
        output_path=os.path.join(data_dir, log_subdir, "notebook-%j.log"),
        workdir=data_dir,
        command=tuple(argv),
        exports=(
            ("SCITEX_PROFILE", resources.profile),
            ("SCITEX_INSTITUTION", institution_id),
            ("SCITEX_USER_ROOT", CONTAINER_DATA_DIR if container else data_dir),
            ("SCITEX_QUOTA_LIMIT_BYTES", str(quota_limit_bytes)),
        ),
        forward_env=forward,
        forward_env_prefix=ENV_PREFIX[container.runtime] if container else "",
    )
