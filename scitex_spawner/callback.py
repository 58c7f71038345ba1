"""The port callback: how a notebook server in a job tells the hub its port.

The job picks a free port on its node and POSTs ``{"port": N}`` to
``/hub/api/scitex/port`` with its own server token. The hub accepts exactly
that: one integer, from the very server it started, while that start waits
for it. The node's address comes from SLURM, never from the caller.

Stock batchspawner's ``/hub/api/batchspawner`` sets *any* attribute the caller
names on the spawner (``exec_prefix``, ``batch_query_cmd``, ``ip``...), which
the hub later runs or routes to. Importing this module removes that route.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from jupyterhub.apihandlers import APIHandler, default_handlers
from jupyterhub.user import User
from tornado import web

if TYPE_CHECKING:
    from .spawner import SciTeXSpawner

PORT_CALLBACK_PATH = r"/api/scitex/port"


class PortCallbackHandler(APIHandler):
    """``POST /hub/api/scitex/port``: ``{"port": <int>}`` and nothing else."""

    def _spawner_for_token(self) -> SciTeXSpawner:
        from .spawner import SciTeXSpawner

        user = self.current_user
        token = self.get_auth_token() or ""
        if isinstance(user, User) and token:
            for spawner in user.spawners.values():
                api_token = getattr(spawner, "api_token", "") or ""
                if (
                    isinstance(spawner, SciTeXSpawner)
                    and api_token
                    and hmac.compare_digest(api_token.encode(), token.encode())
                ):
                    return spawner
        raise web.HTTPError(403, reason="Only a notebook server's own token can report its port")

    @web.authenticated
    def post(self) -> None:
        spawner = self._spawner_for_token()
        port = parse_port_body(self.request.body)
        try:
            spawner.receive_port(port)
        except RuntimeError as e:
            raise web.HTTPError(409, reason=str(e)) from None
        self.set_status(200)
        self.finish(json.dumps({"port": port}))


def parse_port_body(body: bytes) -> int:
    """The port from a callback body, or HTTP 400: exactly ``{"port": int}``."""
    try:
        data: Any = json.loads(body or b"null")
    except ValueError:
        raise web.HTTPError(400, reason='The body must be JSON: {"port": <int>}') from None
    if not isinstance(data, dict) or set(data) != {"port"}:
        raise web.HTTPError(400, reason='The body must be exactly {"port": <int>}')
    port = data["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise web.HTTPError(400, reason="port must be an integer from 1 to 65535")
    return port


def install_handlers() -> None:
    """Route our callback and unroute batchspawner's attribute-setting one."""
    try:
        from batchspawner.api import BatchSpawnerAPIHandler
    except ImportError:  # pragma: no cover - batchspawner is a dependency
        BatchSpawnerAPIHandler = None
    default_handlers[:] = [
        h
        for h in default_handlers
        if h[1] is not BatchSpawnerAPIHandler and h[0] != PORT_CALLBACK_PATH
    ]
    default_handlers.append((PORT_CALLBACK_PATH, PortCallbackHandler))
