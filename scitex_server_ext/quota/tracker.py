"""Usage as the backend last measured it, plus the writes this server made since.

A measurement is minutes old at worst; a burst of saves between two measurements must
not slip past the limit. Every save through the contents API reserves its growth here
before writing (check and reservation happen together, under a lock) and keeps counting
it until a measurement that began after the write finished has replaced it.

Which writes a measurement may have missed, for a measurement that ran from ``started``
to ``finished`` (monotonic clock):

- finished writing before ``started``: seen by it; dropped;
- growth finished at or after ``started``: maybe seen, maybe not; kept (counted twice at
  worst, which errs towards refusing);
- shrinkage finished during the measurement: maybe seen; dropped (same reason);
- shrinkage finished after ``finished``: surely missed; kept.

Writes still in progress count when they grow the tree and not when they shrink it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scitex_quota.usage import ProjectUsage, Usage, format_bytes

from ..paths import is_inside
from .base import QuotaBackend, UsageUnavailable, consume_result

__all__ = ["QuotaExceeded", "QuotaSnapshot", "QuotaTracker", "Reservation", "format_bytes"]


class QuotaExceeded(Exception):
    """A write would take the user's tree past the storage limit."""

    def __init__(self, *, needed: int, used: int, limit: int, measured_at: datetime) -> None:
        self.needed = needed
        self.used = used
        self.limit = limit
        free = max(0, limit - used)
        super().__init__(
            f"Storage quota exceeded: this save needs {format_bytes(needed)} more, but only "
            f"{format_bytes(free)} of your {format_bytes(limit)} quota is free "
            f"({format_bytes(used)} used, measured {measured_at:%Y-%m-%d %H:%M:%S} UTC "
            "plus saves since). Nothing was written; free some space and save again."
        )


@dataclass(frozen=True)
class QuotaSnapshot:
    """What ``GET scitex/api/quota`` reports."""

    used_bytes: int
    limit_bytes: int | None
    projects: tuple[ProjectUsage, ...]
    measured_at: datetime
    source: str
    # Parts of the tree could not be read: used_bytes is a lower bound.
    incomplete: bool = False


@dataclass
class _Write:
    delta: int
    project: str | None
    done_at: float = 0.0


class Reservation:
    """Room reserved for one write: :meth:`commit` once written, :meth:`cancel` if not."""

    def __init__(self, tracker: QuotaTracker, key: int, write: _Write) -> None:
        self._tracker = tracker
        self._key = key
        self._write = write
        self._open = True

    @property
    def delta(self) -> int:
        return self._write.delta

    def commit(self) -> None:
        if self._open:
            self._open = False
            self._tracker._finish(self._key, self._write, keep=True)

    def cancel(self) -> None:
        if self._open:
            self._open = False
            self._tracker._finish(self._key, self._write, keep=False)


