"""Projects against the fake Gitea over real HTTP with real git: create, sync, conflicts, leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scitex_server_ext.projects import ProjectError, ProjectManager
from tests.fakes.world import GiteaWorld, RecordingRunner, make_manager

pytest_plugins = ["tests.fakes.fixtures"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def sh(*argv: str, cwd: Path, check: bool = True) -> str:
    """Plain git as the user would type it in a terminal (test set-up only)."""
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@x",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    out = subprocess.run(["git", *argv], cwd=cwd, env=base, capture_output=True, text=True)
    if check and out.returncode:
        raise AssertionError(f"git {argv}: {out.stderr}")
    return out.stdout


@pytest.fixture
def world(gitea_world: GiteaWorld, tmp_path: Path) -> Iterator[GiteaWorld]:
    yield gitea_world


@pytest.fixture
def alice(world: GiteaWorld, tmp_path: Path) -> tuple[ProjectManager, RecordingRunner]:
    return make_manager(
        tmp_path / "alice",
        url=world.url,
        token=world.alice_token,
        trace=tmp_path / "git-trace.log",
    )


def other_clone(world: GiteaWorld, tmp_path: Path, full_name: str, dest: str) -> Path:
    """A second working copy, as another machine of the same user would have."""
    manager, runner = make_manager(tmp_path / dest, url=world.url, token=world.alice_token)
    target = tmp_path / dest / "clone"
    from scitex_server_ext import git

    argv = git.clone_argv(manager.settings, f"{world.url}/{full_name}.git", str(target))
    run(runner.run(argv, str(tmp_path / dest)))
    return target


def push_from(world: GiteaWorld, clone: Path) -> None:
    from scitex_server_ext import git

    manager, runner = make_manager(clone.parent, url=world.url, token=world.alice_token)
    url = sh("config", "--get", "remote.origin.url", cwd=clone).strip()
    run(runner.run(git.push_argv(manager.settings, url, "main"), str(clone)))


def assert_no_leak(
    world: GiteaWorld,
    tmp_path: Path,
    runners: list[RecordingRunner],
    caplog: pytest.LogCaptureFixture,
    responses: list[Any],
) -> None:
    """The token is nowhere: not in any .git/config, argv, log line or response."""
    token = world.alice_token
    configs = list(tmp_path.rglob(".git/config")) + list(tmp_path.rglob("*.git/config"))
    assert configs
    for config in configs:
        assert token not in config.read_text(), config
    for runner in runners:
        assert runner.calls
        for argv in runner.calls:
            assert not any(token in a for a in argv), argv
    trace = tmp_path / "git-trace.log"
    if trace.exists():
        text = trace.read_text()
        # GIT_TRACE logs every process git starts, the credential helper included.
        assert "git_credential_helper.py" in text
        assert token not in text
    assert token not in caplog.text
    assert token not in json.dumps(responses)
    assert not (tmp_path / "alice" / ".git-credentials").exists()


def test_create_add_sync_and_see_it_in_a_separate_clone(
    world: GiteaWorld,
    alice: tuple[ProjectManager, RecordingRunner],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    manager, runner = alice
    created = run(manager.create("paper"))
    assert created["remote"] == f"{world.url}/demo-u/paper.git"
    assert (created["branch"], created["dirty"], created["ahead"]) == ("main", False, 0)
    project = tmp_path / "alice" / "projects" / "paper"
    (project / "analysis.py").write_text("print('hello')\n")
    status = run(manager.status("paper"))
    assert status["dirty"] and status["untracked"] == ["analysis.py"]

    synced = run(manager.sync("paper"))
    assert synced["pushed"] == 1 and synced["committed"] and not synced["dirty"]
    assert (synced["ahead"], synced["behind"]) == (0, 0)

    clone = other_clone(world, tmp_path, "demo-u/paper", "elsewhere")
    assert (clone / "analysis.py").read_text() == "print('hello')\n"

    listed = run(manager.list_projects())
    assert [(p["name"], p["dirty"], p["ahead"], p["behind"]) for p in listed] == [
        ("paper", False, 0, 0)
    ]
    assert_no_leak(world, tmp_path, [runner], caplog, [created, status, synced, listed])


def test_conflict_is_409_with_paths_nothing_lost_then_resolved(
    world: GiteaWorld,
    alice: tuple[ProjectManager, RecordingRunner],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    manager, runner = alice
    run(manager.create("paper"))
    project = tmp_path / "alice" / "projects" / "paper"
    (project / "notes.md").write_text("line one\nshared line\nline three\n")
    run(manager.sync("paper"))

    # Someone edits the same line elsewhere and pushes first.
    clone = other_clone(world, tmp_path, "demo-u/paper", "laptop")
    (clone / "notes.md").write_text("line one\nTHEIR version\nline three\n")
    sh("commit", "-qam", "theirs", cwd=clone)
    push_from(world, clone)

    # The user edits the same line (uncommitted) and an untracked file, then syncs.
    (project / "notes.md").write_text("line one\nMY version\nline three\n")
    (project / "new.txt").write_text("new work\n")
    with pytest.raises(ProjectError) as e:
        run(manager.sync("paper"))
    err = e.value
    assert err.status == 409
    assert err.extra["conflicts"] == ["notes.md"]
    local_commit = err.extra["local_commit"]

    # Nothing lost: the files as the user left them, committed locally, no rebase left behind.
    assert (project / "notes.md").read_text() == "line one\nMY version\nline three\n"
    assert (project / "new.txt").read_text() == "new work\n"
    assert sh("rev-parse", "HEAD", cwd=project).strip() == local_commit
    assert sh("show", "HEAD:notes.md", cwd=project) == "line one\nMY version\nline three\n"
    assert sh("status", "--porcelain", cwd=project) == ""
    assert not (project / ".git" / "rebase-merge").exists()
    assert not (project / ".git" / "rebase-apply").exists()
    status = run(manager.status("paper"))
    assert (status["ahead"], status["behind"], status["dirty"]) == (1, 1, False)
    # The remote still has their version.
    check = other_clone(world, tmp_path, "demo-u/paper", "check1")
    assert (check / "notes.md").read_text() == "line one\nTHEIR version\nline three\n"

    # The user resolves: merge the fetched remote branch, fix the file, commit; then sync.
    merge = sh("merge", "origin/main", cwd=project, check=False)
    assert "CONFLICT" in merge  # the conflict, now in the user's hands
    (project / "notes.md").write_text("line one\nOUR merged version\nline three\n")
    sh("add", "notes.md", cwd=project)
    sh("commit", "-q", "--no-edit", cwd=project)
    synced = run(manager.sync("paper"))
    assert synced["pushed"] >= 1 and not synced["dirty"]
    assert (synced["ahead"], synced["behind"]) == (0, 0)
    check = other_clone(world, tmp_path, "demo-u/paper", "check2")
    assert (check / "notes.md").read_text() == "line one\nOUR merged version\nline three\n"
    assert (check / "new.txt").read_text() == "new work\n"
    assert_no_leak(world, tmp_path, [runner], caplog, [status, synced, err.extra, err.message])


def test_sync_pulls_remote_changes_fast_forward(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, _ = alice
    run(manager.create("paper"))
    clone = other_clone(world, tmp_path, "demo-u/paper", "laptop")
    (clone / "from-laptop.txt").write_text("x\n")
    sh("add", ".", cwd=clone)
    sh("commit", "-qm", "laptop", cwd=clone)
    push_from(world, clone)
    synced = run(manager.sync("paper"))
    assert (synced["pulled"], synced["pushed"], synced["committed"]) == (1, 0, False)
    assert (tmp_path / "alice" / "projects" / "paper" / "from-laptop.txt").exists()


def test_sync_rebases_non_conflicting_work(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, _ = alice
    run(manager.create("paper"))
    clone = other_clone(world, tmp_path, "demo-u/paper", "laptop")
    (clone / "theirs.txt").write_text("t\n")
    sh("add", ".", cwd=clone)
    sh("commit", "-qm", "theirs", cwd=clone)
    push_from(world, clone)
    (tmp_path / "alice" / "projects" / "paper" / "mine.txt").write_text("m\n")
    synced = run(manager.sync("paper"))
    assert (synced["pulled"], synced["pushed"]) == (1, 1)
    check = other_clone(world, tmp_path, "demo-u/paper", "check")
    assert (check / "theirs.txt").exists() and (check / "mine.txt").exists()


def test_nothing_to_sync(world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner]) -> None:
    manager, _ = alice
    run(manager.create("paper"))
    synced = run(manager.sync("paper"))
    assert (synced["pulled"], synced["pushed"], synced["committed"]) == (0, 0, False)


def test_concurrent_syncs_of_one_project_are_serialised(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, _ = alice
    run(manager.create("paper"))
    (tmp_path / "alice" / "projects" / "paper" / "a.txt").write_text("a\n")

    async def both() -> list[Any]:
        return await asyncio.gather(manager.sync("paper"), manager.sync("paper"))

    first, second = run(both())
    assert first["pushed"] + second["pushed"] == 1


def test_create_in_own_namespace_and_refuse_other_orgs(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner]
) -> None:
    manager, _ = alice
    mine = run(manager.create("scratch", "alice"))
    assert mine["remote"] == f"{world.url}/alice/scratch.git"
    before = len(world.server.fake.api_calls)
    for org, status in [("other-u", 403), ("evil", 403), ("../x", 400), ("-x", 400)]:
        with pytest.raises(ProjectError) as e:
            run(manager.create("stolen", org))
        assert e.value.status == status, org
    # Refused before any repository creation was asked of Gitea.
    assert not [c for c in world.server.fake.api_calls[before:] if c[0].startswith("create")]
    with pytest.raises(ProjectError) as e:
        run(manager.create("scratch", "alice"))
    assert e.value.status == 409


@pytest.mark.parametrize(
    "name",
    [
        "--upload-pack=touch pwned",
        "ext::sh -c id",
        "file:///etc",
        "../x",
        ".git",
        "a/b",
        "",
        "x.git",
    ],
)
def test_bad_names_are_400(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], name: str, tmp_path: Path
) -> None:
    manager, runner = alice
    for call in (manager.create(name), manager.status(name), manager.sync(name)):
        with pytest.raises(ProjectError) as e:
            run(call)
        assert e.value.status == 400
    assert runner.calls == []
    assert not (tmp_path / "pwned").exists()


def test_import(
    world: GiteaWorld,
    alice: tuple[ProjectManager, RecordingRunner],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from scitex_server_ext.gitea import GiteaClient

    caplog.set_level(logging.DEBUG)

    admin = GiteaClient(world.url, world.admin_token)
    run(admin.create_repo("shared-data", org="demo-u"))
    run(admin.create_repo("secret", org="other-u"))
    manager, _ = alice
    imported = run(manager.import_(f"{world.url}/demo-u/shared-data.git"))
    assert imported["name"] == "shared-data" and imported["branch"] == "main"
    with pytest.raises(ProjectError) as e:
        run(manager.import_(f"{world.url}/demo-u/shared-data"))
    assert e.value.status == 409  # already a project of that name
    with pytest.raises(ProjectError) as e:
        run(manager.import_(f"{world.url}/other-u/secret.git"))
    assert e.value.status == 404
    host = world.url.split("://")[1]
    for url in [
        "--upload-pack=touch pwned",
        "ext::sh -c id",
        "file:///etc",
        "/etc",
        "../x",
        f"ssh://git@{host}/demo-u/shared-data.git",
        f"http://alice:{world.alice_token}@{host}/demo-u/x.git",
        "https://github.com/demo-u/shared-data.git",
        f"{world.url}/demo-u/../other-u/secret.git",
    ]:
        with pytest.raises(ProjectError) as e:
            run(manager.import_(url))
        assert e.value.status == 400, url
        assert world.alice_token not in e.value.message
    assert_no_leak(world, tmp_path, [alice[1]], caplog, [imported])


def test_sync_refuses_a_remote_that_is_not_on_gitea(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, runner = alice
    run(manager.create("paper"))
    project = tmp_path / "alice" / "projects" / "paper"
    pwned = tmp_path / "pwned"
    for url in [f"ext::sh -c touch% {pwned}", f"file://{tmp_path}", "https://evil.example.com/x"]:
        sh("remote", "set-url", "origin", url, cwd=project)
        (project / "f.txt").write_text(url)
        runner.calls.clear()
        with pytest.raises(ProjectError) as e:
            run(manager.sync("paper"))
        assert e.value.status == 409 and e.value.reason == "Remote Not Allowed"
        assert not any("fetch" in argv or "push" in argv for argv in runner.calls)
    assert not pwned.exists()


def test_symlinked_project_outside_the_root_is_not_used(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, _ = alice
    run(manager.create("paper"))
    outside = tmp_path / "outside"
    sh("init", "-q", str(outside), cwd=tmp_path)
    (tmp_path / "alice" / "projects" / "escape").symlink_to(outside)
    assert [p["name"] for p in run(manager.list_projects())] == ["paper"]
    with pytest.raises(ProjectError) as e:
        run(manager.status("escape"))
    assert e.value.status == 403


def test_without_gitea_projects_are_local(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path / "alice", url=None)
    created = run(manager.create("local-only"))
    assert created["remote"] is None and created["branch"] == "main" and not created["gitea"]
    assert [p["name"] for p in run(manager.list_projects())] == ["local-only"]
    for call in (manager.sync("local-only"), manager.import_("https://gitea.example.edu/a/b")):
        with pytest.raises(ProjectError) as e:
            run(call)
        assert e.value.status == 501
        assert "No Gitea is configured" in e.value.message
    with pytest.raises(ProjectError) as e:
        run(manager.create("x", "some-org"))
    assert e.value.status == 501


def test_unknown_project_is_404(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner]
) -> None:
    manager, _ = alice
    for call in (manager.status("nope"), manager.sync("nope")):
        with pytest.raises(ProjectError) as e:
            run(call)
        assert e.value.status == 404


def test_unreachable_gitea_is_502_and_work_is_kept(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, _ = alice
    run(manager.create("paper"))
    (tmp_path / "alice" / "projects" / "paper" / "w.txt").write_text("work\n")
    world.server.stop()
    with pytest.raises(ProjectError) as e:
        run(manager.sync("paper"))
    assert e.value.status == 502
    project = tmp_path / "alice" / "projects" / "paper"
    assert sh("show", "HEAD:w.txt", cwd=project) == "work\n"  # committed locally


def test_a_refusing_pre_commit_hook_is_409_and_nothing_is_pushed(
    world: GiteaWorld, alice: tuple[ProjectManager, RecordingRunner], tmp_path: Path
) -> None:
    manager, runner = alice
    run(manager.create("paper"))
    project = tmp_path / "alice" / "projects" / "paper"
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    (project / "w.txt").write_text("work\n")
    runner.calls.clear()
    with pytest.raises(ProjectError) as e:
        run(manager.sync("paper"))
    assert e.value.status == 409 and "lint failed" in e.value.message
    assert (project / "w.txt").read_text() == "work\n"
    assert not any("push" in argv for argv in runner.calls)
