"""A researcher's round trip through the SciTeX panel, in a real browser (Playwright driving
Debian's Chromium): create a project, write a script into it, sync it to Gitea, run it as a
compute job, follow the job to COMPLETED, read its log, sync its result.

Its own hub (real JupyterHub + proxy + PAM + SLURM, ``new_hub``) with both Gitea (the fake from
``tests/fakes`` as a process, as in ``test_gitea_e2e.py``) and compute jobs (the scitex service
submitting as alice, as in ``test_jobs.py``). The notebook server and the job run without a
container (``container.runtime: none``): Apptainer's path is ``test_jobs.py``'s; here it is the
panel's controls, found by their accessible names, and what they report.

Screenshots go to ``$SCITEX_TEST_ARTIFACTS/browser`` (07-...); ``docs/images/panel-sync.png``
comes from here (the jobs images from ``test_browser_jobs.py``).
"""

from __future__ import annotations

import contextlib
import pwd
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_browser
from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, new_hub
from tests.e2e.test_gitea_e2e import Gitea, fake_gitea_process
from tests.e2e.test_jobs import cancel_compute_jobs, put

pytestmark = pytest.mark.e2e

# The browser (a missing Playwright or Chromium fails in CI, skips elsewhere) and the
# screenshot directory, shared with the first browser module.
browser = test_browser.browser
shots = test_browser.shots
PlaywrightTimeout = test_browser.PlaywrightTimeout

PROJECT = "analysis"
SCRIPT = (
    "#!/bin/bash\nset -e\n"
    'echo "run.sh started as $(id -un) in $(basename "$PWD")"\n'
    "echo 42 > result.txt\n"
    "echo wrote result.txt\n"
)
# Tall enough that the whole panel (projects, jobs, the open log) shows without scrolling.
VIEWPORT = {"width": 1280, "height": 1100}


@pytest.fixture(scope="module")
def gitea(services: str) -> Iterator[Gitea]:
    with fake_gitea_process("no-container") as gitea:
        yield gitea


@pytest.fixture(scope="module")
def hub(gitea: Gitea) -> Iterator[Hub]:
    hub = new_hub(
        # Gitea tokens live in auth_state, which JupyterHub encrypts with this key.
        env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)},
        container={"runtime": "none"},
        jobs={"max_queued_per_user": 2},
        gitea={
            "url": gitea.url,
            "admin_token_file": str(gitea.root / "secrets" / "admin-token"),
            "admin_user": "gitea-admin",
            "admin_password_file": str(gitea.root / "secrets" / "admin-password"),
        },
    )
    hub.start()
    yield hub
    cancel_compute_jobs(hub)
    hub.close()


