"""How a start that cannot go on fails: :class:`SpawnFailed`, whose message the user sees."""

from __future__ import annotations

from tornado import web


class SpawnFailed(web.HTTPError):
    """A start that cannot go on; the message is shown to the user as is."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(status, reason=message, log_message=message)
        # What JupyterHub's spawn page and progress stream show ("Spawn failed: ..."):
        # the message once, not str(HTTPError)'s "HTTP 500: message (message)".
        self.jupyterhub_message = message
