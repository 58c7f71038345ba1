"""User-name rules at sign-in (issue 14): root, the Gitea admin, auth.denied_users and Unix
accounts below auth.min_uid are refused by every authenticator, through JupyterHub's own
sign-in pipeline, before anything is created; the spawner checks again."""

from __future__ import annotations

import copy
import os
import pwd
from typing import Any

import pytest
from jupyterhub.auth import PAMAuthenticator
from ldapauthenticator import LDAPAuthenticator
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config import Config

from jupyterhub_config.apply import AUTHENTICATOR_CLASSES, apply_auth
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_hub.institutions import load_institutions
from scitex_spawner.auth import NoInstitution, RefusedName, make_post_auth_hook, name_refusal
from scitex_spawner.authenticators import (
    NameRules,
    SciTeXLDAPAuthenticator,
    SciTeXOIDCAuthenticator,
    SciTeXPAMAuthenticator,
)
from scitex_spawner.spawner import SpawnFailed
from tests.hub.test_config import DEMO
from tests.hub.test_spawner import make_spawner

GITEA = {"url": "https://git.example.edu", "admin_token_file": "/t", "admin_user": "Git-Boss"}
DEFAULT_DENIED = {"root", "nobody", "slurm", "munge"}


def uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def a_person() -> str:
    """A Unix account of a person on this machine (UID >= 1000, not nobody)."""
    for entry in pwd.getpwall():
        if 1000 <= entry.pw_uid < 60000 and entry.pw_name.isalnum() and entry.pw_name.islower():
            return entry.pw_name
    pytest.fail("no Unix account with a UID from 1000 on this machine (make users)")


def site(**auth: Any) -> Any:
    data = copy.deepcopy(DEMO)
    data["auth"] = {"kind": "pam", **auth}
    data["gitea"] = GITEA
    return parse_settings(data)


# ------------------------------------------------------------------ the rule --


@pytest.mark.parametrize("name", ["root", "daemon", "bin", "www-data", "postgres", "munge"])
def test_system_accounts_below_the_floor_are_refused(name: str) -> None:
    uid = uid_of(name)
    if uid is None:
        pytest.fail(f"{name} is not an account on this machine (make system postgres slurm)")
    assert uid < 1000
    why = name_refusal(name, (), 1000)
    assert why == (
        f"{name} is a system account on this hub's machine (UID {uid}; people's accounts "
        "start at UID 1000)"
    )


def test_denied_names_people_and_names_without_an_account() -> None:
    person = a_person()
    assert name_refusal(person, DEFAULT_DENIED, 1000) is None
    # The floor is the site's: raised above the person's UID, the person is refused.
    floor = (uid_of(person) or 0) + 1
    assert f"people's accounts start at UID {floor}" in (name_refusal(person, (), floor) or "")
    # Denied by name whatever the UID (Debian's slurm is 64030, nobody 65534).
    for name in ("slurm", "nobody", person):
        assert name_refusal(name, {"slurm", "nobody", person}, 1000) == (
            f"the name {name} is reserved on this hub (an administrator or service account)"
        )
    # No Unix account of that name: the rule has nothing to say (LDAP/OIDC sites whose
    # accounts live elsewhere); the spawner fails later if the job cannot run.
    assert uid_of("ldapann") is None
    assert name_refusal("ldapann", DEFAULT_DENIED, 1000) is None


# --------------------------------------------------------- settings and apply --


