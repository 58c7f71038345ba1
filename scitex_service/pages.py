"""The scitex hub service's HTML pages (server-side rendered, tornado templates).

``GET /services/scitex/`` from a browser (``Accept: text/html``): an overview for hub
admins and institution admins: institutions, usage per institution and user, the
notebook jobs running now (state and reason from one cached ``squeue``) and recent
spawns with their recipe. A plain user gets a 403 page. Everything an institution
admin sees is filtered to the institutions they administer, the same way the JSON API
filters (``APIHandler.visible``). Other clients of that URL keep the JSON index. Errors
answer with the error page (the service's one error adapter, ``APIHandler.write_error``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tornado import web

from scitex_hub.db import store as db
from scitex_hub.db.models import SpawnRecord
from scitex_hub.slurm import QueuedJob, SlurmClient, SlurmError
from scitex_hub.units import format_size

from .admin_api import IndexHandler, usage_report
from .handlers import Caller, ServiceContext, requires_admin

__all__ = ["TEMPLATE_PATH", "OverviewPage", "QueueCache", "page_handlers"]

TEMPLATE_PATH = str(Path(__file__).resolve().parent / "templates")
RECENT_SPAWNS = 30


class QueueCache:
    """One ``squeue`` for every page view within ``max_age`` seconds: page views never
    multiply the controller's load. A failed ``squeue`` is cached too (as the error)."""

    def __init__(self, client: SlurmClient | None, max_age: float = 5.0) -> None:
        self.client = client
        self.max_age = max_age
        self._at = -float("inf")
        self._jobs: dict[str, QueuedJob] = {}
        self._error: str | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[dict[str, QueuedJob], str | None]:
        """``(jobs by id, error)``; error is set when SLURM could not be asked."""
        if self.client is None:
            return {}, "this service has no SLURM client configured"
        async with self._lock:
            if time.monotonic() - self._at >= self.max_age:
                try:
                    self._jobs, self._error = await self.client.queue(), None
                except SlurmError as e:
                    self._jobs, self._error = {}, str(e)
                self._at = time.monotonic()
            return self._jobs, self._error


def _when(value: datetime | None) -> str:
    if value is None:
        return "\u2013"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(value: int | None) -> str:
    return "\u2013" if value is None else format_size(value)


def _percent(used: int | None, limit: int | None) -> int | None:
    if used is None or not limit:
        return None
    return min(100, round(100 * used / limit))


def _recipe(row: SpawnRecord) -> str:
    """The resources a spawn asked for, as one line (``cpus=2, memory=1GiB, ...``)."""
    resources = row.resources or {}
    # Profile and image have columns of their own; unset options say nothing.
    shown = [
        f"{key}={resources[key]}"
        for key in sorted(resources)
        if key not in ("profile", "image") and resources[key] not in (None, "")
    ]
    return ", ".join(shown) or "\u2013"


@dataclass
class RunningJob:
    user: str
    institution: str | None
    profile: str | None
    job_id: str | None
    state: str
    reason: str
    node: str
    since: str


