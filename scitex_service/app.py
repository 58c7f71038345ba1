"""``python -m scitex_service``: the scitex hub service, run by the hub.

Registered by ``jupyterhub_config.apply.apply_services``: the hub starts it with its own
Python, a token (``JUPYTERHUB_API_TOKEN``), its URL and prefix, the site file
(``SCITEX_CONFIG``) and the database URL (``SCITEX_DB_URL``), and proxies
``/services/scitex/`` to it. At start it upgrades our tables, syncs the institutions of
the site file into ``scitex_institutions``, starts the usage scanner and listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Float, Integer, Type, Unicode, default
from traitlets.config import Application

from jupyterhub_config.settings import Settings, SettingsError, load_settings
from scitex_hub.db import get_engine, upgrade
from scitex_hub.db import store as db
from scitex_hub.slurm import SlurmClient

from .admin_api import api_handlers
from .handlers import ServiceContext
from .hubapi import HubDirectory
from .jobs import ComputeJobs, jobs_handlers, make_compute_jobs
from .pages import page_handlers
from .scanner import UsageScanner

__all__ = ["SciTeXService", "main", "make_app"]


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """The end of a browser's OAuth sign-in, with the same HubOAuth as the API handlers:
    it holds the PKCE verifier and state that the sign-in started with."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth


def make_app(
    context: ServiceContext,
    hub_auth: HubOAuth,
    prefix: str = "/services/scitex/",
    log: logging.Logger | None = None,
    slurm: SlurmClient | None = None,
    jobs: ComputeJobs | None = None,
) -> web.Application:
    """The tornado application (also what the tests serve)."""
    routes: list[Any] = [
        (path, handler, {"context": context, "hub_auth": hub_auth})
        for path, handler in api_handlers(prefix)
    ]
    if jobs is not None:
        # Before api_handlers' catch-all 404.
        routes[:0] = [
            (path, handler, {"context": context, "hub_auth": hub_auth, "jobs": jobs})
            for path, handler in jobs_handlers(prefix)
        ]
    # First: the pages answer the index for browsers (the JSON index for other clients).
    routes[:0] = page_handlers(prefix, context, hub_auth, slurm)
    routes.insert(0, (prefix + "oauth_callback", OAuthCallbackHandler, {"hub_auth": hub_auth}))
    return web.Application(
        routes,
        # Signs the OAuth cookie; a new one per start only means signing in again.
        cookie_secret=secrets.token_bytes(32),
        login_url=hub_auth.login_url,
        hub_auth=hub_auth,
        log=log,
    )


class SciTeXService(Application):
    """The scitex hub service: admin API for quotas and spawn records, usage scanner."""

    name = "scitex-service"
    description = __doc__

    site_config = Unicode(
        help="The site file (scitex.yaml). Default: ``$SCITEX_CONFIG``, else the packaged demo.",
    ).tag(config=True)

    db_url = Unicode(
        help="""SQLAlchemy URL of the hub's database, where our tables live. Default:
        ``$SCITEX_DB_URL`` (set by the hub), else the site file's ``hub.db_url``.""",
    ).tag(config=True)

    service_url = Unicode(
        help="""Where to listen, ``http://HOST:PORT``. Default: ``$JUPYTERHUB_SERVICE_URL``
        (set by the hub from the site file's ``service.url``).""",
    ).tag(config=True)

    service_prefix = Unicode(
        help="URL prefix of the service. Default: ``$JUPYTERHUB_SERVICE_PREFIX``.",
    ).tag(config=True)

    scan_interval = Float(
        help="""Seconds between passes of the usage scanner. Default: the site file's
        ``service.usage_scan_interval``.""",
    ).tag(config=True)

    retention_days = Integer(
        help="Days usage measurements are kept. Default: ``service.usage_retention_days``.",
    ).tag(config=True)

    scan_usage = Bool(
        True,
        help="""Measure users' data directories. Off where another process measures usage
        (e.g. several hubs sharing one data root and database: one scanner is enough).""",
    ).tag(config=True)

    hub_directory_class = Type(
        HubDirectory,
        klass=HubDirectory,
        help="How the service asks the hub about users and groups (its REST API).",
    ).tag(config=True)

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("log_format")
    def _default_log_format(self) -> str:
        # Like the hub's own log, which this one is interleaved with.
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s"

    @default("log_datefmt")
    def _default_log_datefmt(self) -> str:
        return "%Y-%m-%d %H:%M:%S"

    def init_logging(self) -> None:
        # tornado's request and error logs go where the service's own log goes.
        for name in ("tornado.access", "tornado.application", "tornado.general"):
            logger = logging.getLogger(name)
            logger.propagate = True
            logger.parent = self.log
            logger.setLevel(self.log.level)

    @default("site_config")
    def _default_site_config(self) -> str:
        return os.environ.get("SCITEX_CONFIG", "")

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.site_config or None)
        return self._settings

    _settings: Settings | None = None

    @default("db_url")
    def _default_db_url(self) -> str:
        return os.environ.get("SCITEX_DB_URL") or self.settings.hub.db_url

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL") or self.settings.service_listen_url()

    @default("service_prefix")
    def _default_service_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/scitex/"

    @default("scan_interval")
    def _default_scan_interval(self) -> float:
        return self.settings.service.usage_scan_interval

    @default("retention_days")
    def _default_retention_days(self) -> int:
        return self.settings.service.usage_retention_days

    def prepare(self) -> tuple[ServiceContext, UsageScanner | None]:
        """Upgrade our tables, sync the institutions; blocking (before the loop serves)."""
        settings = self.settings
        revision = upgrade(self.db_url)
        self.log.info("scitex tables at revision %s", revision)
        engine = get_engine(self.db_url)
        db.sync_institutions(engine, settings.institutions)
        context = ServiceContext(
            institutions=dict(settings.institutions),
            engine=engine,
            directory=self.hub_directory_class(parent=self),
        )
        scanner = None
        if self.scan_usage:
            scanner = UsageScanner(
                engine,
                settings.data_root,
                list(settings.institutions),
                parent=self,
                interval=self.scan_interval,
                retention_days=self.retention_days,
            )
        return context, scanner

    async def serve(self) -> None:
        context, scanner = self.prepare()
        prefix = self.service_prefix.rstrip("/") + "/"
        hub_auth = HubOAuth(parent=self, cache_max_age=60)
        # The overview page's squeue (one per few seconds, however many page views).
        slurm = SlurmClient(
            parent=self,
            slurm_conf=self.settings.slurm.conf or "",
            bin_dir=self.settings.slurm.bin_dir or "",
        )
        # Compute jobs from JupyterLab (docs/jobs.md): submitted as the user.
        jobs = make_compute_jobs(self.settings, self.settings.profiles, parent=self)
        self.log.info(
            "compute jobs: container runtime %s %s", jobs.site.runtime, jobs.site.executable
        )
        app = make_app(context, hub_auth, prefix, log=self.log, slurm=slurm, jobs=jobs)
        url = urlparse(self.service_url)
        server = HTTPServer(app, xheaders=True)
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        self.log.info("scitex service listening on %s%s", self.service_url, prefix)
        if scanner is not None:
            scanner.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.log.info("scitex service stopping")
        server.stop()
        if scanner is not None:
            await asyncio.to_thread(scanner.stop)

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: list[str] | None = None) -> None:
    app = SciTeXService()
    app.initialize(argv)
    app.init_logging()
    try:
        app.settings  # noqa: B018 - load and validate the site file before anything else
    except SettingsError as e:
        sys.exit(f"scitex service: invalid site configuration:\n{e}")
    app.start()
