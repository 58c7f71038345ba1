"""Parsing and formatting of the sizes and durations that profiles and users give.

Strict on purpose: anything that is not plainly a size or a duration is refused,
so nothing but digits and a unit ever reaches a batch script.
"""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^(\d{1,12})\s?([KMGT]?)(i?B?)\Z", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

_DURATION_RE = re.compile(r"^(?:(\d{1,3})-)?(\d{1,3}):(\d{2}):(\d{2})\Z")


def parse_size(value: object) -> int:
    """A size in bytes from ``4GiB``, ``4G``, ``512MiB``, ``1024`` (bytes) or an int.

    Units are binary (SLURM's ``--mem=4G`` means 4 GiB), whichever spelling is used.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4GiB, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 4GiB, got {type(value).__name__}")
    match = _SIZE_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a size (examples: 512MiB, 4GiB, 100GiB)")
    number, unit, _suffix = match.groups()
    return int(number) * _SIZE_FACTORS[unit.upper()]


def format_size(num_bytes: int) -> str:
    """The shortest exact binary spelling: 4294967296 -> '4GiB'."""
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_FACTORS[unit]
        if num_bytes >= factor and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}iB"
    return f"{num_bytes}B"


def parse_duration(value: object) -> int:
    """Seconds from ``[D-]HH:MM:SS`` or an int number of minutes (SLURM's bare number)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 04:00:00, not a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a duration must be positive")
        return value * 60
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 04:00:00, got {type(value).__name__}")
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration (use HH:MM:SS or D-HH:MM:SS)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"{value!r} is not a duration: minutes and seconds go up to 59")
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError("a duration must be positive")
    return total


def format_duration(seconds: int) -> str:
    """SLURM's ``--time`` spelling: ``HH:MM:SS``, or ``D-HH:MM:SS`` past a day."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"
