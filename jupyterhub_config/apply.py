"""Pure ``apply_*(c, settings)`` functions: the site file onto JupyterHub's config.

Each touches one area, reads only ``settings`` and writes only ``c``, so each
is tested against a fresh ``traitlets.config.Config``.

One file (over 400 lines): ``apply_all`` calls these in an order that matters (roles
before services, auth before Gitea), which is read here in one place; the service's own
config is built in ``service_config``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scitex_hub import scopes
from scitex_hub.institutions import USERNAME_PATTERN
from scitex_spawner.auth import (
    identity_from_auth_model,
    ldap_group_dn,
    ldap_group_names,
    make_post_auth_hook,
    no_provider_groups,
)
from scitex_spawner.callback import close_batchspawner_route, hub_api_handlers
from scitex_spawner.gitea_provision import (
    GiteaAdmin,
    GiteaProvisioner,
    gitea_auth_state_hook,
    with_gitea_provisioning,
)

from .service_config import SERVICE_CONFIG_ENV, service_config
from .settings import Settings, SettingsError


def apply_hub(c: Any, settings: Settings) -> None:
    hub = settings.hub
    c.JupyterHub.bind_url = hub.bind_url
    c.JupyterHub.hub_bind_url = hub.hub_bind_url
    if hub.hub_connect_url:
        c.JupyterHub.hub_connect_url = hub.hub_connect_url
    c.JupyterHub.base_url = hub.base_url
    c.JupyterHub.db_url = hub.db_url
    c.JupyterHub.cookie_secret_file = os.path.join(hub.state_dir, "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = os.path.join(hub.state_dir, "jupyterhub.pid")
    c.ConfigurableHTTPProxy.pid_file = os.path.join(hub.state_dir, "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.command = list(hub.proxy_command)
    c.ConfigurableHTTPProxy.api_url = hub.proxy_api_url
    # Servers are SLURM jobs: they outlive a hub restart and are re-adopted.
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False
    c.JupyterHub.template_vars = {"scitex_site": "SciTeX Hub"}


def _read_secret(path: str, key: str) -> str:
    """A secret from the file the site file names (never the YAML itself)."""
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError as e:
        raise SettingsError(f"{key}: cannot read {path}: {e.strerror}") from None
    if not value:
        raise SettingsError(f"{key}: {path} is empty")
    return value


# Shown by oauthenticator when JupyterHub refuses an identity before our hook
# runs: a username outside ``username_pattern``, or a blocked user.
OIDC_REFUSED_MESSAGE = (
    "Your sign-in was refused: the username your identity provider gave is not one this "
    "hub can use (lowercase letters, digits, _ and -, starting with a letter or _, at "
    "most 32 characters), or the account is blocked. Ask your research-computing team."
)


# Each is JupyterHub's, ldapauthenticator's or oauthenticator's own with the user-name
# rules (scitex_spawner.authenticators.NameRules); their config sections
# (c.LDAPAuthenticator, c.GenericOAuthenticator) apply to them as to the originals.
AUTHENTICATOR_CLASSES = {
    "pam": "scitex_spawner.authenticators.SciTeXPAMAuthenticator",
    "ldap": "scitex_spawner.authenticators.SciTeXLDAPAuthenticator",
    "oidc": "scitex_spawner.authenticators.SciTeXOIDCAuthenticator",
}


def apply_auth(c: Any, settings: Settings) -> None:
    """The authenticator, and the institution mapping on top of it.

    Reads the secret files the site file names (OIDC client secret, LDAP search
    password); a missing one stops the hub with the key.
    """
    auth = settings.auth
    group_names: dict[str, str] = {}
    if auth.kind == "pam":
        c.JupyterHub.authenticator_class = AUTHENTICATOR_CLASSES["pam"]
    elif auth.kind == "ldap" and auth.ldap is not None:
        ldap = auth.ldap
        c.JupyterHub.authenticator_class = AUTHENTICATOR_CLASSES["ldap"]
        c.LDAPAuthenticator.server_address = ldap.server_address
        c.LDAPAuthenticator.server_port = ldap.server_port
        c.LDAPAuthenticator.tls_strategy = ldap.tls_strategy
        c.LDAPAuthenticator.bind_dn_template = list(ldap.bind_dn_template)
        c.LDAPAuthenticator.lookup_dn = ldap.lookup_dn
        c.LDAPAuthenticator.user_attribute = ldap.user_attribute
        if ldap.user_search_base:
            c.LDAPAuthenticator.user_search_base = ldap.user_search_base
        if ldap.lookup_dn_search_user:
            c.LDAPAuthenticator.lookup_dn_search_user = ldap.lookup_dn_search_user
        if ldap.lookup_dn_search_password_file:
            c.LDAPAuthenticator.lookup_dn_search_password = _read_secret(
                ldap.lookup_dn_search_password_file, "auth.ldap.lookup_dn_search_password_file"
            )
        if ldap.group_search_filter:
            c.LDAPAuthenticator.group_search_filter = ldap.group_search_filter
        try:
            group_names = ldap_group_names(settings.institutions, ldap.group_search_base)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        if group_names:
            # ldapauthenticator checks membership of exactly these groups and
            # reports the ones that hold the user in auth_state["ldap_groups"].
            # With allow_all they do not gate sign-in: the institution does.
            # Institutions' and labs' groups alike (labs need theirs reported too).
            c.LDAPAuthenticator.allowed_groups = sorted(
                {ldap_group_dn(name, ldap.group_search_base) for name in group_names.values()}
            )
        # mail for email domains; memberOf where the directory maintains it.
        c.LDAPAuthenticator.auth_state_attributes = ["mail"] + (
            ["memberOf"] if ldap.member_of else []
        )
    elif auth.kind == "oidc" and auth.oidc is not None:
        oidc = auth.oidc
        issuer = oidc.issuer.rstrip("/")
        c.JupyterHub.authenticator_class = AUTHENTICATOR_CLASSES["oidc"]
        c.GenericOAuthenticator.client_id = oidc.client_id
        c.GenericOAuthenticator.client_secret = _read_secret(
            oidc.client_secret_file, "auth.oidc.client_secret_file"
        )
        c.GenericOAuthenticator.oauth_callback_url = oidc.callback_url
        c.GenericOAuthenticator.authorize_url = oidc.authorize_url or f"{issuer}/auth"
        c.GenericOAuthenticator.token_url = oidc.token_url or f"{issuer}/token"
        c.GenericOAuthenticator.userdata_url = oidc.userdata_url or f"{issuer}/me"
        c.GenericOAuthenticator.scope = list(oidc.scopes)
        c.GenericOAuthenticator.username_claim = oidc.username_claim
        c.GenericOAuthenticator.login_service = oidc.login_service
        # Hub groups are institutions only (the hook); the provider's groups
        # are read by the hook from auth_state, not copied.
        c.GenericOAuthenticator.auth_state_groups_key = no_provider_groups
        c.GenericOAuthenticator.custom_403_message = OIDC_REFUSED_MESSAGE
    # Authorisation is by institution (the post-auth hook), not by allow-list.
    c.Authenticator.allow_all = True
    c.Authenticator.admin_users = set(settings.hub.admin_users)
    c.Authenticator.manage_groups = True
    # The hook reads auth_state in memory; persisting it needs a crypt key.
    c.Authenticator.enable_auth_state = bool(os.environ.get("JUPYTERHUB_CRYPT_KEY"))
    c.Authenticator.username_pattern = USERNAME_PATTERN
    # User-name rules (docs/authentication.md): JupyterHub's blocked_users, which our
    # authenticators (NameRules) refuse with the refused-sign-in page, plus the UID floor.
    denied = settings.denied_users()
    c.Authenticator.blocked_users = set(denied)
    c.NameRules.min_uid = auth.min_uid
    c.Authenticator.post_auth_hook = make_post_auth_hook(
        settings.institutions,
        settings.hub.admin_users,
        group_names,
        denied_users=denied,
        min_uid=auth.min_uid,
    )


# Our custom scopes (scitex_hub.scopes): the service reads them from the calling token's
# scopes, never from the caller's name.
SCITEX_ADMIN_SCOPE = scopes.ADMIN_SCOPE
SCITEX_JOBS_SCOPE = scopes.JOBS_SCOPE
DEFAULT_SERVER_TOKEN_SCOPES = scopes.DEFAULT_SERVER_TOKEN_SCOPES
SCITEX_CUSTOM_SCOPES = scopes.CUSTOM_SCOPES


def _define_custom_scopes(c: Any) -> None:
    """Our custom scopes, added to those other parts of the config define."""
    existing = dict(c.JupyterHub.custom_scopes) if "custom_scopes" in c.JupyterHub else {}
    c.JupyterHub.custom_scopes = {**existing, **SCITEX_CUSTOM_SCOPES}


def institution_admin_role(institution: str, admins: list[str]) -> dict[str, Any]:
    """The JupyterHub role of one institution's admins: its users and their
    servers, nobody else's (every scope carries ``!group=<institution>``)."""
    only = f"!group={institution}"
    return {
        "name": f"scitex-admin-{institution}",
        "description": f"Administer the users and servers of institution {institution}",
        "scopes": [
            f"list:users{only}",
            f"read:users{only}",
            f"read:servers{only}",
            # Start and stop; not access:servers (their notebooks and data).
            f"servers{only}",
            f"read:groups{only}",
            f"{SCITEX_ADMIN_SCOPE}{only}",
            # The admin page; what it shows and allows follows the scopes above.
            "admin-ui",
        ],
        "users": admins,
    }


