"""What the service asks the hub's REST API, with its own token: users and their groups.

A user's institution is their JupyterHub group (the sign-in hook puts them there), so the
hub, not the site file's ``users:`` lists, says who belongs where.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

__all__ = ["HubAPIError", "HubDirectory"]


class HubAPIError(RuntimeError):
    """The hub's API failed or refused the service."""


class HubDirectory(LoggingConfigurable):
    """Users and groups from the hub's REST API (``read:users``, ``read:groups``)."""

    api_url = Unicode(
        help="The hub's API URL. Default: ``$JUPYTERHUB_API_URL`` (set by the hub).",
    ).tag(config=True)

    timeout = Float(10.0, help="Seconds a call to the hub's API may take.").tag(config=True)

    # Not configurable: the hub hands a managed service its token in the environment.
    api_token = Unicode()

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api").rstrip("/")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    async def _get(self, path: str) -> Any | None:
        request = HTTPRequest(
            f"{self.api_url}/{path}",
            headers={"Authorization": f"token {self.api_token}"},
            request_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            if e.code == 404:
                return None
            raise HubAPIError(f"the hub's API answered {e.code} to GET {path}") from None
        except OSError as e:
            raise HubAPIError(f"the hub's API cannot be reached: {e}") from None
        return json.loads(response.body)

    async def user(self, name: str) -> dict[str, Any] | None:
        """``{"name", "admin", "groups", ...}``, or ``None`` if the hub has no such user."""
        model = await self._get(f"users/{quote(name, safe='')}")
        return dict(model) if isinstance(model, dict) else None

    async def group_members(self, group: str) -> list[str]:
        """The users in ``group`` (an institution); empty if there is no such group yet."""
        model = await self._get(f"groups/{quote(group, safe='')}")
        if not isinstance(model, dict):
            return []
        return sorted(str(u) for u in model.get("users", []))
