"""Pure ``apply_*(c, settings)`` functions: the site file onto JupyterHub's config.

Each touches one area, reads only ``settings`` and writes only ``c``, so each
is tested against a fresh ``traitlets.config.Config``.
"""

from __future__ import annotations

import os
from typing import Any

from scitex_spawner.auth import make_post_auth_hook
from scitex_spawner.institutions import USERNAME_PATTERN

from .settings import Settings


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


def apply_auth(c: Any, settings: Settings) -> None:
    auth = settings.auth
    if auth.kind == "pam":
        c.JupyterHub.authenticator_class = "pam"
    elif auth.kind == "ldap" and auth.ldap is not None:
        ldap = auth.ldap
        c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
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
        if ldap.allowed_groups:
            c.LDAPAuthenticator.allowed_groups = list(ldap.allowed_groups)
        c.LDAPAuthenticator.auth_state_attributes = ["mail", "memberOf"]
    elif auth.kind == "oidc" and auth.oidc is not None:
        oidc = auth.oidc
        issuer = oidc.issuer.rstrip("/")
        c.JupyterHub.authenticator_class = "generic-oauth"
        c.GenericOAuthenticator.client_id = oidc.client_id
        c.GenericOAuthenticator.oauth_callback_url = oidc.callback_url
        c.GenericOAuthenticator.authorize_url = oidc.authorize_url or f"{issuer}/auth"
        c.GenericOAuthenticator.token_url = oidc.token_url or f"{issuer}/token"
        c.GenericOAuthenticator.userdata_url = oidc.userdata_url or f"{issuer}/me"
        c.GenericOAuthenticator.scope = list(oidc.scopes)
        c.GenericOAuthenticator.username_claim = oidc.username_claim
    # Authorisation is by institution (the post-auth hook), not by allow-list.
    c.Authenticator.allow_all = True
    c.Authenticator.admin_users = set(settings.hub.admin_users)
    c.Authenticator.manage_groups = True
    c.Authenticator.enable_auth_state = bool(os.environ.get("JUPYTERHUB_CRYPT_KEY"))
    c.Authenticator.username_pattern = USERNAME_PATTERN
    c.Authenticator.post_auth_hook = make_post_auth_hook(
        settings.institutions, settings.hub.admin_users
    )


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
    spawner.hub_id = settings.slurm.hub_id
    spawner.queue_poll_interval = settings.slurm.poll_interval
    spawner.queue_wait_timeout = settings.slurm.queue_wait_timeout
    spawner.startup_timeout = settings.slurm.startup_timeout
    if settings.slurm.submit_prefix is not None:
        spawner.submit_prefix = list(settings.slurm.submit_prefix)
    if settings.slurm.conf:
        c.SlurmClient.slurm_conf = settings.slurm.conf
    if settings.slurm.bin_dir:
        c.SlurmClient.bin_dir = settings.slurm.bin_dir


def apply_all(c: Any, settings: Settings) -> None:
    apply_hub(c, settings)
    apply_auth(c, settings)
    apply_spawner(c, settings)
