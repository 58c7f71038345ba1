"""Gitea for each user, at sign-in: account, institution organization and team, and a token.

After the institution mapping (:mod:`scitex_spawner.auth`) the hub makes sure, with the Gitea
admin's credentials, that

* the user exists in Gitea (created with a random password nobody keeps: the site's Gitea signs
  people in through the same identity provider, or not at all). An existing Gitea account that
  is a site administrator (``is_admin``), or is the hub's own Gitea admin, is never adopted: no
  token is made for it and nothing is changed (:class:`AdminAccountRefused`);
* the institution has an organization (``gitea_org``, else the institution id) with a team
  ``members`` (write access to the organization's repositories), the user is in that team and
  in no other institution's ``members`` team;
* each lab of the institution (``institutions.<id>.labs``) is a team ``lab-<lab>`` in that
  organization (write access to the repositories given to the team); the user is in the teams
  of their labs and in no other ``lab-*`` team of any institution's organization (a user who
  left a lab, or moved);
* the user has one token, named ``scitex-notebook``, with the least scopes the notebook server
  needs (:data:`NOTEBOOK_TOKEN_SCOPES`). Gitea mints user tokens only with basic
  authentication, so this uses the admin's password with ``Sudo: <user>``.

The token is kept in the user's ``auth_state`` (encrypted by JupyterHub with
``JUPYTERHUB_CRYPT_KEY``) and given by :func:`gitea_auth_state_hook` only to that user's server,
through the job's environment (``SCITEX_GITEA_TOKEN``; forwarded into the container by name).

A failure is logged (never with a secret) and does not refuse the sign-in: the user's server
then starts without a Gitea token, and its projects stay local.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scitex_gitea.client import NOTEBOOK_TOKEN_SCOPES, GiteaClient, GiteaError
from scitex_hub.institutions import Institution, InstitutionDirectory

AUTH_STATE_KEY = "scitex_gitea"
TOKEN_NAME = "scitex-notebook"  # noqa: S105 - the token's name in Gitea, not a secret
MEMBERS_TEAM = "members"
LAB_TEAM_PREFIX = "lab-"
# What the notebook server reads (scitex_server_ext.projects, git_credential_helper).
GITEA_ENV = ("SCITEX_GITEA_URL", "SCITEX_GITEA_TOKEN", "SCITEX_GITEA_USER", "SCITEX_GITEA_ORG")


class AdminAccountRefused(Exception):
    """The user's Gitea account is a Gitea site administrator: never adopted."""

    def __init__(self, username: str) -> None:
        super().__init__(
            f"the Gitea account {username} is a Gitea site administrator, and the hub gives "
            "no server a token of an administrator account; ask your administrator"
        )


@dataclass(frozen=True)
class GiteaAdmin:
    """The hub's Gitea credentials, read from the files the site file names."""

    url: str
    token: str = field(repr=False)
    user: str
    password: str = field(repr=False)


