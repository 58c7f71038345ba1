"""Convert a wrapspawner ``ProfilesSpawner.profiles`` list into ``profiles:`` of scitex.yaml.

wrapspawner's profiles are positional tuples::

    (display_name, key, spawner_class, {spawner config: req_nprocs, req_memory, ...})

The batchspawner request traits become typed profile fields (``req_nprocs`` ->
``cpus``, ``req_memory`` -> ``memory``, ``req_runtime`` -> ``runtime``,
``req_partition`` or a batch system's ``req_queue`` -> ``partition``,
``req_ngpus`` or ``req_gres: gpu:N`` -> ``gpus``, ``req_qos`` -> ``qos``). Raw
options, prologues, epilogues, scripts and commands are refused, naming the
profile and the key: SciTeX Hub never passes free text to the batch script. A
profile with anything refused is not converted at all, rather than converted
without something it relied on.

Usage::

    python -m scitex_spawner.wrapspawner_import /etc/jupyterhub/jupyterhub_config.py

prints the converted profiles as YAML on stdout and every problem on stderr;
the exit status is 1 when a profile could not be converted.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from scitex_hub.profiles import PROFILE_NAME_RE, Profile
from scitex_hub.units import format_duration, format_size, parse_duration, parse_size

# Keys that are per-hub settings in SciTeX Hub (or meaningless for a SLURM job):
# noted and left out, the profile still converts. The value says where the
# setting lives instead.
HUB_WIDE_KEYS: Mapping[str, str] = {
    "ip": "the hub decides where servers listen",
    "port": "the hub decides where servers listen",
    "http_timeout": "slurm.startup_timeout",
    "start_timeout": "slurm.startup_timeout",
    "startup_poll_interval": "slurm.poll_interval",
    "state_exechost_exp": "SLURM reports the node itself",
}
# Keys that pick another batch server or cluster: hub-wide when set for the
# spawner class (one cluster per hub), refused when one profile sets its own.
TARGET_KEYS = frozenset({"req_host", "req_cluster"})
# Why a key is refused, for the keys sites use most.
REFUSED_KEYS: Mapping[str, str] = {
    "req_options": "raw scheduler options are never passed to the batch script",
    "req_prologue": "shell code in the batch script is not allowed",
    "req_epilogue": "shell code in the batch script is not allowed",
    "req_srun": "SciTeX Hub decides how the server starts in the job",
    "req_keepvars": "SciTeX Hub passes a fixed environment",
    "req_homedir": "the working directory is the user's data directory",
    "req_username": "jobs always run as the signed-in user",
    "req_account": "the SLURM account is per institution: institutions.<id>.slurm_account",
    "req_reservation": "SciTeX profiles have no reservation",
    "batch_script": "the batch script is built by SciTeX Hub, not templated",
    "batch_submit_cmd": "commands are fixed argv lists, not templates",
    "batch_query_cmd": "commands are fixed argv lists, not templates",
    "batch_cancel_cmd": "commands are fixed argv lists, not templates",
    "exec_prefix": "commands are fixed argv lists, not templates",
    "cmd": "the notebook command is fixed (notebook.python)",
    "args": "server arguments are hub-wide (notebook.args)",
    "environment": "the job's environment is fixed",
    "env_keep": "the job's environment is fixed",
}
_CLASS_LEVEL_SECTIONS = ("BatchSpawnerBase",)
_GRES_GPU_RE = re.compile(r"^gpu:(\d{1,3})\Z")
_DIGITS_RE = re.compile(r"^\d{1,9}\Z")
_MIN_SEC_RE = re.compile(r"^(\d{1,5}):(\d{2})\Z")


class ConversionError(ValueError):
    """Nothing could be read (not a profile list, no profiles in the file)."""


@dataclass
class Conversion:
    """The converted profiles (a valid ``profiles:`` mapping) and what was not."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        return yaml.safe_dump({"profiles": self.profiles}, sort_keys=False, allow_unicode=True)


def _class_name(spawner_class: Any) -> str:
    if isinstance(spawner_class, str):
        return spawner_class
    if isinstance(spawner_class, type):
        return f"{spawner_class.__module__}.{spawner_class.__qualname__}"
    return repr(spawner_class)


