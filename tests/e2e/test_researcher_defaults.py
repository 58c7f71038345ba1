"""What a researcher finds set up for her, through the real hub: the spawn page offers
her last choice again, and JupyterLab does not ask about news."""

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


NOTIFICATION_SETTINGS = "@jupyterlab/apputils-extension:notification"


def test_jupyterlab_news_prompt_is_off(hub: Hub, alice: HubUser) -> None:
    if not alice.server_model().get("ready"):
        assert alice.api("POST", "/hub/api/users/alice/server", json={}).status_code in (201, 202)
        alice.wait_ready()
    r = alice.api("GET", f"/user/alice/lab/api/settings/{NOTIFICATION_SETTINGS}")
    assert r.status_code == 200, r.text
    settings = r.json()
    # The shipped overrides (share/jupyter/lab/settings/overrides.d/scitex.json) are the
    # schema's defaults, which apply while the user has set nothing herself.
    properties = settings["schema"]["properties"]
    assert properties["fetchNews"]["default"] == "false"  # JupyterLab's own: "none" (ask)
    assert properties["checkForUpdates"]["default"] is False
    assert settings["settings"] == {}