def apply_roles(c: Any, settings: Settings) -> None:
    """Institution admins: one role per institution that has admins.

    Added to what other parts of the config declare (roles, custom scopes).
    JupyterHub makes each role's member list exactly this on every start, so
    removing an admin from the site file revokes the role.
    """
    _define_custom_scopes(c)
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    for key, institution in settings.institutions.items():
        if institution.admins:
            roles.append(institution_admin_role(key, list(institution.admins)))
    c.JupyterHub.load_roles = roles


def apply_spawner(c: Any, settings: Settings) -> None:
    c.JupyterHub.spawner_class = "scitex"
    spawner = c.SciTeXSpawner
    # Already validated: the typed objects pass through as they are.
    spawner.profiles = dict(settings.profiles)
    spawner.institutions = dict(settings.institutions)
    spawner.data_root = settings.data_root
    spawner.notebook_python = settings.notebook.python
    spawner.default_url = settings.notebook.default_url
    spawner.args = list(settings.notebook.args)
    container = settings.container
    spawner.container_runtime = container.runtime
    if container.executable:
        spawner.container_executable = container.executable
    if container.image:
        spawner.container_image = container.image
    spawner.container_binds = list(container.extra_binds)
    spawner.container_unsquash = container.unsquash
    spawner.hub_id = settings.slurm.hub_id
    spawner.queue_poll_interval = settings.slurm.poll_interval
    spawner.queue_wait_timeout = settings.slurm.queue_wait_timeout
    spawner.startup_timeout = settings.slurm.startup_timeout
    c.QueueWatcher.orphan_grace = settings.slurm.orphan_grace
    if settings.slurm.submit_prefix is not None:
        # The one run-as-user prefix: the spawner's sbatch/scancel, the queue watcher's
        # scancel of orphans.
        c.SlurmClient.run_as_prefix = list(settings.slurm.submit_prefix)
    if settings.slurm.conf:
        c.SlurmClient.slurm_conf = settings.slurm.conf
    if settings.slurm.bin_dir:
        c.SlurmClient.bin_dir = settings.slurm.bin_dir
    # The quota gate at start (scitex_spawner.records): start over quota, or refuse.
    c.SpawnRecorder.over_quota = settings.quota.over_quota
    # Our routes in the hub's API, registered here and never by an import: the port
    # callback, and a guard in place of batchspawner's attribute-setting route, which is
    # taken out of JupyterHub's own routes (scitex_spawner.callback says why). JupyterHub
    # puts the hub prefix in front (/hub/api/scitex/port) and logs that extra_handlers is
    # deprecated in favour of services: a service cannot tell which start a server's
    # token belongs to, nor hand the port to that spawner.
    close_batchspawner_route()
    ours = hub_api_handlers()
    paths = {path for path, _ in ours}
    kept = list(c.JupyterHub.extra_handlers) if "extra_handlers" in c.JupyterHub else []
    c.JupyterHub.extra_handlers = [h for h in kept if h[0] not in paths] + ours


