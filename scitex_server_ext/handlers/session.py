"""``GET scitex/api/session``: this server's SLURM job, node, profile and time left."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import SciTeXAPIHandler


class SessionHandler(SciTeXAPIHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(json.dumps(self.scitex["session"].as_json()))
