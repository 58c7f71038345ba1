"""Institution admins through JupyterHub RBAC (role scitex-admin-<institution>,
every scope filtered by !group=<institution>): bob (admin of demo-u) lists, starts
and stops alice's server; erin (admin of other-u, carol's institution) cannot see,
start or stop it. Real JupyterHub, PAM, SLURM."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, job_ids_of, new_hub

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
    hub.cancel_all_jobs()
    hub.kill()
    hub.stop_proxy()
    shutil.rmtree(hub.root, ignore_errors=True)


@pytest.fixture(scope="module")
def people(admin_hub: Hub, services: str) -> dict[str, HubUser]:
    # Everyone signs in once: group membership (the institution) is set at sign-in.
    return {
        name: signed_in(admin_hub, name, services) for name in ("alice", "bob", "carol", "erin")
    }


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
