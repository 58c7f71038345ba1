"""The extension's quota settings (mixed into ``SciTeXExtension``)."""

from __future__ import annotations

import logging
import os
from typing import Any

from traitlets import Float, Int, TraitError, default, validate
from traitlets.config import Configurable

from ..contents_guard import attach_quota
from .base import LIMIT_ENV, QuotaBackend, QuotaBackendType, limit_from_environ
from .scan import ScanQuotaBackend
from .tracker import QuotaTracker

__all__ = ["QUOTA_CONTENTS_MANAGER", "QuotaConfig"]

QUOTA_CONTENTS_MANAGER = "scitex_server_ext.contents_guard.QuotaContentsManager"


class QuotaConfig(Configurable):
    """Which backend measures usage, the limit, and how long a request waits at start-up.

    Backend settings live on the backend class: ``c.ScanQuotaBackend.interval``,
    ``c.XfsQuotaBackend.quota_id``, ``c.LustreQuotaBackend.mount``...
    """

    quota_backend_class = QuotaBackendType(
        default_value=ScanQuotaBackend,
        klass=QuotaBackend,
        config=True,
        help="""How storage usage is measured: ``scan`` (a cached background walk of the
        user's root; any filesystem), ``xfs`` (XFS project quotas through ``xfs_quota``),
        ``lustre`` (``lfs quota``), or the import string of a ``QuotaBackend`` subclass.""",
    )

    quota_limit_bytes = Int(
        None,
        allow_none=True,
        config=True,
        help=f"""The user's storage limit in bytes. Saves through the contents API that would
        pass it are refused with HTTP 507. Default: ``${LIMIT_ENV}`` (the hub's batch script
        sets it from the institution's ``storage_quota``); unset or 0: no limit of our own
        (an ``xfs``/``lustre`` backend then reports the filesystem's hard limit).""",
    )

    quota_first_wait = Float(
        5.0,
        config=True,
        help="""Seconds a request (``GET scitex/api/quota`` or a save, when a limit is set)
        waits for the first measurement after the server starts. Past it the answer is 503
        with ``Retry-After``; the measurement goes on in the background.""",
    )

    @default("quota_limit_bytes")
    def _default_quota_limit_bytes(self) -> int | None:
        try:
            return limit_from_environ(os.environ)
        except ValueError as e:
            raise TraitError(str(e)) from None

    @validate("quota_limit_bytes")
    def _check_quota_limit_bytes(self, proposal: dict[str, Any]) -> int | None:
        value = proposal["value"]
        if value is None:
            return None
        if value < 0:
            raise TraitError(f"quota_limit_bytes must be >= 0 bytes, got {value}")
        # 0 is "no limit", as for the filesystem tools.
        return int(value) or None

    @validate("quota_first_wait")
    def _check_quota_first_wait(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value < 0:
            raise TraitError(f"quota_first_wait must be >= 0 seconds, got {value}")
        return value

    def link_quota_contents_manager(self, serverapp: Any) -> None:
        """Make the server's saves quota-checked, unless the site chose its own manager.

        Called when the extension links, before the server creates its contents
        manager. A ``jupyter_server_config.d`` file cannot do this: jupyter-server reads
        only ``jpserver_extensions`` from those files and ignores other keys there.
        """
        server_config = serverapp.config.get("ServerApp", {})
        if "contents_manager_class" not in server_config:
            serverapp.contents_manager_class = QUOTA_CONTENTS_MANAGER

    def make_quota_tracker(
        self, user_root: str, projects_dir: str, serverapp: object, log: logging.Logger
    ) -> QuotaTracker:
        """Build the backend and tracker, and hand the tracker to the server's contents manager."""
        backend = self.quota_backend_class(parent=self, root=user_root, projects_dir=projects_dir)
        tracker = QuotaTracker(
            backend, limit_bytes=self.quota_limit_bytes, first_wait=self.quota_first_wait
        )
        attach_quota(getattr(serverapp, "contents_manager", None), tracker, log)
        log.info(
            "Storage quota: backend %s, limit %s",
            backend.source,
            "none" if tracker.limit_bytes is None else f"{tracker.limit_bytes} bytes",
        )
        return tracker
