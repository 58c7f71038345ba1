"""The demo's accounts through the real hub and PAM (deploy/dev/users.sh set them): the hub
admin has a password of its own; a researcher's password never signs in as admin."""

from __future__ import annotations

import pytest

from tests.e2e.hubprocess import Hub, HubUser
from tests.services import demo_admin_password

pytestmark = pytest.mark.e2e


def test_the_researchers_password_does_not_sign_in_as_admin(hub: Hub, password: str) -> None:
    admin_password = demo_admin_password()
    assert admin_password != password

    refused = HubUser(hub, "admin").login(password)
    assert refused.status_code == 403, refused.text[:300]
    assert "Invalid username or password" in refused.text
    assert "jupyterhub-hub-login" not in refused.cookies
    # Nor the other way round.
    assert HubUser(hub, "alice").login(admin_password).status_code == 403

    admin = HubUser(hub, "admin")
    r = admin.login(admin_password)
    assert r.status_code == 302, r.text[:300]
    admin.create_token()
    model = admin.api("GET", "/hub/api/user").json()
    assert (model["name"], model["admin"]) == ("admin", True)
    # The researchers' password still signs researchers in.
    assert HubUser(hub, "alice").login(password).status_code == 302