class OverviewPage(IndexHandler):
    """The overview page; the JSON index (``IndexHandler``) for non-browser clients."""

    def initialize(  # type: ignore[override]
        self, context: ServiceContext, hub_auth: Any, queue: QueueCache
    ) -> None:
        super().initialize(context, hub_auth)
        self.queue = queue

    def wants_html(self) -> bool:
        return "text/html" in self.request.headers.get("Accept", "")

    def set_default_headers(self) -> None:
        if self.wants_html():
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            # Our pages run no script and load nothing from elsewhere.
            self.set_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'self'; frame-ancestors 'none'",
            )
        else:
            super().set_default_headers()

    def renders_html(self) -> bool:
        return self.wants_html()

    def not_admin(self, name: str) -> str:
        return (
            f"{name} is neither a hub admin nor an institution admin: these pages are for "
            "administrators. Your own quota and sessions are in JupyterLab's SciTeX panel."
        )

    def get_template_path(self) -> str:
        return TEMPLATE_PATH

    @web.authenticated
    async def get(self) -> None:
        if not self.wants_html():
            super().get()
            return
        await self.page()

    @requires_admin
    async def page(self) -> None:
        self.render("overview.html", **(await self.overview(self.caller())))

    async def overview(self, caller: Caller) -> dict[str, Any]:
        visible = self.visible(caller)
        institutions = {row.id: row for row in await self.db(db.list_institutions, visible)}
        usage = []
        for entry in await usage_report(self.context, visible, self.log):
            users = [
                {
                    "name": user["name"],
                    # An incomplete measurement is a lower bound: say so.
                    "used": ("at least " if user["incomplete"] else "") + _size(user["used_bytes"]),
                    "incomplete": bool(user["incomplete"]),
                    "limit": _size(user["limit_bytes"]) if user["limit_bytes"] else "no limit",
                    "percent": _percent(user["used_bytes"], user["limit_bytes"]),
                    "override": user["override"] is not None,
                    "measured_at": _when(datetime.fromisoformat(user["measured_at"]))
                    if user["measured_at"]
                    else "not measured yet",
                }
                for user in entry["users"]
            ]
            quota = entry["limit_bytes"]
            usage.append(
                {
                    "id": entry["id"],
                    "name": entry["name"],
                    "used": _size(entry["used_bytes"]),
                    "quota": _size(quota) if quota else "no limit",
                    "percent": _percent(entry["used_bytes"], (quota or 0) * max(len(users), 1)),
                    "users": users,
                }
            )
        spawns = await self.db(
            db.recent_spawns,
            institutions=caller.administers,
            limit=RECENT_SPAWNS,
        )
        return {
            "user": caller.name,
            "size": _size,
            "caller": caller,
            "institutions": [institutions[key] for key in visible if key in institutions],
            "usage": usage,
            "running": await self.running(caller),
            "queue_error": self._queue_error,
            "spawns": [
                {
                    "user": row.user,
                    "institution": row.institution or "\u2013",
                    "profile": row.profile or "\u2013",
                    "recipe": _recipe(row),
                    "image": row.image or "none (no container)",
                    "job_id": row.job_id or "\u2013",
                    "node": row.node or "\u2013",
                    "started_at": _when(row.started_at),
                    "ended": _when(row.ended_at) if row.ended_at else "running",
                    "end_reason": row.end_reason or "",
                }
                for row in spawns
            ],
        }

    _queue_error: str | None = None

    async def running(self, caller: Caller) -> list[RunningJob]:
        """Notebook servers whose spawn has not ended, with SLURM's word on each job."""
        open_spawns = [
            row
            for row in await self.db(db.recent_spawns, institutions=caller.administers, limit=500)
            if row.ended_at is None and row.job_id
        ]
        if not open_spawns:
            return []
        jobs, self._queue_error = await self.queue.get()
        running = []
        for row in open_spawns:
            job = jobs.get(row.job_id or "")
            if job is not None:
                state, reason, node = job.state, job.reason, job.node
            elif self._queue_error:
                state, reason, node = "UNKNOWN", "SLURM could not be asked", row.node or ""
            else:
                state, reason, node = "NOT IN QUEUE", "ended; not yet recorded", row.node or ""
            running.append(
                RunningJob(
                    user=row.user,
                    institution=row.institution,
                    profile=row.profile,
                    job_id=row.job_id,
                    state=state,
                    reason="\u2013" if reason in ("", "None", "(null)") else reason,
                    node=node or "\u2013",
                    since=_when(row.started_at),
                )
            )
        return running


def page_handlers(
    prefix: str, context: ServiceContext, hub_auth: Any, slurm: SlurmClient | None
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """Routes for the pages; put them before the API's (they answer the index for browsers)."""
    queue = QueueCache(slurm)
    return [
        (prefix, OverviewPage, {"context": context, "hub_auth": hub_auth, "queue": queue}),
        (prefix + "static/(.*)", web.StaticFileHandler, {"path": TEMPLATE_PATH + "/static"}),
    ]
