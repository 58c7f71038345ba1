"""Resource profiles: what admins offer, and what a user may pick inside them.

Admins declare profiles (typed, validated when the hub starts). A user's request
(from the options form or a REST ``user_options`` body) is resolved against the
profiles their institution allows into a :class:`ResolvedResources`; that object,
and nothing else the user sent, reaches the batch script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .units import format_duration, format_size, parse_duration, parse_size

# SLURM names (partitions, accounts, QoS, features) that are safe in an
# ``#SBATCH`` line and on a command line.
SLURM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Node-feature constraints as SLURM takes them (``gpu&a100``, ``intel|amd``).
CONSTRAINT_RE = re.compile(r"^[A-Za-z0-9_.-]+(?:[&|][A-Za-z0-9_.-]+)*\Z")
PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")

# The keys a user may send. Anything else (``cmd``, ``prologue``, ``options``,
# ``homedir``, ``keepvars``...) is refused rather than ignored.
USER_OPTION_KEYS = frozenset({"profile", "cpus", "memory", "runtime", "gpus", "partition"})
MAX_OPTION_LENGTH = 64
# What a string option may contain at all, before its own parsing: no
# whitespace, quotes, newlines or shell metacharacters.
_SAFE_OPTION_RE = re.compile(r"^[A-Za-z0-9_.:-]*\Z")


# Lower bounds when an admin gives a range without ``min``.
MIN_MEMORY_BYTES = 512 * 1024**2
MIN_RUNTIME_SECONDS = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _slurm_name(value: str, what: str) -> str:
    if not SLURM_NAME_RE.match(value):
        raise ValueError(f"{what} {value!r} is not a valid SLURM name")
    return value


class _Range(_Strict):
    """A value users may choose between ``min`` and ``max`` (a plain value fixes it).

    Subclasses say how a value is written and read, and how low users may go
    when an admin gives a range without ``min``.
    """

    default: int
    min: int | None = None
    max: int | None = None

    # The lower bound when the admin gives no ``min`` (never above the default).
    implicit_min: ClassVar[int] = 0

    @staticmethod
    def parse(value: Any) -> int:
        raise NotImplementedError

    @staticmethod
    def format(value: int) -> str:
        return str(value)

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            parsed = cls.parse(value)
            return {"default": parsed, "min": parsed, "max": parsed}
        if isinstance(value, dict):
            return {k: cls.parse(v) if v is not None else None for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_order(self) -> _Range:
        if self.lowest > self.default or self.default > self.highest:
            raise ValueError(
                f"default {self.format(self.default)} is outside "
                f"[{self.format(self.lowest)}, {self.format(self.highest)}]"
            )
        return self

    @property
    def lowest(self) -> int:
        return min(self.implicit_min, self.default) if self.min is None else self.min

    @property
    def highest(self) -> int:
        return self.default if self.max is None else self.max

    @property
    def adjustable(self) -> bool:
        return self.lowest != self.highest


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number of at least 0, got {value!r}")
    return value


class IntRange(_Range):
    """A count (CPUs, GPUs); without ``min`` users may go down to one (zero for GPUs)."""

    implicit_min: ClassVar[int] = 1

    @staticmethod
    def parse(value: Any) -> int:
        return _count(value)


class SizeRange(_Range):
    """A memory size in bytes, written ``4GiB``."""

    implicit_min: ClassVar[int] = MIN_MEMORY_BYTES

    @staticmethod
    def parse(value: Any) -> int:
        return parse_size(value)

    @staticmethod
    def format(value: int) -> str:
        return format_size(value)

    @model_validator(mode="after")
    def _useful(self) -> SizeRange:
        if self.default < 1024**2:
            raise ValueError("memory below 1MiB is not a useful default")
        return self


class DurationRange(_Range):
    """A wall-time in seconds, written ``04:00:00``."""

    implicit_min: ClassVar[int] = MIN_RUNTIME_SECONDS

    @staticmethod
    def parse(value: Any) -> int:
        return parse_duration(value)

    @staticmethod
    def format(value: int) -> str:
        return format_duration(value)


class Profile(_Strict):
    """One resource profile as an admin declares it in ``scitex.yaml``."""

    display_name: str = Field(min_length=1, max_length=200)
    description: str = ""
    partitions: tuple[str, ...] = Field(min_length=1)
    cpus: IntRange
    memory: SizeRange
    runtime: DurationRange
    gpus: IntRange = IntRange(default=0)
    image: str | None = None
    constraint: str | None = None
    qos: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _partition_alias(cls, value: Any) -> Any:
        # ``partition: debug`` is the common case; ``partitions: [a, b]`` offers a choice.
        if isinstance(value, dict) and "partition" in value:
            value = dict(value)
            if "partitions" in value:
                raise ValueError("give either 'partition' or 'partitions', not both")
            partition = value.pop("partition")
            value["partitions"] = [partition] if isinstance(partition, str) else partition
        return value

    @field_validator("partitions")
    @classmethod
    def _check_partitions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _slurm_name(name, "partition")
        if len(set(value)) != len(value):
            raise ValueError("partitions are listed twice")
        return value

    @field_validator("qos")
    @classmethod
    def _check_qos(cls, value: str | None) -> str | None:
        return None if value is None else _slurm_name(value, "qos")

    @field_validator("constraint")
    @classmethod
    def _check_constraint(cls, value: str | None) -> str | None:
        if value is not None and not CONSTRAINT_RE.match(value):
            raise ValueError(f"constraint {value!r} is not a SLURM feature expression")
        return value

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or re.search(r"\s", value)):
            raise ValueError(f"image {value!r} must be an absolute path without spaces")
        return value


def load_profiles(raw: Mapping[str, Any]) -> dict[str, Profile]:
    """Validate a ``{name: profile}`` mapping; errors name the profile and field."""
    profiles: dict[str, Profile] = {}
    for name, spec in raw.items():
        if not PROFILE_NAME_RE.match(name):
            raise ValueError(f"profile name {name!r}: use lowercase letters, digits, - and _")
        profiles[name] = spec if isinstance(spec, Profile) else Profile.model_validate(spec)
    return profiles


@dataclass(frozen=True)
class ResolvedResources:
    """A user's validated choice: the only thing that reaches the batch script."""

    profile: str
    partition: str
    cpus: int
    memory_bytes: int
    runtime_seconds: int
    gpus: int
    account: str | None
    image: str | None
    constraint: str | None
    qos: str | None

    def batch_fields(self) -> dict[str, Any]:
        """The resource fields of a :class:`~scitex_hub.script.BatchJobSpec`."""
        return {
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "constraint": self.constraint,
            "cpus": self.cpus,
            "memory_mib": max(1, self.memory_bytes // 1024**2),
            "time_limit_seconds": self.runtime_seconds,
            "gpus": self.gpus,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "partition": self.partition,
            "cpus": self.cpus,
            "memory": format_size(self.memory_bytes),
            "runtime": format_duration(self.runtime_seconds),
            "gpus": self.gpus,
            "account": self.account,
            "image": self.image,
            "constraint": self.constraint,
            "qos": self.qos,
        }


class UserOptionsError(ValueError):
    """A user's request that cannot be honoured; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_option_string(field: str, value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_OPTION_LENGTH:
            raise UserOptionsError(field, f"longer than {MAX_OPTION_LENGTH} characters")
        if "\n" in value or "\r" in value:
            raise UserOptionsError(field, "newlines are not allowed")
        if not _SAFE_OPTION_RE.match(value):
            raise UserOptionsError(
                field, "only letters, digits and . _ : - are allowed (no spaces or shell syntax)"
            )
    return value


def _choose_int(field: str, value: Any, allowed: IntRange) -> int:
    if value is None:
        return allowed.default
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserOptionsError(field, f"expected a whole number, got {type(value).__name__}")
    if not allowed.lowest <= value <= allowed.highest:
        raise UserOptionsError(
            field, f"{value} is outside the allowed range {allowed.lowest} to {allowed.highest}"
        )
    return value


def _choose_size(field: str, value: Any, allowed: SizeRange) -> int:
    if value is None:
        return allowed.default
    try:
        size = parse_size(value)
    except ValueError as e:
        raise UserOptionsError(field, str(e)) from None
    if not allowed.lowest <= size <= allowed.highest:
        raise UserOptionsError(
            field,
            f"{format_size(size)} is outside the allowed range "
            f"{format_size(allowed.lowest)} to {format_size(allowed.highest)}",
        )
    return size


def _choose_duration(field: str, value: Any, allowed: DurationRange) -> int:
    if value is None:
        return allowed.default
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise UserOptionsError(field, str(e)) from None
    if not allowed.lowest <= seconds <= allowed.highest:
        raise UserOptionsError(
            field,
            f"{format_duration(seconds)} is outside the allowed range "
            f"{format_duration(allowed.lowest)} to {format_duration(allowed.highest)}",
        )
    return seconds


def resolve_user_options(
    options: Mapping[str, Any] | None,
    profiles: Mapping[str, Profile],
    allowed_profiles: list[str] | tuple[str, ...],
    account: str | None = None,
) -> ResolvedResources:
    """Turn a user's raw options into validated resources, or raise :class:`UserOptionsError`.

    ``allowed_profiles`` are the profiles the user's institution may use, in
    order; the first is the default when the user names none.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - USER_OPTION_KEYS)
    if unknown:
        raise UserOptionsError(
            unknown[0],
            f"unknown option (allowed: {', '.join(sorted(USER_OPTION_KEYS))})",
        )
    for field, value in options.items():
        _check_option_string(field, value)

    usable = [name for name in allowed_profiles if name in profiles]
    if not usable:
        raise UserOptionsError("profile", "your institution has no profiles you may use")
    name = options.get("profile") or usable[0]
    if not isinstance(name, str):
        raise UserOptionsError("profile", "expected a profile name")
    if name not in profiles:
        raise UserOptionsError("profile", f"no profile named {name!r}")
    if name not in usable:
        raise UserOptionsError("profile", f"profile {name!r} is not available to your institution")
    profile = profiles[name]

    partition = options.get("partition") or profile.partitions[0]
    if partition not in profile.partitions:
        raise UserOptionsError(
            "partition",
            f"{partition!r} is not offered by profile {name!r} "
            f"(choose from {', '.join(profile.partitions)})",
        )
    return ResolvedResources(
        profile=name,
        partition=partition,
        cpus=_choose_int("cpus", options.get("cpus"), profile.cpus),
        memory_bytes=_choose_size("memory", options.get("memory"), profile.memory),
        runtime_seconds=_choose_duration("runtime", options.get("runtime"), profile.runtime),
        gpus=_choose_int("gpus", options.get("gpus"), profile.gpus),
        account=account,
        image=profile.image,
        constraint=profile.constraint,
        qos=profile.qos,
    )
