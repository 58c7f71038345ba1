"""The scitex service's configuration as the hub hands it over: what ``apply_services``
puts in the service's environment (``SCITEX_SERVICE_CONFIG``), loaded as the service
loads it."""

from __future__ import annotations

import json
from collections.abc import Mapping

from traitlets.config import Config

from jupyterhub_config.apply import apply_services
from jupyterhub_config.settings import Settings


def service_environment(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment ``apply_services`` gives the service (``environ``: the hub's)."""
    c = Config()
    apply_services(c, settings, dict(environ or {}))
    [service] = [s for s in c.JupyterHub.services if s["name"] == "scitex"]
    return dict(service["environment"])


def shipped_service_config(settings: Settings) -> Config:
    """The service's traitlets configuration for ``settings``, from its JSON."""
    return Config(json.loads(service_environment(settings)["SCITEX_SERVICE_CONFIG"]))
