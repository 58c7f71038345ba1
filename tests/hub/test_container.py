"""The Apptainer command line is a pure function: exact equality."""

from __future__ import annotations

import pytest

from scitex_spawner.container import Bind, ContainerError, ContainerSpec, container_argv

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
