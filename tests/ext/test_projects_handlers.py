"""``scitex/api/projects`` through a real jupyter-server (pytest-jupyter), against the fake Gitea."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.fakes.world import GiteaWorld

pytest_plugins = ["pytest_jupyter.jupyter_server", "tests.fakes.fixtures"]


@pytest.fixture
def user_root(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    root.mkdir()
    return root


@pytest.fixture
def jp_server_config(
    gitea_world: GiteaWorld, user_root: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    # The token reaches the server as the spawner gives it: in the environment only.
    monkeypatch.setenv("SCITEX_GITEA_TOKEN", gitea_world.alice_token)
    return {
        "ServerApp": {"jpserver_extensions": {"scitex_server_ext": True}},
        "SciTeXExtension": {
            "user_root": str(user_root),
            "gitea_url": gitea_world.url,
            "gitea_org": "demo-u",
            "gitea_user": "alice",
        },
    }


async def call(jp_fetch: Any, method: str, *parts: str, body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"method": method}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method == "POST":
        kwargs["body"] = b""
    try:
        resp = await jp_fetch("scitex", "api", "projects", *parts, **kwargs)
    except HTTPClientError as e:
        assert e.response is not None
        return e.code, json.loads(e.response.body)
    return resp.code, json.loads(resp.body)


async def test_create_sync_status_list(
    jp_fetch: Any,
    gitea_world: GiteaWorld,
    user_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = []
    code, listed = await call(jp_fetch, "GET")
    assert (code, listed) == (200, {"projects": []})
    code, created = await call(jp_fetch, "POST", body={"name": "paper"})
    seen.append(created)
    assert code == 201 and created["remote"] == f"{gitea_world.url}/demo-u/paper.git"
    (user_root / "projects" / "paper" / "data.csv").write_text("a,b\n1,2\n")
    code, status = await call(jp_fetch, "GET", "paper", "status")
    seen.append(status)
    assert code == 200 and status["untracked"] == ["data.csv"] and status["dirty"]
    code, synced = await call(jp_fetch, "POST", "paper", "sync")
    seen.append(synced)
    assert code == 200 and synced["pushed"] == 1 and not synced["dirty"]
    code, listed = await call(jp_fetch, "GET")
    seen.append(listed)
    assert [
        (p["name"], p["branch"], p["ahead"], p["behind"], p["dirty"]) for p in listed["projects"]
    ] == [("paper", "main", 0, 0, False)]
    assert set(listed["projects"][0]) == {
        "name",
        "branch",
        "head",
        "ahead",
        "behind",
        "dirty",
        "remote",
    }
    token = gitea_world.alice_token
    assert token not in json.dumps(seen) and token not in caplog.text
    assert token not in (user_root / "projects" / "paper" / ".git" / "config").read_text()


async def test_conflict_answers_409_with_paths(
    jp_fetch: Any, gitea_world: GiteaWorld, user_root: Path, tmp_path: Path
) -> None:
    from scitex_server_ext import git
    from tests.fakes.world import make_manager

    await call(jp_fetch, "POST", body={"name": "paper"})
    # Another working copy changes README.md and pushes.
    other, runner = make_manager(
        tmp_path / "other", url=gitea_world.url, token=gitea_world.alice_token
    )
    clone = tmp_path / "other" / "paper"
    url = f"{gitea_world.url}/demo-u/paper.git"
    await runner.run(git.clone_argv(other.settings, url, str(clone)), str(tmp_path / "other"))
    (clone / "README.md").write_text("theirs\n")
    await runner.run(git.add_all_argv(other.settings), str(clone))
    await runner.run(git.commit_argv(other.settings, "theirs", ("B", "b@x")), str(clone))
    await runner.run(git.push_argv(other.settings, url, "main"), str(clone))

    (user_root / "projects" / "paper" / "README.md").write_text("mine\n")
    code, body = await call(jp_fetch, "POST", "paper", "sync")
    assert code == 409
    assert body["conflicts"] == ["README.md"] and body["reason"] == "Sync Conflict"
    assert body["local_commit"] and "Nothing was lost" in body["message"]
    assert (user_root / "projects" / "paper" / "README.md").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "--upload-pack=touch pwned"}, 400),
        ({"name": "ext::sh -c id"}, 400),
        ({"name": "file:///etc"}, 400),
        ({"name": "../x"}, 400),
        ({"name": ".git"}, 400),
        ({"name": 5}, 400),
        ({}, 400),
        ({"name": "p", "org": "other-u"}, 403),
        ({"name": "p", "org": "--org"}, 400),
        ({"name": "p", "org": ["demo-u"]}, 400),
    ],
)
async def test_create_refuses(
    jp_fetch: Any, body: dict[str, Any], code: int, user_root: Path
) -> None:
    status, reply = await call(jp_fetch, "POST", body=body)
    assert status == code, reply
    assert reply["message"]
    assert not (user_root / "projects").exists() or not any((user_root / "projects").iterdir())


async def test_bad_json_is_400(jp_fetch: Any) -> None:
    status, _ = await call(jp_fetch, "POST", body="not an object")
    assert status == 400


@pytest.mark.parametrize(
    "clone_url",
    [
        "--upload-pack=touch pwned",
        "ext::sh -c id",
        "file:///etc",
        "/etc/passwd",
        "ssh://git@127.0.0.1/demo-u/paper.git",
        "https://github.com/demo-u/paper.git",
        None,
    ],
)
async def test_import_refuses(jp_fetch: Any, clone_url: Any) -> None:
    status, reply = await call(jp_fetch, "POST", "import", body={"clone_url": clone_url})
    assert status == 400, reply


async def test_import_from_the_configured_gitea(jp_fetch: Any, gitea_world: GiteaWorld) -> None:
    from scitex_server_ext.gitea import GiteaClient

    admin = GiteaClient(gitea_world.url, gitea_world.admin_token)
    await admin.create_repo("dataset", org="demo-u")
    url = f"{gitea_world.url}/demo-u/dataset.git"
    status, reply = await call(jp_fetch, "POST", "import", body={"clone_url": url})
    assert status == 201 and reply["name"] == "dataset"
    status, reply = await call(jp_fetch, "POST", "import", body={"clone_url": url})
    assert status == 409


@pytest.mark.parametrize(
    "raw",
    ["..%2Fx", "--upload-pack%3Dtouch%20pwned", "ext%3A%3Ash%20-c%20id", "x.git", "%2E%2E"],
)
async def test_names_in_the_path_are_validated(
    http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str], raw: str
) -> None:
    for method, suffix in (("GET", "status"), ("POST", "sync")):
        url = f"{jp_base_url}scitex/api/projects/{raw}/{suffix}"
        with pytest.raises(HTTPClientError) as e:
            await http_server_client.fetch(
                url, method=method, headers=jp_auth_header, body=b"" if method == "POST" else None
            )
        assert e.value.code == 400, (raw, suffix)


async def test_unknown_project_is_404(jp_fetch: Any) -> None:
    assert (await call(jp_fetch, "GET", "nothing", "status"))[0] == 404
    assert (await call(jp_fetch, "POST", "nothing", "sync"))[0] == 404


async def test_requires_authentication(http_server_client: Any, jp_base_url: str) -> None:
    with pytest.raises(HTTPClientError) as e:
        await http_server_client.fetch(f"{jp_base_url}scitex/api/projects")
    assert e.value.code == 403