def _batch_kind(spawner_class: Any) -> str | None:
    """``"slurm"``, ``"other"`` (another batchspawner scheduler) or None (not a batch job)."""
    cls = spawner_class
    if isinstance(spawner_class, str):
        try:
            from traitlets.utils.importstring import import_item

            cls = import_item(spawner_class)
        except Exception:  # noqa: BLE001 - any import error means: not a class we can read
            cls = None
    if isinstance(cls, type):
        from batchspawner import BatchSpawnerBase, SlurmSpawner

        if issubclass(cls, SlurmSpawner):
            return "slurm"
        if issubclass(cls, BatchSpawnerBase):
            return "other"
        return None
    # Not importable here: judge by the name.
    name = _class_name(spawner_class)
    if name.startswith("batchspawner."):
        return "slurm" if "Slurm" in name else "other"
    return None


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        return int(value.strip())
    raise ValueError(f"{value!r} is not a whole number")


def _memory(value: Any) -> str:
    """batchspawner passes req_memory to ``--mem``: a bare number is megabytes there."""
    text = str(value).strip()
    if _DIGITS_RE.match(text):
        return format_size(int(text) * 1024**2)
    return format_size(parse_size(text))


def _runtime(value: Any) -> str:
    """SLURM's ``--time`` spellings: minutes, MM:SS, HH:MM:SS, D-HH:MM:SS."""
    text = str(value).strip()
    if _DIGITS_RE.match(text):
        return format_duration(int(text) * 60)
    match = _MIN_SEC_RE.match(text)
    if match:
        seconds = int(match.group(1)) * 60 + int(match.group(2))
        if int(match.group(2)) >= 60 or seconds <= 0:
            raise ValueError(f"{text!r} is not a duration")
        return format_duration(seconds)
    return format_duration(parse_duration(text))


def _convert_one(
    index: int,
    entry: Any,
    class_defaults: Mapping[str, Mapping[str, Any]],
    conversion: Conversion,
) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(entry, (tuple, list)) or len(entry) != 4:
        conversion.problems.append(
            f"profile #{index + 1}: expected (display_name, key, spawner_class, config), "
            f"got {entry!r}"
        )
        return None
    display, key, spawner_class, config = entry
    where = f"profile {key!r}"
    if not isinstance(config, Mapping):
        conversion.problems.append(f"{where}: its config must be a dict, got {config!r}")
        return None
    name = str(key).lower()
    if not PROFILE_NAME_RE.match(name):
        conversion.problems.append(
            f"{where}: the key becomes the profile name; use lowercase letters, digits, - and _"
        )
        return None

    kind = _batch_kind(spawner_class)
    class_name = _class_name(spawner_class)
    if kind is None:
        conversion.problems.append(
            f"{where}: {class_name} does not run a batch job; SciTeX Hub runs every "
            "server as a SLURM job (only batchspawner profiles convert)"
        )
        return None
    if kind == "other":
        conversion.notes.append(
            f"{where}: was for {class_name}; its queue becomes a SLURM partition"
        )

    # Class-level config (c.BatchSpawnerBase.req_*, c.SlurmSpawner.req_*) is
    # what batchspawner uses when the profile does not say.
    short = class_name.rpartition(".")[2]
    defaults: dict[str, Any] = {}
    for section in (*_CLASS_LEVEL_SECTIONS, short):
        defaults.update(class_defaults.get(section, {}))
    problems: list[str] = []
    for k in TARGET_KEYS:
        if k in defaults and k not in config:
            conversion.notes.append(
                f"{where}: {k}={defaults[k]!r} (class-wide) is hub-wide in SciTeX Hub: "
                "the hub submits to the cluster of slurm.conf"
            )
    merged = {k: v for k, v in defaults.items() if k not in TARGET_KEYS}
    merged.update(config)

    spec: dict[str, Any] = {"display_name": str(display)}
    partition = merged.get("req_partition") or None
    queue = merged.get("req_queue") or None
    for k, v in merged.items():
        if v in ("", None) and k.startswith("req_"):
            continue  # batchspawner's "not set"
        try:
            if k in ("req_partition", "req_queue"):
                continue
            if k == "req_nprocs":
                spec["cpus"] = _count(v)
            elif k == "req_memory":
                spec["memory"] = _memory(v)
            elif k == "req_runtime":
                spec["runtime"] = _runtime(v)
            elif k == "req_ngpus":
                spec["gpus"] = _count(v)
            elif k == "req_gres":
                match = _GRES_GPU_RE.match(str(v).strip())
                if not match:
                    problems.append(
                        f"{where}: req_gres={v!r}: only 'gpu:N' converts (GPU types and "
                        "other resources are not profile fields; a node feature can go "
                        "in 'constraint')"
                    )
                    continue
                spec["gpus"] = int(match.group(1))
            elif k == "req_qos":
                spec["qos"] = str(v)
            elif k in TARGET_KEYS:
                problems.append(
                    f"{where}: {k}={v!r}: this profile targets another batch server or "
                    "cluster; a SciTeX hub submits to one cluster"
                )
            elif k in HUB_WIDE_KEYS:
                conversion.notes.append(f"{where}: {k} left out ({HUB_WIDE_KEYS[k]})")
            elif k in REFUSED_KEYS:
                problems.append(f"{where}: {k} is refused: {REFUSED_KEYS[k]}")
            else:
                problems.append(f"{where}: {k} has no SciTeX equivalent and is refused")
        except ValueError as e:
            problems.append(f"{where}: {k}: {e}")

    if partition and queue and partition != queue:
        problems.append(f"{where}: req_partition {partition!r} and req_queue {queue!r} differ")
    if partition or queue:
        spec["partition"] = str(partition or queue)
    else:
        problems.append(f"{where}: no req_partition (or req_queue): a profile names its partition")
    if "cpus" not in spec:
        spec["cpus"] = 1  # SLURM's default: one CPU per task
        conversion.notes.append(f"{where}: no req_nprocs, so cpus: 1 (SLURM's default)")
    for needed, trait in (("memory", "req_memory"), ("runtime", "req_runtime")):
        if needed not in spec and merged.get(trait) in ("", None):
            problems.append(f"{where}: no {trait}: a profile states its {needed}")

    if problems:
        conversion.problems.extend(problems)
        return None
    try:
        Profile.model_validate(spec)
    except ValidationError as e:
        for item in e.errors():
            loc = ".".join(str(p) for p in item["loc"]) or "(profile)"
            conversion.problems.append(
                f"{where}: {loc}: {item['msg'].removeprefix('Value error, ')}"
            )
        return None
    return name, spec


