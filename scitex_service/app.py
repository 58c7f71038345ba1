"""``python -m scitex_service``: the scitex hub service, run by the hub.

Registered by ``jupyterhub_config.apply.apply_services``: the hub starts it with its own
Python, a token (``JUPYTERHUB_API_TOKEN``), its URL and prefix, the service's traitlets
configuration as JSON (``SCITEX_SERVICE_CONFIG``: institutions, profiles, compute jobs,
SLURM, the usage scanner) and the database URL (``SCITEX_DB_URL``), and proxies
``/services/scitex/`` to it. The service reads no site file. At start it upgrades our
tables, syncs the institutions into ``scitex_institutions``, starts the usage scanner and
listens. A site that runs it by hand gives the configuration with ``--config=FILE``
(JSON or Python, traitlets' format).
"""

from __future__ import annotations

import asyncio
import json
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
from traitlets import Bool, Dict, Float, TraitError, Type, Unicode, default, validate
from traitlets.config import Application, Config
from traitlets.config.loader import ConfigError, JSONFileConfigLoader, PyFileConfigLoader

from scitex_hub.db import get_engine, upgrade
from scitex_hub.db import store as db
from scitex_hub.institutions import Institution, load_institutions
from scitex_hub.slurm import SlurmClient

from .admin_api import api_handlers
from .configvalues import load_entries
from .handlers import ServiceContext
from .hubapi import HubDirectory
from .jobs import ComputeJobs, jobs_handlers
from .pages import page_handlers
from .scanner import UsageScanner

__all__ = ["CONFIG_ENV", "SciTeXService", "main", "make_app"]

