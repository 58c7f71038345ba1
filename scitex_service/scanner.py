"""The usage scanner: each ``<data_root>/<institution>/<user>``, once per interval.

It runs in a thread of its own (a walk is blocking file-system work; the service's event
loop never waits for it) and writes each measurement to ``scitex_usage``, where the
admin API and the spawner's start-up check read it. The walk is
:func:`scitex_quota.scan.scan_tree`: allocated space, as ``du`` and filesystem quotas
count it, each user's tree on its own filesystem only, walked from directory descriptors
and never through a symlink (the service runs as root; users own what it walks). A
measurement with unreadable parts is stored with its error count: it is *incomplete*.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from traitlets import Float, Integer, TraitError, validate
from traitlets.config import LoggingConfigurable

from scitex_hub.db import store as db
from scitex_hub.db.models import utcnow
from scitex_hub.institutions import USERNAME_RE
from scitex_quota import ScanCancelled, scan_tree

__all__ = ["UsageScanner", "user_dirs"]


def user_dirs(data_root: str, institution: str) -> Iterator[tuple[str, str]]:
    """``(user, path)`` for each user directory under ``<data_root>/<institution>``.

    Only real directories named like a user count (no symlinks, no stray files).
    """
    base = os.path.join(data_root, institution)
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if not USERNAME_RE.match(entry.name):
            continue
        try:
            if not stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode):
                continue
        except OSError:
            continue
        yield entry.name, entry.path


class UsageScanner(LoggingConfigurable):
    """Measures every user's data directory, in a background thread, every ``interval``."""

    interval = Float(
        600.0,
        help="""Seconds from the start of one pass over all users to the start of the next
        (a pass that takes longer is followed by the next at once). The site file's
        ``service.usage_scan_interval`` (written here by ``apply_services``).""",
    ).tag(config=True)

    retention_days = Integer(
        90,
        help="""Days measurements are kept (each user's newest is always kept). The site
        file's ``service.usage_retention_days`` (written here by ``apply_services``).""",
    ).tag(config=True)

    threads = Integer(
        1,
        help="""Threads walking one user's tree (top-level directories in parallel): 1 on
        local disks, 4-8 on network filesystems where each stat waits on the server.""",
    ).tag(config=True)

    batch = Integer(
        100, help="Measurements written to the database per transaction (at most)."
    ).tag(config=True)

    @validate("interval")
    def _check_interval(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"UsageScanner.interval must be > 0 seconds, got {value}")
        return value

    @validate("threads", "batch", "retention_days")
    def _check_positive(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"UsageScanner.{proposal['trait'].name} must be >= 1, got {value}")
        return value

    def __init__(
        self,
        engine: Engine,
        data_root: str,
        institutions: Callable[[], Iterable[str]] | Iterable[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.data_root = data_root
        self._institutions = institutions
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._passes = 0
        self._passes_cv = threading.Condition()

    # -- one pass ------------------------------------------------------------------

    def institution_ids(self) -> list[str]:
        source = self._institutions
        return sorted(source() if callable(source) else source)

    def scan_once(self) -> int:
        """Measure every user once; returns how many were measured. Blocking."""
        pending: list[db.UsageRow] = []
        measured = 0
        for institution in self.institution_ids():
            for user, path in user_dirs(self.data_root, institution):
                if self._stop.is_set():
                    break
                try:
                    result = scan_tree(path, threads=self.threads, cancel=self._stop)
                except ScanCancelled:
                    break
                except OSError as e:
                    self.log.warning("Usage of %s (%s) not measured: %s", user, path, e)
                    continue
                if result.errors:
                    self.log.warning(
                        "Usage of %s: %d entries could not be read: the measurement is "
                        "incomplete (a lower bound; errors > 0 in scitex_usage)",
                        user,
                        result.errors,
                    )
                pending.append(
                    db.UsageRow(
                        user=user,
                        institution=institution,
                        used_bytes=result.used_bytes,
                        measured_at=utcnow(),
                        source="scan",
                        files=result.files,
                        errors=result.errors,
                    )
                )
                measured += 1
                if len(pending) >= self.batch:
                    db.record_usage(self.engine, pending)
                    pending = []
        db.record_usage(self.engine, pending)
        return measured

    def prune(self) -> int:
        return db.prune_usage(self.engine, utcnow() - timedelta(days=self.retention_days))

    # -- the thread ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scitex-usage-scanner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def passes(self) -> int:
        """How many passes have finished (tests wait on it)."""
        return self._passes

    def wait_for_pass(self, after: int, timeout: float) -> bool:
        with self._passes_cv:
            return self._passes_cv.wait_for(lambda: self._passes > after, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                count = self.scan_once()
                pruned = self.prune()
                # Quiet while there is nobody to measure (a new site, tests).
                (self.log.info if count or pruned else self.log.debug)(
                    "Usage pass: %d users measured in %.1f s%s",
                    count,
                    time.monotonic() - started,
                    f", {pruned} old measurements pruned" if pruned else "",
                )
            except Exception:
                # A database or file-system failure: log it, try again next interval.
                self.log.exception("Usage pass failed")
            with self._passes_cv:
                self._passes += 1
                self._passes_cv.notify_all()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
