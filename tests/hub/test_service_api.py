"""The scitex hub service's API on a real tornado server and a real SQLite database.

The hub is replaced (unit test): the token check and the hub's user/group lookups answer
from tables here. The real hub, proxy and OAuth are in tests/e2e/test_quota_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jupyterhub.services.auth import HubOAuth
from sqlalchemy import Engine
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer

from scitex_hub.db import get_engine, upgrade, utcnow
from scitex_hub.db import store as db
from scitex_hub.db.engine import dispose_engine
from scitex_hub.institutions import Institution
from scitex_hub.scopes import admin_rights
from scitex_service.app import make_app
from scitex_service.handlers import ServiceContext
from scitex_service.hubapi import HubDirectory
from tests.e2e.hubprocess import free_port
from tests.hub.dbhelpers import sqlite_url

GiB = 1024**3
ACCESS = "access:services!service=scitex"
INSTITUTIONS = {
    "demo-u": Institution(name="Demo University", storage_quota=10 * 1024**3, admins=("bob",)),
    "other-u": Institution(name="Other University", storage_quota=5 * 1024**3, admins=("erin",)),
}
GROUPS = {"demo-u": ["alice", "bob"], "other-u": ["carol", "erin"]}
USERS: dict[str, dict[str, Any]] = {
    "admin": {"name": "admin", "admin": True, "groups": []},
    "alice": {"name": "alice", "admin": False, "groups": ["demo-u"]},
    "bob": {"name": "bob", "admin": False, "groups": ["demo-u"]},
    "carol": {"name": "carol", "admin": False, "groups": ["other-u"]},
    "erin": {"name": "erin", "admin": False, "groups": ["other-u"]},
    "dave": {"name": "dave", "admin": False, "groups": []},
}


def identity(name: str, scopes: tuple[str, ...] = (ACCESS,)) -> dict[str, Any]:
    return {"kind": "user", **USERS[name], "scopes": list(scopes)}


ADMIN = "custom:scitex:admin"
# The admin scope the hub's roles give (apply_roles, apply_services): whole to the hub's
# admins, per institution to an institution's admins. A token that inherits its user's
# scopes, or a browser's OAuth token for the service, carries it.
ROLE_SCOPES = {
    "admin": (ADMIN,),
    "bob": (f"{ADMIN}!group=demo-u",),
    "erin": (f"{ADMIN}!group=other-u",),
}
# What the hub answers when the service checks a token.
TOKENS: dict[str, dict[str, Any]] = {
    f"t-{name}": identity(name, scopes=(ACCESS, *ROLE_SCOPES.get(name, ()))) for name in USERS
}
TOKENS["t-noaccess"] = identity("alice", scopes=("read:users:name!user=alice",))
# Granted institution-admin rights through the hub's RBAC, whatever the site file says.
TOKENS["t-dave-rbac"] = identity("dave", scopes=(ACCESS, f"{ADMIN}!group=other-u"))
TOKENS["t-service"] = {"kind": "service", "name": "other-service", "scopes": [ACCESS]}
TOKENS["t-service-admin"] = {"kind": "service", "name": "other", "scopes": [ACCESS, ADMIN]}
# Admins' tokens without the scope: their notebook servers' (apply_services'
# server_token_scopes), and narrow ones they made. The hub still says "admin": true of
# the hub admin and bob is still in the site file's admins of demo-u.
SERVER_SCOPES = (
    "users:activity!user=x",
    "access:servers!server=x/",
    "custom:scitex:jobs!user=x",
    ACCESS,
)
TOKENS["t-admin-server"] = identity("admin", scopes=SERVER_SCOPES)
TOKENS["t-bob-server"] = identity("bob", scopes=SERVER_SCOPES)
TOKENS["t-bob-narrow"] = identity("bob", scopes=(ACCESS, "read:users:name!user=bob"))
# Filters other than !group= grant nothing; unknown institutions neither.
TOKENS["t-bob-one-user"] = identity("bob", scopes=(ACCESS, f"{ADMIN}!user=alice"))
TOKENS["t-bob-elsewhere"] = identity("bob", scopes=(ACCESS, f"{ADMIN}!group=nowhere"))


class TableHubAuth(HubOAuth):
    """Answers token checks from TOKENS instead of asking a hub."""

    def user_for_token(
        self, token: str, use_cache: bool = True, session_id: str = "", *, sync: bool = True
    ) -> Any:
        async def answer() -> dict[str, Any] | None:
            return TOKENS.get(token)

        return answer()


class TableDirectory(HubDirectory):
    async def user(self, name: str) -> dict[str, Any] | None:
        return USERS.get(name)

    async def group_members(self, group: str) -> list[str]:
        return GROUPS.get(group, [])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = sqlite_url(tmp_path)
    upgrade(url)
    engine = get_engine(url)
    db.sync_institutions(engine, INSTITUTIONS)
    yield engine
    dispose_engine(url)


@pytest.fixture
async def base_url(engine: Engine) -> AsyncIterator[str]:
    hub_auth = TableHubAuth(
        api_token="service-token",
        api_url="http://127.0.0.1:9/hub/api",
        oauth_client_id="service-scitex",
        access_scopes={ACCESS},
    )
    context = ServiceContext(institutions=INSTITUTIONS, engine=engine, directory=TableDirectory())
    port = free_port()
    server = HTTPServer(make_app(context, hub_auth))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/services/scitex/"
    server.stop()


async def call(
    base: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"token {token}"} if token else {}
    raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    if method in ("PUT", "POST") and raw is None:
        raw = ""
    response: HTTPResponse = await AsyncHTTPClient().fetch(
        base + path,
        method=method,
        headers=headers,
        body=raw,
        raise_error=False,
        follow_redirects=False,
    )
    text = response.body.decode() if response.body else ""
    return response.code, (json.loads(text) if text else None)


def measure(engine: Engine, user: str, institution: str, used: int, minutes: int = 0) -> None:
    db.record_usage(
        engine,
        [db.UsageRow(user, institution, used, utcnow() - timedelta(minutes=minutes), "scan")],
    )


# ---- authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    "token,message",
    [
        (None, "Authentication required"),
        ("t-unknown", "Authentication required"),
        ("t-noaccess", "alice may not use the scitex service"),
    ],
)
async def test_callers_the_hub_does_not_vouch_for_get_403(
    base_url: str, token: str | None, message: str
) -> None:
    status, body = await call(base_url, "GET", "api/usage", token)
    assert status == 403
    assert message in body["message"]


async def test_a_browser_without_a_cookie_is_sent_to_the_hubs_oauth(base_url: str) -> None:
    response = await AsyncHTTPClient().fetch(base_url, raise_error=False, follow_redirects=False)
    assert response.code == 302
    location = response.headers["Location"]
    assert "/hub/api/oauth2/authorize?" in location
    assert "client_id=service-scitex" in location
    assert "state=" in location


async def test_index_says_who_you_are(base_url: str) -> None:
    assert (await call(base_url, "GET", "", "t-bob"))[1] == {
        "user": "bob",
        "role": "institution-admin",
        "institutions": ["demo-u"],
        "api": [
            "api/usage",
            "api/institutions",
            "api/users/{name}/quota",
            "api/spawns?user={name}",
        ],
    }
    assert (await call(base_url, "GET", "", "t-carol"))[1]["role"] == "user"


@pytest.mark.parametrize(
    "scopes,rights",
    [
        ([ACCESS], frozenset()),
        ([ACCESS, ADMIN], None),
        ([f"{ADMIN}!group=demo-u", ADMIN], None),
        ([f"{ADMIN}!group=demo-u", f"{ADMIN}!group=other-u"], {"demo-u", "other-u"}),
        ([f"{ADMIN}!user=alice", f"{ADMIN}!server=alice/", f"{ADMIN}x"], frozenset()),
        (["custom:scitex:jobs!user=bob", "admin:users", "admin-ui"], frozenset()),
    ],
)
def test_admin_rights_are_read_from_the_scopes(
    scopes: list[str], rights: frozenset[str] | None
) -> None:
    assert admin_rights(scopes) == rights


@pytest.mark.parametrize(
    "token,role,institutions",
    [
        ("t-admin", "hub-admin", ["demo-u", "other-u"]),
        ("t-bob", "institution-admin", ["demo-u"]),
        ("t-dave-rbac", "institution-admin", ["other-u"]),
        # The same people's tokens without the scope: no admin power.
        ("t-admin-server", "user", []),
        ("t-bob-server", "user", []),
        ("t-bob-narrow", "user", []),
        ("t-bob-one-user", "user", []),
        ("t-bob-elsewhere", "user", []),
        ("t-service-admin", "user", []),
        ("t-alice", "user", []),
    ],
)
async def test_admin_rights_come_from_the_tokens_scopes_only(
    base_url: str, token: str, role: str, institutions: list[str]
) -> None:
    status, body = await call(base_url, "GET", "", token)
    assert status == 200
    assert (body["role"], body["institutions"]) == (role, institutions)
    status, body = await call(base_url, "GET", "api/usage", token)
    if role == "user":
        name = TOKENS[token]["name"]
        assert (status, body["message"]) == (
            403,
            (
                f"{name} is neither a hub admin nor an institution admin by this token (it lacks "
                "the scope custom:scitex:admin): this endpoint is for administrators"
            ),
        )
        status, body = await call(
            base_url, "PUT", "api/users/alice/quota", token, {"limit_bytes": 1}
        )
        assert status == 403 and "lacks the scope custom:scitex:admin" in body["message"]
    else:
        assert status == 200
        assert [i["id"] for i in body["institutions"]] == institutions


# ---- usage -----------------------------------------------------------------------------


async def test_usage_per_role(base_url: str, engine: Engine) -> None:
    measure(engine, "alice", "demo-u", 5000, minutes=10)
    measure(engine, "alice", "demo-u", 7000)
    measure(engine, "carol", "other-u", 300)
    # A directory on disk whose user is no longer in the group still shows.
    measure(engine, "zed", "demo-u", 11)
    db.set_override(engine, "alice", 2 * GiB, set_by="bob", institution="demo-u")

    status, body = await call(base_url, "GET", "api/usage", "t-admin")
    assert status == 200
    assert [i["id"] for i in body["institutions"]] == ["demo-u", "other-u"]
    demo = body["institutions"][0]
    assert (demo["name"], demo["used_bytes"], demo["limit_bytes"]) == (
        "Demo University",
        7011,
        10 * GiB,
    )
    users = {u["name"]: u for u in demo["users"]}
    assert sorted(users) == ["alice", "bob", "zed"]
    assert users["alice"]["used_bytes"] == 7000
    assert users["alice"]["limit_bytes"] == 2 * GiB
    assert users["alice"]["override"]["set_by"] == "bob"
    assert users["alice"]["source"] == "scan"
    assert users["alice"]["measured_at"].endswith("Z")
    # bob has never been measured (no server yet): known, limit shown, usage unknown.
    assert users["bob"] == {
        "name": "bob",
        "used_bytes": None,
        "limit_bytes": 10 * GiB,
        "override": None,
        "measured_at": None,
        "source": None,
        "incomplete": None,
    }
    assert users["alice"]["incomplete"] is False
    # A walk that could not read part of zed's tree: a lower bound, and it says so.
    db.record_usage(engine, [db.UsageRow("zed", "demo-u", 20, utcnow(), "scan", errors=3)])
    status, body = await call(base_url, "GET", "api/usage", "t-admin")
    zed = {u["name"]: u for u in body["institutions"][0]["users"]}["zed"]
    assert (zed["used_bytes"], zed["incomplete"]) == (20, True)

    status, body = await call(base_url, "GET", "api/usage", "t-bob")
    assert status == 200
    assert [i["id"] for i in body["institutions"]] == ["demo-u"]
    status, body = await call(base_url, "GET", "api/usage", "t-erin")
    assert [i["id"] for i in body["institutions"]] == ["other-u"]
    assert body["institutions"][0]["users"][0]["name"] == "carol"
    status, body = await call(base_url, "GET", "api/usage", "t-dave-rbac")
    assert [i["id"] for i in body["institutions"]] == ["other-u"]
    for plain in ("t-carol", "t-alice", "t-dave", "t-service"):
        status, body = await call(base_url, "GET", "api/usage", plain)
        assert status == 403, plain
        assert "this endpoint is for administrators" in body["message"]


# ---- per-user overrides -------------------------------------------------------------------


async def test_institution_admin_sets_reads_and_removes_an_override(
    base_url: str, engine: Engine
) -> None:
    measure(engine, "alice", "demo-u", 4096)
    status, body = await call(
        base_url, "PUT", "api/users/alice/quota", "t-bob", {"limit_bytes": 3 * GiB}
    )
    assert status == 200, body
    assert body["user"] == "alice"
    assert body["institution"] == "demo-u"
    assert body["limit_bytes"] == 3 * GiB
    assert body["institution_limit_bytes"] == 10 * GiB
    assert body["override"]["limit_bytes"] == 3 * GiB
    assert body["override"]["set_by"] == "bob"
    assert body["used_bytes"] == 4096
    stored = db.get_override(engine, "alice")
    assert stored is not None and (stored.limit_bytes, stored.institution) == (3 * GiB, "demo-u")

    # A hub admin sees and changes it too; the user may read their own.
    status, body = await call(base_url, "GET", "api/users/alice/quota", "t-admin")
    assert (status, body["limit_bytes"]) == (200, 3 * GiB)
    status, body = await call(base_url, "GET", "api/users/alice/quota", "t-alice")
    assert (status, body["limit_bytes"]) == (200, 3 * GiB)

    status, _ = await call(base_url, "DELETE", "api/users/alice/quota", "t-bob")
    assert status == 204
    assert db.get_override(engine, "alice") is None
    status, body = await call(base_url, "DELETE", "api/users/alice/quota", "t-bob")
    assert (status, body["message"]) == (404, "alice has no quota override")
    status, body = await call(base_url, "GET", "api/users/alice/quota", "t-bob")
    assert (body["limit_bytes"], body["override"]) == (10 * GiB, None)


@pytest.mark.parametrize(
    "token,method,user,status,message",
    [
        ("t-erin", "PUT", "alice", 403, "erin administers other-u; alice belongs to demo-u"),
        ("t-bob", "PUT", "carol", 403, "bob administers demo-u; carol belongs to other-u"),
        ("t-bob", "GET", "carol", 403, "bob administers demo-u; carol belongs to other-u"),
        ("t-carol", "PUT", "carol", 403, "only they can change quotas"),
        ("t-carol", "GET", "alice", 403, "only they can read other users' quotas"),
        ("t-alice", "DELETE", "alice", 403, "only they can change quotas"),
        ("t-bob", "PUT", "nobody", 404, "No user 'nobody' on this hub"),
        ("t-admin", "PUT", "dave", 404, "dave belongs to no institution served by this hub"),
        ("t-admin", "PUT", "Alice%20X", 400, "'Alice X' is not a valid user name"),
        ("t-admin", "PUT", "%25s%25d", 400, "'%s%d' is not a valid user name"),
    ],
)
async def test_who_may_change_whose_quota(
    base_url: str, engine: Engine, token: str, method: str, user: str, status: int, message: str
) -> None:
    body = {"limit_bytes": 1} if method == "PUT" else None
    got, answer = await call(base_url, method, f"api/users/{user}/quota", token, body)
    assert got == status
    assert message in answer["message"]
    assert db.overrides_of(engine, ["alice", "carol", "dave", "nobody"]) == {}


@pytest.mark.parametrize(
    "raw,message",
    [
        ("", "The body is not JSON"),
        ("limit=5", "The body is not JSON"),
        ("[]", "No limit_bytes in the body"),
        ("{}", "No limit_bytes in the body"),
        ('{"limit_bytes": 1, "note": "x"}', "Unknown keys note"),
        ('{"limit_bytes": -1}', "limit_bytes cannot be negative, got -1"),
        ('{"limit_bytes": "5GiB"}', "limit_bytes must be a whole number of bytes, got '5GiB'"),
        ('{"limit_bytes": 1.5}', "limit_bytes must be a whole number of bytes, got 1.5"),
        ('{"limit_bytes": true}', "limit_bytes must be a whole number of bytes, got True"),
        ('{"limit_bytes": null}', "limit_bytes must be a whole number of bytes, got None"),
        ('{"limit_bytes": 9223372036854775808}', "limit_bytes is too large"),
    ],
)
async def test_bad_bodies_get_400_and_change_nothing(
    base_url: str, engine: Engine, raw: str, message: str
) -> None:
    status, body = await call(base_url, "PUT", "api/users/alice/quota", "t-bob", raw)
    assert status == 400
    assert message in body["message"]
    assert db.get_override(engine, "alice") is None


async def test_zero_means_no_limit(base_url: str) -> None:
    status, body = await call(
        base_url, "PUT", "api/users/alice/quota", "t-admin", {"limit_bytes": 0}
    )
    assert status == 200
    assert body["limit_bytes"] is None
    assert body["override"]["limit_bytes"] == 0


# ---- institutions and spawn records --------------------------------------------------------


async def test_institutions_per_role(base_url: str) -> None:
    status, body = await call(base_url, "GET", "api/institutions", "t-bob")
    assert status == 200
    [demo] = body["institutions"]
    assert {k: demo[k] for k in ("id", "name", "limit_bytes", "admins")} == {
        "id": "demo-u",
        "name": "Demo University",
        "limit_bytes": 10 * GiB,
        "admins": ["bob"],
    }
    status, body = await call(base_url, "GET", "api/institutions", "t-admin")
    assert [i["id"] for i in body["institutions"]] == ["demo-u", "other-u"]
    assert (await call(base_url, "GET", "api/institutions", "t-carol"))[0] == 403


async def test_spawn_records_per_role(base_url: str, engine: Engine) -> None:
    now = utcnow()
    for i, (user, inst) in enumerate([("alice", "demo-u"), ("carol", "other-u")]):
        rid = db.insert_spawn(
            engine,
            hub_id="h",
            user=user,
            server_name="",
            started_at=now + timedelta(seconds=i),
            institution=inst,
            profile="small",
            resources={"cpus": 1},
            image="/img.sif",
            image_digest="sha256:ab",
        )
        db.update_spawn(engine, record_id=rid, job_id=str(100 + i), node="localhost")

    status, body = await call(base_url, "GET", "api/spawns", "t-admin")
    assert status == 200
    assert [s["user"] for s in body["spawns"]] == ["carol", "alice"]
    alice = body["spawns"][1]
    assert {k: alice[k] for k in ("job_id", "node", "profile", "resources", "image_digest")} == {
        "job_id": "100",
        "node": "localhost",
        "profile": "small",
        "resources": {"cpus": 1},
        "image_digest": "sha256:ab",
    }
    status, body = await call(base_url, "GET", "api/spawns", "t-bob")
    assert [s["user"] for s in body["spawns"]] == ["alice"]
    status, body = await call(base_url, "GET", "api/spawns?user=carol", "t-bob")
    assert body["spawns"] == []
    # A user reads their own records, nobody else's.
    status, body = await call(base_url, "GET", "api/spawns", "t-carol")
    assert [s["user"] for s in body["spawns"]] == ["carol"]
    status, body = await call(base_url, "GET", "api/spawns?user=alice", "t-carol")
    assert (status, body["message"]) == (403, "carol may read their own spawn records only")
    for query in ("limit=0", "limit=501", "limit=x", "user=A%0A"):
        status, _ = await call(base_url, "GET", f"api/spawns?{query}", "t-admin")
        assert status == 400, query


async def test_unknown_endpoints_are_404_json(base_url: str) -> None:
    status, body = await call(base_url, "GET", "api/nothing", "t-admin")
    assert (status, body["message"]) == (404, "No such endpoint: /services/scitex/api/nothing")