@pytest.fixture(scope="module")
def lab(browser: Any, hub: Hub, services: str, shots: Path) -> Iterator[Any]:
    """alice in JupyterLab (signed in, server started from the options form), panel open."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(test_browser.TIMEOUT_MS)
    page = context.new_page()
    test_browser.start_small_server(page, hub, "alice", services, shots / "07-spawn-failed.png")
    # ?reset: alice's saved layout (her home outlives hubs) must not decide what is open.
    page.goto(hub.url + "/user/alice/lab?reset")
    page.locator(".jp-LabShell").wait_for()
    with contextlib.suppress(PlaywrightTimeout):  # JupyterLab's "news?" toast
        page.get_by_role("button", name="No", exact=True).click(timeout=3_000)
    tab = page.locator('li[data-id="scitex-panel"]')
    tab.wait_for()
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    page.locator("#scitex-panel").wait_for()
    yield page
    context.close()


@pytest.fixture(scope="module")
def alice(hub: Hub, services: str) -> HubUser:
    """alice over HTTP with a token: writes files through the contents API."""
    return signed_in(hub, "alice", services)


def project_dir(hub: Hub) -> Path:
    return hub.root / "data" / "demo-u" / "alice" / "projects" / PROJECT


def remote(gitea: Gitea, *git_args: str) -> str:
    """git on the fake Gitea's bare repository of the project."""
    bare = gitea.root / "repos" / "demo-u" / f"{PROJECT}.git"
    out = subprocess.run(
        ["git", f"--git-dir={bare}", *git_args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout


def settled(page: Any, message: Any) -> str:
    """The section's message once the action ended (success or error; each action shows
    an "info" line while it runs, synchronously on the click)."""
    page.wait_for_function(
        "el => ['success', 'error'].includes(el.dataset.kind)", arg=message.element_handle()
    )
    return f"{message.get_attribute('data-kind')}: {message.inner_text()}"


def section(page: Any, title: str) -> Any:
    # The panel's sections are regions named by their headings.
    return page.get_by_role("region", name=title, exact=True)


def test_create_a_project_write_a_script_and_sync_it(
    lab: Any, hub: Hub, gitea: Gitea, alice: HubUser, shots: Path
) -> None:
    started = time.monotonic()
    projects = section(lab, "Projects")
    message = projects.get_by_role("status")
    projects.get_by_label("New project", exact=True).fill(PROJECT)
    projects.get_by_role("button", name="Create", exact=True).click()
    assert settled(lab, message) == f"success: Project {PROJECT} created."
    # A repository in alice's institution's organization, cloned into her projects.
    assert gitea.api("GET", f"/repos/demo-u/{PROJECT}").status_code == 200
    item = projects.get_by_role("listitem").filter(has_text=PROJECT)
    sync = item.get_by_role("button", name=f"Sync project {PROJECT}", exact=True)
    sync.wait_for()  # the list is read again after the message

    # alice writes a script into the project (as she would in JupyterLab's editor).
    put(alice, f"projects/{PROJECT}/run.sh", SCRIPT)
    item.get_by_role("button", name=f"Check status of project {PROJECT}", exact=True).click()
    lab.wait_for_function(
        "([el, name]) => el.textContent.startsWith(name + ': ') || el.dataset.kind === 'error'",
        arg=[message.element_handle(), PROJECT],
    )
    assert message.inner_text().endswith(" · uncommitted changes."), message.inner_text()
    assert item.get_attribute("data-dirty") == "true"

    sync.click()
    said = settled(lab, message)
    assert said == (
        f"success: {PROJECT} synced: local changes committed, 0 commits pulled, 1 commit pushed."
    )
    assert "on main · up to date · no local changes" in item.inner_text(), item.inner_text()
    assert item.get_attribute("data-dirty") == "false"
    lab.screenshot(path=str(shots / "07-panel-sync.png"))
    lab.locator("#scitex-panel").screenshot(path=str(shots / "07-panel-sync-panel.png"))
    # The commit is in the fake Gitea's repository: alice's script, as she wrote it.
    assert remote(gitea, "show", "main:run.sh") == SCRIPT
    subject = remote(gitea, "log", "-1", "--format=%s", "main").strip()
    assert subject.startswith("Sync from SciTeX Hub ("), subject
    print(f"create, write, status, sync in the panel: {time.monotonic() - started:.1f} s")


def test_submit_the_script_as_a_job_and_read_its_log(lab: Any, hub: Hub, shots: Path) -> None:
    started = time.monotonic()
    jobs = section(lab, "Jobs")
    message = jobs.get_by_role("status")
    # The project created above is offered in the form.
    project = jobs.get_by_label("Project", exact=True)
    assert project.locator("option").all_inner_texts() == [PROJECT]
    project.select_option(PROJECT)
    jobs.get_by_label("Script", exact=True).fill("run.sh")
    jobs.get_by_role("button", name="Submit job", exact=True).click()
    said = settled(lab, message)
    submitted = re.fullmatch(r"success: Job (\d+) submitted\.", said)
    assert submitted, said
    job_id = submitted.group(1)

    # The job's line ("analysis / run.sh" and its state), followed with Refresh: the panel
    # polls by itself only every 30 s while a job may change; a user clicks Refresh sooner.
    item = jobs.get_by_role("listitem").filter(has_text=f"Job {job_id}")
    assert f"{PROJECT} / run.sh" in item.inner_text()
    states: list[str] = []
    deadline = time.monotonic() + 60
    while True:
        state = item.get_attribute("data-state") or ""
        if not states or states[-1] != state:
            states.append(state)
        if state in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        jobs.get_by_role("button", name="Refresh jobs", exact=True).click()
    assert states[-1] == "completed", (states, item.inner_text())
    assert set(states) <= {"pending", "running", "completing", "completed"}, states
    assert item.inner_text().splitlines() == [
        f"Job {job_id}",
        f"{PROJECT} / run.sh",
        "COMPLETED on localhost",
        "Log",  # and no Cancel: the job ended
    ]

    show_log = item.get_by_role("button", name=f"Show log of job {job_id}", exact=True)
    show_log.click()
    log_region = lab.get_by_role("region", name=f"Log of job {job_id}", exact=True)
    log_region.wait_for()
    log_text = log_region.locator("pre")
    lab.wait_for_function(
        "el => el.textContent.includes('wrote result.txt') || el.dataset.kind === 'error'",
        arg=log_text.element_handle(),
    )
    assert log_text.text_content() == f"run.sh started as alice in {PROJECT}\nwrote result.txt\n"
    assert show_log.get_attribute("aria-expanded") == "true"
    lab.screenshot(path=str(shots / "08-panel-jobs.png"))
    lab.locator("#scitex-panel").screenshot(path=str(shots / "08-panel-jobs-panel.png"))

    # The job wrote its result into the project, as alice.
    result = project_dir(hub) / "result.txt"
    assert result.read_text() == "42\n"
    assert result.stat().st_uid == pwd.getpwnam("alice").pw_uid
    print(f"submit to COMPLETED and its log, in the panel: {time.monotonic() - started:.1f} s")
    print(f"states the panel showed: {states}")


def test_a_second_sync_pushes_the_jobs_result(lab: Any, gitea: Gitea) -> None:
    projects = section(lab, "Projects")
    message = projects.get_by_role("status")
    item = projects.get_by_role("listitem").filter(has_text=PROJECT)
    projects.get_by_role("button", name="Refresh projects", exact=True).click()
    # The list is drawn anew on each refresh: wait through a locator, not an element.
    projects.locator("li[data-dirty='true']", has_text=PROJECT).wait_for()
    item.get_by_role("button", name=f"Sync project {PROJECT}", exact=True).click()
    said = settled(lab, message)
    assert said.startswith(f"success: {PROJECT} synced: local changes committed, "), said
    assert remote(gitea, "show", "main:result.txt") == "42\n"