class QuotaTracker:
    """The quota state a server keeps: backend, limit, and writes since the last measurement."""

    def __init__(
        self,
        backend: QuotaBackend,
        *,
        limit_bytes: int | None,
        first_wait: float = 5.0,
    ) -> None:
        self.backend = backend
        self.limit_bytes = limit_bytes
        self.first_wait = first_wait
        self.root = os.path.realpath(backend.root)
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._inflight: dict[int, _Write] = {}
        self._done: list[_Write] = []
        self._block: int | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self.backend.start()

    async def stop(self) -> None:
        await self.backend.stop()

    # -- reading -------------------------------------------------------------------

    async def measured(self) -> Usage:
        """The backend's latest measurement; waits at most ``first_wait`` for the first."""
        latest = self.backend.latest
        if latest is not None:
            return latest
        first = asyncio.ensure_future(self.backend.usage())
        first.add_done_callback(consume_result)
        try:
            return await asyncio.wait_for(asyncio.shield(first), self.first_wait)
        except asyncio.TimeoutError:
            raise UsageUnavailable(
                "storage usage is still being measured (first scan since the server started)",
                retry_after=max(1.0, self.first_wait),
            ) from None

    def limit_for(self, usage: Usage | None) -> int | None:
        """The configured limit, else a hard limit the backend reported."""
        if self.limit_bytes is not None:
            return self.limit_bytes
        return usage.limit_bytes if usage is not None else None

    async def snapshot(self) -> QuotaSnapshot:
        usage = await self.measured()
        with self._lock:
            pending, per_project = self._pending_locked(usage)
        sizes = {p.name: p.used_bytes for p in usage.projects}
        for name, delta in per_project.items():
            sizes[name] = max(0, sizes.get(name, 0) + delta)
        return QuotaSnapshot(
            used_bytes=max(0, usage.used_bytes + pending),
            limit_bytes=self.limit_for(usage),
            projects=tuple(ProjectUsage(n, s) for n, s in sorted(sizes.items())),
            measured_at=usage.measured_at,
            source=usage.source,
            incomplete=usage.incomplete,
        )

    # -- writing -------------------------------------------------------------------

    def allocated(self, nbytes: int) -> int:
        """Space a file of ``nbytes`` takes: rounded up to the filesystem's block size."""
        if self._block is None:
            try:
                self._block = os.statvfs(self.root).f_frsize or 4096
            except OSError:
                self._block = 4096
        block = self._block
        return -(-nbytes // block) * block

    def counts(self, path: str | os.PathLike[str]) -> bool:
        """Whether a write to ``path`` (already resolved) lands in the measured tree."""
        return is_inside(self.root, os.fspath(path))

    async def reserve(
        self,
        path: str | os.PathLike[str],
        delta: int,
        *,
        check: int | None = None,
        growth: int | None = None,
    ) -> Reservation:
        """Reserve ``delta`` bytes for a write to ``path`` (negative: the write shrinks).

        Raises :class:`QuotaExceeded` when ``growth > 0`` and ``used + check > limit``.
        ``check`` (default ``delta``) is what the write adds to the usage counted now,
        ``growth`` (default ``check``) what the whole operation adds to the tree as it
        was before it began. They differ for a chunk of an upload that will replace an
        existing file: its earlier chunks are already counted, the old file is subtracted
        only at the end. An operation that does not grow the tree is always let through,
        so a user over quota can still shrink files. Raises :class:`UsageUnavailable`
        when a limit is set and no measurement exists yet.
        """
        check = delta if check is None else check
        growth = check if growth is None else growth
        usage: Usage | None = None
        if growth > 0:
            if self.limit_bytes is not None:
                usage = await self.measured()
            else:
                # Only a filesystem quota can set the limit then, and it is known once
                # measured; until then the filesystem enforces it by itself (EDQUOT).
                usage = self.backend.latest
        limit = self.limit_for(usage)
        write = _Write(delta=delta, project=self._project_of(path))
        with self._lock:
            if usage is not None and limit is not None:
                pending, _ = self._pending_locked(usage)
                used = usage.used_bytes + pending
                if used + check > limit:
                    # Reported against the tree as it was before the operation began.
                    raise QuotaExceeded(
                        needed=growth,
                        used=used + check - growth,
                        limit=limit,
                        measured_at=usage.measured_at,
                    )
            key = next(self._keys)
            self._inflight[key] = write
        return Reservation(self, key, write)

    def record(self, path: str | os.PathLike[str], delta: int) -> None:
        """Count a change already made (e.g. the old file an upload replaced)."""
        self._finish(None, _Write(delta=delta, project=self._project_of(path)), keep=True)

    # -- internals -----------------------------------------------------------------

    def _finish(self, key: int | None, write: _Write, *, keep: bool) -> None:
        with self._lock:
            if key is not None:
                self._inflight.pop(key, None)
            if keep and write.delta:
                write.done_at = time.monotonic()
                self._done.append(write)

    def _pending_locked(self, usage: Usage) -> tuple[int, dict[str, int]]:
        kept = [
            w
            for w in self._done
            if w.done_at >= usage.started and (w.delta > 0 or w.done_at > usage.finished)
        ]
        self._done = kept
        per_project: dict[str, int] = {}
        total = 0
        for w in itertools.chain(kept, (w for w in self._inflight.values() if w.delta > 0)):
            total += w.delta
            if w.project is not None:
                per_project[w.project] = per_project.get(w.project, 0) + w.delta
        return total, per_project

    def _project_of(self, path: str | os.PathLike[str]) -> str | None:
        try:
            rel = Path(os.fspath(path)).relative_to(self.root)
        except ValueError:
            return None
        parts = rel.parts
        if len(parts) >= 3 and parts[0] == self.backend.projects_dir:
            return parts[1]
        return None
