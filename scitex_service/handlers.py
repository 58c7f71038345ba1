"""What every handler of the service shares: who calls, who may, and how errors answer.

Who sees what is decided by the scopes of the token that calls, never by the caller's
name: ``custom:scitex:admin`` (unfiltered, the role ``scitex-hub-admin`` of the hub's
admins) sees everything; ``custom:scitex:admin!group=<id>`` (the role
``scitex-admin-<id>`` of the institution's admins) that institution only; anyone else
gets 403 on the admin endpoints (a user may read their own quota and spawn records).
So a token of an admin that lacks the scope (her notebook server's, a narrow one she
made) has no admin power here. Callers authenticate with a JupyterHub token
(``Authorization: token ...``) or with the OAuth cookie a browser gets by visiting
``/services/scitex/`` (the service's OAuth client asks for the scope: the token the hub
issues then carries whatever part of it the user holds). Database work runs in worker
threads.

Two decorators say who may call a handler method: :func:`requires_admin` and
:func:`requires_jobs_scope`. One error adapter, :meth:`APIHandler.write_error`, answers
every error: ``{"status", "message"}`` as JSON, or the error page where a handler
renders HTML.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar

from jupyterhub.services.auth import HubOAuth, HubOAuthenticated, UserNotAllowed
from sqlalchemy import Engine
from tornado import web
from tornado.log import app_log

from scitex_hub.institutions import Institution
from scitex_hub.scopes import ADMIN_SCOPE, JOBS_SCOPE, admin_rights, has_jobs_scope

from .hubapi import HubAPIError, HubDirectory

__all__ = [
    "APIError",
    "APIHandler",
    "Caller",
    "ServiceContext",
    "admin_refusal",
    "error_message",
    "iso",
    "requires_admin",
    "requires_jobs_scope",
]

# What a 500 says to the caller; the traceback goes to the service's log only.
INTERNAL_ERROR = "Internal error in the scitex service; see its log"
# The end of the refusal of a caller that is no admin (the API's; the pages say their own).
FOR_ADMINISTRATORS = "this endpoint is for administrators"


class APIError(web.HTTPError):
    """An answer with a message for the caller; the message may hold any text (a name
    the caller sent), so it is passed as an argument, never as a format string."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)


def error_message(status_code: int, error: BaseException | None, reason: str) -> str:
    """What the caller is told of an error: an :class:`APIError`'s (or tornado's own
    HTTPError's) message, tornado's reason phrase, never the text of an unexpected
    exception (it may hold anything; the log has it)."""
    if isinstance(error, web.HTTPError) and error.log_message:
        return error.log_message % error.args if error.args else error.log_message
    if error is not None and status_code >= 500:
        return INTERNAL_ERROR
    return reason


@dataclass
class ServiceContext:
    """What every handler needs: the site's institutions, our tables, the hub's API."""

    institutions: Mapping[str, Institution]
    engine: Engine
    directory: HubDirectory


@dataclass(frozen=True)
class Caller:
    name: str
    role: str  # "hub-admin" | "institution-admin" | "user"
    # Institutions this caller administers; None: all (a hub admin).
    administers: tuple[str, ...] | None

    def may_administer(self, institution: str | None) -> bool:
        if self.administers is None:
            return True
        return institution is not None and institution in self.administers


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def admin_refusal(name: str, what: str = FOR_ADMINISTRATORS) -> str:
    """The 403 message for a caller whose token holds no admin scope."""
    return (
        f"{name} is neither a hub admin nor an institution admin by this token (it lacks "
        f"the scope {ADMIN_SCOPE}): {what}"
    )


