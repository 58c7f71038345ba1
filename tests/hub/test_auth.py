"""Institution mapping at sign-in (PAM, LDAP, OIDC shapes), the refusal, the
auth settings and their application, institution-admin roles."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from jupyterhub import scopes as hub_scopes
from jupyterhub.auth import Authenticator
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config import Config

from jupyterhub_config.apply import (
    AUTHENTICATOR_CLASSES,
    OIDC_REFUSED_MESSAGE,
    SCITEX_ADMIN_SCOPE,
    apply_all,
    apply_auth,
    apply_roles,
)
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_hub.institutions import USERNAME_PATTERN, load_institutions
from scitex_spawner.auth import (
    NoInstitution,
    identity_from_auth_model,
    ldap_group_dn,
    ldap_group_names,
    make_post_auth_hook,
    no_provider_groups,
    normalize_dn,
)
from tests.hub.test_config import DEMO

BASE = "ou=groups,dc=example,dc=edu"
INSTITUTIONS = load_institutions(
    {
        "demo-u": {
            "name": "Demo University",
            "users": ["alice", "bob"],
            "domains": ["demo-u.edu"],
            "ldap_groups": ["demo-researchers"],
        },
        "other-u": {
            "name": "Other University",
            "users": ["carol"],
            "domains": ["other-u.edu"],
            "ldap_groups": ["cn=other staff,ou=staff,dc=example,dc=edu"],
        },
    }
)
GROUP_NAMES = ldap_group_names(INSTITUTIONS, BASE)


def oidc_model(user_info: dict[str, Any], name: str = "ann") -> dict[str, Any]:
    """What oauthenticator 17 hands JupyterHub: auth_state from its own builder."""
    authenticator = GenericOAuthenticator()
    state = authenticator.build_auth_state_dict(
        {"access_token": "t", "token_type": "Bearer", "scope": "openid email"}, user_info
    )
    return {"name": name, "admin": None, "auth_state": state}


def ldap_model(name: str, groups: list[str], mail: list[str] | None = None) -> dict[str, Any]:
    """ldapauthenticator 2.0.2's authenticate(): the allowed_groups that hold the
    user, and auth_state_attributes as ldap3's entry_attributes_as_dict (lists)."""
    attributes: dict[str, Any] = {}
    if mail is not None:
        attributes["mail"] = mail
    return {
        "name": name,
        "admin": None,
        "auth_state": {"ldap_groups": groups, "user_attributes": attributes},
    }


def run_hook(model: dict[str, Any], admins: tuple[str, ...] = ()) -> dict[str, Any]:
    hook = make_post_auth_hook(INSTITUTIONS, admins, GROUP_NAMES)
    return hook(None, None, model)


# ------------------------------------------------------------------ identity --


def test_identity_pam_has_nothing_but_the_name() -> None:
    assert identity_from_auth_model({"name": "alice", "auth_state": None}) == (None, [])


def test_identity_oidc_from_oauthenticators_auth_state() -> None:
    model = oidc_model(
        {"sub": "1", "email": "ann@demo-u.edu", "email_verified": True, "groups": ["g1", "g2"]}
    )
    assert model["auth_state"]["oauth_user"]["email"] == "ann@demo-u.edu"
    assert identity_from_auth_model(model) == ("ann@demo-u.edu", ["g1", "g2"])


@pytest.mark.parametrize(
    "verified,counts",
    [
        (True, True),
        ("true", True),  # AWS Cognito sends a string
        ("TRUE", True),
        (False, False),
        ("false", False),
        (None, False),  # a missing claim is not verified
        (1, False),
        ("yes", False),
        ([True], False),
    ],
)
def test_identity_oidc_email_counts_only_when_verified(verified: Any, counts: bool) -> None:
    claims: dict[str, Any] = {"sub": "1", "email": "x@demo-u.edu"}
    if verified is not None:
        claims["email_verified"] = verified
    model = oidc_model(claims)
    assert identity_from_auth_model(model) == (("x@demo-u.edu" if counts else None), [])


