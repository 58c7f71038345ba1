"""The seeded fake-Gitea world and a recording ProjectManager, shared by tests and the bench."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scitex_server_ext import git
from scitex_server_ext.gitea import NOTEBOOK_TOKEN_SCOPES, GiteaClient
from scitex_server_ext.projects import ProjectManager

from .gitea import FakeGiteaServer


@dataclass
class GiteaWorld:
    server: FakeGiteaServer
    admin_token: str
    alice_token: str
    bob_token: str
    org: str = "demo-u"
    other_org: str = "other-u"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def tokens(self) -> list[str]:
        return [self.admin_token, self.alice_token, self.bob_token]


def seed_world(server: FakeGiteaServer) -> GiteaWorld:
    """An admin, ``alice`` in ``demo-u``, ``bob`` in ``other-u``, and notebook tokens."""
    fake = server.fake
    fake.add_user("gitea-admin", password="admin-password", admin=True)
    fake.add_user("alice", password="alice-password")
    fake.add_user("bob", password="bob-password")
    fake.add_org("demo-u", owners=("gitea-admin",), members=("alice",))
    fake.add_org("other-u", owners=("gitea-admin",), members=("bob",))
    return GiteaWorld(
        server,
        admin_token=fake.add_token("gitea-admin", "admin"),
        alice_token=fake.add_token("alice", "notebook", NOTEBOOK_TOKEN_SCOPES),
        bob_token=fake.add_token("bob", "notebook", NOTEBOOK_TOKEN_SCOPES),
    )


@dataclass
class RecordingRunner(git.GitRunner):
    """A GitRunner that records the argv of every git process it starts."""

    calls: list[tuple[str, ...]] = field(default_factory=list)

    async def run(
        self, argv: Sequence[str], cwd: str, *, check: bool = True, input: bytes | None = None
    ) -> git.GitResult:
        self.calls.append(tuple(argv))
        return await super().run(argv, cwd, check=check, input=input)


def make_manager(
    user_root: Path,
    *,
    url: str | None,
    token: str = "",
    user: str = "alice",
    org: str = "demo-u",
    trace: Path | None = None,
) -> tuple[ProjectManager, RecordingRunner]:
    """A ProjectManager as the extension builds it, with a recording runner.

    ``trace``: also write ``GIT_TRACE`` there, which logs the argv of every process git itself
    starts (remote helpers, the credential helper), so tests can check those too.
    """
    origin = git.GiteaOrigin.parse(url) if url else None
    settings = git.GitSettings(
        origin=origin,
        credential_helper=git.credential_helper_command() if origin else "",
    )
    env = git.git_environment(os.environ, origin, token, user)
    if trace is not None:
        env["GIT_TRACE"] = str(trace)
    runner = RecordingRunner(env=env, timeout=120, secrets=(token,))
    client = GiteaClient(url, token) if url else None
    user_root.mkdir(parents=True, exist_ok=True)
    manager = ProjectManager(
        user_root=str(user_root),
        runner=runner,
        settings=settings,
        gitea=client,
        org=org if url else "",
        author_name=user,
        author_email=f"{user}@example.invalid",
    )
    return manager, runner
