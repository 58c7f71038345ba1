"""The extension's settings for projects, Gitea and git, and the manager built from them."""

from __future__ import annotations

import os
from typing import Any

from traitlets import Float, TraitError, Type, Unicode, default, validate
from traitlets.config import Configurable

from .. import git
from ..git import GiteaOrigin, GitRunner, GitSettings, InvalidName, InvalidRemote
from ..gitea import GiteaClient
from .manager import ProjectManager


class ProjectsConfig(Configurable):
    """The extension's settings for projects, Gitea and git (mixed into ``SciTeXExtension``).

    The Gitea token is deliberately not a setting: it comes only from the environment variable
    ``SCITEX_GITEA_TOKEN`` (set by the spawner for the user's server), so that it never appears
    in a config file, ``--show-config`` output or a log of settings.
    """

    gitea_url = Unicode(
        help="""Base URL of the site's Gitea (``https://gitea.example.edu``, optionally with a
        sub-path). Empty: no Gitea; projects are local git repositories, and import and sync
        answer 501. Default: ``SCITEX_GITEA_URL``.""",
        config=True,
    )
    gitea_org = Unicode(
        help="""The Gitea organization of the user's lab or institution. New projects go there
        unless the request names the user's own namespace; no other organization is accepted.
        Empty: the user's own namespace. Default: ``SCITEX_GITEA_ORG``.""",
        config=True,
    )
    gitea_user = Unicode(
        help="""The user's Gitea login, sent as the user name with the token (Gitea identifies
        the user by the token). Default: ``SCITEX_GITEA_USER``, else ``JUPYTERHUB_USER``.""",
        config=True,
    )
    gitea_client_class = Type(
        default_value=GiteaClient,
        klass=GiteaClient,
        help="The Gitea API client class; a site or a test may substitute a subclass.",
        config=True,
    )
    git_command = Unicode(
        "git",
        help="The git executable: a name looked up on PATH, or an absolute path.",
        config=True,
    )
    git_timeout = Float(
        600.0,
        help="Seconds after which one git command (clone, fetch, push...) is killed.",
        config=True,
    )
    projects_dir = Unicode(
        "projects",
        help="Directory of the projects, relative to the user's root (``/data/projects``).",
        config=True,
    )
    project_default_branch = Unicode(
        "main",
        help="Branch of new projects (the default branch of the Gitea repository).",
        config=True,
    )
    git_author_name = Unicode(
        help="""Author name of the commits sync makes when the project and the user's git
        config set none. Default: ``JUPYTERHUB_USER``.""",
        config=True,
    )
    git_author_email = Unicode(
        help="""Author email of the commits sync makes when the project and the user's git
        config set none. Default: ``<user>@users.noreply.<gitea host>``.""",
        config=True,
    )

    @default("gitea_url")
    def _default_gitea_url(self) -> str:
        return os.environ.get(git.git_credential_helper.URL_ENV, "")

    @default("gitea_org")
    def _default_gitea_org(self) -> str:
        return os.environ.get("SCITEX_GITEA_ORG", "")

    @default("gitea_user")
    def _default_gitea_user(self) -> str:
        return os.environ.get(git.git_credential_helper.USER_ENV) or os.environ.get(
            "JUPYTERHUB_USER", ""
        )

    @default("git_author_name")
    def _default_git_author_name(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "") or "SciTeX user"

    @default("git_author_email")
    def _default_git_author_email(self) -> str:
        user = os.environ.get("JUPYTERHUB_USER", "") or "scitex"
        host = "localhost"
        if self.gitea_url:
            host = GiteaOrigin.parse(self.gitea_url).host
        return f"{user}@users.noreply.{host}"

    @validate("gitea_url")
    def _check_gitea_url(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if not value:
            return ""
        try:
            return GiteaOrigin.parse(value).url
        except InvalidRemote as e:
            raise TraitError(f"gitea_url: {e}") from None

    @validate("gitea_org")
    def _check_gitea_org(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value:
            try:
                git.validate_owner_name(value)
            except InvalidName as e:
                raise TraitError(f"gitea_org: {e}") from None
        return value

    @validate("gitea_user")
    def _check_gitea_user(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value and not git_credential_helper_safe(value):
            raise TraitError("gitea_user: must be one line of printable characters")
        return value

    @validate("git_command")
    def _check_git_command(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not value or value != value.strip() or "\0" in value or value.startswith("-"):
            raise TraitError("git_command: give the name or absolute path of the git executable")
        return value

    @validate("git_timeout")
    def _check_git_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError("git_timeout: must be a positive number of seconds")
        return value

    @validate("projects_dir")
    def _check_projects_dir(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip("/")
        parts = value.split("/")
        if not value or any(p in ("", ".", "..") for p in parts) or "\0" in value:
            raise TraitError(
                "projects_dir: must be a relative directory below the user's root, without '..'"
            )
        return value

    @validate("project_default_branch")
    def _check_default_branch(self, proposal: Any) -> str:
        try:
            return git.validate_branch_name(proposal["value"])
        except InvalidName as e:
            raise TraitError(f"project_default_branch: {e}") from None

    @validate("git_author_name", "git_author_email")
    def _check_author(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if not git_credential_helper_safe(value) or any(c in value for c in "<>"):
            raise TraitError(f"{proposal['trait'].name}: must be one line without '<' or '>'")
        return value

    def make_project_manager(self, user_root: str) -> ProjectManager:
        """The manager the handlers use, built from these settings and the environment."""
        token = os.environ.get(git.git_credential_helper.TOKEN_ENV, "")
        origin = GiteaOrigin.parse(self.gitea_url) if self.gitea_url else None
        settings = GitSettings(
            git=self.git_command,
            origin=origin,
            credential_helper=git.credential_helper_command() if origin else "",
        )
        env = git.git_environment(os.environ, origin, token, self.gitea_user)
        runner = GitRunner(env=env, timeout=self.git_timeout, secrets=(token,))
        client = None
        if origin is not None:
            client = self.gitea_client_class(origin.url, token, parent=self)
        return ProjectManager(
            user_root=user_root,
            runner=runner,
            settings=settings,
            gitea=client,
            org=self.gitea_org,
            projects_dir=self.projects_dir,
            default_branch=self.project_default_branch,
            author_name=self.git_author_name,
            author_email=self.git_author_email,
        )


def git_credential_helper_safe(value: str) -> bool:
    """One line of printable text (a newline would inject fields into git's protocols)."""
    return all(ch.isprintable() for ch in value)