SERVICE_NAME = "scitex"
SERVICE_ROLE = "scitex-service"
# The hub's admins (hub.admin_users) as admins of the service: SCITEX_ADMIN_SCOPE unfiltered.
# A role of its own: extending JupyterHub's "admin" role in load_roles would make its
# membership a static list and clear the services that hold it.
HUB_ADMIN_ROLE = "scitex-hub-admin"
# What the service asks the hub's API: who a user is and which institution (group).
SERVICE_SCOPES = ("list:users", "read:users", "list:groups", "read:groups")
# libpq's connection settings: JupyterHub starts managed services with a bare
# environment, so without these the service cannot reach a database whose password
# lives in a pgpass file (or whose TLS settings come from the environment).
LIBPQ_VARIABLES = (
    "PGPASSFILE",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
)


def service_public_url(settings: Settings) -> str:
    """The one place that decides how notebook servers (and so their compute jobs), which
    run on compute nodes, reach the scitex service: ``jobs.service_url``; else, on a site
    whose hub has a cluster-facing connect URL (``hub.hub_connect_url``), the service
    directly where it listens on that host; else through the hub's proxy
    (``hub.bind_url`` + ``hub.base_url``: one machine)."""
    if settings.jobs.service_url:
        return settings.jobs.service_url
    base = "/".join(part for part in settings.hub.base_url.split("/") if part)
    base = f"/{base}/" if base else "/"
    origin = (
        settings.service_listen_url() if settings.hub.hub_connect_url else settings.hub.bind_url
    )
    return f"{origin.rstrip('/')}{base}services/{SERVICE_NAME}/"