class GiteaProvisioner:
    """Provisions one user's Gitea account, organization membership and token."""

    def __init__(
        self,
        admin: GiteaAdmin,
        institutions: Mapping[str, Institution],
        *,
        log: Any,
        request_timeout: float = 10.0,
        validate_cert: bool = True,
        client_class: type[GiteaClient] = GiteaClient,
    ) -> None:
        self.admin = admin
        self.institutions = dict(institutions)
        self.log = log
        self.request_timeout = request_timeout
        self.validate_cert = validate_cert
        self.client_class = client_class
        self.api = self._client(admin.token)
        self.url = self.api.origin.url

    def _client(self, token: str) -> GiteaClient:
        return self.client_class(
            self.admin.url,
            token,
            request_timeout=self.request_timeout,
            validate_cert=self.validate_cert,
        )

    def org_of(self, institution_id: str | None) -> str:
        if not institution_id or institution_id not in self.institutions:
            return ""
        return self.institutions[institution_id].gitea_org or institution_id

    async def provision(
        self,
        username: str,
        institution_id: str | None,
        email: str | None = None,
        previous: Mapping[str, Any] | None = None,
        labs: Sequence[str] = (),
    ) -> dict[str, str]:
        """The ``auth_state`` entry for ``username``: url, user, org and token, or an error.

        ``previous`` is the entry stored at the last sign-in: its token is kept while Gitea
        still accepts it for this user, so a running server's token stays valid. ``labs``:
        the ids of the institution's labs the user is in.
        """
        org = self.org_of(institution_id)
        own_labs = [
            lab for lab in labs if org and lab in self.institutions[institution_id or ""].labs
        ]
        try:
            await self.ensure_user(username, email)
            if org:
                await self.ensure_membership(username, institution_id or "", org, own_labs)
            # Lab teams first: a lab team alone keeps the user a member of its organization.
            await self.leave_old_labs(username, org, own_labs)
            await self.leave_other_orgs(username, org)
            token = await self.ensure_token(username, previous)
        except AdminAccountRefused as e:
            self.log.warning("Gitea provisioning for %s refused: %s", username, e)
            return {"url": self.url, "error": f"Gitea was not set up for you: {e}"}
        except (GiteaError, OSError, asyncio.TimeoutError) as e:
            # GiteaError messages carry Gitea's status and text, never a credential.
            reason = f"{e.status} {e.message}" if isinstance(e, GiteaError) else type(e).__name__
            self.log.warning("Gitea provisioning for %s failed: %s", username, reason)
            return {
                "url": self.url,
                "error": f"Gitea could not be set up for you ({reason}); projects stay local "
                "until your next sign-in",
            }
        self.log.info("Gitea ready for %s (organization %s)", username, org or "-")
        return {"url": self.url, "user": username, "org": org, "token": token}

    async def ensure_user(self, username: str, email: str | None) -> None:
        existing = await self.api.get_user(username)
        if existing is not None:
            # Gitea shows is_admin to an admin viewer (the hub's token). The hub's own
            # admin login is checked by name too, should its token not be an admin's.
            if existing.is_admin or existing.login.lower() == self.admin.user.lower():
                raise AdminAccountRefused(existing.login)
            return
        await self.api.admin_create_user(
            username,
            email or f"{username}@users.noreply.{self.api.origin.host}",
            # Nobody keeps it: the hub acts for the user with its admin credentials.
            secrets.token_urlsafe(32),
            must_change_password=False,
        )
        self.log.info("Created Gitea user %s", username)

    async def ensure_membership(
        self, username: str, institution_id: str, org: str, labs: Sequence[str] = ()
    ) -> None:
        """In the organization's ``members`` team and the ``lab-<id>`` team of each lab,
        creating the organization and teams that are missing."""
        if await self.api.get_org(org) is None:
            await self.api.create_org(org, full_name=self.institutions[institution_id].name)
            self.log.info("Created Gitea organization %s", org)
        teams = {team.name.lower(): team for team in await self.api.list_org_teams(org)}
        for name in [MEMBERS_TEAM] + [LAB_TEAM_PREFIX + lab for lab in labs]:
            team = teams.get(name)
            if team is None:
                is_members = name == MEMBERS_TEAM
                # members: write to every repository; a lab team: to the repositories given
                # to it (members may already create repositories in the organization).
                team = await self.api.create_team(
                    org,
                    name,
                    permission="write",
                    includes_all_repositories=is_members,
                    can_create_org_repo=is_members,
                )
                self.log.info("Created Gitea team %s/%s", org, name)
            await self.api.add_team_member(team.id, username)  # idempotent (PUT)

    async def leave_old_labs(self, username: str, own_org: str, labs: Sequence[str]) -> None:
        """Out of every ``lab-*`` team of an institution's organization that is not one of
        the user's labs (one listing of the user's teams, then one call per team left)."""
        keep = {(own_org.lower(), (LAB_TEAM_PREFIX + lab).lower()) for lab in labs}
        orgs = {self.org_of(key).lower() for key in self.institutions} - {""}
        for team in await self.api.list_my_teams(sudo=username):
            key = (team.org.lower(), team.name.lower())
            if key[0] in orgs and key[1].startswith(LAB_TEAM_PREFIX) and key not in keep:
                await self.api.remove_team_member(team.id, username)
                self.log.info("Removed %s from Gitea team %s/%s", username, team.org, team.name)

    async def leave_other_orgs(self, username: str, own_org: str) -> None:
        """Out of every other institution's ``members`` team (a user who moved)."""
        for other in sorted({self.org_of(key) for key in self.institutions} - {own_org, ""}):
            if await self.api.get_org(other) is None or not await self.api.is_org_member(
                other, username
            ):
                continue
            for team in await self.api.list_org_teams(other):
                if team.name.lower() == MEMBERS_TEAM:
                    await self.api.remove_team_member(team.id, username)
                    self.log.info("Removed %s from Gitea organization %s", username, other)

    async def ensure_token(self, username: str, previous: Mapping[str, Any] | None) -> str:
        old = str((previous or {}).get("token") or "")
        if old:
            try:
                me = await self._client(old).get_current_user()
                if me.login.lower() == username.lower():
                    return old
            except GiteaError as e:
                if e.status not in (401, 403):
                    raise
        basic = (self.admin.user, self.admin.password)
        try:
            await self.api.delete_access_token(
                username, TOKEN_NAME, basic_auth=basic, sudo=username
            )
        except GiteaError as e:
            if e.status != 404:
                raise
        created = await self.api.create_access_token(
            username, TOKEN_NAME, NOTEBOOK_TOKEN_SCOPES, basic_auth=basic, sudo=username
        )
        if not created.sha1:
            raise GiteaError(502, "Gitea created a token but did not return it")
        self.log.info("Issued Gitea token %s for %s", TOKEN_NAME, username)
        return created.sha1


