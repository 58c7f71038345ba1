"""OIDC sign-in against a real OpenID provider (npm oidc-provider, tests/fixtures/oidc),
the full authorization-code flow through the hub's login: email domain -> institution
(only a verified address), an unknown domain or an unverified or unmarked address
refused with a page that says why, an unusable username refused, a username no person
may use (root, a system account) refused with the page and nothing created. Real
JupyterHub + oauthenticator's GenericOAuthenticator.

No server is spawned: the provider's accounts are not Unix users.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.e2e.hubprocess import REPO, Hub, HubUser, free_port, new_hub
from tests.services import PREFIX, missing

pytestmark = pytest.mark.e2e

OIDC_DIR = Path(PREFIX) / "oidc"
FIXTURE = REPO / "tests" / "fixtures" / "oidc"
ACCOUNTS = {
    "ann": {"email": "ann@demo-u.edu", "email_verified": True, "groups": ["staff"]},
    "ops": {"email": "ops@demo-u.edu", "email_verified": True},
    "zed": {"email": "zed@unknown.example", "email_verified": True},
    # Claims demo-u's domain, but the provider has not verified the address.
    "mallory": {"email": "mallory@demo-u.edu", "email_verified": False},
    # Claims demo-u's domain, and the provider says nothing about verification.
    "nora": {"email": "nora@demo-u.edu"},
    # Verified demo-u addresses, usernames the hub never lets a person use.
    "rooty": {"email": "rooty@demo-u.edu", "email_verified": True, "preferred_username": "root"},
    "sysd": {"email": "sysd@demo-u.edu", "email_verified": True, "preferred_username": "daemon"},
    # A username JupyterHub's username_pattern refuses.
    "evil": {
        "email": "evil@demo-u.edu",
        "email_verified": True,
        "preferred_username": "../evil",
    },
}


@dataclass
class Provider:
    url: str
    client_id: str
    secret_file: Path
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def provider(services: str) -> Iterator[tuple[Provider, int]]:
    """oidc-provider on a free port, its client redirecting to a hub port chosen here."""
    if not shutil.which("node"):
        missing("node", "Node.js is not installed (deploy/dev/install-system.sh)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        r = subprocess.run(
            ["bash", str(REPO / "deploy" / "dev" / "install-system.sh")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if r.returncode != 0:
            missing("oidc-provider", f"install-system.sh failed:\n{r.stderr[-2000:]}")
    run_dir = Path(tempfile.mkdtemp(prefix="scitex-oidc-"))
    # ESM resolves packages from the script's own directory up, not NODE_PATH.
    shutil.copy(FIXTURE / "provider.mjs", run_dir / "provider.mjs")
    (run_dir / "node_modules").symlink_to(OIDC_DIR / "node_modules")
    port, hub_port = free_port(), free_port()
    secret = secrets.token_urlsafe(32)
    secret_file = run_dir / "client-secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": "scitex-hub",
        "OIDC_CLIENT_SECRET": secret,  # environment, never argv
        "OIDC_REDIRECT_URI": f"http://127.0.0.1:{hub_port}/hub/oauth_callback",
        "OIDC_ACCOUNTS": json.dumps(ACCOUNTS),
    }
    log = run_dir / "provider.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["node", str(run_dir / "provider.mjs")],
            cwd=run_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/.well-known/openid-configuration", timeout=2).ok:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"oidc-provider did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    yield Provider(url, "scitex-hub", secret_file, proc, log), hub_port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def oidc_hub(provider: tuple[Provider, int]) -> Iterator[Hub]:
    idp, hub_port = provider
    hub = new_hub()
    settings = hub.settings
    settings["hub"]["bind_url"] = f"http://127.0.0.1:{hub_port}"
    # ops administers the hub, to read users and groups over the REST API.
    settings["hub"]["admin_users"] = ["admin", "ops"]
    discovery = requests.get(idp.url + "/.well-known/openid-configuration", timeout=5).json()
    settings["auth"] = {
        "kind": "oidc",
        "oidc": {
            "issuer": discovery["issuer"],
            "client_id": idp.client_id,
            "client_secret_file": str(idp.secret_file),
            "callback_url": f"http://127.0.0.1:{hub_port}/hub/oauth_callback",
            # From the provider's discovery document, as docs/authentication.md says.
            "authorize_url": discovery["authorization_endpoint"],
            "token_url": discovery["token_endpoint"],
            "userdata_url": discovery["userinfo_endpoint"],
            "scopes": ["openid", "email", "profile"],
            "login_service": "Test IdP",
        },
    }
    hub.start()
    yield hub
    hub.kill()
    hub.stop_proxy()
    shutil.rmtree(hub.root, ignore_errors=True)


class _Form(HTMLParser):
    """The first form on a page: its action and its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action") or ""
        elif tag == "input" and self.action is not None and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


