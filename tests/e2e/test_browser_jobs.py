"""Compute jobs the JupyterLab way, in a real browser (Playwright driving Debian's Chromium):
alice right-clicks a script of a project in the file browser, chooses "Submit as SLURM Job…",
the dialog shows her session profile's resources (and only the choices her institution's
profiles allow, from the hub service), she submits; the job's log opens as a main-area
document that follows the output while the job runs, and a notification says when the job
has ended, with its state.

Its own hub (real JupyterHub + proxy + PAM + SLURM, ``new_hub``) with compute jobs (the scitex
service submitting as alice). The notebook server and the job run without a container
(``container.runtime: none``), as in ``test_browser_workflow.py``: the container's path is
``test_jobs.py``'s.

Screenshots go to ``$SCITEX_TEST_ARTIFACTS/browser`` (20-...); ``docs/images/jobs-*.png``
come from here (20, 21, 22-jobs-log-running, 23, 24).
"""

from __future__ import annotations

import contextlib
import pwd
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_browser
from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, new_hub
from tests.e2e.test_jobs import cancel_compute_jobs, put

pytestmark = pytest.mark.e2e

browser = test_browser.browser
shots = test_browser.shots
PlaywrightTimeout = test_browser.PlaywrightTimeout

PROJECT = "climate"
# Output, a pause (the log view shows the first line while the job runs), more output.
SCRIPT = (
    "#!/bin/bash\nset -e\n"
    'echo "step 1: fitting as $(id -un) in $(basename "$PWD")"\n'
    "sleep 8\n"
    "echo 0.93 > fit.txt\n"
    'echo "step 2: wrote fit.txt"\n'
)
OUTPUT = f"step 1: fitting as alice in {PROJECT}\nstep 2: wrote fit.txt\n"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    hub = new_hub(container={"runtime": "none"}, jobs={"max_queued_per_user": 2})
    hub.start()
    yield hub
    cancel_compute_jobs(hub)
    hub.close()


@pytest.fixture(scope="module")
def alice(hub: Hub, services: str) -> HubUser:
    """alice over HTTP with a token: writes her project through the contents API."""
    return signed_in(hub, "alice", services)


