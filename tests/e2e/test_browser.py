"""A real browser (Playwright driving Debian's Chromium) through the hub's pages.

Against a real JupyterHub + proxy + PAM + SLURM (``new_hub``): a refused sign-in, the
options form, the spawn page's progress card, JupyterLab with the SciTeX panel, and
the scitex service's admin pages as an institution admin and as a plain user.

Screenshots of each step go to ``$SCITEX_TEST_ARTIFACTS/browser`` (else a temporary
directory, printed in the test log); the ones in ``docs/images`` come from here.

Syncing a project with Gitea and running a compute job from the panel: in
``test_browser_workflow.py`` (its own hub, with Gitea and jobs configured).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, job_ids_of, new_hub
from tests.services import VENV_PYTHON, missing

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def shots() -> Path:
    base = os.environ.get("SCITEX_TEST_ARTIFACTS")
    path = Path(base) / "browser" if base else Path(tempfile.mkdtemp(prefix="scitex-browser-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"browser screenshots: {path}")
    return path


@pytest.fixture(scope="module")
def browser(services: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing(
            "Playwright", "the Python package playwright is not installed (pip install playwright)"
        )
    if not os.access(CHROMIUM, os.X_OK):
        missing("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    # Usage measured every second, so the over-quota start below needs no long wait.
    hub = new_hub(service={"usage_scan_interval": 1})
    institutions = copy.deepcopy(hub.settings["institutions"])
    institutions["demo-u"]["admins"] = ["bob"]
    hub.settings["institutions"] = institutions
    # Servers start in about a second here, faster than a person (or this test) can
    # watch the spawn page: the job's Python waits a few seconds first, as a busy
    # cluster's would.
    slow_python = hub.root / "slow-python"
    slow_python.write_text(f'#!/bin/sh\nsleep 4\nexec {VENV_PYTHON} "$@"\n')
    slow_python.chmod(0o755)
    hub.settings["notebook"]["python"] = str(slow_python)
    hub.start()
    yield hub
    hub.close()


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in(page: Any, hub: Hub, name: str, password: str) -> None:
    page.goto(hub.url + "/hub/login")
    # Through the labels, as a screen-reader user finds the fields.
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def start_small_server(page: Any, hub: Hub, name: str, password: str, failure_shot: Path) -> None:
    """Sign in, start the Small profile from the options form, wait for JupyterLab; on a
    failure, a screenshot and what the page and the hub's log say."""
    sign_in(page, hub, name, password)
    page.goto(hub.url + "/hub/spawn")
    page.get_by_label(re.compile(r"^Small: 1 CPU")).check()
    page.get_by_role("button", name="Start").click()
    try:
        page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=90_000)
    except PlaywrightTimeout:
        page.screenshot(path=str(failure_shot), full_page=True)
        raise AssertionError(
            f"JupyterLab did not open; the page says:\n{page.locator('body').inner_text()}\n"
            f"the hub's log:\n{hub.log_tail(80)}"
        ) from None


def test_a_user_of_no_institution_gets_the_refusal_page(
    browser: Any, hub: Hub, password: str, shots: Path
) -> None:
    page = new_page(browser)
    sign_in(page, hub, "dave", password)
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == "Sign-in refused: your account belongs to no institution here"
    saw = page.locator("#scitex-refused-message").inner_text()
    assert saw.startswith("You signed in as dave, but your account belongs to no institution")
    assert page.get_by_role("link", name="Sign in with another account").is_visible()
    assert page.title() == "Sign-in refused: no institution"
    page.screenshot(path=str(shots / "01-refused.png"), full_page=True)
    page.context.close()


@pytest.fixture(scope="module")
def alice_page(browser: Any, hub: Hub, services: str) -> Iterator[Any]:
    page = new_page(browser)
    sign_in(page, hub, "alice", services)
    yield page
    page.context.close()


def test_the_options_form_offers_the_institutions_profiles(
    alice_page: Any, hub: Hub, shots: Path
) -> None:
    page = alice_page
    page.goto(hub.url + "/hub/spawn")
    radios = page.locator("input[name=profile]")
    assert [radios.nth(i).get_attribute("value") for i in range(radios.count())] == [
        "small",
        "medium",
    ]
    assert page.get_by_label(re.compile(r"^Small: 1 CPU")).is_visible()
    assert page.get_by_label(re.compile(r"^Medium: 2 CPUs")).is_visible()
    assert page.get_by_label(re.compile(r"^Other University")).count() == 0
    page.get_by_label(re.compile(r"^Medium: 2 CPUs")).check()
    cpus = page.locator("#scitex-medium-cpus")
    assert cpus.is_enabled()
    assert page.locator("#scitex-small-cpus").is_disabled()
    assert (cpus.get_attribute("min"), cpus.get_attribute("max")) == ("1", "4")
    cpus.fill("2")
    page.screenshot(path=str(shots / "02-options-form.png"), full_page=True)


def test_the_spawn_page_shows_progress_then_jupyterlab(
    alice_page: Any, hub: Hub, shots: Path
) -> None:
    page = alice_page
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/hub/spawn-pending/alice"))
    stage = page.locator("#scitex-stage")
    # Running (or later): the card has the job and the node.
    page.wait_for_function(
        "['running', 'starting', 'ready'].includes("
        "document.getElementById('scitex-stage').dataset.stage)"
    )
    page.screenshot(path=str(shots / "03-spawn-pending.png"), full_page=True)
    (job_id,) = job_ids_of(hub, "alice")
    assert page.locator("#scitex-job").inner_text() == job_id
    assert page.locator("#scitex-profile").inner_text() == "medium"
    assert page.locator("#scitex-node").inner_text().startswith("localhost")
    assert stage.get_attribute("data-stage") in ("running", "starting", "ready")
    # The stock event log is still there.
    assert f"Submitted SLURM job {job_id} (medium)" in (
        page.locator("#progress-log").text_content() or ""
    )
    page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=90_000)
    page.locator(".jp-LabShell").wait_for()


