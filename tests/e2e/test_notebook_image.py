"""The real notebook image: built from containers/scitex-notebook.def (offline path,
debootstrap from the Debian mirror, pip from PyPI), then a server spawned from it.

In CI the image is built fresh every run; elsewhere an image already built by
`containers/build.sh notebook --offline --sandbox` is reused to save minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.hubprocess import REPO, Hub, HubUser, new_hub, server_pids
from tests.e2e.test_apptainer import APPTAINER, in_container
from tests.services import DEV_DIR, in_ci, missing, require_executable

pytestmark = pytest.mark.e2e

IMAGES = Path(DEV_DIR) / "images"


def build_notebook_sandbox(out: Path) -> Path:
    started = time.monotonic()
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "containers" / "build.sh"),
            "notebook",
            "--offline",
            "--sandbox",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    if proc.returncode != 0:
        pytest.fail(f"the notebook image did not build:\n{proc.stderr[-3000:]}")
    print(f"notebook image built in {time.monotonic() - started:.0f} s")
    return out / "scitex-notebook.sandbox"


@pytest.fixture(scope="module")
def image(services: str) -> Path:
    require_executable(APPTAINER, "Apptainer")
    if in_ci():
        return build_notebook_sandbox(IMAGES / "ci")
    existing = IMAGES / "scitex-notebook.sandbox"
    if existing.exists():
        return existing
    if not shutil.which("debootstrap"):
        missing("debootstrap", "needed for the offline image build")
    return build_notebook_sandbox(IMAGES)


@pytest.fixture(scope="module")
def hub(image: Path) -> Iterator[Hub]:
    hub = new_hub(
        container={
            "runtime": "apptainer",
            "executable": APPTAINER,
            "image": str(image.resolve()),
            "extra_binds": [],
        },
        notebook={"python": "/opt/venv/bin/python", "args": []},
    )
    hub.start()
    yield hub
    hub.close()


def test_spawn_from_the_built_image(hub: Hub, image: Path, alice: HubUser) -> None:
    r = alice.api("POST", "/hub/api/users/alice/server", json={})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready(timeout=180)
    pid = server_pids(hub, "alice")[0]
    # The server's Python is the image's, not the host's venv.
    assert os.readlink(f"/proc/{pid}/exe").startswith("/usr/bin/python3")
    assert in_container(pid, "test", "-x", "/opt/venv/bin/jupyterhub-singleuser").returncode == 0
    assert in_container(pid, "test", "-e", "/opt/scitex/venv").returncode == 1
    # The scientific stack of the image is there for her kernels.
    probe = in_container(
        pid,
        "env",
        "HOME=/data",
        "/opt/venv/bin/python",
        "-c",
        "import numpy, scipy, pandas, matplotlib; print('ok')",
    )
    assert probe.stdout.strip() == "ok", probe.stderr
    assert alice.api("GET", "/user/alice/api/status").status_code == 200
    assert alice.api("GET", "/user/alice/scitex/api/session").json()["profile"] == "small"
