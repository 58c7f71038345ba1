"""What the spawner keeps in our tables: the quota gate at start, and each spawn's record.

The spawner asks :class:`SpawnRecorder` (one per spawner) two things:

- before submitting, :meth:`SpawnRecorder.admit`: the user's effective storage limit (their
  override, else the institution's ``storage_quota``), and what to do when their last
  measured usage is at or over it (``SpawnRecorder.over_quota``): start anyway and say so
  in the start's progress (``cleanup``, the default: the server refuses saves that add
  data, so the user can delete files), or refuse the start with 403 (``refuse``);
- as the start goes on, to record it: begun (profile, resources, image and its digest),
  submitted (job id), running (node), ready, ended (and why).

Everything touching the database runs in a worker thread, never on the hub's event loop.
The database is a convenience here, not a dependency: if it fails or is slow, the start
goes on (with the institution's quota) and the failure is logged. Records are written in
order, in the background, so a slow database never holds up a start.

One file (over 400 lines): the quota gate and the spawn record share the one row a start
writes, and the store interface (:class:`SpawnStore`) they both go through.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from tornado import web
from traitlets import Bool, Enum, Float, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from scitex_hub.db import get_engine, utcnow
from scitex_hub.db import store as db
from scitex_hub.institutions import Institution
from scitex_hub.profiles import ResolvedResources
from scitex_quota import format_bytes

__all__ = [
    "OVER_QUOTA_MODES",
    "Admission",
    "OverQuota",
    "QuotaState",
    "SpawnRecorder",
    "SpawnStore",
    "SqlSpawnStore",
    "cleanup_notice",
    "image_digest",
]


@dataclass(frozen=True)
class QuotaState:
    """A user's storage as the hub sees it when a server starts."""

    limit_bytes: int | None  # effective hard limit; None: no limit
    override_bytes: int | None  # the admin's override, if any (0: no limit)
    used_bytes: int | None  # last measurement of their data directory, if any
    measured_at: datetime | None
    source: str | None

    @property
    def over(self) -> bool:
        return (
            self.limit_bytes is not None
            and self.used_bytes is not None
            and self.used_bytes >= self.limit_bytes
        )


def _over_quota_facts(user: str, state: QuotaState) -> str:
    """What both over-quota messages start with: usage, limit, and when it was measured."""
    used, limit = state.used_bytes or 0, state.limit_bytes or 0
    when = f"{state.measured_at:%Y-%m-%d %H:%M} UTC" if state.measured_at else "recently"
    return (
        f"Storage quota exceeded: {user}'s data directory uses "
        f"{format_bytes(used)} of a {format_bytes(limit)} limit (measured {when})"
    )


def _contact(admins: tuple[str, ...]) -> str:
    return (
        f"your institution's administrators ({', '.join(admins)})"
        if admins
        else "your institution's administrator"
    )


def cleanup_notice(user: str, state: QuotaState, admins: tuple[str, ...] = ()) -> str:
    """Said in the progress of a start that goes on over quota (``over_quota = "cleanup"``)."""
    return (
        f"{_over_quota_facts(user, state)}. Your server starts so you can delete files or "
        "move them out of your data directory; saves that add data are refused until usage "
        f"is below the limit. Ask {_contact(admins)} to raise your quota."
    )


class OverQuota(web.HTTPError):
    """The user's data directory is at or over their hard limit and the site refuses such
    starts (``over_quota = "refuse"``): no server starts."""

    def __init__(self, user: str, state: QuotaState, admins: tuple[str, ...] = ()) -> None:
        message = (
            f"{_over_quota_facts(user, state)}, so no server can start. Ask {_contact(admins)} "
            "to raise your quota or to free space for you; once usage is below the limit you "
            "can start again."
        )
        super().__init__(403, reason=message, log_message=message)


@dataclass(frozen=True)
class Admission:
    """What the quota gate decided for one start."""

    limit_bytes: int  # the limit the server enforces (0: none)
    notice: str | None = None  # for the start's progress: over quota, starting to clean up


# ---- image digests -----------------------------------------------------------------

_digests: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_digest_lock = threading.Lock()


