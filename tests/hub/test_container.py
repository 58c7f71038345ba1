"""The Apptainer command line is a pure function: exact equality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scitex_hub.container import (
    Bind,
    ContainerError,
    ContainerSpec,
    RuntimeChoice,
    container_argv,
    resolve_container_runtime,
)

REPO = Path(__file__).resolve().parents[2]

COMMAND = ["/opt/venv/bin/python", "-m", "scitex_server_ext.singleuser"]


def test_minimal_argv() -> None:
    spec = ContainerSpec("apptainer", "apptainer", "/img/nb.sif", "/data/demo-u/alice")
    assert container_argv(spec, COMMAND) == [
        "apptainer",
        "exec",
        "--cleanenv",
        "--contain",
        "--home",
        "/data/demo-u/alice:/data",
        "--pwd",
        "/data",
        "/img/nb.sif",
        "/opt/venv/bin/python",
        "-m",
        "scitex_server_ext.singleuser",
    ]


def test_gpus_binds_and_unsquash() -> None:
    spec = ContainerSpec(
        runtime="singularity",
        executable="/usr/bin/singularity",
        image="/img/gpu.sif",
        data_dir="/srv/data/demo-u/alice",
        binds=(
            Bind.parse("/usr:/usr:ro"),
            Bind.parse("/scratch:/scratch:rw"),
            Bind.parse("/opt/x"),
        ),
        gpus=True,
        unsquash=True,
    )
    assert container_argv(spec, ["python3"]) == [
        "/usr/bin/singularity",
        "exec",
        "--cleanenv",
        "--contain",
        "--home",
        "/srv/data/demo-u/alice:/data",
        "--pwd",
        "/data",
        "--unsquash",
        "--nv",
        "--bind",
        "/usr:/usr:ro",
        "--bind",
        "/scratch:/scratch:rw",
        "--bind",
        "/opt/x:/opt/x:ro",
        "/img/gpu.sif",
        "python3",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "relative:/x",
        "/a b:/x",
        "/a,/etc/shadow:/x",
        "/a:/x:rwx",
        "/a:/x:ro:extra",
        "/a/../etc:/x",
        "/home/bob:/data",
        "/home/bob:/data/bob",
        "",
        "/a\n:/x",
    ],
)
def test_bad_binds_are_refused(text: str) -> None:
    with pytest.raises(ContainerError):
        Bind.parse(text)


def test_bad_image_or_runtime() -> None:
    with pytest.raises(ContainerError):
        container_argv(ContainerSpec("apptainer", "apptainer", "img.sif", "/d"), COMMAND)
    with pytest.raises(ContainerError):
        container_argv(ContainerSpec("docker", "docker", "/img.sif", "/d"), COMMAND)


# ---- resolve_container_runtime: the one place notebook and compute jobs get theirs ----


def _which(found: dict[str, str]) -> Any:
    return lambda name: found.get(name)


def test_auto_finds_apptainer_on_the_path_and_writes_it_absolute() -> None:
    choice = resolve_container_runtime(
        "auto",
        None,
        "/img/nb.sif",
        which=_which({"apptainer": "/opt/scitex/bin/apptainer"}),
        exists=lambda path: path == "/img/nb.sif",
    )
    assert choice == RuntimeChoice("apptainer", "/opt/scitex/bin/apptainer")


def test_auto_without_apptainer_or_image_runs_without_a_container_and_says_why() -> None:
    assert resolve_container_runtime(
        "auto", None, "/img/nb.sif", which=_which({}), exists=lambda _: True
    ) == RuntimeChoice("none", "", "Apptainer is not installed")
    assert resolve_container_runtime(
        "auto", None, "/img/nb.sif", which=_which({"apptainer": "/a"}), exists=lambda _: False
    ) == RuntimeChoice("none", "", "the image is missing")
    assert resolve_container_runtime(
        "auto", None, None, which=_which({"apptainer": "/a"}), exists=lambda _: True
    ) == RuntimeChoice("none", "", "the image is missing")


def test_the_sites_executable_wins_over_the_path() -> None:
    # container.executable: the command's path on the compute nodes, as the site gives it.
    choice = resolve_container_runtime(
        "singularity",
        "/cluster/bin/singularity",
        "/img/nb.sif",
        which=_which({"singularity": "/usr/bin/singularity"}),
        exists=lambda _: False,
    )
    assert choice == RuntimeChoice("singularity", "/cluster/bin/singularity")


def test_an_explicit_runtime_that_is_nowhere_names_the_setting() -> None:
    with pytest.raises(ContainerError, match=r"container\.executable"):
        resolve_container_runtime("apptainer", None, "/img", which=_which({}))
    assert resolve_container_runtime("none", "/x", "/img") == RuntimeChoice("none")


def test_the_demo_compute_job_runs_the_absolute_command() -> None:
    """The shipped site file's compute jobs (issue 15: a bare `apptainer` was written into
    their scripts and the job's PATH had no such command)."""
    from jupyterhub_config.settings import load_settings
    from scitex_hub.jobspecs.compute import build_compute_job
    from scitex_hub.profiles import resolve_user_options
    from scitex_service.jobs import ComputeJobs
    from tests.hub.servicehelpers import shipped_service_config

    settings = load_settings(str(REPO / "jupyterhub_config" / "scitex.yaml"))
    # The service's configuration as the hub hands it over, with the runtime resolved to
    # an Apptainer installed at /opt/scitex/bin.
    jobs = ComputeJobs(
        config=shipped_service_config(settings),
        runtime="apptainer",
        executable="/opt/scitex/bin/apptainer",
    )
    site = jobs.site
    resources = resolve_user_options({}, settings.profiles, ["small"])
    spec = build_compute_job(
        site, user="alice", institution="demo-u", project="p", script="run.py", resources=resources
    )
    assert spec.command[:2] == ("/opt/scitex/bin/apptainer", "exec")
