"""The port callback: how a notebook server in a job tells the hub its port.

The job picks a free port on its node and POSTs ``{"port": N}`` to
``/hub/api/scitex/port`` with its own server token. The hub accepts exactly
that: one integer, from the very server it started, while that start waits
for it. The node's address comes from SLURM, never from the caller.

Stock batchspawner's ``/hub/api/batchspawner`` sets *any* attribute the caller
names on the spawner (``exec_prefix``, ``batch_query_cmd``, ``ip``...), which
the hub later runs or routes to. The configuration (``apply_spawner``) takes that
route out (:func:`close_batchspawner_route`) and registers :func:`hub_api_handlers`:
our callback, and a guard on batchspawner's path that answers 404 for a SciTeXSpawner
and changes nothing; a stock batchspawner server in the same hub keeps its old
behaviour. Importing this module adds or removes no route (importing batchspawner
adds its own).
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from batchspawner.api import BatchSpawnerAPIHandler
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


class GuardedBatchSpawnerHandler(BatchSpawnerAPIHandler):
    """batchspawner's ``/api/batchspawner``, closed to every SciTeXSpawner.

    JupyterHub imports every installed spawner at start-up, so batchspawner's
    route exists in any hub that has it installed. Our servers never use it.
    """

    @web.authenticated
    def post(self) -> None:
        from .spawner import SciTeXSpawner

        user = self.current_user
        token = self.get_auth_token() or ""
        spawners = user.spawners.values() if isinstance(user, User) else []
        for spawner in spawners:
            api_token = getattr(spawner, "api_token", "") or ""
            if api_token and hmac.compare_digest(api_token.encode(), token.encode()):
                if not isinstance(spawner, SciTeXSpawner):
                    super().post()
                    return
                break
        raise web.HTTPError(404, reason="No such API for SciTeX servers")


BATCHSPAWNER_PATH = r"/api/batchspawner"


def hub_api_handlers() -> list[tuple[str, type[APIHandler]]]:
    """Our routes in the hub's API (``c.JupyterHub.extra_handlers``; JupyterHub puts its
    hub prefix in front): the port callback, and the guard on batchspawner's path."""
    return [
        (PORT_CALLBACK_PATH, PortCallbackHandler),
        (BATCHSPAWNER_PATH, GuardedBatchSpawnerHandler),
    ]


def close_batchspawner_route() -> None:
    """Take stock batchspawner's attribute-setting route out of JupyterHub's API routes.

    Done by the configuration (``apply_spawner``), never at import, and by editing
    ``jupyterhub.apihandlers.default_handlers`` because nothing else reaches it:
    batchspawner appends its route to that list when it is imported (our spawner, a
    ``SlurmSpawner``, imports it), and neither batchspawner nor JupyterHub has a setting
    to leave it out. JupyterHub routes ``default_handlers`` before ``extra_handlers``
    and tornado takes the first route that matches, so a guard registered by the
    configuration alone could not shadow it. This module subclasses batchspawner's
    handler, so batchspawner's import (which adds the route, once per process) has run
    by now, even though JupyterHub loads the spawner class only after the configuration.
    """
    default_handlers[:] = [h for h in default_handlers if h[0] != BATCHSPAWNER_PATH]


def batchspawner_route_open() -> bool:
    """Whether stock batchspawner's attribute-setting handler is still routed (a hub
    configured without ``apply_spawner``)."""
    return any(h[1] is BatchSpawnerAPIHandler for h in default_handlers)