def test_identity_oidc_unverified_email_never_falls_back_to_other_fields() -> None:
    model = oidc_model({"sub": "1", "email": "x@demo-u.edu"})
    model["auth_state"]["email"] = "x@demo-u.edu"
    model["auth_state"]["user_attributes"] = {"mail": ["x@demo-u.edu"]}
    assert identity_from_auth_model(model) == (None, [])


def test_identity_ldap_groups_by_dn_and_by_name() -> None:
    dn = f"cn=demo-researchers,{BASE}"
    model = ldap_model("ldapann", [dn], ["ann@demo-u.edu"])
    assert identity_from_auth_model(model, GROUP_NAMES) == (
        "ann@demo-u.edu",
        [dn, "demo-researchers"],
    )
    # memberOf, as a directory with that overlay spells it (case, spaces).
    model = ldap_model("ldapoli", [])
    model["auth_state"]["user_attributes"]["memberOf"] = [
        "CN=Other Staff, OU=staff, DC=example, DC=edu"
    ]
    _, groups = identity_from_auth_model(model, GROUP_NAMES)
    assert "cn=other staff,ou=staff,dc=example,dc=edu" in groups


def test_ldap_group_dns() -> None:
    assert ldap_group_dn("demo-researchers", BASE) == f"cn=demo-researchers,{BASE}"
    assert ldap_group_dn("cn=x,dc=y", None) == "cn=x,dc=y"
    assert {
        f"cn=demo-researchers,{BASE}": "demo-researchers",
        "cn=other staff,ou=staff,dc=example,dc=edu": "cn=other staff,ou=staff,dc=example,dc=edu",
    } == GROUP_NAMES
    with pytest.raises(
        ValueError, match=r"institutions\.demo-u\.ldap_groups: group 'demo-researchers'"
    ):
        ldap_group_names(INSTITUTIONS, None)
    with pytest.raises(ValueError, match="neither a group DN nor a plain group name"):
        ldap_group_dn("a,b", BASE)
    assert normalize_dn(" CN=A , DC=B ") == "cn=a,dc=b"


# ---------------------------------------------------------------- the hook --


def test_hook_maps_each_kind_to_one_institution() -> None:
    assert run_hook({"name": "alice", "auth_state": None})["groups"] == ["demo-u"]
    verified = {"email": "ann@Demo-U.edu", "email_verified": True}
    assert run_hook(oidc_model(verified))["groups"] == ["demo-u"]
    assert run_hook(ldap_model("ldapann", [f"cn=demo-researchers,{BASE}"]))["groups"] == ["demo-u"]
    dn = "cn=other staff,ou=staff,dc=example,dc=edu"
    assert run_hook(ldap_model("ldapoli", [dn]))["groups"] == ["other-u"]
    # LDAP mail maps by domain when no group does.
    assert run_hook(ldap_model("x", [], ["x@other-u.edu"]))["groups"] == ["other-u"]


def test_hook_refuses_who_maps_to_none_with_a_reason() -> None:
    with pytest.raises(NoInstitution) as e:
        run_hook(
            oidc_model(
                {"email": "zed@elsewhere.example", "email_verified": True, "groups": ["visitors"]},
                "zed",
            )
        )
    assert e.value.status_code == 403
    assert e.value.reason == "No institution"
    message = e.value.jupyterhub_message
    assert message.startswith(
        "You signed in as zed (email zed@elsewhere.example; groups visitors), but your "
        "account belongs to no institution served by this hub (or to more than one)"
    )
    assert "nothing was created for you" in message
    # User data is never read as a format string.
    assert e.value.log_message == "%s" and e.value.args == (message,)
    with pytest.raises(NoInstitution, match="100%"):
        run_hook(oidc_model({"email": "100%@nowhere.example", "email_verified": True}, "pct"))


