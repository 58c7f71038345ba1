"""The jupyter-server extension application: settings, handlers and where its logs go."""

from __future__ import annotations

import logging
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode, default

from .handlers.jobs import default_handlers as job_handlers
from .handlers.projects import default_handlers as project_handlers
from .handlers.quota import default_handlers as quota_handlers
from .handlers.session import SessionHandler
from .jobs import JobsConfig
from .projects import ProjectsConfig
from .quota.config import QuotaConfig
from .quota.tracker import QuotaTracker
from .session import SessionInfo


def join_server_log(server_log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Send the records of this package's module loggers to the server's log.

    As jupyter-server does for tornado's loggers: the package's logger becomes a child of the
    server's, so ``scitex_server_ext.*`` records go through the server's handlers, format and
    level (``--log-level``). Otherwise they reach only the root logger, which the server leaves
    unconfigured: INFO is dropped and a warning is printed bare, without time or source.
    """
    parent = server_log.logger if isinstance(server_log, logging.LoggerAdapter) else server_log
    package = logging.getLogger(__package__)
    package.parent = parent
    package.propagate = True


# ProjectsConfig adds the gitea_* / git_* / project* settings (see projects/config.py);
# QuotaConfig the quota_* settings (see quota/config.py).
class SciTeXExtension(JobsConfig, ProjectsConfig, QuotaConfig, ExtensionApp):
    """Serves ``scitex/api/*`` in every user's notebook server."""

    name = "scitex_server_ext"
    # Handlers are API-only; no static files or templates of our own.
    load_other_extensions = True

    user_root = Unicode(
        help="""The user's data directory as the notebook server sees it.

        Inside the container this is ``/data`` (the user's
        ``<data_root>/<institution>/<user>`` bound there). Every path an endpoint
        takes is resolved and checked to lie inside it.""",
        config=True,
    )

    @default("user_root")
    def _default_user_root(self) -> str:
        return os.environ.get("SCITEX_USER_ROOT", "/data")

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        super()._link_jupyter_server_extension(serverapp)
        # First: what the modules log from here on is in the server's log.
        join_server_log(serverapp.log)
        # Before the server builds its contents manager: quota-checked saves.
        self.link_quota_contents_manager(serverapp)

    def initialize_settings(self) -> None:
        self.settings["scitex"] = {
            "user_root": self.user_root,
            "session": SessionInfo.from_environ(os.environ),
            "projects": self.make_project_manager(self.user_root),
            # Compute jobs: forwarded to the scitex hub service (JobsConfig, jobs.py).
            "jobs": self.make_jobs_client(self.user_root, self.projects_dir),
            "quota": self.make_quota_tracker(
                self.user_root, self.projects_dir, self.serverapp, self.log
            ),
        }

    def initialize_handlers(self) -> None:
        self.handlers.extend([(r"/scitex/api/session", SessionHandler)])
        self.handlers.extend(project_handlers)
        self.handlers.extend(quota_handlers)
        self.handlers.extend(job_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # The first usage measurement starts with the server, not with the first request.
        quota: QuotaTracker = self.settings["scitex"]["quota"]
        quota.start()

    async def stop_extension(self) -> None:
        quota: QuotaTracker | None = self.settings.get("scitex", {}).get("quota")
        if quota is not None:
            await quota.stop()