PostAuthHook = Callable[[Any, Any, dict[str, Any]], Any]


def with_gitea_provisioning(
    inner: PostAuthHook,
    provisioner: GiteaProvisioner,
    identity: Callable[[Mapping[str, Any]], str | None] = lambda model: None,
    timeout: float = 30.0,
) -> Callable[[Any, Any, dict[str, Any]], Awaitable[dict[str, Any]]]:
    """``inner`` (the institution mapping), then Gitea provisioning; the result is stored
    in ``auth_state[AUTH_STATE_KEY]``. ``identity`` gives the user's email, if known."""

    async def post_auth_hook(
        authenticator: Any, handler: Any, auth_model: dict[str, Any]
    ) -> dict[str, Any]:
        result = inner(authenticator, handler, auth_model)
        model: dict[str, Any] = await result if asyncio.iscoroutine(result) else result
        username = model["name"]
        groups = model.get("groups") or []
        directory = InstitutionDirectory(provisioner.institutions)
        institution = directory.of_groups(groups)
        # JupyterHub's own log (the authenticator's), where admins look.
        provisioner.log = getattr(authenticator, "log", None) or provisioner.log
        previous: Mapping[str, Any] | None = None
        user = handler.find_user(username) if handler is not None else None
        if user is not None:
            stored = await user.get_auth_state()
            previous = (stored or {}).get(AUTH_STATE_KEY)
        try:
            entry = await asyncio.wait_for(
                provisioner.provision(
                    username,
                    institution,
                    identity(model),
                    previous,
                    labs=directory.labs_of_groups(institution, groups) if institution else (),
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            provisioner.log.warning("Gitea provisioning for %s timed out", username)
            entry = {
                "url": provisioner.url,
                "error": "Gitea did not answer in time; projects stay local until your next "
                "sign-in",
            }
        state = dict(model.get("auth_state") or {})
        state[AUTH_STATE_KEY] = entry
        model["auth_state"] = state
        return model

    return post_auth_hook


def gitea_environment(auth_state: Mapping[str, Any] | None) -> dict[str, str]:
    """The notebook server's Gitea variables from a user's auth_state (empty: none)."""
    entry = (auth_state or {}).get(AUTH_STATE_KEY) or {}
    if not entry.get("token"):
        return {}
    env = {
        "SCITEX_GITEA_URL": str(entry["url"]),
        "SCITEX_GITEA_TOKEN": str(entry["token"]),
        "SCITEX_GITEA_USER": str(entry.get("user") or ""),
    }
    if entry.get("org"):
        env["SCITEX_GITEA_ORG"] = str(entry["org"])
    return env


def gitea_auth_state_hook(spawner: Any, auth_state: Mapping[str, Any] | None) -> None:
    """``Spawner.auth_state_hook``: this user's token into this user's server's environment.

    Runs before every start with the user's own (decrypted) auth_state; the variables reach
    the job through sbatch's environment, never the batch script or a command line.
    """
    env = {k: v for k, v in dict(spawner.environment).items() if k not in GITEA_ENV}
    gitea = gitea_environment(auth_state)
    notices: list[str] = []
    if not gitea:
        entry = (auth_state or {}).get(AUTH_STATE_KEY) or {}
        why = entry.get("error") or (
            "no Gitea token is stored for you; sign out and in again to get one"
        )
        spawner.log.warning("No Gitea token for %s: %s", spawner.user.name, why)
        # The spawn page says it (SciTeXSpawner.start_notices); the server's projects then
        # answer that no Gitea is configured, and work as local repositories.
        notices.append(f"Gitea is not available to this server: {why}")
    env.update(gitea)
    spawner.environment = env
    spawner.start_notices = notices