def test_hook_refuses_ambiguous_and_unverified() -> None:
    # Groups of two institutions: better refused than placed in the wrong one.
    both = ldap_model(
        "x", [f"cn=demo-researchers,{BASE}", "cn=other staff,ou=staff,dc=example,dc=edu"]
    )
    with pytest.raises(NoInstitution):
        run_hook(both)
    with pytest.raises(NoInstitution):
        run_hook(oidc_model({"email": "mallory@demo-u.edu", "email_verified": False}, "m"))
    # No email_verified claim at all: not verified either.
    with pytest.raises(NoInstitution, match="You signed in as nora, but"):
        run_hook(oidc_model({"email": "nora@demo-u.edu"}, "nora"))


def test_hook_lets_admins_in_without_institution() -> None:
    model = run_hook({"name": "admin", "auth_state": None}, admins=("admin",))
    assert model["groups"] == []
    # An institution's admin who is not its member (central support).
    institutions = dict(INSTITUTIONS)
    institutions["other-u"] = institutions["other-u"].model_copy(update={"admins": ("helpdesk",)})
    hook = make_post_auth_hook(institutions)
    assert hook(None, None, {"name": "helpdesk", "auth_state": None})["groups"] == []
    with pytest.raises(NoInstitution):
        hook(None, None, {"name": "stranger", "auth_state": None})