@pytest.fixture(scope="module")
def lab(browser: Any, hub: Hub, alice: HubUser, services: str, shots: Path) -> Iterator[Any]:
    """alice in JupyterLab (server started with the Small profile), the file browser in her
    project, which holds run.sh."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(test_browser.TIMEOUT_MS)
    page = context.new_page()
    test_browser.start_small_server(page, hub, "alice", services, shots / "20-spawn-failed.png")
    # A project as the panel makes one (a local repository: this hub has no Gitea).
    r = alice.api("POST", "/user/alice/scitex/api/projects", json={"name": PROJECT})
    assert r.status_code == 201, r.text
    put(alice, f"projects/{PROJECT}/run.sh", SCRIPT)
    put(alice, f"projects/{PROJECT}/README.md", "Not a script: no job from here.\n")
    # The file browser in the project (?reset: alice's saved layout must not decide).
    page.goto(hub.url + f"/user/alice/lab/tree/projects/{PROJECT}?reset")
    page.locator(".jp-LabShell").wait_for()
    with contextlib.suppress(PlaywrightTimeout):  # JupyterLab's "news?" toast, if asked
        page.get_by_role("button", name="No", exact=True).click(timeout=3_000)
    yield page
    context.close()


def listing_item(page: Any, name: str) -> Any:
    return page.locator(".jp-DirListing-item", has=page.get_by_text(name, exact=True))


def test_submit_from_the_file_browser_follow_the_log_and_hear_the_end(
    lab: Any, hub: Hub, shots: Path
) -> None:
    page = lab
    started = time.monotonic()

    # A file that is no script offers no job.
    listing_item(page, "README.md").click(button="right")
    menu = page.locator(".lm-Menu").last
    menu.wait_for()
    # (Lumino renders a hidden entry with display: none: not in the accessibility tree.)
    assert menu.get_by_role("menuitem", name="Submit as SLURM Job…").count() == 0
    assert menu.get_by_role("menuitem").count() > 3  # the rest of the menu is there
    page.keyboard.press("Escape")

    listing_item(page, "run.sh").click(button="right")
    entry = page.get_by_role("menuitem", name="Submit as SLURM Job…")
    entry.wait_for()
    entry.hover()
    page.screenshot(path=str(shots / "20-jobs-context-menu.png"))
    entry.click()

    # The dialog: the session's profile (Small), prefilled with its defaults; the choices
    # are those demo-u's profiles allow (from the hub service, through the notebook server).
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert dialog.get_by_text(f"Run run.sh of project {PROJECT} as a SLURM batch job.").count()
    profile = dialog.get_by_label("Profile", exact=True)
    assert profile.input_value() == "small"
    assert profile.locator("option").all_inner_texts() == [
        "Small: 1 CPU, 512 MiB, up to 4 hours",
        "Medium: 2 CPUs, 1 GiB, debug or batch partition",
    ]
    partition = dialog.get_by_label("Partition", exact=True)
    assert partition.locator("option").all_inner_texts() == ["debug"]
    cpus = dialog.get_by_label("CPUs", exact=True)
    assert (cpus.input_value(), cpus.get_attribute("min"), cpus.get_attribute("max")) == (
        "1",
        "1",
        "2",
    )
    assert dialog.get_by_label("Memory", exact=True).input_value() == "512MiB"
    assert dialog.get_by_label("Time limit", exact=True).input_value() == "01:00:00"
    assert dialog.get_by_text("from 00:01:00 to 04:00:00").count() == 1
    # Neither of demo-u's profiles has GPUs: none offered.
    assert not dialog.get_by_label("GPUs", exact=True).is_visible()
    # Another profile: its partitions and defaults; then back to the session's.
    profile.select_option("medium")
    assert partition.locator("option").all_inner_texts() == ["debug", "batch"]
    assert cpus.input_value() == "2"
    profile.select_option("small")
    assert cpus.input_value() == "1"
    page.screenshot(path=str(shots / "21-jobs-submit-dialog.png"))
    dialog.get_by_role("button", name="Submit", exact=True).click()

    # The log opens as a document in the main area, and follows the job.
    log = page.locator("#jp-main-dock-panel").get_by_role(
        "region", name=re.compile(r"^Log of job \d+$")
    )
    try:
        log.wait_for()
    except PlaywrightTimeout:
        page.screenshot(path=str(shots / "22-jobs-no-log.png"))
        toasts = page.locator(".Toastify__toast").all_inner_texts()
        raise AssertionError(f"no log document; notifications: {toasts}") from None
    job_id = (log.get_attribute("aria-label") or "").rsplit(" ", 1)[-1]
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"Job {job_id} log")
    assert tab.count() == 1
    text = log.locator("pre")
    status = log.get_by_role("status")
    # While it runs: the first step shown before the job ends.
    page.wait_for_function(
        "([pre, st]) => pre.textContent.includes('step 1') || st.textContent.includes('ended')",
        arg=[text.element_handle(), status.element_handle()],
        timeout=90_000,
    )
    seen_running = status.inner_text()
    assert seen_running.startswith(f"Job {job_id} is RUNNING: following its log"), seen_running
    assert "step 2" not in text.text_content()
    page.screenshot(path=str(shots / "22-jobs-log-running.png"))
    page.wait_for_function(
        "st => st.textContent.includes('ended')", arg=status.element_handle(), timeout=90_000
    )
    assert status.inner_text() == (
        f"Job {job_id} ended: COMPLETED (projects/{PROJECT}/.scitex/jobs/{job_id}.log)."
    )
    assert text.text_content() == OUTPUT
    page.screenshot(path=str(shots / "22-jobs-log-ended.png"))

    # The end, as a JupyterLab notification with the state and a way to the log.
    toast = page.locator(".Toastify__toast", has_text=f"Job {job_id} ({PROJECT} / run.sh) ended")
    toast.wait_for(timeout=60_000)
    assert toast.get_by_text(
        f"Job {job_id} ({PROJECT} / run.sh) ended: COMPLETED", exact=True
    ).is_visible()
    assert toast.get_by_role("button", name="Open log").is_visible()
    # Toasts slide in from the right: the picture once this one is all in view.
    page.wait_for_function(
        "el => el.getBoundingClientRect().right <= window.innerWidth",
        arg=toast.element_handle(),
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "23-jobs-notification.png"))
    toast.get_by_role("button", name="Open log").click()
    assert tab.count() == 1  # the open document, not a second one

    # The job wrote its result into the project, as alice.
    result = hub.root / "data" / "demo-u" / "alice" / "projects" / PROJECT / "fit.txt"
    assert result.read_text() == "0.93\n"
    assert result.stat().st_uid == pwd.getpwnam("alice").pw_uid
    print(f"right-click to COMPLETED notification: {time.monotonic() - started:.1f} s")


def test_the_job_is_listed_in_the_panel_and_its_log_opens_from_there(lab: Any, shots: Path) -> None:
    page = lab
    # The log documents of the first test, closed: the panel opens one again.
    for close in page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab-closeIcon").all():
        with contextlib.suppress(PlaywrightTimeout):
            close.click(timeout=2_000)
    for close in page.locator(".Toastify__close-button").all():
        with contextlib.suppress(PlaywrightTimeout):
            close.click(timeout=2_000)
    with contextlib.suppress(PlaywrightTimeout):  # they slide out
        page.wait_for_function("!document.querySelector('.Toastify__toast')", timeout=5_000)
    tab = page.locator('li[data-id="scitex-panel"]')
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    jobs = page.get_by_role("region", name="Jobs", exact=True)
    item = jobs.get_by_role("listitem").filter(has_text=f"{PROJECT} / run.sh")
    item.wait_for()
    assert "COMPLETED" in item.inner_text()
    job_id = re.search(r"Job (\d+)", item.inner_text())
    assert job_id
    button = item.get_by_role("button", name=f"Show log of job {job_id.group(1)}")
    button.click()
    log = page.locator("#jp-main-dock-panel").get_by_role(
        "region", name=f"Log of job {job_id.group(1)}"
    )
    log.wait_for()
    page.wait_for_function(
        "pre => pre.textContent.includes('step 2')", arg=log.locator("pre").element_handle()
    )
    assert log.locator("pre").text_content() == OUTPUT
    assert button.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(shots / "24-jobs-panel-and-log.png"))

    # The commands are in the Run menu too.
    page.locator(".lm-MenuBar-item", has_text="Run").click()
    assert page.get_by_role("menuitem", name="Open a Job Log…").is_visible()
    page.keyboard.press("Escape")


def test_the_palette_submits_the_open_script(lab: Any, hub: Hub) -> None:
    page = lab
    page.goto(hub.url + f"/user/alice/lab/tree/projects/{PROJECT}/run.sh")
    page.locator(".jp-FileEditor").wait_for()
    page.locator(".jp-FileEditor .cm-content").click()
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#command-palette input")
    palette.fill("Submit as SLURM")
    page.locator(
        "#command-palette .lm-CommandPalette-item", has_text="Submit as SLURM Job…"
    ).click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    # The open document is the one submitted.
    assert dialog.get_by_text(f"Run run.sh of project {PROJECT} as a SLURM batch job.").count()
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    dialog.wait_for(state="detached")
