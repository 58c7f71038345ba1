"""User-name rules end to end with PAM and Gitea (issue 14): a real JupyterHub signs people
in with PAM (the demo's Unix accounts) and provisions Gitea (the fake, in this process).

- A Unix system account (``useradd -r``: UID below ``auth.min_uid``) with a valid password is
  refused at the login form with the refused-sign-in page; nothing is created.
- The Gitea admin's login (here ``dave``, a Unix account with the researchers' password) is
  refused the same way: no hub user, no Gitea token of the Gitea admin.
- A researcher whose Gitea account is a Gitea site admin (``erin``) signs in, but the hub does
  not adopt that account: no token is made for it. alice, alongside, gets hers.

The OIDC and LDAP sides are in test_oidc.py and test_ldap.py.
"""

from __future__ import annotations

import html
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, new_hub
from tests.fakes.gitea import FakeGiteaServer

pytestmark = pytest.mark.e2e

SYSTEM_ACCOUNT = "scitex-sysacct"
GITEA_ADMIN = "dave"  # the Gitea admin's login, and a Unix account with the demo password
GITEA_PASSWORD = "gitea-admin-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def system_account(services: str) -> Iterator[str]:
    """A system account (``useradd -r``) with a password PAM accepts; removed afterwards."""
    password = "sys-" + secrets.token_hex(12)
    subprocess.run(["userdel", SYSTEM_ACCOUNT], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "-r", "-M", "-s", "/bin/sh", SYSTEM_ACCOUNT], check=True, capture_output=True
    )
    try:
        # The password on stdin, never on a command line.
        subprocess.run(["chpasswd"], input=f"{SYSTEM_ACCOUNT}:{password}\n", text=True, check=True)
        assert pwd.getpwnam(SYSTEM_ACCOUNT).pw_uid < 1000
        yield password
    finally:
        subprocess.run(["userdel", SYSTEM_ACCOUNT], capture_output=True, check=False)


@pytest.fixture(scope="module")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGiteaServer]:
    root = tmp_path_factory.mktemp("gitea")
    with FakeGiteaServer(root / "repos") as server:
        server.fake.add_user(GITEA_ADMIN, password=GITEA_PASSWORD, admin=True)
        # A Gitea site admin who is also one of the hub's researchers.
        server.fake.add_user("erin", admin=True)
        yield server


@pytest.fixture(scope="module")
def hub(system_account: str, gitea: FakeGiteaServer) -> Iterator[Hub]:
    secrets_dir = Path(gitea.fake.root).parent / "secrets"
    secrets_dir.mkdir(mode=0o700)
    token_file, password_file = secrets_dir / "admin-token", secrets_dir / "admin-password"
    token_file.write_text(
        gitea.fake.add_token(GITEA_ADMIN, "hub", ("write:admin", "write:organization", "read:user"))
    )
    password_file.write_text(GITEA_PASSWORD)
    for f in (token_file, password_file):
        f.chmod(0o600)
    hub = new_hub(
        env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)},
        container={"runtime": "none"},
        gitea={
            "url": gitea.url,
            "admin_token_file": str(token_file),
            "admin_user": GITEA_ADMIN,
            "admin_password_file": str(password_file),
        },
    )
    # alice administers the hub here, to read users over the REST API.
    hub.settings["hub"]["admin_users"] = ["admin", "alice"]
    # Listed in an institution: only the name rules can refuse it.
    hub.settings["institutions"]["demo-u"]["users"].append(SYSTEM_ACCOUNT)
    hub.start()
    yield hub
    hub.kill()
    hub.stop_proxy()
    shutil.rmtree(hub.root, ignore_errors=True)


@pytest.fixture(scope="module")
def alice(hub: Hub, services: str) -> HubUser:
    return signed_in(hub, "alice", services)  # the researchers' password


def assert_refused_page(r: requests.Response, name: str, why: str) -> None:
    assert r.status_code == 403
    page = html.unescape(r.text)
    assert "<title>Sign-in refused: account not allowed</title>" in page
    assert "Sign-in refused: this account cannot use the hub" in page
    assert f"You signed in as {name}, but {why}" in page
    assert "so the sign-in was refused and nothing was created for you" in page
    # Not the form's answer to a wrong password: the page says why.
    assert "Invalid username or password" not in page
    assert "jupyterhub-session-id" not in r.cookies and "jupyterhub-hub-login" not in r.cookies


def assert_nothing_created(hub: Hub, alice: HubUser, gitea: FakeGiteaServer, name: str) -> None:
    assert alice.api("GET", f"/hub/api/users/{name}").status_code == 404
    assert name not in [u["name"] for u in alice.api("GET", "/hub/api/users").json()]
    data = Path(hub.settings["data_root"])
    assert not [p for p in data.rglob("*") if p.name == name]
    assert f"Sign-in refused for {name}: " in hub.log_text()


def test_a_system_account_is_refused_at_the_login_form(
    hub: Hub, alice: HubUser, gitea: FakeGiteaServer, system_account: str
) -> None:
    uid = pwd.getpwnam(SYSTEM_ACCOUNT).pw_uid
    # A wrong password still gets the form's answer (nothing said about the account).
    r = HubUser(hub, SYSTEM_ACCOUNT).login(system_account + "x")
    assert r.status_code == 403 and "Invalid username or password" in r.text
    r = HubUser(hub, SYSTEM_ACCOUNT).login(system_account)
    assert_refused_page(
        r,
        SYSTEM_ACCOUNT,
        f"{SYSTEM_ACCOUNT} is a system account on this hub's machine (UID {uid}; people's "
        "accounts start at UID 1000)",
    )
    assert_nothing_created(hub, alice, gitea, SYSTEM_ACCOUNT)
    assert SYSTEM_ACCOUNT not in gitea.fake.accounts


def test_the_gitea_admins_name_is_refused(
    hub: Hub, alice: HubUser, gitea: FakeGiteaServer, password: str
) -> None:
    tokens_before = sorted(t.name for t in gitea.fake.tokens.values() if t.user == GITEA_ADMIN)
    r = HubUser(hub, GITEA_ADMIN).login(password)
    assert_refused_page(
        r,
        GITEA_ADMIN,
        f"the name {GITEA_ADMIN} is reserved on this hub (an administrator or service account)",
    )
    assert_nothing_created(hub, alice, gitea, GITEA_ADMIN)
    # No token of the Gitea admin was minted.
    assert (
        sorted(t.name for t in gitea.fake.tokens.values() if t.user == GITEA_ADMIN) == tokens_before
    )


def test_a_gitea_site_admin_account_is_not_adopted(
    hub: Hub, alice: HubUser, gitea: FakeGiteaServer, password: str
) -> None:
    # alice is provisioned as usual: her own token.
    assert [t.name for t in gitea.fake.tokens.values() if t.user == "alice"] == ["scitex-notebook"]
    erin = signed_in(hub, "erin", password)
    assert erin.api("GET", "/hub/api/user").json()["name"] == "erin"
    # Signed in, but Gitea's admin account erin got no token and joined no team.
    assert [t.name for t in gitea.fake.tokens.values() if t.user == "erin"] == []
    assert not any("erin" in team.members for team in gitea.fake.teams.values())
    assert (
        "Gitea provisioning for erin refused: the Gitea account erin is a Gitea site "
        "administrator, and the hub gives no server a token of an administrator account"
    ) in hub.log_text()
