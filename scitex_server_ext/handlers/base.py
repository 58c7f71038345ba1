"""The base every SciTeX handler derives from, and the one place errors become replies.

Handlers let our domain errors (:class:`ProjectError`, :class:`JobsError`,
:class:`UsageUnavailable`) propagate as they are. :func:`error_reply` maps each to its
status, reason, message, extra fields and headers, and :class:`SciTeXAPIHandler` answers
with JSON ``{"message", "reason", ...extra}``, logging one line, as tornado does for an
``HTTPError``. Anything else (a tornado ``HTTPError``, a bug) gets jupyter-server's own
``APIHandler`` reply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado.httputil import responses

from ..jobs import JobsError
from ..projects import ProjectError
from ..quota.base import UsageUnavailable

__all__ = ["ErrorReply", "SciTeXAPIHandler", "error_reply"]


@dataclass(frozen=True)
class ErrorReply:
    """What a handler answers for a domain error."""

    status: int
    message: str
    # None: the status's standard phrase ("Not Found").
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def reason_phrase(self) -> str:
        return self.reason or responses.get(self.status, "Unknown")


def error_reply(exc: BaseException | None) -> ErrorReply | None:
    """The reply for one of our domain errors; None for any other exception."""
    if isinstance(exc, ProjectError):
        return ErrorReply(exc.status, exc.message, exc.reason, exc.extra)
    if isinstance(exc, JobsError):
        return ErrorReply(exc.status, exc.message)
    if isinstance(exc, UsageUnavailable):
        # Retry-After tells the client when a measurement may be there.
        retry_after = str(max(1, math.ceil(exc.retry_after)))
        return ErrorReply(
            503, str(exc), "Usage not measured yet", headers={"Retry-After": retry_after}
        )
    return None


class SciTeXAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Authenticated JSON API under ``scitex/api``; authorized on resource ``scitex``."""

    auth_resource = "scitex"

    @property
    def scitex(self) -> dict[str, Any]:
        return self.settings["scitex"]

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reply = error_reply(value)
        if reply is None:
            super().log_exception(typ, value, tb)
            return
        # An answer to the user, not a bug: one line, no traceback. Arguments, never
        # formatted into the format string (a message may hold a '%').
        self.log.warning(
            "%d %s %s: %s", reply.status, self.request.method, self.request.path, reply.message
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        reply = error_reply(exc_info[1] if exc_info else None)
        if reply is None:
            super().write_error(status_code, **kwargs)
            return
        # tornado sends 500 for an exception that is not an HTTPError; the status is ours.
        self.set_status(reply.status, reason=reply.reason_phrase)
        for name, value in reply.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        body = {"message": reply.message, "reason": reply.reason_phrase, **reply.extra}
        self.finish(json.dumps(body))
