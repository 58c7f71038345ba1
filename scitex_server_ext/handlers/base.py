"""The base every SciTeX handler derives from."""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin


class SciTeXAPIHandler(ExtensionHandlerMixin, APIHandler):
    """Authenticated JSON API under ``scitex/api``; authorized on resource ``scitex``."""

    auth_resource = "scitex"

    @property
    def scitex(self) -> dict[str, Any]:
        return self.settings["scitex"]
