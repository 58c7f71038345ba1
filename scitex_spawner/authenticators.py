"""The hub's authenticators: JupyterHub's PAM, ldapauthenticator's LDAP and oauthenticator's
generic OpenID Connect, each with the user-name rules of :class:`NameRules`.

``Authenticator.blocked_users`` (root, the Gitea admin, ``auth.denied_users``) is
JupyterHub's own list: at start JupyterHub strips such a user, if one exists from before,
of roles, groups and admin rights and stops their servers. At sign-in JupyterHub checks it
in ``check_blocked_users``, the stage meant to be overridden, before ``allow_all`` and the
post-auth hook. Stock, a blocked name gets the same "Invalid username or password" as a
wrong password; here it gets the refused-sign-in page saying why, and the same stage also
refuses existing Unix accounts below ``min_uid``. Either way nothing is created: no hub
user, no data directory, no Gitea user.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.auth import Authenticator, PAMAuthenticator
from ldapauthenticator import LDAPAuthenticator
from oauthenticator.generic import GenericOAuthenticator
from traitlets import Integer

from .auth import RefusedName, name_refusal

# The lowest UID of people's accounts on Debian, Ubuntu, RHEL (login.defs UID_MIN).
DEFAULT_MIN_UID = 1000


class NameRules(Authenticator):
    """Refuses, at sign-in, names no person may use: ``blocked_users`` and existing Unix
    accounts whose UID is below ``min_uid``."""

    min_uid = Integer(
        DEFAULT_MIN_UID,
        min=1,
        help="""Lowest UID of an account that may sign in (the site file's `auth.min_uid`).
        A name that is a Unix account on the hub's machine with a smaller UID (root,
        daemon, www-data, postgres: system accounts) is refused at sign-in with a page
        that says why. Names with no Unix account here are not refused by this rule.""",
    ).tag(config=True)

    def name_refusal(self, username: str) -> str | None:
        """Why ``username`` may not sign in or run jobs, or None (also the spawner's check)."""
        return name_refusal(username, self.blocked_users, self.min_uid)

    def check_blocked_users(self, username: str, authentication: Any = None) -> bool:
        why = self.name_refusal(username)
        if why is not None:
            self.log.warning("Sign-in refused for %s: %s", username, why)
            raise RefusedName(username, why)
        return True


class SciTeXPAMAuthenticator(NameRules, PAMAuthenticator):
    """PAM (Unix accounts) with the user-name rules."""


class SciTeXLDAPAuthenticator(NameRules, LDAPAuthenticator):
    """LDAP (jupyterhub-ldapauthenticator) with the user-name rules."""


class SciTeXOIDCAuthenticator(NameRules, GenericOAuthenticator):
    """OpenID Connect (oauthenticator's GenericOAuthenticator) with the user-name rules."""
