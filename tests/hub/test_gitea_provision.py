"""Hub-side Gitea provisioning against the fake Gitea (which follows Gitea's API and its rule that
only basic authentication mints user tokens)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from traitlets.config import Config

from jupyterhub_config.apply import apply_gitea
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_gitea.client import NOTEBOOK_TOKEN_SCOPES, GiteaClient, GiteaError
from scitex_hub.institutions import Institution, Lab
from scitex_spawner.gitea_provision import (
    AUTH_STATE_KEY,
    TOKEN_NAME,
    GiteaAdmin,
    GiteaProvisioner,
    gitea_auth_state_hook,
    gitea_environment,
    with_gitea_provisioning,
)
from tests.fakes.gitea import FakeGiteaServer

ADMIN_PASSWORD = "admin-pw-31415"

INSTITUTIONS = {
    "demo-u": Institution(
        name="Demo University",
        users=("alice", "bob"),
        labs={"neuro": Lab(name="Neuroscience"), "chem": Lab(name="Chemistry")},
    ),
    "other-u": Institution(
        name="Other University",
        users=("carol",),
        gitea_org="other-lab",
        labs={"neuro": Lab(name="Other Neuro")},
    ),
}


@pytest.fixture
def gitea(tmp_path: Path) -> Iterator[tuple[FakeGiteaServer, str]]:
    with FakeGiteaServer(tmp_path / "gitea") as server:
        server.fake.add_user("gitea-admin", password=ADMIN_PASSWORD, admin=True)
        # The scopes docs/gitea.md tells a site to give the hub's admin token.
        admin_token = server.fake.add_token(
            "gitea-admin", "hub", ("write:admin", "write:organization", "read:user")
        )
        yield server, admin_token
        assert server.fake.violations == []


def provisioner(
    server: FakeGiteaServer, admin_token: str, password: str = ADMIN_PASSWORD
) -> GiteaProvisioner:
    admin = GiteaAdmin(server.url, admin_token, "gitea-admin", password)
    return GiteaProvisioner(admin, INSTITUTIONS, log=logging.getLogger("test.gitea"))


async def test_sign_in_creates_user_org_team_membership_and_a_least_scope_token(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    server, admin_token = gitea
    entry = await provisioner(server, admin_token).provision("alice", "demo-u", "a@demo-u.edu")
    token = entry["token"]
    assert entry == {"url": server.url, "user": "alice", "org": "demo-u", "token": token}
    admin = GiteaClient(server.url, admin_token)
    assert (await admin.get_user("alice")) is not None
    assert await admin.is_org_member("demo-u", "alice")
    assert [t.name for t in await admin.list_org_teams("demo-u")] == ["Owners", "members"]
    # The token is alice's, with exactly the notebook's scopes...
    user = GiteaClient(server.url, token)
    assert (await user.get_current_user()).login == "alice"
    tokens = await admin.list_access_tokens(
        "alice", basic_auth=("gitea-admin", ADMIN_PASSWORD), sudo="alice"
    )
    assert [(t.name, set(t.scopes)) for t in tokens] == [(TOKEN_NAME, set(NOTEBOOK_TOKEN_SCOPES))]
    # ...so it cannot do admin work, and it can create repositories in the lab's organization.
    with pytest.raises(GiteaError) as e:
        await user.admin_create_user("mallory", "m@x.y", "pw-123456")
    assert e.value.status in (401, 403)
    repo = await user.create_repo("paper", org="demo-u")
    assert repo.full_name == "demo-u/paper"


async def test_second_sign_in_keeps_a_valid_token_and_replaces_a_revoked_one(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    server, admin_token = gitea
    prov = provisioner(server, admin_token)
    first = await prov.provision("alice", "demo-u")
    again = await prov.provision("alice", "demo-u", previous=first)
    assert again["token"] == first["token"]
    # Revoked in Gitea (by the user, or an admin): the next sign-in issues a new one.
    basic = ("gitea-admin", ADMIN_PASSWORD)
    await prov.api.delete_access_token("alice", TOKEN_NAME, basic_auth=basic, sudo="alice")
    third = await prov.provision("alice", "demo-u", previous=first)
    assert third["token"] not in ("", first["token"])
    assert (await GiteaClient(server.url, third["token"]).get_current_user()).login == "alice"
    # A token of another user in the stored state is not taken: a new one replaces it.
    bob = await prov.provision("bob", "demo-u")
    fourth = await prov.provision("alice", "demo-u", previous={"token": bob["token"]})
    assert fourth["token"] != bob["token"]
    assert (await GiteaClient(server.url, fourth["token"]).get_current_user()).login == "alice"
    tokens = await prov.api.list_access_tokens("alice", basic_auth=basic, sudo="alice")
    assert [t.name for t in tokens] == [TOKEN_NAME]  # one token, never a pile


async def test_membership_follows_the_institution(gitea: tuple[FakeGiteaServer, str]) -> None:
    server, admin_token = gitea
    prov = provisioner(server, admin_token)
    await prov.provision("carol", "demo-u")
    assert await prov.api.is_org_member("demo-u", "carol")
    # The site file moved carol to other-u (organization other-lab).
    entry = await prov.provision("carol", "other-u")
    assert entry["org"] == "other-lab"
    assert await prov.api.is_org_member("other-lab", "carol")
    assert not await prov.api.is_org_member("demo-u", "carol")
    # A hub admin without an institution: a Gitea user and token, no organization.
    admin_entry = await prov.provision("admin", None)
    assert admin_entry["org"] == "" and admin_entry["token"]


async def teams_of(prov: GiteaProvisioner, username: str) -> set[tuple[str, str]]:
    return {(t.org, t.name) for t in await prov.api.list_my_teams(sudo=username)}


async def test_labs_are_teams_in_the_institution_org_and_membership_follows_them(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    server, admin_token = gitea
    prov = provisioner(server, admin_token)
    entry = await prov.provision("alice", "demo-u", labs=["neuro"])
    # The notebook's organization stays the institution's.
    assert entry["org"] == "demo-u" and entry["token"]
    assert await teams_of(prov, "alice") == {("demo-u", "members"), ("demo-u", "lab-neuro")}
    teams = {t.name: t for t in server.fake.teams.values() if t.org == "demo-u"}
    assert sorted(teams) == ["Owners", "lab-neuro", "members"]
    lab = teams["lab-neuro"]
    # Write to the repositories given to the lab; not every repository, no org-wide creation.
    assert (lab.permission, lab.includes_all_repositories, lab.can_create_org_repo) == (
        "write",
        False,
        False,
    )
    await prov.provision("bob", "demo-u", labs=["neuro", "chem"])
    # alice moved from neuro to chem: out of lab-neuro, bob stays; the team stays.
    await prov.provision("alice", "demo-u", labs=["chem"])
    assert await teams_of(prov, "alice") == {("demo-u", "members"), ("demo-u", "lab-chem")}
    assert await teams_of(prov, "bob") == {
        ("demo-u", "members"),
        ("demo-u", "lab-neuro"),
        ("demo-u", "lab-chem"),
    }
    # A lab the institution does not declare (removed from the site file) is no team.
    await prov.provision("alice", "demo-u", labs=["gone", "chem"])
    assert not any(t.name == "lab-gone" for t in server.fake.teams.values())
    assert await teams_of(prov, "alice") == {("demo-u", "members"), ("demo-u", "lab-chem")}
    # No labs: only the institution; the organization's other teams are left alone.
    server.fake.add_org("elsewhere", owners=("gitea-admin",), members=("alice",))
    await prov.provision("alice", "demo-u")
    assert await teams_of(prov, "alice") == {("demo-u", "members"), ("elsewhere", "Members")}


async def test_an_existing_lab_team_is_reused_and_a_move_leaves_the_old_labs(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    server, admin_token = gitea
    prov = provisioner(server, admin_token)
    await prov.provision("bob", "demo-u")  # the organization exists, no lab team yet
    made = await prov.api.create_team("demo-u", "Lab-Neuro", includes_all_repositories=False)
    await prov.provision("carol", "demo-u", labs=["neuro"])
    assert await teams_of(prov, "carol") == {("demo-u", "members"), ("demo-u", "Lab-Neuro")}
    assert sum(t.org == "demo-u" for t in server.fake.teams.values()) == 3
    assert made.id in {t.id for t in await prov.api.list_my_teams(sudo="carol")}
    # carol moved to other-u: out of demo-u's lab team too, so out of the organization.
    entry = await prov.provision("carol", "other-u", labs=["neuro"])
    assert entry["org"] == "other-lab"
    assert await teams_of(prov, "carol") == {("other-lab", "members"), ("other-lab", "lab-neuro")}
    assert not await prov.api.is_org_member("demo-u", "carol")


async def test_a_failure_is_reported_without_secrets_and_does_not_raise(
    gitea: tuple[FakeGiteaServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, admin_token = gitea
    caplog.set_level(logging.DEBUG)
    entry = await provisioner(server, admin_token, password="wrong-pw-27182").provision(
        "alice", "demo-u"
    )
    assert set(entry) == {"url", "error"}
    assert "401" in entry["error"] and "projects stay local" in entry["error"]
    for secret in (admin_token, "wrong-pw-27182", ADMIN_PASSWORD):
        assert secret not in caplog.text and secret not in str(entry)
    assert "Gitea provisioning for alice failed" in caplog.text


async def test_an_unreachable_gitea_is_an_error_entry() -> None:
    admin = GiteaAdmin("http://127.0.0.1:9", "tok-unreachable", "gitea-admin", "pw")
    entry = await GiteaProvisioner(admin, INSTITUTIONS, log=logging.getLogger("t")).provision(
        "alice", "demo-u"
    )
    assert entry == {
        "url": "http://127.0.0.1:9",
        "error": "Gitea could not be set up for you (502 Gitea is unreachable); projects stay "
        "local until your next sign-in",
    }


async def test_the_fake_shows_is_admin_only_to_admins_and_the_user_like_gitea(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    # Gitea's convert.ToUser: is_admin is set only when the viewer is a site admin or the user.
    server, admin_token = gitea
    server.fake.add_user("erin", admin=True)
    server.fake.add_user("alice")
    alice = GiteaClient(server.url, server.fake.add_token("alice"))
    erin = GiteaClient(server.url, server.fake.add_token("erin"))
    assert (await GiteaClient(server.url, admin_token).get_user("erin")).is_admin is True
    assert (await erin.get_current_user()).is_admin is True
    assert (await alice.get_user("erin")).is_admin is False
    assert (await GiteaClient(server.url, admin_token).get_user("alice")).is_admin is False


def tokens_of(server: FakeGiteaServer, login: str) -> list[str]:
    return [t.name for t in server.fake.tokens.values() if t.user == login.lower()]


async def test_an_existing_gitea_site_admin_is_never_adopted(
    gitea: tuple[FakeGiteaServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, admin_token = gitea
    caplog.set_level(logging.INFO)
    server.fake.add_user("erin", admin=True)
    own = server.fake.add_token("erin", "erins-own", ("all",))
    prov = provisioner(server, admin_token)
    # Even with a valid token of that account in the stored state (signed in before).
    for previous in (None, {"token": own}):
        entry = await prov.provision("erin", "demo-u", previous=previous)
        assert entry == {
            "url": server.url,
            "error": "Gitea was not set up for you: the Gitea account erin is a Gitea site "
            "administrator, and the hub gives no server a token of an administrator account; "
            "ask your administrator",
        }
    # No token made, no organization or team touched.
    assert tokens_of(server, "erin") == ["erins-own"]
    assert await prov.api.get_org("demo-u") is None
    assert "Gitea provisioning for erin refused" in caplog.text
    # The hub's own Gitea admin likewise (also refused at sign-in: auth.denied_users).
    entry = await prov.provision("gitea-admin", None)
    assert "gitea-admin is a Gitea site administrator" in entry["error"]
    assert tokens_of(server, "gitea-admin") == ["hub"]
    # By name too, should the hub's admin token not show is_admin.
    server.fake.add_user("boss")
    admin = GiteaAdmin(server.url, admin_token, "Boss", ADMIN_PASSWORD)
    named = GiteaProvisioner(admin, INSTITUTIONS, log=logging.getLogger("test.gitea"))
    assert "boss is a Gitea site administrator" in (await named.provision("boss", None))["error"]
    assert tokens_of(server, "boss") == []
    # A user who is not an admin is adopted as before.
    server.fake.add_user("alice")
    assert (await prov.provision("alice", "demo-u"))["token"]


class FakeUser:
    def __init__(self, state: dict[str, Any] | None) -> None:
        self.state = state

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.state


async def test_the_hook_stores_the_entry_in_auth_state_after_the_institution_mapping(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    server, admin_token = gitea
    prov = provisioner(server, admin_token)

    def institution_hook(authenticator: Any, handler: Any, model: dict[str, Any]) -> Any:
        model["groups"] = ["other-u"]
        return model

    hook = with_gitea_provisioning(institution_hook, prov)
    stored: dict[str, Any] | None = None
    handler = SimpleNamespace(find_user=lambda name: FakeUser(stored) if stored else None)
    model = await hook(None, handler, {"name": "carol", "auth_state": {"other": 1}})
    entry = model["auth_state"][AUTH_STATE_KEY]
    assert model["groups"] == ["other-u"] and model["auth_state"]["other"] == 1
    assert entry["org"] == "other-lab" and entry["token"]
    stored = model["auth_state"]
    model2 = await hook(None, handler, {"name": "carol", "auth_state": None})
    assert model2["auth_state"][AUTH_STATE_KEY]["token"] == entry["token"]


async def test_the_hook_gives_the_labs_in_the_users_groups(
    gitea: tuple[FakeGiteaServer, str],
) -> None:
    server, admin_token = gitea
    prov = provisioner(server, admin_token)
    groups: list[str] = []

    def institution_hook(authenticator: Any, handler: Any, model: dict[str, Any]) -> Any:
        model["groups"] = list(groups)
        return model

    hook = with_gitea_provisioning(institution_hook, prov)
    # The institution is found among the groups wherever it is; another institution's
    # lab group is not a lab of this one.
    groups[:] = ["demo-u:chem", "other-u:neuro", "demo-u"]
    model = await hook(None, None, {"name": "alice", "auth_state": None})
    assert model["auth_state"][AUTH_STATE_KEY]["org"] == "demo-u"
    assert await teams_of(prov, "alice") == {("demo-u", "members"), ("demo-u", "lab-chem")}
    groups[:] = ["demo-u"]
    await hook(None, None, {"name": "alice", "auth_state": None})
    assert await teams_of(prov, "alice") == {("demo-u", "members")}


def test_the_spawner_hook_gives_the_token_to_this_server_only() -> None:
    state = {
        AUTH_STATE_KEY: {
            "url": "https://gitea.example.edu",
            "user": "alice",
            "org": "demo-u",
            "token": "tok-alice-1",
        }
    }
    spawner = SimpleNamespace(
        environment={"KEEP": "1", "SCITEX_GITEA_TOKEN": "stale"},
        log=logging.getLogger("t"),
        user=SimpleNamespace(name="alice"),
    )
    gitea_auth_state_hook(spawner, state)
    assert spawner.environment == {
        "KEEP": "1",
        "SCITEX_GITEA_URL": "https://gitea.example.edu",
        "SCITEX_GITEA_TOKEN": "tok-alice-1",
        "SCITEX_GITEA_USER": "alice",
        "SCITEX_GITEA_ORG": "demo-u",
    }
    assert spawner.start_notices == []
    # No token stored (provisioning failed, or no crypt key): none given, a stale one removed,
    # and the spawn page says why.
    gitea_auth_state_hook(spawner, {AUTH_STATE_KEY: {"url": "x", "error": "Gitea is down"}})
    assert spawner.environment == {"KEEP": "1"}
    assert spawner.start_notices == ["Gitea is not available to this server: Gitea is down"]
    gitea_auth_state_hook(spawner, None)
    assert spawner.environment == {"KEEP": "1"}
    assert spawner.start_notices == [
        (
            "Gitea is not available to this server: no Gitea token is stored for you; sign out "
            "and in again to get one"
        )
    ]
    assert gitea_environment({AUTH_STATE_KEY: {"url": "u", "user": "b", "token": "t"}}) == {
        "SCITEX_GITEA_URL": "u",
        "SCITEX_GITEA_TOKEN": "t",
        "SCITEX_GITEA_USER": "b",
    }


def site(tmp_path: Path, **gitea: Any) -> Any:
    return parse_settings(
        {
            "data_root": "/tmp/data",
            "institutions": {"demo-u": {"name": "Demo", "profiles": ["small"]}},
            "profiles": {
                "small": {
                    "display_name": "Small",
                    "partition": "debug",
                    "cpus": {"default": 1, "max": 1},
                    "memory": {"default": "1GiB", "max": "1GiB"},
                    "runtime": {"default": "01:00:00", "max": "01:00:00"},
                }
            },
            "gitea": gitea,
        }
    )


@pytest.mark.parametrize(
    ("gitea", "message"),
    [
        ({"url": "ftp://g", "admin_token_file": "/t"}, "gitea.url: "),
        ({"url": "https://u:p@g", "admin_token_file": "/t"}, "gitea.url: "),
        ({"url": "https://g", "admin_token_file": "t"}, "gitea.admin_token_file: must be an abs"),
        ({"url": "https://g", "admin_token_file": "/t", "admin_user": "-x"}, "gitea.admin_user"),
        ({"url": "https://g", "admin_token_file": "/t", "admin_user": "a\n"}, "gitea.admin_user"),
        ({"url": "https://g", "admin_token_file": "/t", "request_timeout": 0}, "request_timeout"),
    ],
)
def test_site_file_errors_name_the_key(tmp_path: Path, gitea: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        site(tmp_path, **gitea)


def test_apply_gitea_reads_the_secret_files_and_needs_the_crypt_key(tmp_path: Path) -> None:
    token_file, password_file = tmp_path / "token", tmp_path / "password"
    token_file.write_text("admin-tok-1\n")
    password_file.write_text("admin-pw-1\n")
    settings = site(
        tmp_path,
        url="https://gitea.example.edu/",
        admin_token_file=str(token_file),
        admin_password_file=str(password_file),
    )
    with pytest.raises(SettingsError, match="JUPYTERHUB_CRYPT_KEY is not set"):
        apply_gitea(Config(), settings, environ={})
    no_password = site(tmp_path, url="https://g.example", admin_token_file=str(token_file))
    with pytest.raises(SettingsError, match=r"gitea\.admin_password_file: required"):
        apply_gitea(Config(), no_password, environ={"JUPYTERHUB_CRYPT_KEY": "k"})
    missing = site(
        tmp_path,
        url="https://g.example",
        admin_token_file=str(tmp_path / "nope"),
        admin_password_file=str(password_file),
    )
    with pytest.raises(SettingsError, match=r"gitea\.admin_token_file: cannot read"):
        apply_gitea(Config(), missing, environ={"JUPYTERHUB_CRYPT_KEY": "k"})

    c = Config()
    c.Authenticator.post_auth_hook = lambda a, h, m: m
    apply_gitea(c, settings, environ={"JUPYTERHUB_CRYPT_KEY": "k"})
    assert c.Authenticator.enable_auth_state is True
    assert c.Spawner.auth_state_hook is gitea_auth_state_hook
    # Secrets stay out of the config's text (shown by --show-config, logged on errors).
    assert "admin-tok-1" not in repr(c) and "admin-pw-1" not in repr(c)
    # No gitea section: nothing changes.
    c2 = Config()
    apply_gitea(
        c2,
        site(tmp_path, url="https://g", admin_token_file="/t").model_copy(update={"gitea": None}),
        environ={},
    )
    assert "Spawner" not in c2 and "Authenticator" not in c2


async def test_a_gitea_that_does_not_answer_is_an_error_entry_in_time() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        admin = GiteaAdmin(url, "tok-silent", "gitea-admin", "pw")
        prov = GiteaProvisioner(
            admin, INSTITUTIONS, log=logging.getLogger("t"), request_timeout=0.3
        )
        started = time.monotonic()
        entry = await prov.provision("alice", "demo-u")
    assert time.monotonic() - started < 5
    assert entry["error"].startswith("Gitea could not be set up for you (504 Gitea did not answer")
