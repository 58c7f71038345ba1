"""Institution mapping on top of any authenticator (PAM, LDAP, OIDC).

A ``post_auth_hook`` puts each signed-in user in exactly one institution, as a
JupyterHub group (``Authenticator.manage_groups``), or refuses the sign-in with
a page that says why. Nothing is created for a refused user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tornado import web

from .institutions import Institution, InstitutionDirectory


class NoInstitution(web.HTTPError):
    def __init__(self, username: str) -> None:
        message = (
            f"Signed in as {username}, but your account belongs to no institution "
            "served by this hub. Ask your institution's research-computing team to "
            "register your institution, group or email domain."
        )
        super().__init__(403, reason=message, log_message=message)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def identity_from_auth_model(auth_model: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The email and directory groups an authenticator reported, whatever its kind."""
    state = auth_model.get("auth_state") or {}
    user_info = state.get("oauth_user") or state.get("user") or {}
    email = user_info.get("email") or state.get("email") or None
    if isinstance(email, list):
        email = email[0] if email else None
    groups = _as_list(user_info.get("groups")) + _as_list(state.get("groups"))
    # ldapauthenticator puts the member-of groups in auth_state["user_attributes"].
    attrs = state.get("user_attributes") or {}
    if not email and attrs.get("mail"):
        email = _as_list(attrs["mail"])[0]
    groups += _as_list(attrs.get("memberOf"))
    return (str(email) if email else None), groups


def make_post_auth_hook(
    institutions: Mapping[str, Institution],
    admin_users: Iterable[str] = (),
) -> Callable[[Any, Any, dict[str, Any]], dict[str, Any]]:
    """A ``post_auth_hook`` that maps users to institutions (as JupyterHub groups)."""
    directory = InstitutionDirectory(institutions)
    admins = set(admin_users)

    def post_auth_hook(
        authenticator: Any, handler: Any, auth_model: dict[str, Any]
    ) -> dict[str, Any]:
        username = auth_model["name"]
        email, groups = identity_from_auth_model(auth_model)
        institution = directory.match(username, email=email, groups=groups)
        if institution is None:
            if username in admins:
                # Hub admins may sign in to administer without being a tenant.
                auth_model["groups"] = []
                return auth_model
            raise NoInstitution(username)
        auth_model["groups"] = [institution]
        return auth_model

    return post_auth_hook