def apply_services(c: Any, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """The scitex hub service (``/services/scitex/``), run by the hub, and who may use it.

    The service reads no site file: its configuration (:func:`service_config`) travels as
    JSON in its environment, with the database URL and ``environ``'s (default: this
    process's) libpq variables; never on its command line (it may name secrets). Its token
    and URL come from the hub.
    """
    environ = os.environ if environ is None else environ
    environment = {name: environ[name] for name in LIBPQ_VARIABLES if name in environ}
    environment["SCITEX_DB_URL"] = settings.hub.db_url
    environment[SERVICE_CONFIG_ENV] = json.dumps(service_config(settings), separators=(",", ":"))
    services = [
        s
        for s in (list(c.JupyterHub.services) if "services" in c.JupyterHub else [])
        if s.get("name") != SERVICE_NAME
    ]
    services.append(
        {
            "name": SERVICE_NAME,
            "url": settings.service_listen_url(),
            "command": [sys.executable, "-m", "scitex_service"],
            "environment": environment,
            # Our own service: no "authorize this application" page.
            "oauth_no_confirm": True,
            # A browser's OAuth token for the service carries the part of the admin
            # scope its user holds (JupyterHub intersects: nothing for a researcher,
            # !group=<id> for an institution admin, all of it for a hub admin); the
            # service decides by that scope alone.
            "oauth_client_allowed_scopes": [SCITEX_ADMIN_SCOPE],
            "display": True,
            "info": {"description": "Storage quotas, usage and spawn records"},
        }
    )
    c.JupyterHub.services = services

    _define_custom_scopes(c)  # the OAuth client above names one
    roles = [
        dict(r)
        for r in (list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else [])
        if r.get("name") not in (SERVICE_ROLE, HUB_ADMIN_ROLE)
    ]
    roles.append(
        {
            "name": SERVICE_ROLE,
            "description": "The scitex hub service: look up users and institutions",
            "scopes": list(SERVICE_SCOPES),
            "services": [SERVICE_NAME],
        }
    )
    # JupyterHub makes the members exactly this list at every start: removing a name from
    # hub.admin_users revokes it.
    roles.append(
        {
            "name": HUB_ADMIN_ROLE,
            "description": "Administer every institution in the scitex service",
            "scopes": [SCITEX_ADMIN_SCOPE],
            "users": sorted(settings.hub.admin_users),
        }
    )
    # Every user may reach the service (it decides what each one sees).
    access = f"access:services!service={SERVICE_NAME}"
    user_roles = [r for r in roles if r.get("name") == "user"]
    jobs = f"{SCITEX_JOBS_SCOPE}!user"
    if user_roles:
        scopes = list(user_roles[0].get("scopes", ["self"]))
        user_roles[0]["scopes"] = [*scopes, *(s for s in (access, jobs) if s not in scopes)]
    else:
        roles.append({"name": "user", "scopes": ["self", access, jobs]})
    c.JupyterHub.load_roles = roles
    # A notebook server's token may submit its user's jobs to the service (a token only
    # gets the scopes its user holds: hence the user role above).
    c.Spawner.server_token_scopes = [*DEFAULT_SERVER_TOKEN_SCOPES, jobs, access]
    # Where servers find the service: through the proxy, as compute nodes reach the hub.
    c.SciTeXSpawner.scitex_service_url = service_public_url(settings)

    # The spawner's quota gate and spawn records: our tables in the hub's database.
    c.SqlSpawnStore.db_url = settings.hub.db_url


# Our pages extend JupyterHub's own (``{% extends "templates/..." %}``).
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def apply_templates(c: Any, settings: Settings) -> None:
    """JupyterHub's pages with ours on top: spawn progress card, refused sign-in page."""
    c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]