def test_settings_defaults_and_the_always_denied() -> None:
    settings = site()
    assert settings.auth.min_uid == 1000
    assert set(settings.auth.denied_users) == DEFAULT_DENIED
    # root and the Gitea admin (lower-cased, as JupyterHub normalizes names) always.
    settings = site(denied_users=["guest"])
    assert settings.denied_users() == {"guest", "root", "git-boss"}


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"auth": {"min_uid": 0}}, "scitex.yaml: auth.min_uid: Input should be greater than"),
        ({"auth": {"min_uid": "x"}}, "scitex.yaml: auth.min_uid: Input should be a valid int"),
        ({"auth": {"denied_users": ["Root"]}}, "auth.denied_users: 'Root' is not a username"),
        ({"auth": {"denied_users": "root"}}, "auth.denied_users: Input should be a valid tuple"),
        ({"hub": {"admin_users": ["root"]}}, "hub.admin_users: 'root' is refused at sign-in"),
        (
            {"institutions": {"x": {"name": "X", "users": ["git-boss"]}}},
            "institutions.x.users: 'git-boss' is refused at sign-in",
        ),
        (
            {"institutions": {"x": {"name": "X", "admins": ["nobody"]}}},
            "institutions.x.admins: 'nobody' is refused at sign-in",
        ),
        (
            {
                "institutions": {
                    "x": {"name": "X", "labs": {"l": {"name": "L", "users": ["slurm"]}}}
                }
            },
            "institutions.x.labs.l.users: 'slurm' is refused at sign-in",
        ),
    ],
)
def test_bad_name_settings_name_the_key(change: dict[str, Any], expected: str) -> None:
    data = copy.deepcopy(DEMO)
    data["gitea"] = GITEA
    for key, value in change.items():
        data[key] = {**data.get(key, {}), **value} if key in ("auth", "hub") else value
    if "institutions" in change:
        data["profiles"] = DEMO["profiles"]
    with pytest.raises(SettingsError) as e:
        parse_settings(data)
    assert expected in str(e.value)


def test_apply_auth_sets_blocked_users_and_the_floor() -> None:
    c = Config()
    apply_auth(c, site(min_uid=2000))
    assert c.JupyterHub.authenticator_class == AUTHENTICATOR_CLASSES["pam"]
    assert c.Authenticator.blocked_users == DEFAULT_DENIED | {"git-boss"}
    assert c.NameRules.min_uid == 2000
    # Configured through JupyterHub's config, the authenticator holds them.
    authenticator = SciTeXPAMAuthenticator(config=c)
    assert authenticator.blocked_users == DEFAULT_DENIED | {"git-boss"}
    assert authenticator.min_uid == 2000


def test_our_authenticators_are_the_stock_ones_with_the_rules() -> None:
    for cls, stock in (
        (SciTeXPAMAuthenticator, PAMAuthenticator),
        (SciTeXLDAPAuthenticator, LDAPAuthenticator),
        (SciTeXOIDCAuthenticator, GenericOAuthenticator),
    ):
        assert issubclass(cls, stock) and issubclass(cls, NameRules)
        name = f"{cls.__module__}.{cls.__name__}"
        assert name in AUTHENTICATOR_CLASSES.values()
    # The stock config sections still reach them.
    c = Config()
    c.LDAPAuthenticator.server_address = "ldap.example.edu"
    c.GenericOAuthenticator.username_claim = "sub"
    assert SciTeXLDAPAuthenticator(config=c).server_address == "ldap.example.edu"
    assert SciTeXOIDCAuthenticator(config=c).username_claim == "sub"


# ------------------------------------------- JupyterHub's sign-in, each kind --


def fixed(cls: type, models: dict[str, dict[str, Any]]) -> type:
    """``cls`` whose authenticate() vouches for the model of the name asked (the password
    check, the directory bind or the provider's code flow, done)."""

    class Vouched(cls):  # type: ignore[misc, valid-type]
        async def authenticate(self, handler: Any, data: dict[str, Any]) -> dict[str, Any]:
            return copy.deepcopy(models[data["username"]])

    return Vouched


