"""``scitex/api/projects`` on a site without Gitea: local repositories, and a clear 501 for sync."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def user_root(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    root.mkdir()
    return root


@pytest.fixture
def jp_server_config(user_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.delenv("SCITEX_GITEA_URL", raising=False)
    monkeypatch.setenv("SCITEX_GITEA_TOKEN", "must-never-be-used")
    return {
        "ServerApp": {"jpserver_extensions": {"scitex_server_ext": True}},
        "SciTeXExtension": {"user_root": str(user_root)},
    }


async def call(jp_fetch: Any, method: str, *parts: str, body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"method": method}
    if method == "POST":
        kwargs["body"] = json.dumps(body) if body is not None else b""
    try:
        resp = await jp_fetch("scitex", "api", "projects", *parts, **kwargs)
    except HTTPClientError as e:
        assert e.response is not None
        return e.code, json.loads(e.response.body)
    return resp.code, json.loads(resp.body)


async def test_local_projects_and_501_for_sync_and_import(jp_fetch: Any, user_root: Path) -> None:
    code, created = await call(jp_fetch, "POST", body={"name": "notes"})
    assert code == 201 and created["remote"] is None and created["gitea"] is False
    assert (user_root / "projects" / "notes" / ".git").is_dir()
    (user_root / "projects" / "notes" / "a.txt").write_text("x")
    code, status = await call(jp_fetch, "GET", "notes", "status")
    assert code == 200 and status["untracked"] == ["a.txt"]
    code, body = await call(jp_fetch, "POST", "notes", "sync")
    assert code == 501
    assert body["reason"] == "No Gitea Configured"
    assert "No Gitea is configured" in body["message"]
    code, body = await call(
        jp_fetch, "POST", "import", body={"clone_url": "https://gitea.example.edu/a/b.git"}
    )
    assert code == 501
    code, listed = await call(jp_fetch, "GET")
    assert [p["name"] for p in listed["projects"]] == ["notes"]
    # Sync committed nothing: it refused before touching the project.
    assert (user_root / "projects" / "notes" / "a.txt").exists()
    assert status["head"] is None


async def test_settings_are_validated() -> None:
    from traitlets import TraitError

    from scitex_server_ext.app import SciTeXExtension

    for key, value in [
        ("gitea_url", "ftp://x"),
        ("gitea_url", "https://user:pw@gitea.example.edu"),
        ("gitea_org", "../other"),
        ("projects_dir", "../outside"),
        ("projects_dir", "/abs/../x"),
        ("git_timeout", 0),
        ("project_default_branch", "-x"),
        ("git_command", "--exec-path"),
        ("git_author_email", "a@b\nx"),
    ]:
        with pytest.raises(TraitError, match=key):
            SciTeXExtension(**{key: value})
    app = SciTeXExtension(gitea_url="HTTPS://Gitea.Example.EDU/", gitea_org="demo-u")
    assert app.gitea_url == "https://gitea.example.edu"
