"""The service's JSON API under ``/services/scitex/``: who you are, institutions, usage,
per-user quota overrides and spawn records. Who may call what: :mod:`.handlers`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

from tornado import web

from scitex_hub.db import store as db
from scitex_hub.db.models import MAX_BYTES, QuotaOverride, SpawnRecord
from scitex_hub.institutions import USERNAME_RE, InstitutionDirectory

from .handlers import (
    APIError,
    APIHandler,
    Caller,
    ServiceContext,
    admin_refusal,
    iso,
    requires_admin,
)
from .hubapi import HubAPIError

__all__ = ["api_handlers", "parse_limit_body", "usage_report"]

MAX_SPAWNS = 500


def _override_model(row: QuotaOverride | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"limit_bytes": row.limit_bytes, "set_by": row.set_by, "set_at": iso(row.set_at)}


async def usage_report(
    context: ServiceContext, visible: list[str], log: logging.Logger
) -> list[dict[str, Any]]:
    """Used and limit bytes per institution and per user (members without a
    measurement included), for the API and the pages alike."""
    latest = await asyncio.to_thread(db.latest_usage_of, context.engine, visible)
    members: dict[str, list[str]] = {}
    for key in visible:
        try:
            members[key] = await context.directory.group_members(key)
        except HubAPIError as e:
            # The measurements still answer; users without one are then missing.
            log.warning("Members of %s unknown: %s", key, e)
            members[key] = []
    names = {u for key in visible for u in (*latest[key], *members[key])}
    overrides = await asyncio.to_thread(db.overrides_of, context.engine, names)
    report = []
    for key in visible:
        inst = context.institutions[key]
        users: list[dict[str, Any]] = []
        for name in sorted({*latest[key], *members[key]}):
            row = latest[key].get(name)
            override = overrides.get(name)
            users.append(
                {
                    "name": name,
                    "used_bytes": row.used_bytes if row else None,
                    "limit_bytes": db.effective_limit(
                        override.limit_bytes if override else None, inst.storage_quota
                    ),
                    "override": _override_model(override),
                    "measured_at": iso(row.measured_at) if row else None,
                    "source": row.source if row else None,
                    # Parts of the tree could not be read: used_bytes is a lower bound.
                    "incomplete": bool(row.errors) if row else None,
                }
            )
        report.append(
            {
                "id": key,
                "name": inst.name,
                "used_bytes": sum(u["used_bytes"] or 0 for u in users),
                # What each user gets unless an admin set an override.
                "limit_bytes": inst.storage_quota or None,
                "users": users,
            }
        )
    return report


class IndexHandler(APIHandler):
    """``GET /services/scitex/``: who you are here, and the API. Browsers sign in here."""

    @web.authenticated
    def get(self) -> None:
        caller = self.caller()
        self.send(
            {
                "user": caller.name,
                "role": caller.role,
                "institutions": self.visible(caller) if caller.role != "user" else [],
                "api": [
                    "api/usage",
                    "api/institutions",
                    "api/users/{name}/quota",
                    "api/spawns?user={name}",
                ],
            }
        )


class InstitutionsHandler(APIHandler):
    @requires_admin
    async def get(self) -> None:
        rows = await self.db(db.list_institutions, self.visible(self.caller()))
        self.send(
            {
                "institutions": [
                    {
                        "id": row.id,
                        "name": row.name,
                        "limit_bytes": row.storage_quota_bytes or None,
                        "admins": list(row.admins),
                        "slurm_account": row.slurm_account,
                        "gitea_org": row.gitea_org,
                        "synced_at": iso(row.synced_at),
                    }
                    for row in rows
                ]
            }
        )


class UsageHandler(APIHandler):
    """``GET api/usage``: used and limit per institution and per user."""

    @requires_admin
    async def get(self) -> None:
        report = await usage_report(self.context, self.visible(self.caller()), self.log)
        self.send({"institutions": report})


class UserQuotaHandler(APIHandler):
    """``GET/PUT/DELETE api/users/{name}/quota``: a user's override of their institution's quota."""

    async def _target(self, name: str, *, reading: bool) -> tuple[Caller, str]:
        caller = self.caller()
        if not USERNAME_RE.match(name):
            raise APIError(400, f"{name!r} is not a valid user name")
        # Not @requires_admin: a user may read their own.
        if caller.role == "user" and not (reading and name == caller.name):
            what = "read other users' quotas" if reading else "change quotas"
            raise APIError(403, admin_refusal(caller.name, f"only they can {what}"))
        model = await self.hub_user(name)
        if model is None:
            raise APIError(404, f"No user {name!r} on this hub")
        institution = InstitutionDirectory(self.context.institutions).of_groups(
            model.get("groups", [])
        )
        if institution is None:
            raise APIError(404, f"{name} belongs to no institution served by this hub")
        if caller.role != "user" and not caller.may_administer(institution):
            raise APIError(
                403,
                f"{caller.name} administers {', '.join(caller.administers or ())}; "
                f"{name} belongs to {institution}",
            )
        return caller, institution

    async def _model(self, name: str, institution: str) -> dict[str, Any]:
        override = await self.db(db.get_override, name)
        usage = await self.db(db.latest_usage, name, institution)
        quota = self.context.institutions[institution].storage_quota
        return {
            "user": name,
            "institution": institution,
            "limit_bytes": db.effective_limit(override.limit_bytes if override else None, quota),
            "institution_limit_bytes": quota or None,
            "override": _override_model(override),
            "used_bytes": usage.used_bytes if usage else None,
            "measured_at": iso(usage.measured_at) if usage else None,
            "source": usage.source if usage else None,
            "incomplete": bool(usage.errors) if usage else None,
        }

    async def get(self, name: str) -> None:
        _, institution = await self._target(name, reading=True)
        self.send(await self._model(name, institution))

    async def put(self, name: str) -> None:
        caller, institution = await self._target(name, reading=False)
        limit = parse_limit_body(self.request.body)
        await self.db(db.set_override, name, limit, set_by=caller.name, institution=institution)
        self.log.info("Quota of %s set to %d bytes by %s", name, limit, caller.name)
        self.send(await self._model(name, institution))

    async def delete(self, name: str) -> None:
        caller, _ = await self._target(name, reading=False)
        if not await self.db(db.delete_override, name):
            raise APIError(404, f"{name} has no quota override")
        self.log.info("Quota override of %s removed by %s", name, caller.name)
        self.set_status(204)
        self.finish()


def parse_limit_body(body: bytes) -> int:
    """``{"limit_bytes": <int>}`` -> the int; 400 with the reason otherwise."""
    usage = 'send {"limit_bytes": <whole number of bytes>} (0: no limit)'
    try:
        data = json.loads(body or b"")
    except ValueError:
        raise APIError(400, f"The body is not JSON: {usage}") from None
    if not isinstance(data, dict) or "limit_bytes" not in data:
        raise APIError(400, f"No limit_bytes in the body: {usage}")
    unknown = sorted(set(data) - {"limit_bytes"})
    if unknown:
        raise APIError(400, f"Unknown keys {', '.join(unknown)}: {usage}")
    value = data["limit_bytes"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise APIError(400, f"limit_bytes must be a whole number of bytes, got {value!r}")
    if value < 0:
        raise APIError(400, f"limit_bytes cannot be negative, got {value}")
    if value > MAX_BYTES:
        raise APIError(400, f"limit_bytes is too large (at most {MAX_BYTES})")
    return value


def _spawn_model(row: SpawnRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "hub_id": row.hub_id,
        "user": row.user,
        "server_name": row.server_name,
        "institution": row.institution,
        "profile": row.profile,
        "resources": row.resources,
        "image": row.image,
        "image_digest": row.image_digest,
        "job_id": row.job_id,
        "node": row.node,
        "started_at": iso(row.started_at),
        "submitted_at": iso(row.submitted_at),
        "ready_at": iso(row.ready_at),
        "ended_at": iso(row.ended_at),
        "end_reason": row.end_reason,
    }


class SpawnsHandler(APIHandler):
    """``GET api/spawns?user=&limit=``: recent spawn records with their recipe, newest first."""

    async def get(self) -> None:
        caller = self.caller()
        user = self.get_argument("user", None) or None
        if user is not None and not USERNAME_RE.match(user):
            raise APIError(400, f"{user!r} is not a valid user name")
        raw_limit = self.get_argument("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_SPAWNS:
            raise APIError(400, f"limit must be a whole number from 1 to {MAX_SPAWNS}")
        institutions: Iterable[str] | None = None
        # Not @requires_admin: a user may read their own records, nobody else's.
        if caller.role == "user":
            if user not in (None, caller.name):
                raise APIError(403, f"{caller.name} may read their own spawn records only")
            user = caller.name
        elif caller.administers is not None:
            institutions = caller.administers
        rows = await self.db(
            db.recent_spawns, user=user, institutions=institutions, limit=int(raw_limit)
        )
        self.send({"spawns": [_spawn_model(row) for row in rows]})


class NotFoundHandler(APIHandler):
    async def prepare(self) -> None:
        raise APIError(404, f"No such endpoint: {self.request.path}")


def api_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """Routes under ``prefix`` (``/services/scitex/``)."""
    return [
        (prefix, IndexHandler),
        (prefix + "api/usage", UsageHandler),
        (prefix + "api/institutions", InstitutionsHandler),
        (prefix + r"api/users/([^/]+)/quota", UserQuotaHandler),
        (prefix + "api/spawns", SpawnsHandler),
        (prefix + "api/.*", NotFoundHandler),
    ]