# The service's traitlets configuration as JSON, set by apply_services in the environment
# the hub starts it with (never argv: it names secrets' paths).
CONFIG_ENV = "SCITEX_SERVICE_CONFIG"
DEFAULT_SERVICE_URL = "http://127.0.0.1:8090"


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
    """The scitex hub service: admin API for quotas and spawn records, usage scanner,
    compute jobs."""

    name = "scitex-service"
    description = __doc__
    aliases = {"config": "SciTeXService.config_file", "log-level": "Application.log_level"}
    raise_config_file_errors = True

    config_file = Unicode(
        help="""A traitlets configuration file (``.json``, else Python) loaded at start, over
        ``$SCITEX_SERVICE_CONFIG`` (the command line still wins): for a site that runs
        the service itself rather than as the hub's managed service.""",
    ).tag(config=True)

    institutions = Dict(
        help="""The site's institutions, ``{id: institution}`` as the site file writes them
        (or as ``Institution.model_dump``): synced into ``scitex_institutions`` at start;
        what the admin API and pages show, and whose users' usage is measured.""",
    ).tag(config=True)

    data_root = Unicode(
        help="""Where users' data directories are, ``<data_root>/<institution>/<user>``,
        measured by the usage scanner (the site file's ``data_root``).""",
    ).tag(config=True)

    db_url = Unicode(
        help="""SQLAlchemy URL of the hub's database, where our tables live. Default:
        ``$SCITEX_DB_URL`` (set by the hub; never on a command line: it may hold a
        password).""",
    ).tag(config=True)

    service_url = Unicode(
        help="""Where to listen, ``http://HOST:PORT`` (the site file's ``service.url``).
        Default: ``$JUPYTERHUB_SERVICE_URL`` (set by the hub), else
        ``http://127.0.0.1:8090``.""",
    ).tag(config=True)

    service_prefix = Unicode(
        help="URL prefix of the service. Default: ``$JUPYTERHUB_SERVICE_PREFIX``.",
    ).tag(config=True)

    exit_with_hub = Bool(
        help="""Stop when the process that started the service is gone. JupyterHub cannot
        stop its managed services when it is killed (SIGKILL, OOM): without this the old
        service keeps its port and the restarted hub's service cannot listen. Default: on
        when the hub started the service (``$JUPYTERHUB_SERVICE_NAME`` set).""",
    ).tag(config=True)

    parent_check_interval = Float(
        2.0, help="Seconds between checks that the hub that started the service is there."
    ).tag(config=True)

    @default("exit_with_hub")
    def _default_exit_with_hub(self) -> bool:
        return bool(os.environ.get("JUPYTERHUB_SERVICE_NAME"))

    async def watch_hub(self, stop: asyncio.Event) -> None:
        """Set ``stop`` once this process's parent (the hub) is gone: the process is then
        re-parented, so its parent id changes."""
        hub_pid = os.getppid()
        while not stop.is_set():
            await asyncio.sleep(self.parent_check_interval)
            if os.getppid() != hub_pid:
                self.log.warning("the hub (pid %d) is gone: the scitex service stops", hub_pid)
                stop.set()

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

    @default("db_url")
    def _default_db_url(self) -> str:
        return os.environ.get("SCITEX_DB_URL", "")

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL") or DEFAULT_SERVICE_URL

    @default("service_prefix")
    def _default_service_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/scitex/"

    @validate("institutions")
    def _validate_institutions(self, proposal: Any) -> dict[str, Institution]:
        return load_entries("SciTeXService.institutions", proposal["value"], load_institutions)

    @validate("data_root")
    def _validate_data_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not os.path.isabs(value):
            raise ValueError(f"SciTeXService.data_root must be an absolute path, got {value!r}")
        return value

    # -- configuration -------------------------------------------------------------

    def initialize(self, argv: list[str] | None = None) -> None:
        """The command line, then ``$SCITEX_SERVICE_CONFIG``, then ``--config=FILE``;
        the command line's own settings win. Raises on an invalid value (naming it)."""
        self.parse_command_line(argv)
        text = os.environ.get(CONFIG_ENV)
        if text:
            try:
                data = json.loads(text)
            except ValueError as e:
                raise ConfigError(f"${CONFIG_ENV} is not JSON: {e}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"${CONFIG_ENV} must hold a JSON object of config sections")
            self.update_config(Config(data))
        if self.config_file:
            self.update_config(self.read_config_file(self.config_file))
        self.update_config(self.cli_config)

    def read_config_file(self, path: str) -> Config:
        directory, name = os.path.split(os.path.abspath(path))
        loader = JSONFileConfigLoader if name.endswith(".json") else PyFileConfigLoader
        return loader(name, path=directory, log=self.log).load_config()

    def init_logging(self) -> None:
        # tornado's request and error logs go where the service's own log goes.
        for name in ("tornado.access", "tornado.application", "tornado.general"):
            logger = logging.getLogger(name)
            logger.propagate = True
            logger.parent = self.log
            logger.setLevel(self.log.level)

    def init_parts(self) -> None:
        """Everything the configuration makes, checked before anything runs; blocking.
        Raises on an invalid value (naming it)."""
        if not self.db_url:
            raise ValueError(
                "SciTeXService.db_url is not set (the hub passes $SCITEX_DB_URL to its service)"
            )
        if not self.data_root:
            raise ValueError("SciTeXService.data_root is not set")
        # One SLURM client: the overview page's squeue (one per few seconds, however many
        # page views) and compute jobs, submitted as the user (docs/jobs.md).
        self.slurm = SlurmClient(parent=self)
        self.jobs = ComputeJobs(parent=self, slurm=self.slurm)
        runtime = self.jobs.resolve_runtime()
        self.log.info("compute jobs: container runtime %s %s", runtime.runtime, runtime.executable)
        self.scanner: UsageScanner | None = None
        if self.scan_usage:
            self.scanner = UsageScanner(
                get_engine(self.db_url), self.data_root, list(self.institutions), parent=self
            )

    def prepare(self) -> ServiceContext:
        """Upgrade our tables, sync the institutions; blocking (before the loop serves)."""
        revision = upgrade(self.db_url)
        self.log.info("scitex tables at revision %s", revision)
        engine = get_engine(self.db_url)
        db.sync_institutions(engine, self.institutions)
        return ServiceContext(
            institutions=dict(self.institutions),
            engine=engine,
            directory=self.hub_directory_class(parent=self),
        )

    async def serve(self) -> None:
        context = self.prepare()
        prefix = self.service_prefix.rstrip("/") + "/"
        hub_auth = HubOAuth(parent=self, cache_max_age=60)
        app = make_app(context, hub_auth, prefix, log=self.log, slurm=self.slurm, jobs=self.jobs)
        url = urlparse(self.service_url)
        server = HTTPServer(app, xheaders=True)
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        self.log.info("scitex service listening on %s%s", self.service_url, prefix)
        if self.scanner is not None:
            self.scanner.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.ensure_future(self.watch_hub(stop)) if self.exit_with_hub else None
        await stop.wait()
        if watcher is not None:
            watcher.cancel()
        self.log.info("scitex service stopping")
        server.stop()
        if self.scanner is not None:
            await asyncio.to_thread(self.scanner.stop)

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: list[str] | None = None) -> None:
    app = SciTeXService()
    try:
        app.initialize(argv)
        app.init_logging()
        app.init_parts()
    except (ConfigError, TraitError, ValueError) as e:
        sys.exit(f"scitex service: invalid configuration:\n{e}")
    app.start()
