"""``GET scitex/api/quota``: the user's storage usage, limit and per-project usage.

The answer comes from the backend's cached measurement plus the saves this server made
since; the request never walks the tree. Before the first measurement after start-up
the request waits up to ``quota_first_wait`` seconds (the walk runs off the event loop),
then answers 503 with ``Retry-After``: a small tree gets its number on the first call,
a huge one does not hold the request open for minutes.
"""

from __future__ import annotations

import json
from datetime import timezone

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..quota.tracker import QuotaTracker
from ..session import SessionInfo
from .base import SciTeXAPIHandler


class QuotaHandler(SciTeXAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        tracker: QuotaTracker = self.scitex["quota"]
        session: SessionInfo = self.scitex["session"]
        # UsageUnavailable: 503 with Retry-After (handlers/base.py).
        snapshot = await tracker.snapshot()
        measured_at = snapshot.measured_at.astimezone(timezone.utc)
        self.finish(
            json.dumps(
                {
                    "user": session.user,
                    "institution": session.institution,
                    "used_bytes": snapshot.used_bytes,
                    "limit_bytes": snapshot.limit_bytes,
                    "projects": [
                        {"name": p.name, "used_bytes": p.used_bytes} for p in snapshot.projects
                    ],
                    "measured_at": measured_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
                    "source": snapshot.source,
                    # Parts of the tree could not be read: used_bytes is a lower bound.
                    "incomplete": snapshot.incomplete,
                }
            )
        )


default_handlers = [(r"/scitex/api/quota", QuotaHandler)]
