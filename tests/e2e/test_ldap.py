"""LDAP sign-in against a real slapd (deploy/dev/ldap.sh): directory group ->
institution, a user in no mapped group refused with a page that says why and
nothing created, names no person may use (root, a system account) refused the
same way, the Unix accounts not used. Real JupyterHub + ldapauthenticator.

The directory's people (ldapann, ldapoli, ldapnobody) are not Unix accounts, so
no server is spawned for them: sign-in, mapping and groups are what is tested.
"""

from __future__ import annotations

import copy
import html
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.hubprocess import REPO, Hub, HubUser, new_hub
from tests.services import DEV_DIR, missing

pytestmark = pytest.mark.e2e

LDAP_PORT = int(os.environ.get("SCITEX_LDAP_PORT", "3890"))
LDAP_DIR = Path(DEV_DIR) / "ldap"


@pytest.fixture(scope="module")
def ldap_password(services: str) -> str:
    """slapd started (and installed if missing) by deploy/dev/ldap.sh."""
    r = subprocess.run(
        ["bash", str(REPO / "deploy" / "dev" / "ldap.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        missing("slapd", f"deploy/dev/ldap.sh start failed:\n{r.stderr[-2000:]}")
    return (LDAP_DIR / "user-password").read_text()


@pytest.fixture(scope="module")
def ldap_hub(ldap_password: str) -> Iterator[Hub]:
    hub = new_hub()
    settings = hub.settings
    settings["auth"] = {
        "kind": "ldap",
        "ldap": {
            "server_address": "127.0.0.1",
            "server_port": LDAP_PORT,
            "tls_strategy": "insecure",
            "bind_dn_template": ["uid={username},ou=people,dc=scitex,dc=test"],
            "group_search_base": "ou=groups,dc=scitex,dc=test",
        },
    }
    institutions = copy.deepcopy(settings["institutions"])
    institutions["demo-u"]["ldap_groups"] = ["demo-researchers"]
    # A full DN works as well as a bare name.
    institutions["other-u"]["ldap_groups"] = ["cn=other-researchers,ou=groups,dc=scitex,dc=test"]
    # Email domains would map ldapnobody's nowhere.test to nothing anyway; the
    # demo's domains are kept to show the groups decide here.
    settings["institutions"] = institutions
    # ldapoli administers the hub, to read users and groups over the REST API.
    settings["hub"]["admin_users"] = ["admin", "ldapoli"]
    hub.start()
    yield hub
    hub.kill()
    hub.stop_proxy()
    shutil.rmtree(hub.root, ignore_errors=True)


def sign_in(hub: Hub, name: str, password: str) -> tuple[HubUser, requests.Response, float]:
    user = HubUser(hub, name)
    start = time.perf_counter()
    r = user.login(password)
    return user, r, time.perf_counter() - start


@pytest.fixture(scope="module")
def oli(ldap_hub: Hub, ldap_password: str) -> HubUser:
    user, r, _ = sign_in(ldap_hub, "ldapoli", ldap_password)
    assert r.status_code == 302, r.text[:500]
    user.create_token()
    return user


def test_directory_group_maps_to_institution(
    ldap_hub: Hub, ldap_password: str, oli: HubUser
) -> None:
    _, r, elapsed = sign_in(ldap_hub, "ldapann", ldap_password)
    assert r.status_code == 302, r.text[:500]
    print(f"LDAP sign-in (ldapann): {elapsed * 1000:.0f} ms")
    assert elapsed < 5

    model = oli.api("GET", "/hub/api/users/ldapann").json()
    assert model["groups"] == ["demo-u"]
    assert model["admin"] is False
    group = oli.api("GET", "/hub/api/groups/demo-u").json()
    assert "ldapann" in group["users"]
    # The directory admin is in the other institution, by its group's full DN.
    me = oli.api("GET", "/hub/api/users/ldapoli").json()
    assert (me["groups"], me["admin"]) == (["other-u"], True)


def test_no_mapped_group_is_refused_and_nothing_created(
    ldap_hub: Hub, ldap_password: str, oli: HubUser
) -> None:
    _, r, _ = sign_in(ldap_hub, "ldapnobody", ldap_password)
    assert r.status_code == 403
    page = html.unescape(r.text)
    assert (
        "You signed in as ldapnobody (email nobody@nowhere.test), but your account belongs "
        "to no institution served by this hub"
    ) in page
    assert "register your institution, directory group or email domain" in page
    assert "jupyterhub-session-id" not in r.cookies and "jupyterhub-hub-login" not in r.cookies

    assert oli.api("GET", "/hub/api/users/ldapnobody").status_code == 404
    names = [u["name"] for u in oli.api("GET", "/hub/api/users").json()]
    assert "ldapnobody" not in names
    # No data directory, no file of any kind, anywhere under this hub.
    assert not list(ldap_hub.root.rglob("*ldapnobody*"))


def test_wrong_password_and_unix_accounts_are_refused(
    ldap_hub: Hub, ldap_password: str, password: str, oli: HubUser
) -> None:
    _, r, _ = sign_in(ldap_hub, "ldapann", ldap_password + "x")
    assert r.status_code == 403
    assert "Invalid username or password" in r.text
    # alice is a Unix user with the demo password, but not in the directory:
    # the hub asks LDAP, not PAM.
    _, r, _ = sign_in(ldap_hub, "alice", password)
    assert r.status_code == 403
    assert oli.api("GET", "/hub/api/users/alice").status_code == 404


@pytest.mark.parametrize(
    "name,why",
    [
        # A Unix system account here (UID 1), in the directory and in demo-u's group.
        ("daemon", "daemon is a system account on this hub's machine (UID 1; people's accounts"),
        # Reserved by name (auth.denied_users; root always).
        ("root", "the name root is reserved on this hub (an administrator or service account)"),
    ],
)
def test_names_no_person_may_use_are_refused_and_nothing_created(
    ldap_hub: Hub, ldap_password: str, oli: HubUser, name: str, why: str
) -> None:
    user, r, _ = sign_in(ldap_hub, name, ldap_password)
    assert r.status_code == 403
    page = html.unescape(r.text)
    # The refused-sign-in page, not the form's "Invalid username or password".
    assert "<title>Sign-in refused: account not allowed</title>" in page
    assert "Sign-in refused: this account cannot use the hub" in page
    assert f"You signed in as {name}, but {why}" in page
    assert "so the sign-in was refused and nothing was created for you" in page
    assert 'status 403, "Account not allowed"' in page
    assert "Invalid username or password" not in page
    assert "jupyterhub-session-id" not in r.cookies and "jupyterhub-hub-login" not in r.cookies
    assert user.session.get(ldap_hub.url + "/hub/api/user", timeout=10).status_code == 403

    assert oli.api("GET", f"/hub/api/users/{name}").status_code == 404
    assert name not in [u["name"] for u in oli.api("GET", "/hub/api/users").json()]
    data = Path(ldap_hub.settings["data_root"])
    assert not (data / "demo-u" / name).exists()
    assert not [p for p in data.rglob("*") if p.name == name]
    # The hub's log says who was refused and why (for the admins).
    assert f"Sign-in refused for {name}: " in ldap_hub.log_path.read_text()