@pytest.mark.parametrize(
    "name,ok",
    [
        ("alice", True),
        ("_svc", True),
        ("a-b_c9", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("../etc", False),
        ("a/b", False),
        ("a b", False),
        ("a;rm", False),
        ("$(id)", False),
        ("alice\n", False),
        ("-rf", False),
        ("9lives", False),
        ("ann.smith", False),
        ("Alice", False),
    ],
)
def test_username_pattern_refuses_unsafe_names(name: str, ok: bool) -> None:
    authenticator = Authenticator(username_pattern=USERNAME_PATTERN)
    assert authenticator.validate_username(name) is ok


# ------------------------------------------------------- settings and apply --


def settings_with_auth(auth: dict[str, Any], **institutions: Any) -> Any:
    data = copy.deepcopy(DEMO)
    data["auth"] = auth
    for key, changes in institutions.items():
        data["institutions"][key.replace("_", "-")].update(changes)
    return parse_settings(data)


LDAP = {
    "kind": "ldap",
    "ldap": {
        "server_address": "127.0.0.1",
        "server_port": 3890,
        "tls_strategy": "insecure",
        "bind_dn_template": ["uid={username},ou=people,dc=scitex,dc=test"],
        "group_search_base": "ou=groups,dc=scitex,dc=test",
    },
}


def test_apply_auth_ldap() -> None:
    settings = settings_with_auth(
        LDAP,
        demo_u={"ldap_groups": ["demo-researchers"]},
        other_u={"ldap_groups": ["cn=staff,ou=other,dc=scitex,dc=test"]},
    )
    c = Config()
    apply_auth(c, settings)
    ldap = c.LDAPAuthenticator
    assert c.JupyterHub.authenticator_class == AUTHENTICATOR_CLASSES["ldap"]
    assert ldap.server_port == 3890
    assert ldap.tls_strategy == "insecure"
    assert ldap.allowed_groups == [
        "cn=demo-researchers,ou=groups,dc=scitex,dc=test",
        "cn=staff,ou=other,dc=scitex,dc=test",
    ]
    # memberOf only when asked: a schema without it fails the search.
    assert ldap.auth_state_attributes == ["mail"]
    assert c.Authenticator.allow_all is True
    hook = c.Authenticator.post_auth_hook
    model = ldap_model("ldapann", ["cn=demo-researchers,ou=groups,dc=scitex,dc=test"])
    assert hook(None, None, model)["groups"] == ["demo-u"]


def test_apply_auth_ldap_search_password_and_bare_group_needs_base(tmp_path: Path) -> None:
    secret = tmp_path / "ldap-search"
    secret.write_text("s3cret\n")
    ldap = {
        "kind": "ldap",
        "ldap": {
            "server_address": "ldap.example.edu",
            "lookup_dn": True,
            "user_search_base": "ou=people,dc=example,dc=edu",
            "lookup_dn_search_user": "cn=reader,dc=example,dc=edu",
            "lookup_dn_search_password_file": str(secret),
            "member_of": True,
        },
    }
    c = Config()
    apply_auth(c, settings_with_auth(ldap))
    assert c.LDAPAuthenticator.lookup_dn_search_password == "s3cret"
    assert c.LDAPAuthenticator.auth_state_attributes == ["mail", "memberOf"]
    assert "allowed_groups" not in c.LDAPAuthenticator
    with pytest.raises(SettingsError, match=r"institutions\.demo-u\.ldap_groups: group 'team'"):
        apply_auth(Config(), settings_with_auth(ldap, demo_u={"ldap_groups": ["team"]}))


def test_apply_auth_oidc(tmp_path: Path) -> None:
    secret = tmp_path / "oidc-secret"
    secret.write_text("client-secret-value\n")
    oidc = {
        "kind": "oidc",
        "oidc": {
            "issuer": "http://127.0.0.1:9000/",
            "client_id": "scitex",
            "client_secret_file": str(secret),
            "callback_url": "http://127.0.0.1:8000/hub/oauth_callback",
            "scopes": ["openid", "email", "profile"],
        },
    }
    c = Config()
    apply_auth(c, settings_with_auth(oidc))
    g = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == AUTHENTICATOR_CLASSES["oidc"]
    assert g.client_secret == "client-secret-value"
    assert (g.authorize_url, g.token_url, g.userdata_url) == (
        "http://127.0.0.1:9000/auth",
        "http://127.0.0.1:9000/token",
        "http://127.0.0.1:9000/me",
    )
    assert g.username_claim == "preferred_username"
    assert g.login_service == "your institution"
    assert g.auth_state_groups_key is no_provider_groups
    assert g.custom_403_message == OIDC_REFUSED_MESSAGE

    secret.unlink()
    with pytest.raises(SettingsError, match=r"auth\.oidc\.client_secret_file: cannot read"):
        apply_auth(Config(), settings_with_auth(oidc))
    secret.write_text("\n")
    with pytest.raises(SettingsError, match=r"auth\.oidc\.client_secret_file: .* is empty"):
        apply_auth(Config(), settings_with_auth(oidc))


@pytest.mark.parametrize(
    "auth,expected",
    [
        (
            {"kind": "ldap", "ldap": {"server_address": "x"}},
            "scitex.yaml: auth.ldap: give bind_dn_template, or lookup_dn",
        ),
        (
            {"kind": "ldap", "ldap": {"server_address": "x", "bind_dn_template": ["uid=x"]}},
            "auth.ldap.bind_dn_template: 'uid=x' has no {username}",
        ),
        (
            {"kind": "ldap", "ldap": {"server_address": "x", "lookup_dn": True}},
            "lookup_dn needs user_search_base",
        ),
        (
            {
                "kind": "ldap",
                "ldap": {
                    "server_address": "x",
                    "lookup_dn": True,
                    "user_search_base": "o=x",
                    "lookup_dn_search_password_file": "/etc/pw",
                },
            },
            "lookup_dn_search_password_file needs lookup_dn_search_user",
        ),
        (
            {
                "kind": "ldap",
                "ldap": {
                    "server_address": "x",
                    "bind_dn_template": ["uid={username}"],
                    "server_port": 0,
                },
            },
            "auth.ldap.server_port: Input should be greater than or equal to 1",
        ),
        (
            {
                "kind": "ldap",
                "ldap": {
                    "server_address": "x",
                    "bind_dn_template": ["uid={username}"],
                    "tls_strategy": "none",
                },
            },
            "auth.ldap.tls_strategy: Input should be",
        ),
        (
            {
                "kind": "oidc",
                "oidc": {
                    "issuer": "id.example.edu",
                    "client_id": "x",
                    "client_secret_file": "/s",
                    "callback_url": "https://h/cb",
                },
            },
            "auth.oidc.issuer: 'id.example.edu' is not an http(s) URL",
        ),
        (
            {
                "kind": "oidc",
                "oidc": {
                    "issuer": "https://id",
                    "client_id": "x",
                    "client_secret_file": "secret",
                    "callback_url": "https://h/cb",
                },
            },
            "auth.oidc.client_secret_file: must be an absolute path",
        ),
        (
            {
                "kind": "oidc",
                "oidc": {
                    "issuer": "https://id",
                    "client_id": "x",
                    "client_secret_file": "/s",
                    "callback_url": "https://h/cb",
                    "allowed_groups": ["x"],
                },
            },
            "auth.oidc.allowed_groups: Extra inputs are not permitted",
        ),
    ],
)
def test_auth_settings_errors_name_the_key(auth: dict[str, Any], expected: str) -> None:
    with pytest.raises(SettingsError) as e:
        settings_with_auth(auth)
    assert expected in str(e.value)


# -------------------------------------------------------------------- roles --


def test_apply_roles_one_role_per_institution_with_admins() -> None:
    data = copy.deepcopy(DEMO)
    data["institutions"]["demo-u"]["admins"] = ["bob"]
    data["institutions"]["other-u"]["admins"] = []
    c = Config()
    apply_roles(c, parse_settings(data))
    assert c.JupyterHub.custom_scopes == {
        "custom:scitex:admin": {
            "description": "Administer SciTeX resources (quota, projects, jobs) of users, "
            "limited by a !group=<institution> filter",
        },
        "custom:scitex:jobs": {
            "description": "Submit, list and cancel one's own compute jobs through the scitex "
            "service (held by notebook servers' tokens, with a !user filter)",
        },
    }
    assert c.JupyterHub.load_roles == [
        {
            "name": "scitex-admin-demo-u",
            "description": "Administer the users and servers of institution demo-u",
            "scopes": [
                "list:users!group=demo-u",
                "read:users!group=demo-u",
                "read:servers!group=demo-u",
                "servers!group=demo-u",
                "read:groups!group=demo-u",
                "custom:scitex:admin!group=demo-u",
                "admin-ui",
            ],
            "users": ["bob"],
        }
    ]
    # JupyterHub's own checker accepts every scope, filters included.
    hub_scopes.define_custom_scopes(c.JupyterHub.custom_scopes)
    hub_scopes._check_scopes_exist(c.JupyterHub.load_roles[0]["scopes"])


def test_apply_roles_adds_to_what_is_there() -> None:
    data = copy.deepcopy(DEMO)
    data["institutions"]["other-u"]["admins"] = ["carol"]
    c = Config()
    c.JupyterHub.load_roles = [{"name": "service-role", "scopes": ["read:users"]}]
    c.JupyterHub.custom_scopes = {"custom:other:x": {"description": "x"}}
    apply_roles(c, parse_settings(data))
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["service-role", "scitex-admin-other-u"]
    assert set(c.JupyterHub.custom_scopes) == {
        "custom:other:x",
        SCITEX_ADMIN_SCOPE,
        "custom:scitex:jobs",
    }


def test_apply_all_sets_roles_and_no_admins_means_no_roles() -> None:
    c = Config()
    apply_all(c, parse_settings(DEMO))  # the demo has no institution admins
    # (apply_services adds the scitex service's role and the user role's access to it.)
    assert [
        r["name"] for r in c.JupyterHub.load_roles if r["name"].startswith("scitex-admin")
    ] == []
    assert SCITEX_ADMIN_SCOPE in c.JupyterHub.custom_scopes