KINDS = {
    "pam": (SciTeXPAMAuthenticator, lambda name: {"name": name, "auth_state": None}),
    "ldap": (
        SciTeXLDAPAuthenticator,
        lambda name: {
            "name": name,
            "auth_state": {
                "ldap_groups": ["cn=demo-researchers,ou=groups,dc=scitex,dc=test"],
                "user_attributes": {"mail": [f"{name}@demo-u.edu"]},
            },
        },
    ),
    "oidc": (
        SciTeXOIDCAuthenticator,
        lambda name: {
            "name": name,
            "auth_state": {
                "oauth_user": {"email": f"{name}@demo-u.edu", "email_verified": True},
            },
        },
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_refused_at_sign_in_before_the_hook_with_the_page(kind: str) -> None:
    cls, model = KINDS[kind]
    person = a_person()
    names = ["root", "daemon", "www-data", "slurm", "git-boss", person]
    c = Config()
    data = copy.deepcopy(DEMO)
    data["gitea"] = GITEA
    # Every name would map to demo-u: only the name rules can refuse them.
    data["institutions"]["demo-u"]["users"] = [person, "alice", "bob"]
    data["institutions"]["demo-u"]["domains"] = ["demo-u.edu"]
    data["institutions"]["demo-u"]["ldap_groups"] = [
        "cn=demo-researchers,ou=groups,dc=scitex,dc=test"
    ]
    apply_auth(c, parse_settings(data))
    hooked: list[str] = []
    inner = c.Authenticator.post_auth_hook

    def spy(authenticator: Any, handler: Any, auth_model: dict[str, Any]) -> Any:
        hooked.append(auth_model["name"])
        return inner(authenticator, handler, auth_model)

    c.Authenticator.post_auth_hook = spy
    authenticator = fixed(cls, {n: model(n) for n in names})(config=c)
    for name in names[:-1]:
        with pytest.raises(RefusedName) as e:
            await authenticator.get_authenticated_user(None, {"username": name, "password": "x"})
        assert e.value.status_code == 403
        assert e.value.reason == "Account not allowed"
        assert e.value.jupyterhub_message.startswith(f"You signed in as {name}, but ")
        assert "so the sign-in was refused and nothing was created for you" in str(
            e.value.jupyterhub_message
        )
        assert e.value.heading == "Sign-in refused: this account cannot use the hub"
    # Refused before the post-auth hook (institution mapping, Gitea): nothing was made.
    assert hooked == []
    ok = await authenticator.get_authenticated_user(None, {"username": person, "password": "x"})
    assert ok["name"] == person and ok["groups"] == ["demo-u"]
    assert hooked == [person]


def test_the_hook_refuses_too_whatever_authenticator_runs() -> None:
    institutions = load_institutions({"demo-u": {"name": "D", "users": ["daemon", "bin"]}})
    hook = make_post_auth_hook(institutions, ("bin",), denied_users={"root"}, min_uid=1000)
    for name in ("daemon", "bin", "root"):
        with pytest.raises(RefusedName, match=f"You signed in as {name}, but"):
            hook(None, None, {"name": name, "auth_state": None})
    # A person with no institution still gets the other page.
    with pytest.raises(NoInstitution):
        hook(None, None, {"name": a_person() + "x", "auth_state": None})


# ---------------------------------------------------------------- the spawner --


def test_the_spawner_checks_again_before_any_job() -> None:
    c = Config()
    apply_auth(c, site())
    authenticator = SciTeXPAMAuthenticator(config=c)
    for name in ("daemon", "www-data", "nobody"):
        spawner = make_spawner(name)
        spawner.authenticator = authenticator
        with pytest.raises(SpawnFailed, match=f"no job runs for {name}: ") as e:
            spawner.format_prefix()
        assert e.value.status_code == 403
    spawner = make_spawner("alice")
    spawner.authenticator = authenticator
    assert spawner.format_prefix()[-2:] == ["alice", "--"]


async def test_a_refused_name_gets_nothing_made_at_start(tmp_path: Any) -> None:
    """The name rules come before the data directory: root makes nothing for daemon."""
    c = Config()
    apply_auth(c, site())
    spawner = make_spawner("daemon")
    spawner.authenticator = SciTeXPAMAuthenticator(config=c)
    spawner.data_root = str(tmp_path)
    with pytest.raises(SpawnFailed, match="no job runs for daemon: ") as e:
        await spawner.start()
    assert e.value.status_code == 403
    assert list(tmp_path.iterdir()) == []


def test_a_name_without_a_unix_account_gets_a_clear_message(tmp_path: Any) -> None:
    from scitex_spawner.userdir import make_user_dir as _make_user_dir

    if os.geteuid() != 0:
        pytest.fail("creating users' data directories needs root (the tests run as root)")
    with pytest.raises(SpawnFailed, match="no Unix account named nosuchuser1") as e:
        _make_user_dir(str(tmp_path / "demo-u" / "nosuchuser1"), "nosuchuser1", ".scitex/logs")
    assert e.value.status_code == 403


def test_a_failed_start_is_shown_once() -> None:
    from jupyterhub.utils import format_exception

    message, _ = format_exception(SpawnFailed("Job 7 ended before the server started"))
    # The spawn page shows "Spawn failed: <message>", not "HTTP 500: m (m)".
    assert message == "Job 7 ended before the server started"
