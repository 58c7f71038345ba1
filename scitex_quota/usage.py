"""What a usage measurement is, the limit the hub hands a server, and sizes for people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["LIMIT_ENV", "ProjectUsage", "Usage", "format_bytes", "limit_from_environ"]


@dataclass(frozen=True)
class ProjectUsage:
    """Usage of one top-level directory of ``<root>/projects``."""

    name: str
    used_bytes: int


@dataclass(frozen=True)
class Usage:
    """One measurement of a user's tree.

    ``used_bytes`` is allocated space (``st_blocks * 512``, as ``du`` and filesystem
    quotas count), not the sum of file lengths. ``limit_bytes`` is a hard limit the
    backend itself knows (a filesystem quota), ``None`` when it knows none.
    ``started``/``finished`` are ``time.monotonic()`` stamps of the measurement; the
    notebook server's tracker uses them to tell which writes a measurement may have missed.
    ``errors`` counts entries a walk could not read; with any, the measurement is
    :attr:`incomplete`.
    """

    used_bytes: int
    measured_at: datetime
    source: str
    projects: tuple[ProjectUsage, ...] = ()
    limit_bytes: int | None = None
    files: int | None = None
    errors: int = 0
    started: float = field(default=0.0, compare=False, repr=False)
    finished: float = field(default=0.0, compare=False, repr=False)

    @property
    def incomplete(self) -> bool:
        """Parts of the tree could not be read: ``used_bytes`` is a lower bound."""
        return self.errors > 0


#: The variable through which the hub's batch script gives the server its limit in bytes.
LIMIT_ENV = "SCITEX_QUOTA_LIMIT_BYTES"


def limit_from_environ(environ: Mapping[str, str]) -> int | None:
    """The storage limit the hub's batch script exported, in bytes (unset, empty or 0: none).

    0 means "no limit", as it does to ``xfs_quota`` and ``lfs``.
    """
    raw = environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValueError(f"${LIMIT_ENV} must be a whole number of bytes, got {raw!r}")
    return int(raw) or None


def format_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``: for messages people read."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
