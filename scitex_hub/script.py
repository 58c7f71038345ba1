"""The batch script for a notebook server: a pure function of validated values.

Everything that reaches the script is typed and checked (see
:mod:`scitex_hub.profiles`); the command line is quoted with
:func:`shlex.join`. Secrets never appear here: the script only names the
environment variables it forwards into the container.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from .units import format_duration

ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*\Z")
# Directive values are read by sbatch, not a shell: they must still be one
# token on one line.
_DIRECTIVE_VALUE_RE = re.compile(r"^[^\s'\"`$;\\]+\Z")
# SLURM prints a job's name and comment back, as given, to every reader of the queue:
# ours hold a plain charset only (no newline, space, separator or control character).
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9_.+/-]{1,1024}\Z")
_COMMENT_RE = re.compile(r"^[A-Za-z0-9_.:=,-]{1,1024}\Z")


class ScriptError(ValueError):
    """A value that must not go into a batch script."""


@dataclass(frozen=True)
class BatchJobSpec:
    job_name: str
    comment: str
    partition: str
    cpus: int
    memory_mib: int
    time_limit_seconds: int
    output_path: str
    workdir: str
    command: tuple[str, ...]
    gpus: int = 0
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    # Non-secret values written into the script (e.g. the profile's name).
    exports: tuple[tuple[str, str], ...] = ()
    # Variables to hand to the container runtime as ``<PREFIX><NAME>``; their
    # values come from the job's environment, never from the script text.
    forward_env: tuple[str, ...] = ()
    forward_env_prefix: str = ""
    extra_directives: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not JOB_NAME_RE.match(self.job_name):
            raise ScriptError(
                f"job name {self.job_name!r} may hold letters, digits and _ . + - / only "
                "(at most 1024)"
            )
        if not _COMMENT_RE.match(self.comment):
            raise ScriptError(
                f"job comment {self.comment!r} may hold letters, digits and _ . : = , - only "
                "(at most 1024)"
            )


def _directive(option: str, value: object) -> str:
    text = str(value)
    if not _DIRECTIVE_VALUE_RE.match(text):
        raise ScriptError(f"--{option} value {text!r} is not a single safe token")
    return f"#SBATCH --{option}={text}"


def render_batch_script(spec: BatchJobSpec) -> str:
    """The complete ``sbatch`` script for ``spec``."""
    lines = [
        "#!/bin/bash",
        _directive("job-name", spec.job_name),
        _directive("comment", spec.comment),
        _directive("partition", spec.partition),
    ]
    if spec.account:
        lines.append(_directive("account", spec.account))
    if spec.qos:
        lines.append(_directive("qos", spec.qos))
    if spec.constraint:
        lines.append(_directive("constraint", spec.constraint))
    lines += [
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        _directive("cpus-per-task", spec.cpus),
        _directive("mem", f"{spec.memory_mib}M"),
        _directive("time", format_duration(spec.time_limit_seconds)),
    ]
    if spec.gpus:
        lines.append(_directive("gpus", spec.gpus))
    lines += [
        _directive("output", spec.output_path),
        _directive("chdir", spec.workdir),
        # The job gets exactly the environment the hub gave sbatch, nothing
        # from the submitting shell's login files.
        "#SBATCH --export=ALL",
        "#SBATCH --signal=B:TERM@60",
    ]
    for directive in spec.extra_directives:
        if not directive.startswith("--") or "\n" in directive:
            raise ScriptError(f"extra directive {directive!r} must be one --option=value")
        lines.append(_directive(*directive[2:].split("=", 1)))
    lines += [
        "",
        "set -euo pipefail",
        "umask 077",
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"',
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"',
        # When the job started, plus its limit: the server counts down from this.
        f'export SCITEX_JOB_END="$(( $(date +%s) + {spec.time_limit_seconds} ))"',
    ]
    for name, value in spec.exports:
        if not ENV_NAME_RE.match(name):
            raise ScriptError(f"environment name {name!r} is not valid")
        lines.append(f"export {name}={shlex.quote(value)}")
    if spec.forward_env_prefix:
        names = sorted(set(spec.forward_env) | {"SCITEX_JOB_ID", "SCITEX_NODE", "SCITEX_JOB_END"})
        names += sorted(name for name, _ in spec.exports if name not in names)
        for name in names:
            if not ENV_NAME_RE.match(name):
                raise ScriptError(f"environment name {name!r} is not valid")
            lines.append(
                f'[ -z "${{{name}+x}}" ] || export {spec.forward_env_prefix}{name}="${{{name}}}"'
            )
    lines += [
        "",
        _quote_command(spec.command),
        "",
    ]
    return "\n".join(lines)


def _quote_command(command: Sequence[str]) -> str:
    if not command:
        raise ScriptError("the job has no command")
    for arg in command:
        if "\n" in arg or "\r" in arg or "\0" in arg:
            raise ScriptError(f"command argument {arg!r} contains a line break")
    # exec: the server is the job's main process, so scancel's SIGTERM reaches it.
    return "exec " + shlex.join(command)
