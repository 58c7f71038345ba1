"""The Apptainer (or Singularity) command line: a pure function of validated values.

The container sees the user's data directory at ``/data`` (also its ``$HOME``)
and the site's extra binds; nothing else of the host's filesystems
(``--contain``). ``--cleanenv`` keeps the job's environment out: values reach
the container only as ``APPTAINERENV_<NAME>`` variables, which the batch script
exports from the job's environment, so no value (the API token least of all)
is ever on a command line.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CONTAINER_DATA_DIR = "/data"
RUNTIMES = ("apptainer", "singularity")
# Both runtimes read <PREFIX><NAME> into the container even with --cleanenv.
ENV_PREFIX = {"apptainer": "APPTAINERENV_", "singularity": "SINGULARITYENV_"}

# Paths in binds are joined with ':' and ',' by the runtime, so neither (nor
# whitespace) may appear in them.
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./+@-]*\Z")


class ContainerError(ValueError):
    """A bind or path that cannot be given to the container runtime."""


@dataclass(frozen=True)
class RuntimeChoice:
    """The container runtime every job script of this site uses, and its command as an
    absolute path: a job's PATH is not the hub's, so a bare name may not be found there."""

    runtime: str  # "apptainer" | "singularity" | "none"
    executable: str = ""  # absolute; "" for "none"
    # Why ``auto`` runs without a container ("" when it did not fall back).
    fallback_reason: str = ""


def resolve_container_runtime(
    configured: str,
    executable: str | None,
    image: str | None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
) -> RuntimeChoice:
    """``container.runtime`` (and ``container.executable``) as notebook and compute jobs
    use it; the one place that decides, for the spawner and the hub service alike.

    ``executable`` is the site's path of the command on the compute nodes, taken as it
    is; without it the command is looked up on this process's PATH. ``auto`` is Apptainer
    when its command and ``image`` are found, else no container (with the reason).
    Raises :class:`ContainerError` when an explicit runtime's command is nowhere.
    """
    if configured == "none":
        return RuntimeChoice("none")
    name = "apptainer" if configured == "auto" else configured
    found = executable or which(name)
    if configured == "auto":
        if not found:
            return RuntimeChoice("none", fallback_reason="Apptainer is not installed")
        if not image or not exists(image):
            return RuntimeChoice("none", fallback_reason="the image is missing")
        return RuntimeChoice("apptainer", os.path.abspath(found))
    if configured not in RUNTIMES:
        raise ContainerError(f"container runtime {configured!r} is not one of {RUNTIMES}")
    if not found:
        raise ContainerError(
            f"The site's container runtime {configured!r} is not installed on the hub "
            f"(no {name} on its PATH) and container.executable is not set; ask your "
            "administrator"
        )
    return RuntimeChoice(configured, os.path.abspath(found))


@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    read_only: bool = True

    @classmethod
    def parse(cls, text: str) -> Bind:
        """``/src``, ``/src:/dst`` or ``/src:/dst:ro|rw`` (read-only unless ``rw``)."""
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise ContainerError(f"bind {text!r}: use /source[:/target[:ro|rw]]")
        source = parts[0]
        target = parts[1] if len(parts) > 1 and parts[1] else source
        mode = parts[2] if len(parts) > 2 else "ro"
        if mode not in ("ro", "rw"):
            raise ContainerError(f"bind {text!r}: the mode must be ro or rw")
        bind = cls(source, target, mode == "ro")
        bind.check()
        return bind

    def check(self) -> None:
        for path in (self.source, self.target):
            if not _PATH_RE.match(path) or "/../" in f"{path}/":
                raise ContainerError(
                    f"bind path {path!r} must be absolute, without '..', spaces, ':' or ','"
                )
        if self.target == CONTAINER_DATA_DIR or self.target.startswith(CONTAINER_DATA_DIR + "/"):
            raise ContainerError(f"bind target {self.target!r}: /data is the user's own data")

    def as_arg(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


def parse_binds(texts: Sequence[str], key: str) -> tuple[Bind, ...]:
    """Each of ``texts`` parsed (:meth:`Bind.parse`); an error names the setting ``key``."""
    try:
        return tuple(Bind.parse(text) for text in texts)
    except ValueError as e:
        raise ValueError(f"{key}: {e}") from None


@dataclass(frozen=True)
class ContainerSpec:
    runtime: str
    executable: str
    image: str
    data_dir: str
    binds: tuple[Bind, ...] = ()
    gpus: bool = False
    # A SIF that an unprivileged user cannot mount (no usable FUSE) is
    # unpacked to a temporary sandbox at start.
    unsquash: bool = False


def container_argv(spec: ContainerSpec, command: Sequence[str]) -> list[str]:
    """``[apptainer, exec, ..., image, *command]`` for ``spec``."""
    if spec.runtime not in RUNTIMES:
        raise ContainerError(f"container runtime {spec.runtime!r} is not one of {RUNTIMES}")
    for path in (spec.image, spec.data_dir):
        if not _PATH_RE.match(path):
            raise ContainerError(f"{path!r} must be an absolute path without spaces, ':' or ','")
    argv = [
        spec.executable,
        "exec",
        "--cleanenv",
        "--contain",
        "--home",
        f"{spec.data_dir}:{CONTAINER_DATA_DIR}",
        "--pwd",
        CONTAINER_DATA_DIR,
    ]
    if spec.unsquash:
        argv.append("--unsquash")
    if spec.gpus:
        argv.append("--nv")
    for bind in spec.binds:
        bind.check()
        argv += ["--bind", bind.as_arg()]
    argv.append(spec.image)
    argv += list(command)
    return argv