def apply_gitea(c: Any, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Gitea provisioning at sign-in, and each user's token to that user's server only.

    After ``apply_auth``: wraps its post-auth hook. The token is kept in ``auth_state``, which
    JupyterHub persists (encrypted) only with ``JUPYTERHUB_CRYPT_KEY``: required here.
    """
    gitea = settings.gitea
    if gitea is None:
        return
    env = os.environ if environ is None else environ
    if not env.get("JUPYTERHUB_CRYPT_KEY"):
        raise SettingsError(
            "gitea: JUPYTERHUB_CRYPT_KEY is not set: the hub keeps each user's Gitea token "
            "encrypted in auth_state and needs the key (openssl rand -hex 32)"
        )
    if not gitea.admin_password_file:
        raise SettingsError(
            "gitea.admin_password_file: required (Gitea mints user tokens only with the "
            "admin's password, not with a token)"
        )
    admin = GiteaAdmin(
        url=gitea.url,
        token=_read_secret(gitea.admin_token_file, "gitea.admin_token_file"),
        user=gitea.admin_user,
        password=_read_secret(gitea.admin_password_file, "gitea.admin_password_file"),
    )
    provisioner = GiteaProvisioner(
        admin,
        settings.institutions,
        log=logging.getLogger("scitex.gitea"),
        request_timeout=gitea.request_timeout,
        validate_cert=gitea.validate_cert,
    )
    group_names: dict[str, str] = {}
    if settings.auth.kind == "ldap" and settings.auth.ldap is not None:
        group_names = ldap_group_names(settings.institutions, settings.auth.ldap.group_search_base)
    c.Authenticator.enable_auth_state = True
    c.Authenticator.post_auth_hook = with_gitea_provisioning(
        c.Authenticator.post_auth_hook,
        provisioner,
        identity=lambda model: identity_from_auth_model(model, group_names)[0],
        timeout=6 * gitea.request_timeout,
    )
    c.Spawner.auth_state_hook = gitea_auth_state_hook


def apply_all(c: Any, settings: Settings) -> None:
    apply_hub(c, settings)
    apply_templates(c, settings)
    apply_auth(c, settings)
    apply_gitea(c, settings)  # after apply_auth: wraps its hook
    apply_roles(c, settings)
    apply_spawner(c, settings)
    # After apply_roles: it adds to the roles declared there.
    apply_services(c, settings)
