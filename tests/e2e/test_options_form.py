"""The spawn page offers the user's last choice again (issue 15), through the real hub."""

from __future__ import annotations

from tests.e2e.hubprocess import Hub, HubUser
from tests.hub.test_form import chosen


def test_spawn_page_prefills_the_last_choice(hub: Hub, alice: HubUser, password: str) -> None:
    options = {
        "profile": "medium",
        "partition": "batch",
        "cpus": 3,
        "memory": "2GiB",
        "runtime": "05:00:00",
    }
    r = alice.api("POST", "/hub/api/users/alice/server", json=options)
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
    alice.wait_stopped()

    alice.login(password)
    page = chosen(alice.session.get(hub.url + "/hub/spawn", timeout=20).text)
    assert page.checked == ["medium"]
    assert page.values == {
        "partition": "batch",
        "cpus": "3",
        "memory": "2GiB",
        "runtime": "05:00:00",
    }