class APIHandler(HubOAuthenticated, web.RequestHandler):
    """JSON in, JSON out; the hub says who the caller is."""

    def initialize(self, context: ServiceContext, hub_auth: HubOAuth) -> None:
        self.context = context
        self.hub_auth = hub_auth
        self._caller: Caller | None = None

    @property
    def log(self) -> logging.Logger:
        return self.settings.get("log") or app_log

    async def prepare(self) -> None:
        # Asked without blocking the loop (get_current_user would wait synchronously).
        model = await self.hub_auth.get_user(self, sync=False)
        if model is not None:
            try:
                model = self.check_hub_user(model)
            except UserNotAllowed:
                raise APIError(403, f"{model.get('name')} may not use the scitex service") from None
        self._hub_auth_user_cache = model

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    # -- answers -------------------------------------------------------------------

    def renders_html(self) -> bool:
        """Whether this request is answered with a page (errors too); the API's never."""
        return False

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The one error adapter: every handler's errors answer through here."""
        exc_info = kwargs.get("exc_info")
        message = error_message(status_code, exc_info[1] if exc_info else None, self._reason)
        if self.renders_html():
            self.render(
                "error.html",
                status_code=status_code,
                message=message,
                user=(getattr(self, "_hub_auth_user_cache", None) or {}).get("name"),
            )
        else:
            self.finish(json.dumps({"status": status_code, "message": message}))

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    # -- who is asking -------------------------------------------------------------

    def caller(self) -> Caller:
        """Who calls and with which rights, by the token's scopes only; 403 without one."""
        if self._caller is not None:
            return self._caller
        model = self.current_user
        if not model:
            raise APIError(
                403,
                "Authentication required: send a JupyterHub token (Authorization: token ...) "
                "or sign in by visiting /services/scitex/",
            )
        name = str(model.get("name", ""))
        if model.get("kind", "user") != "user":
            # A service's token: no admin rights here.
            self._caller = Caller(name, "user", ())
            return self._caller
        # The token's scopes only: the hub's "admin" flag and the site file's admin lists
        # say who the person is, not what this token (perhaps her notebook server's) may do.
        rights = admin_rights(model.get("scopes", []))
        if rights is None:
            self._caller = Caller(name, "hub-admin", None)
        else:
            administers = tuple(key for key in self.context.institutions if key in rights)
            role = "institution-admin" if administers else "user"
            self._caller = Caller(name, role, administers)
        return self._caller

    def not_admin(self, name: str) -> str:
        """What :func:`requires_admin` tells a caller who is no admin."""
        return admin_refusal(name)

    def visible(self, caller: Caller) -> list[str]:
        if caller.administers is None:
            return sorted(self.context.institutions)
        return sorted(caller.administers)

    async def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, self.context.engine, *args, **kwargs)

    async def hub_user(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.context.directory.user(name)
        except HubAPIError as e:
            raise APIError(502, f"Cannot look up {name}: {e}") from None


# -- who may call a handler method ------------------------------------------------------

Handler = TypeVar("Handler", bound=APIHandler)
Args = ParamSpec("Args")
Method = Callable[Concatenate[Handler, Args], Awaitable[None]]


def requires_admin(method: Method[Handler, Args]) -> Method[Handler, Args]:
    """The method runs for a hub admin or an institution admin by the calling token's
    scopes (``self.caller()`` then says which institutions); anyone else gets 403 with
    the handler's :meth:`~APIHandler.not_admin` message."""

    @functools.wraps(method)
    async def checked(self: Handler, /, *args: Args.args, **kwargs: Args.kwargs) -> None:
        caller = self.caller()
        if caller.role == "user":
            raise APIError(403, self.not_admin(caller.name))
        await method(self, *args, **kwargs)

    return checked


def requires_jobs_scope(method: Method[Handler, Args]) -> Method[Handler, Args]:
    """The method runs for a user's token that may run that user's jobs (the jobs scope,
    unfiltered or filtered to the user: a notebook server's token); 403 for any other,
    a service's token included. ``self.caller().name`` is then the jobs' owner."""

    @functools.wraps(method)
    async def checked(self: Handler, /, *args: Args.args, **kwargs: Args.kwargs) -> None:
        caller = self.caller()
        model = self.current_user or {}
        if model.get("kind", "user") != "user":
            raise APIError(403, f"{caller.name} is not a user: jobs belong to users")
        if not has_jobs_scope(model):
            raise APIError(
                403,
                f"This token of {caller.name} may not run jobs (it lacks the scope "
                f"{JOBS_SCOPE}); submit from your notebook server",
            )
        await method(self, *args, **kwargs)

    return checked