def image_digest(path: str) -> str | None:
    """``sha256:<hex>`` of an image file (a SIF); ``None`` for a directory or no file.

    Cached by inode, size and modification time: a 1 GB image is read once per version.
    Blocking: call it from a worker thread.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _digest_lock:
        cached = _digests.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    digest = f"sha256:{sha.hexdigest()}"
    with _digest_lock:
        _digests[path] = (key, digest)
    return digest


# ---- stores ------------------------------------------------------------------------


class SpawnStore(LoggingConfigurable):
    """No database: the institution's quota applies, nothing is checked or recorded.

    The base of the stores ``SciTeXSpawner.spawn_store_class`` selects; also what a site
    without our tables uses.
    """

    def quota_state(self, user: str, institution_id: str, institution_quota: int) -> QuotaState:
        return QuotaState(
            limit_bytes=db.effective_limit(None, institution_quota),
            override_bytes=None,
            used_bytes=None,
            measured_at=None,
            source=None,
        )

    def spawn_begun(
        self, *, hub_id: str, user: str, server_name: str, started_at: datetime, **fields: Any
    ) -> int | None:
        return None

    def spawn_update(
        self, *, record_id: int | None, hub_id: str, user: str, job_id: str, **fields: Any
    ) -> None:
        return None

    def digest_of(self, image: str | None) -> str | None:
        return None


class SqlSpawnStore(SpawnStore):
    """Our tables in the hub's database (``scitex_hub.db``)."""

    db_url = Unicode(
        help="""SQLAlchemy URL of the database holding our tables: the hub's own
        (``JupyterHub.db_url``, the site file's ``hub.db_url``), which is the default.""",
    ).tag(config=True)

    record_image_digest = Bool(
        True,
        help="""Record the sha256 of each spawn's image file (read once per image version,
        in a worker thread). Off: only the image path is recorded.""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        hub = self.config.get("JupyterHub", {})
        return str(hub.get("db_url", "") or "")

    @validate("db_url")
    def _check_db_url(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip()
        if value and "://" not in value:
            raise ValueError(
                "SqlSpawnStore.db_url must be an SQLAlchemy URL such as sqlite:///path "
                "or postgresql+psycopg://user@host/db"
            )
        return value

    @property
    def engine(self) -> Engine:
        if not self.db_url:
            raise RuntimeError("SqlSpawnStore.db_url is not set")
        return get_engine(self.db_url)

    def quota_state(self, user: str, institution_id: str, institution_quota: int) -> QuotaState:
        override = db.get_override(self.engine, user)
        usage = db.latest_usage(self.engine, user, institution_id)
        override_bytes = override.limit_bytes if override is not None else None
        return QuotaState(
            limit_bytes=db.effective_limit(override_bytes, institution_quota),
            override_bytes=override_bytes,
            used_bytes=usage.used_bytes if usage else None,
            measured_at=usage.measured_at if usage else None,
            source=usage.source if usage else None,
        )

    def spawn_begun(
        self, *, hub_id: str, user: str, server_name: str, started_at: datetime, **fields: Any
    ) -> int | None:
        return db.insert_spawn(
            self.engine,
            hub_id=hub_id,
            user=user,
            server_name=server_name,
            started_at=started_at,
            **fields,
        )

    def spawn_update(
        self, *, record_id: int | None, hub_id: str, user: str, job_id: str, **fields: Any
    ) -> None:
        db.update_spawn(
            self.engine, record_id=record_id, hub_id=hub_id, user=user, job_id=job_id, **fields
        )

    def digest_of(self, image: str | None) -> str | None:
        if not image or not self.record_image_digest:
            return None
        return image_digest(image)


# ---- the spawner's side ------------------------------------------------------------


OVER_QUOTA_MODES = ("cleanup", "refuse")


class SpawnRecorder(LoggingConfigurable):
    """One spawner's quota gate at start (its limit, and what a start over it does) and
    its spawn record (scitex_spawner/records.py)."""

    over_quota = Enum(
        list(OVER_QUOTA_MODES),
        default_value="cleanup",
        help="""What a start does when the user's last measured usage is at or over their
        limit. ``cleanup``: the server starts (so the user can delete or move files), the
        start's progress says why saves are refused and whom to ask, and the server refuses
        saves that add data until usage is below the limit. ``refuse``: no server starts;
        the start fails with 403 and the same facts, and only an admin (freeing space or
        raising the quota) lets the user start again. Site file: ``quota.over_quota``.""",
    ).tag(config=True)

    admit_timeout = Float(
        10.0,
        help="""Seconds the quota check at start may take. Past it (or on any database
        error) the start goes on with the institution's quota, and a warning is logged.""",
    ).tag(config=True)

    def __init__(
        self,
        store: SpawnStore,
        *,
        hub_id: str,
        user: str,
        server_name: str,
        log: logging.Logger | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if log is not None:
            self.log = log
        self.store = store
        self.hub_id = hub_id
        self.user = user
        self.server_name = server_name
        self.record_id: int | None = None
        self.job_id = ""
        self._tail: asyncio.Future[None] | None = None

    async def admit(self, institution_id: str, institution: Institution) -> Admission:
        """The limit to give the server, and a notice when the user is over it.

        Raises :class:`OverQuota` when over the limit and ``over_quota`` is ``refuse``.
        """
        try:
            state = await asyncio.wait_for(
                asyncio.to_thread(
                    self.store.quota_state, self.user, institution_id, institution.storage_quota
                ),
                self.admit_timeout,
            )
        except Exception as e:  # noqa: BLE001 - the quota gate must never break a start
            self.log.warning(
                "Quota check for %s failed (%s); starting with %s's quota",
                self.user,
                e or type(e).__name__,
                institution_id,
            )
            return Admission(institution.storage_quota)
        if not state.over:
            return Admission(state.limit_bytes or 0)
        if self.over_quota == "refuse":
            raise OverQuota(self.user, state, institution.admins)
        # The server gets the same limit: its contents guard refuses every save that
        # adds data while usage is at or over it, and lets deletions through.
        return Admission(
            state.limit_bytes or 0, cleanup_notice(self.user, state, institution.admins)
        )

    # -- records (background, in order) ----------------------------------------------

    def _later(self, what: str, work: Callable[[], None]) -> None:
        previous = self._tail

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await asyncio.to_thread(work)
            except Exception as e:  # noqa: BLE001 - a record is history; the start goes on
                self.log.warning("Spawn record of %s (%s) not written: %s", self.user, what, e)

        self._tail = asyncio.ensure_future(run())

    async def flush(self) -> None:
        """Wait until every record scheduled so far is written (or has failed)."""
        if self._tail is not None:
            await asyncio.wait([self._tail])

    def begun(
        self,
        institution: str,
        resources: ResolvedResources,
        image: str | None,
        started_at: datetime | None = None,
    ) -> None:
        """A start is about to submit its job: the recipe (``image``: None if uncontained)."""
        self.job_id = ""
        when = started_at or utcnow()

        def work() -> None:
            # In order with the previous spawn's updates, which still use its record.
            self.record_id = None
            self.record_id = self.store.spawn_begun(
                hub_id=self.hub_id,
                user=self.user,
                server_name=self.server_name,
                started_at=when,
                institution=institution,
                profile=resources.profile,
                resources=resources.as_dict(),
                image=image,
                image_digest=self.store.digest_of(image),
            )

        self._later("begun", work)

    def update(self, what: str, job_id: str = "", **fields: Any) -> None:
        if job_id:
            self.job_id = job_id
        job = job_id or self.job_id

        def work() -> None:
            self.store.spawn_update(
                record_id=self.record_id,
                hub_id=self.hub_id,
                user=self.user,
                job_id=job,
                **fields,
            )

        self._later(what, work)

    def submitted(self, job_id: str) -> None:
        self.update("submitted", job_id=job_id, submitted_at=utcnow())

    def running(self, node: str) -> None:
        self.update("running", node=node)

    def ready(self) -> None:
        self.update("ready", ready_at=utcnow())

    def ended(self, reason: str, job_id: str = "") -> None:
        """The server or its start ended; the first reason recorded stays."""
        self.update("ended", job_id=job_id, ended_at=utcnow(), end_reason=reason[:2000])


def end_reason(error: BaseException) -> str:
    """What to record for a start that failed with ``error``."""
    if isinstance(error, asyncio.CancelledError):
        return "start cancelled"
    if isinstance(error, web.HTTPError):
        return str(error.reason or error.log_message or error)
    return f"{type(error).__name__}: {error}"