def oidc_sign_in(hub: Hub, login: str) -> tuple[requests.Session, requests.Response, float]:
    """A browser's authorization-code flow: the hub's login, the provider's login
    and consent forms, back to the hub's callback. Returns the callback's response
    (redirects after it are not followed: they would open the spawn page)."""
    session = requests.Session()
    callback = hub.url + "/hub/oauth_callback"
    start = time.perf_counter()
    r = session.get(hub.url + "/hub/oauth_login", allow_redirects=False, timeout=10)
    for _ in range(12):
        if r.url.startswith(callback):
            return session, r, time.perf_counter() - start
        if r.is_redirect:
            target = urljoin(r.url, r.headers["Location"])
            r = session.get(target, allow_redirects=False, timeout=30)
        elif r.status_code == 200 and "<form" in r.text:
            form = _Form()
            form.feed(r.text)
            assert form.action is not None, r.text[:500]
            data = dict(form.fields)
            if "login" in data or data.get("prompt") == "login":
                data.update(login=login, password="any")  # the dev login takes any password
            r = session.post(
                urljoin(r.url, form.action), data=data, allow_redirects=False, timeout=30
            )
        else:
            raise AssertionError(f"unexpected page {r.status_code} {r.url}:\n{r.text[:800]}")
    raise AssertionError("the sign-in did not reach the hub's callback")


def page_text(r: requests.Response) -> str:
    body = re.sub(r"<(script|style).*?</\1>", " ", r.text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def ops(oidc_hub: Hub) -> HubUser:
    session, r, _ = oidc_sign_in(oidc_hub, "ops")
    assert r.status_code == 302, page_text(r)[:500]
    user = HubUser(oidc_hub, "ops")
    user.session = session
    user.create_token()
    return user


def test_email_domain_maps_to_institution(oidc_hub: Hub, ops: HubUser) -> None:
    session, r, elapsed = oidc_sign_in(oidc_hub, "ann")
    assert r.status_code == 302, page_text(r)[:800]
    assert r.headers["Location"].startswith("/hub/")
    print(f"OIDC sign-in (ann, full code flow): {elapsed * 1000:.0f} ms")
    assert elapsed < 10
    # The session works: ann is signed in to the hub.
    whoami = session.get(oidc_hub.url + "/hub/api/user", timeout=10)
    assert whoami.status_code == 200 and whoami.json()["name"] == "ann"

    model = ops.api("GET", "/hub/api/users/ann").json()
    # Only the institution becomes a hub group (not the provider's "staff").
    assert model["groups"] == ["demo-u"]
    assert "ann" in ops.api("GET", "/hub/api/groups/demo-u").json()["users"]
    assert ops.api("GET", "/hub/api/groups/staff").status_code == 404


def test_unknown_domain_is_refused_with_the_reason(oidc_hub: Hub, ops: HubUser) -> None:
    _, r, _ = oidc_sign_in(oidc_hub, "zed")
    assert r.status_code == 403
    text = page_text(r)
    assert "No institution" in text
    assert (
        "You signed in as zed (email zed@unknown.example), but your account belongs to "
        "no institution served by this hub (or to more than one)"
    ) in text
    assert ops.api("GET", "/hub/api/users/zed").status_code == 404
    assert not list(oidc_hub.root.rglob("*zed*"))


def test_unverified_email_is_refused(oidc_hub: Hub, ops: HubUser) -> None:
    _, r, _ = oidc_sign_in(oidc_hub, "mallory")
    assert r.status_code == 403
    assert "You signed in as mallory, but your account belongs to no institution" in page_text(r)
    assert ops.api("GET", "/hub/api/users/mallory").status_code == 404


def test_unsafe_username_is_refused(oidc_hub: Hub, ops: HubUser) -> None:
    _, r, _ = oidc_sign_in(oidc_hub, "evil")
    assert r.status_code == 403
    assert "the username your identity provider gave is not one this hub can use" in page_text(r)
    names = [u["name"] for u in ops.api("GET", "/hub/api/users").json()]
    assert not [n for n in names if "evil" in n]


def test_an_email_without_email_verified_is_not_verified(oidc_hub: Hub, ops: HubUser) -> None:
    _, r, _ = oidc_sign_in(oidc_hub, "nora")
    assert r.status_code == 403
    text = page_text(r)
    # The address was not even shown: it counted for nothing.
    assert "You signed in as nora, but your account belongs to no institution" in text
    assert ops.api("GET", "/hub/api/users/nora").status_code == 404
    assert not list(oidc_hub.root.rglob("*nora*"))


@pytest.mark.parametrize(
    "login,name,why",
    [
        ("rooty", "root", "the name root is reserved on this hub"),
        ("sysd", "daemon", "daemon is a system account on this hub's machine (UID 1;"),
    ],
)
def test_names_no_person_may_use_are_refused_and_nothing_created(
    oidc_hub: Hub, ops: HubUser, login: str, name: str, why: str
) -> None:
    session, r, _ = oidc_sign_in(oidc_hub, login)
    assert r.status_code == 403
    assert "<title>Sign-in refused: account not allowed</title>" in r.text
    text = page_text(r)
    assert "Sign-in refused: this account cannot use the hub" in text
    assert f"You signed in as {name}, but {why}" in text
    assert "so the sign-in was refused and nothing was created for you" in text
    assert session.get(oidc_hub.url + "/hub/api/user", timeout=10).status_code == 403
    assert ops.api("GET", f"/hub/api/users/{name}").status_code == 404
    assert name not in [u["name"] for u in ops.api("GET", "/hub/api/users").json()]
    data = Path(oidc_hub.settings["data_root"])
    assert not [p for p in data.rglob("*") if p.name == name]
    assert f"Sign-in refused for {name}: " in oidc_hub.log_path.read_text()
