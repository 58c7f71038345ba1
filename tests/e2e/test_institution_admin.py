"""Institution admins through JupyterHub RBAC (role scitex-admin-<institution>,
every scope filtered by !group=<institution>): bob (admin of demo-u) lists, starts
and stops alice's server; erin (admin of other-u, carol's institution) cannot see,
start or stop it. In the scitex service, admin power comes from the token's scopes
only: bob's notebook server's token, a narrow token he made and the hub admin's
server-like token get 403; their browser sessions (OAuth through the service) and
tokens that carry the scope get in. Real JupyterHub, PAM, SLURM."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, job_ids_of, new_hub, read_environ, server_pids
from tests.services import demo_admin_password

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin_hub(services: str) -> Iterator[Hub]:
    hub = new_hub()
    institutions = copy.deepcopy(hub.settings["institutions"])
    institutions["demo-u"].update(users=["alice", "bob"], admins=["bob"])
    institutions["other-u"].update(users=["carol", "erin"], admins=["erin"])
    hub.settings["institutions"] = institutions
    hub.start()
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def people(admin_hub: Hub, services: str) -> dict[str, HubUser]:
    # Everyone signs in once: group membership (the institution) is set at sign-in.
    people = {
        name: signed_in(admin_hub, name, services) for name in ("alice", "bob", "carol", "erin")
    }
    people["admin"] = signed_in(admin_hub, "admin", demo_admin_password())
    return people


def names(user: HubUser) -> set[str]:
    r = user.api("GET", "/hub/api/users")
    assert r.status_code == 200, r.text
    return {u["name"] for u in r.json()}


def test_roles_carry_the_filtered_scopes(people: dict[str, HubUser]) -> None:
    bob = people["bob"].api("GET", "/hub/api/user").json()
    assert "scitex-admin-demo-u" in bob["roles"]
    assert {
        "custom:scitex:admin!group=demo-u",
        "list:users!group=demo-u",
        "start:servers!group=demo-u",
        "delete:servers!group=demo-u",
    } <= set(bob["scopes"])
    # Start and stop, not use: their notebooks and data stay theirs.
    assert "access:servers!group=demo-u" not in bob["scopes"]
    erin = people["erin"].api("GET", "/hub/api/user").json()
    assert "custom:scitex:admin!group=other-u" in erin["scopes"]
    assert not [s for s in erin["scopes"] if s.endswith("!group=demo-u")]
    alice = people["alice"].api("GET", "/hub/api/user").json()
    assert not [s for s in alice["scopes"] if s.startswith("custom:scitex:admin")]


def test_admins_list_only_their_institution(people: dict[str, HubUser]) -> None:
    assert names(people["bob"]) == {"alice", "bob"}
    assert names(people["erin"]) == {"carol", "erin"}
    # A researcher lists nobody.
    assert people["alice"].api("GET", "/hub/api/users").status_code == 403


def test_institution_admin_starts_and_stops_a_members_server(
    admin_hub: Hub, people: dict[str, HubUser]
) -> None:
    bob, erin, alice = people["bob"], people["erin"], people["alice"]

    # erin, admin of another institution, cannot start alice's server.
    r = erin.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (403, 404), r.text
    assert job_ids_of(admin_hub, "alice") == []

    # bob, admin of alice's institution, can.
    r = bob.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    assert len(job_ids_of(admin_hub, "alice")) == 1
    model = bob.api("GET", "/hub/api/users/alice").json()
    assert model["servers"][""]["ready"] is True

    # erin can neither see nor stop it.
    assert erin.api("GET", "/hub/api/users/alice").status_code in (403, 404)
    r = erin.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (403, 404), r.text
    assert alice.server_model().get("ready") is True
    # Nor can bob reach into carol's institution.
    assert bob.api("GET", "/hub/api/users/carol").status_code in (403, 404)
    assert bob.api("POST", "/hub/api/users/carol/server", json={}).status_code in (403, 404)
    assert job_ids_of(admin_hub, "carol") == []

    # bob stops alice's server: her job leaves the queue.
    r = bob.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (202, 204), r.text
    alice.wait_stopped()
    assert job_ids_of(admin_hub, "alice") == []


# ---- the scitex service: admin rights from the token's scopes only ---------------------------

SERVICE = "/services/scitex/"
NOT_ADMIN = "is neither a hub admin nor an institution admin by this token (it lacks the scope "
NOT_ADMIN += "custom:scitex:admin)"


def token_with(user: HubUser, scopes: list[str]) -> str:
    """A token ``user`` makes for themselves with exactly ``scopes``."""
    r = user.session.post(
        f"{user.hub.url}/hub/api/users/{user.name}/tokens",
        json={"note": "e2e narrow", "expires_in": 3600, "scopes": scopes},
        headers={"X-XSRFToken": user.session.cookies.get("_xsrf", "")},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def service(
    hub: Hub, token: str, path: str, method: str = "GET", **kwargs: object
) -> requests.Response:
    return requests.request(
        method,
        hub.url + SERVICE + path,
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )


def wait_for_service(hub: Hub, token: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service(hub, token, "").status_code == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"the scitex service did not answer:\n{hub.log_tail()}")


def refused(r: requests.Response, name: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["message"].startswith(f"{name} {NOT_ADMIN}"), r.text


def test_service_admin_rights_come_from_the_tokens_scopes(
    admin_hub: Hub, people: dict[str, HubUser]
) -> None:
    bob, admin = people["bob"], people["admin"]
    wait_for_service(admin_hub, bob.token)
    access = "access:services!service=scitex"

    # bob's own token (it inherits his scopes, the filtered admin scope among them).
    r = service(admin_hub, bob.token, "api/usage")
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["institutions"]] == ["demo-u"]
    # A narrow token he made without the scope: no admin power, though the site file
    # still names him an admin of demo-u.
    narrow = token_with(bob, [access, "read:users:name!user=bob"])
    assert service(admin_hub, narrow, "").json()["role"] == "user"
    refused(service(admin_hub, narrow, "api/usage"), "bob")
    refused(service(admin_hub, narrow, "api/institutions"), "bob")
    r = service(admin_hub, narrow, "api/users/alice/quota", "PUT", json={"limit_bytes": 1})
    assert r.status_code == 403 and NOT_ADMIN in r.json()["message"], r.text
    # A narrow one with the scope does.
    scoped = token_with(bob, [access, "custom:scitex:admin!group=demo-u"])
    assert service(admin_hub, scoped, "api/usage").status_code == 200

    # The hub admin: his own token is admin of everything...
    r = service(admin_hub, admin.token, "")
    assert (r.json()["role"], r.json()["institutions"]) == ("hub-admin", ["demo-u", "other-u"])
    # ...a token with his notebook server's scopes (apply_services' server_token_scopes) is not.
    server_like = token_with(
        admin,
        [
            "users:activity!user=admin",
            "access:servers!server=admin/",
            "custom:scitex:jobs!user=admin",
            access,
        ],
    )
    model = requests.get(
        admin_hub.url + "/hub/api/user",
        headers={"Authorization": f"token {server_like}"},
        timeout=10,
    ).json()
    assert model["admin"] is True  # the hub still says who he is...
    assert not [s for s in model["scopes"] if s.startswith("custom:scitex:admin")]
    refused(service(admin_hub, server_like, "api/usage"), "admin")
    r = service(admin_hub, server_like, "api/spawns?user=alice")
    assert (r.status_code, r.json()["message"]) == (
        403,
        "admin may read their own spawn records only",
    ), r.text
    r = service(admin_hub, server_like, "api/users/alice/quota", "PUT", json={"limit_bytes": 1})
    assert r.status_code == 403, r.text


def test_an_admins_notebook_server_token_has_no_admin_power(
    admin_hub: Hub, people: dict[str, HubUser]
) -> None:
    bob = people["bob"]
    wait_for_service(admin_hub, bob.token)
    r = bob.api("POST", "/hub/api/users/bob/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    bob.wait_ready()
    try:
        [pid] = server_pids(admin_hub, "bob")
        token = read_environ(pid)["JUPYTERHUB_API_TOKEN"]
        scopes = requests.get(
            admin_hub.url + "/hub/api/user",
            headers={"Authorization": f"token {token}"},
            timeout=10,
        ).json()["scopes"]
        assert "custom:scitex:jobs!user=bob" in scopes
        assert not [s for s in scopes if s.startswith("custom:scitex:admin")]
        # What code in his notebook could do with it: no admin endpoint answers.
        assert service(admin_hub, token, "").json()["role"] == "user"
        refused(service(admin_hub, token, "api/usage"), "bob")
        refused(service(admin_hub, token, "api/institutions"), "bob")
        r = service(admin_hub, token, "api/users/alice/quota", "PUT", json={"limit_bytes": 1})
        assert r.status_code == 403, r.text
        r = service(admin_hub, token, "api/users/alice/quota")
        assert r.status_code == 403, r.text
        # It is still the server's working token for what it is for (its own jobs).
        assert service(admin_hub, token, "api/jobs").status_code == 200
    finally:
        bob.api("DELETE", "/hub/api/users/bob/server")
        bob.wait_stopped()


def test_browser_sessions_reach_the_admin_api_through_oauth(
    admin_hub: Hub, people: dict[str, HubUser]
) -> None:
    """The service's OAuth client asks for custom:scitex:admin; the hub grants each user the
    part they hold. A browser's cookie session (no token) gets in as far as its user may."""
    wait_for_service(admin_hub, people["bob"].token)
    expected = {
        "bob": ("institution-admin", ["demo-u"]),
        "erin": ("institution-admin", ["other-u"]),
        "admin": ("hub-admin", ["demo-u", "other-u"]),
        "alice": ("user", []),
    }
    for name, (role, institutions) in expected.items():
        session = people[name].session
        r = session.get(admin_hub.url + SERVICE, timeout=30)  # through the hub's OAuth
        assert r.status_code == 200, (name, r.text)
        assert (r.json()["role"], r.json()["institutions"]) == (role, institutions), name
        r = session.get(admin_hub.url + SERVICE + "api/usage", timeout=30)
        if role == "user":
            assert r.status_code == 403, r.text
        else:
            assert r.status_code == 200, r.text
            assert [i["id"] for i in r.json()["institutions"]] == institutions
        # The overview page, as a browser asks for it.
        r = session.get(admin_hub.url + SERVICE, headers={"Accept": "text/html"}, timeout=30)
        assert r.status_code == (403 if role == "user" else 200), (name, r.text[:300])