def test_the_panel_shows_session_and_quota(alice_page: Any, hub: Hub, shots: Path) -> None:
    page = alice_page
    (job_id,) = job_ids_of(hub, "alice")
    # JupyterLab's "news?" toast would cover part of the screenshot.
    page.goto(hub.url + "/user/alice/lab?reset")
    page.locator(".jp-LabShell").wait_for()
    news = page.get_by_role("button", name="No", exact=True)
    with contextlib.suppress(PlaywrightTimeout):
        news.click(timeout=3_000)
    # alice's home (and JupyterLab's saved layout in it) outlives the hub: the panel may
    # come back open, and a click on its tab would then close it.
    tab = page.locator('li[data-id="scitex-panel"]')
    tab.wait_for()
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    panel = page.locator("#scitex-panel")
    panel.wait_for()
    facts = panel.locator("dl.scitex-facts")
    job = facts.locator("dt:text-is('Job') + dd")
    page.wait_for_function(
        "id => document.querySelector('#scitex-panel dl.scitex-facts dd').textContent === id",
        arg=job_id,
    )
    assert job.inner_text() == job_id
    assert facts.locator("dt:text-is('Node') + dd").inner_text() == "localhost"
    assert facts.locator("dt:text-is('Profile') + dd").inner_text() == "medium"
    summary = panel.locator(".scitex-quota-summary")
    page.wait_for_function(
        "() => /GiB/.test(document.querySelector('#scitex-panel .scitex-quota-summary')"
        ".textContent)"
    )
    assert re.search(r"10(\.0)? GiB", summary.inner_text()), summary.inner_text()
    page.screenshot(path=str(shots / "04-lab-panel.png"))


try:  # the name only; a missing Playwright fails or skips in the browser fixture
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # pragma: no cover
    PlaywrightTimeout = TimeoutError  # type: ignore[assignment,misc]


def test_an_institution_admin_sees_only_their_institution(
    browser: Any, hub: Hub, password: str, alice_page: Any, shots: Path
) -> None:
    page = new_page(browser)
    sign_in(page, hub, "bob", password)
    page.goto(hub.url + "/services/scitex/")
    page.get_by_role("heading", name="Administration").wait_for()
    assert "You administer demo-u" in page.locator("#scope").inner_text()
    institutions = page.locator("#institutions tbody th")
    assert institutions.all_inner_texts() == ["demo-u"]
    body = page.locator("main").inner_text()
    assert "other-u" not in body and "Other University" not in body and "carol" not in body
    # alice's server: running in SLURM, and its recipe among the recent spawns.
    (job_id,) = job_ids_of(hub, "alice")
    running = page.locator("#running tbody tr", has_text=job_id)
    assert running.locator("th").inner_text() == "alice"
    assert "RUNNING" in running.inner_text()
    spawn = page.locator("#spawns tbody tr", has_text=job_id)
    assert "cpus=2" in spawn.inner_text() and "medium" in spawn.inner_text()
    # Tables are labelled for screen readers.
    assert page.locator("#usage-demo-u caption").inner_text().startswith("Demo University")
    page.screenshot(path=str(shots / "05-admin-overview.png"), full_page=True)
    page.context.close()


def test_a_plain_user_is_refused_the_admin_pages(
    browser: Any, hub: Hub, password: str, shots: Path
) -> None:
    page = new_page(browser)
    sign_in(page, hub, "carol", password)
    response = page.goto(hub.url + "/services/scitex/")
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == ("Not for you: administrators only")
    assert (
        page.locator("#error-message")
        .inner_text()
        .startswith("carol is neither a hub admin nor an institution admin")
    )
    page.screenshot(path=str(shots / "06-admin-refused.png"), full_page=True)
    page.context.close()


def test_over_quota_the_server_starts_and_the_spawn_page_says_why(
    browser: Any, hub: Hub, password: str, alice_page: Any, shots: Path
) -> None:
    bob, alice = signed_in(hub, "bob", password), signed_in(hub, "alice", password)

    def alice_measured() -> bool:
        r = bob.api("GET", "/services/scitex/api/users/alice/quota")
        return r.status_code == 200 and (r.json()["used_bytes"] or 0) > 0

    deadline = time.monotonic() + 60
    while not alice_measured():
        assert time.monotonic() < deadline, f"alice's usage never measured:\n{hub.log_tail(40)}"
        time.sleep(0.5)
    assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
    alice.wait_stopped()
    r = bob.api("PUT", "/services/scitex/api/users/alice/quota", json={"limit_bytes": 1})
    assert r.status_code == 200, r.text
    try:
        page = alice_page
        page.goto(hub.url + "/hub/spawn")
        page.get_by_label(re.compile(r"^Small: 1 CPU")).check()
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r"/hub/spawn-pending/alice"))
        note = page.get_by_role("alert").filter(has_text="Storage quota exceeded")
        note.wait_for()
        text = note.inner_text()
        assert text.startswith("Storage quota exceeded: alice's data directory uses ")
        assert "Your server starts so you can delete files" in text
        assert "Ask your institution's administrators (bob)" in text
        page.screenshot(path=str(shots / "07-spawn-over-quota.png"), full_page=True)
        # And it does start.
        page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=90_000)
        assert len(job_ids_of(hub, "alice")) == 1
    finally:
        bob.api("DELETE", "/services/scitex/api/users/alice/quota")