def convert_profiles(
    profiles: Sequence[Any],
    class_defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> Conversion:
    """Convert every profile that can be; the rest are listed in ``problems``.

    ``class_defaults`` holds class-level config by section name (``BatchSpawnerBase``,
    ``SlurmSpawner``, ``TorqueSpawner``...), as a site's config file sets it.
    """
    if isinstance(profiles, (str, bytes)) or not isinstance(profiles, Sequence):
        raise ConversionError("ProfilesSpawner.profiles must be a list of tuples")
    conversion = Conversion()
    for index, entry in enumerate(profiles):
        converted = _convert_one(index, entry, class_defaults or {}, conversion)
        if converted is None:
            continue
        name, spec = converted
        if name in conversion.profiles:
            conversion.problems.append(f"profile {name!r}: the key is used twice")
            continue
        conversion.profiles[name] = spec
    return conversion


def convert_config_file(path: str) -> Conversion:
    """Load a JupyterHub config file (it runs, as JupyterHub would run it) and
    convert its ``c.ProfilesSpawner.profiles``."""
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    try:
        config = PyFileConfigLoader(path).load_config()
    except ConfigFileNotFound:
        raise ConversionError(f"{path}: no such config file") from None
    if "profiles" not in config.ProfilesSpawner:
        raise ConversionError(f"{path}: sets no c.ProfilesSpawner.profiles")
    class_defaults: dict[str, dict[str, Any]] = {}
    for section, values in config.items():
        if isinstance(values, Mapping) and section != "ProfilesSpawner":
            class_defaults[section] = {k: v for k, v in values.items() if k.startswith("req_")}
    return convert_profiles(config.ProfilesSpawner.profiles, class_defaults)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scitex_spawner.wrapspawner_import",
        description="Print a JupyterHub config file's ProfilesSpawner.profiles as the "
        "profiles: section of scitex.yaml. Problems go to stderr; exit status 1 if "
        "any profile could not be converted.",
    )
    parser.add_argument("config", help="the jupyterhub_config.py that sets the profiles")
    args = parser.parse_args(argv)
    try:
        conversion = convert_config_file(args.config)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in conversion.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in conversion.problems:
        print(f"not converted: {problem}", file=sys.stderr)
    sys.stdout.write(conversion.to_yaml())
    return 1 if conversion.problems else 0


if __name__ == "__main__":
    sys.exit(main())
