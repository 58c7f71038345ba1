"""What a usage measurement is, and the base class every backend derives from.

A backend measures in the background, on a timer, and keeps the latest value; asking it
for usage returns that value. Only the very first call, before any measurement has
finished, waits (for the first measurement, which runs off the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any, ClassVar

from traitlets import Float, TraitError, Type, Unicode, validate
from traitlets.config import LoggingConfigurable

# The measurement itself is shared with the hub: see scitex_quota.
from scitex_quota.command import CommandResult, CommandRunner, QuotaCommandError, run_command
from scitex_quota.usage import LIMIT_ENV, ProjectUsage, Usage, limit_from_environ

__all__ = [
    "BACKEND_ALIASES",
    "LIMIT_ENV",
    "CommandResult",
    "CommandRunner",
    "ProjectUsage",
    "QuotaBackend",
    "QuotaBackendType",
    "QuotaCommandError",
    "Usage",
    "UsageUnavailable",
    "limit_from_environ",
    "run_command",
]


class UsageUnavailable(Exception):
    """No measurement is available yet (still running, or the backend failed)."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def consume_result(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's outcome as seen: its waiters may all have timed out."""
    if not future.cancelled():
        future.exception()


class QuotaBackend(LoggingConfigurable):
    """Measures a user's tree in the background and answers with the latest value.

    Subclasses implement :meth:`measure` (the slow part; it must not block the event
    loop). :meth:`usage` never measures: it returns the cached value, and only before
    the first measurement has finished does it wait for that one.
    """

    #: The name reported as ``source`` in ``GET scitex/api/quota``.
    source: ClassVar[str] = "unknown"

    root = Unicode(
        help="""The directory tree whose usage is measured (the user's data directory).

        Set by the extension from ``SciTeXExtension.user_root``.""",
    )

    projects_dir = Unicode(
        "projects",
        help="""Directory under the root whose top-level subdirectories are reported as
        projects, each with its own usage. Set by the extension from its ``projects_dir``.""",
    )

    interval = Float(
        60.0,
        config=True,
        help="""Seconds between the start of one measurement and the next (at least;
        see ``max_duty_cycle``).""",
    )

    max_duty_cycle = Float(
        0.1,
        config=True,
        help="""Largest fraction of wall-clock time spent measuring. After a measurement
        that took ``d`` seconds the next one starts no sooner than
        ``d / max_duty_cycle`` seconds after the previous start, so a huge tree is
        walked less often instead of all the time.""",
    )

    @validate("interval")
    def _check_interval(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"{type(self).__name__}.interval must be > 0 seconds, got {value}")
        return value

    @validate("max_duty_cycle")
    def _check_duty(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 < value <= 1:
            raise TraitError(f"{type(self).__name__}.max_duty_cycle must be in (0, 1], got {value}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._latest: Usage | None = None
        self._last_error: BaseException | None = None
        self._inflight: asyncio.Future[Usage] | None = None
        self._timer: asyncio.Task[None] | None = None

    # -- what subclasses implement -------------------------------------------------

    async def measure(self) -> Usage:
        """Measure now. Slow; must run its blocking work off the event loop."""
        raise NotImplementedError

    # -- the cache -----------------------------------------------------------------

    @property
    def latest(self) -> Usage | None:
        """The last successful measurement, or ``None`` before the first one."""
        return self._latest

    async def usage(self) -> Usage:
        """The latest measurement; waits only for the very first one.

        Raises :class:`UsageUnavailable` when no measurement has succeeded and none is
        running (the last attempt failed; the timer will try again).
        """
        latest = self._latest
        if latest is not None:
            return latest
        self.start()
        inflight = self._inflight
        if inflight is None or inflight.done():
            if self._last_error is not None:
                raise UsageUnavailable(
                    f"storage usage could not be measured: {self._last_error}",
                    retry_after=self.interval,
                )
            inflight = self._begin()
        try:
            return await asyncio.shield(inflight)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise UsageUnavailable(
                f"storage usage could not be measured: {e}", retry_after=self.interval
            ) from e

    async def refresh(self) -> Usage:
        """Measure now (joining a measurement already running) and return the result."""
        inflight = self._inflight
        if inflight is None or inflight.done():
            inflight = self._begin()
        return await asyncio.shield(inflight)

    def _begin(self) -> asyncio.Future[Usage]:
        self._inflight = asyncio.ensure_future(self._measure_and_store())
        self._inflight.add_done_callback(consume_result)
        return self._inflight

    async def _measure_and_store(self) -> Usage:
        started = time.monotonic()
        try:
            usage = await self.measure()
        except Exception as e:
            self._last_error = e
            self.log.error("Measuring storage usage of %s failed: %s", self.root, e)
            raise
        usage = dataclasses.replace(usage, started=started, finished=time.monotonic())
        self._latest = usage
        self._last_error = None
        return usage

    # -- the timer -----------------------------------------------------------------

    def start(self) -> None:
        """Start the background timer (idempotent; needs a running event loop)."""
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(
                self._run(), name=f"scitex-quota-{self.source}"
            )

    async def stop(self) -> None:
        """Stop the timer and any measurement in progress."""
        for task in (self._timer, self._inflight):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._timer, self._inflight):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._timer = None

    def next_delay(self, took: float) -> float:
        """Seconds to sleep after a measurement that took ``took`` seconds."""
        return max(self.interval, took / self.max_duty_cycle) - took

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                # Errors are logged and kept by _measure_and_store; the timer goes on.
                await self.refresh()
            await asyncio.sleep(max(0.0, self.next_delay(time.monotonic() - started)))


#: Short names accepted by ``SciTeXExtension.quota_backend_class``.
BACKEND_ALIASES: dict[str, str] = {
    "scan": "scitex_server_ext.quota.scan.ScanQuotaBackend",
    "xfs": "scitex_server_ext.quota.xfs.XfsQuotaBackend",
    "lustre": "scitex_server_ext.quota.lustre.LustreQuotaBackend",
}


class QuotaBackendType(Type):
    """A ``Type`` trait that also accepts the short names ``scan``, ``xfs`` and ``lustre``."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, str):
            value = BACKEND_ALIASES.get(value.strip().lower(), value)
        return super().validate(obj, value)
