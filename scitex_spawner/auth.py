"""User-name rules and institution mapping on top of any authenticator (PAM, LDAP, OIDC).

Names no person may use (:func:`name_refusal`: root, ``auth.denied_users``, the Gitea
admin, Unix accounts below ``auth.min_uid``) are refused by our authenticators
(:mod:`scitex_spawner.authenticators`) and again by the hook, with :class:`RefusedName`.
A ``post_auth_hook`` puts each signed-in user in exactly one institution, as a
JupyterHub group (``Authenticator.manage_groups``), or refuses the sign-in with
a page that says why (:class:`NoInstitution`). Both run inside JupyterHub's sign-in,
before the hub user exists: nothing (hub user, data directory, Gitea user) is created
for a refused user.

What each authenticator reports, and where (checked against the real ones):

- PAM: nothing beyond the name (``auth_state`` is None); institutions list users.
- ldapauthenticator 2.0: ``auth_state["ldap_groups"]``, the DNs of those
  ``LDAPAuthenticator.allowed_groups`` the user is a member of (one base search
  per group), and ``auth_state["user_attributes"]``, the
  ``auth_state_attributes`` of the user's entry as lists (``mail``, and
  ``memberOf`` where the directory maintains it).
- oauthenticator 17 (GenericOAuthenticator): ``auth_state["oauth_user"]``, the
  userinfo response (``email``, ``email_verified``, ``groups`` claims). The email
  counts only when ``email_verified`` is true (:func:`email_verified`).

The hook sees ``auth_state`` whether or not ``enable_auth_state`` is on
(JupyterHub only persists it when on, which needs ``JUPYTERHUB_CRYPT_KEY``), so
the mapping needs no crypt key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from tornado import web

from scitex_hub.institutions import Institution, InstitutionDirectory, lab_group
from scitex_hub.names import name_refusal

log = logging.getLogger(__name__)

# A directory group named by its cn (``demo-researchers``) rather than a DN;
# it becomes ``cn=<name>,<group_search_base>``, so no DN syntax is allowed.
LDAP_GROUP_NAME_RE = re.compile(r"^\w[\w .-]{0,127}\Z")


class SignInRefused(web.HTTPError):
    """403 with the refused-sign-in page (jupyterhub_config/templates/scitex_refused.html):
    a heading, what the hub saw (``jupyterhub_message``) and what the person can do."""

    heading = "Sign-in refused"
    page_title = "Sign-in refused"
    advice: tuple[str, ...] = ()

    def __init__(self, message: str, reason: str) -> None:
        # "%s": the message holds user data and must not be read as a format string.
        super().__init__(403, "%s", message, reason=reason)
        # JupyterHub's error page shows this under the status line.
        self.jupyterhub_message = message
        # What the templates test for (any SignInRefused gets the page).
        self.scitex_refused = True


class NoInstitution(SignInRefused):
    """The identity maps to no single institution."""

    heading = "Sign-in refused: your account belongs to no institution here"
    page_title = "Sign-in refused: no institution"
    advice = (
        (
            "If you have another account (for example your institution's, not a personal one), "
            "sign in with that one."
        ),
        (
            "If your institution should be served by this hub, ask its research-computing team "
            "to register your institution, your directory group or your email domain here."
        ),
    )

    def __init__(self, username: str, email: str | None, groups: Iterable[str]) -> None:
        seen = []
        if email:
            seen.append(f"email {email}")
        group_list = sorted(set(groups))
        if group_list:
            seen.append("groups " + ", ".join(group_list))
        identity = f" ({'; '.join(seen)})" if seen else ""
        message = (
            f"You signed in as {username}{identity}, but your account belongs to no "
            "institution served by this hub (or to more than one), so the sign-in was "
            "refused and nothing was created for you. Ask your institution's "
            "research-computing team to register your institution, directory group or "
            "email domain with this hub."
        )
        super().__init__(message, "No institution")


class RefusedName(SignInRefused):
    """The name is one no person may use here: reserved (``auth.denied_users``, root, the
    Gitea admin) or a system account (a Unix account below ``auth.min_uid``)."""

    heading = "Sign-in refused: this account cannot use the hub"
    page_title = "Sign-in refused: account not allowed"
    advice = (
        "Sign in with your own personal account.",
        (
            "If this is your personal account, ask your research-computing team: the name must "
            "be a person's account on the cluster, not a system or administrator account."
        ),
    )

    def __init__(self, username: str, why: str) -> None:
        message = (
            f"You signed in as {username}, but {why}, so the sign-in was refused and nothing "
            "was created for you. Jobs run as the Unix account of your name: this hub never "
            "runs them as a system or administrator account."
        )
        super().__init__(message, "Account not allowed")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [value.decode() if isinstance(value, bytes) else value]
    if isinstance(value, Iterable):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    return [str(value)]


def normalize_dn(dn: str) -> str:
    """A DN compared the way directories compare them, for the common spellings:
    case-insensitive, spaces around ``,`` and ``=`` not significant."""
    return re.sub(r"\s*([,=])\s*", r"\1", dn.strip()).lower()


def ldap_group_dn(name: str, group_search_base: str | None) -> str:
    """The DN of a group as ``institutions.*.ldap_groups`` names it: a DN as it is,
    a bare name as ``cn=<name>,<group_search_base>``."""
    if "=" in name:
        return name
    if not LDAP_GROUP_NAME_RE.match(name):
        raise ValueError(f"{name!r} is neither a group DN nor a plain group name")
    if not group_search_base:
        raise ValueError(
            f"group {name!r} is a bare name: set auth.ldap.group_search_base "
            "(groups are then cn=<name>,<group_search_base>) or give the full DN"
        )
    return f"cn={name},{group_search_base}"


def ldap_group_names(
    institutions: Mapping[str, Institution], group_search_base: str | None
) -> dict[str, str]:
    """``{normalized DN: name as written in the site file}`` for every directory
    group an institution or one of its labs lists. Raises ValueError naming the key."""
    names: dict[str, str] = {}
    for key, institution in institutions.items():
        listed = [(f"institutions.{key}.ldap_groups", institution.ldap_groups)] + [
            (f"institutions.{key}.labs.{lab_id}.ldap_groups", lab.ldap_groups)
            for lab_id, lab in institution.labs.items()
        ]
        for where, group_list in listed:
            for name in group_list:
                try:
                    dn = ldap_group_dn(name, group_search_base)
                except ValueError as e:
                    raise ValueError(f"{where}: {e}") from None
                names[normalize_dn(dn)] = name
    return names


def email_verified(user_info: Mapping[str, Any]) -> bool:
    """The OIDC ``email_verified`` claim is true: boolean true, or the string "true" some
    providers send (AWS Cognito). Missing, false or anything else: not verified."""
    value = user_info.get("email_verified")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def identity_from_auth_model(
    auth_model: Mapping[str, Any],
    ldap_group_names: Mapping[str, str] | None = None,
) -> tuple[str | None, list[str]]:
    """The email and groups an authenticator reported, whatever its kind.

    Directory groups come back as DNs; each known DN is also given under the
    name the site file uses for it (``ldap_group_names``), so institutions may
    list either.
    """
    state = auth_model.get("auth_state") or {}
    user_info = state.get("oauth_user") or {}
    attrs = state.get("user_attributes") or {}

    email: str | None = None
    if user_info:
        # OIDC: only an address the provider says it verified (``email_verified`` true;
        # a missing claim is not verified). Any other proves nothing about the
        # institution: an account could claim any domain.
        oidc_emails = _as_list(user_info.get("email"))
        if oidc_emails and email_verified(user_info):
            email = oidc_emails[0]
    else:
        # LDAP's mail is the directory's (the site decides who may edit it).
        mails = _as_list(attrs.get("mail")) or _as_list(state.get("email"))
        email = mails[0] if mails else None

    groups = (
        _as_list(user_info.get("groups"))
        + _as_list(state.get("ldap_groups"))
        + _as_list(attrs.get("memberOf"))
        + _as_list(state.get("groups"))
    )
    if ldap_group_names:
        groups += [
            ldap_group_names[normalize_dn(g)] for g in groups if normalize_dn(g) in ldap_group_names
        ]
    return (email or None), list(dict.fromkeys(groups))


def make_post_auth_hook(
    institutions: Mapping[str, Institution],
    admin_users: Iterable[str] = (),
    ldap_group_names: Mapping[str, str] | None = None,
    *,
    denied_users: Collection[str] = ("root",),
    min_uid: int = 1000,
) -> Callable[[Any, Any, dict[str, Any]], dict[str, Any]]:
    """A ``post_auth_hook`` that maps users to institutions (as JupyterHub groups).

    It applies the user-name rules (:func:`name_refusal`) first, as our authenticators
    already did (``NameRules``): the same refusal whatever authenticator runs.
    """
    directory = InstitutionDirectory(institutions)
    denied = frozenset(denied_users)
    # Hub admins, and institution admins who are not themselves its members
    # (a central support team), may sign in without being a tenant.
    admins = set(admin_users).union(*(inst.admins for inst in institutions.values()))
    group_names = dict(ldap_group_names or {})

    def post_auth_hook(
        authenticator: Any, handler: Any, auth_model: dict[str, Any]
    ) -> dict[str, Any]:
        username = auth_model["name"]
        why = name_refusal(username, denied, min_uid)
        if why is not None:
            getattr(authenticator, "log", log).warning("Sign-in refused for %s: %s", username, why)
            raise RefusedName(username, why)
        email, groups = identity_from_auth_model(auth_model, group_names)
        institution = directory.match(username, email=email, groups=groups)
        if institution is None:
            if username in admins:
                # No institution group: no data directory, quota or profiles.
                auth_model["groups"] = []
                return auth_model
            # JupyterHub's own log (the authenticator's), where admins look.
            getattr(authenticator, "log", log).warning(
                "Sign-in refused for %s: no single institution (email %s, groups %s)",
                username,
                email,
                groups,
            )
            raise NoInstitution(username, email, groups)
        # The institution (first) and its labs the user is in are the user's only
        # managed groups: this also takes the user out of an institution or lab the
        # site file no longer gives them.
        labs = directory.labs_of(institution, username, groups=groups)
        auth_model["groups"] = [institution] + [lab_group(institution, lab) for lab in labs]
        return auth_model

    return post_auth_hook


def no_provider_groups(auth_state: Mapping[str, Any]) -> list[str]:
    """``OAuthenticator.auth_state_groups_key``: the provider's groups do not
    become hub groups (only the institution does, from the post-auth hook); this
    also keeps oauthenticator from logging an error when there is no claim."""
    return []
