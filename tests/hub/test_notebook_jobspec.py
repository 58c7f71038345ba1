"""The notebook job spec as a pure function (scitex_hub.jobspecs.notebook), by exact equality."""

from __future__ import annotations

from scitex_hub.container import Bind, ContainerSpec, RuntimeChoice
from scitex_hub.jobspecs.notebook import forwarded_env, notebook_container, notebook_job_spec
from scitex_hub.profiles import ResolvedResources
from scitex_hub.script import BatchJobSpec

GPU = ResolvedResources(
    profile="gpu",
    partition="gpu",
    cpus=4,
    memory_bytes=8 * 1024**3,
    runtime_seconds=7200,
    gpus=1,
    account="demo",
    image="/img/gpu.sif",
    constraint=None,
    qos="short",
)
COMMAND = ("/opt/venv/bin/python", "-m", "scitex_server_ext.singleuser")
APPTAINER = RuntimeChoice("apptainer", "/usr/bin/apptainer")


def spec(**changes: object) -> BatchJobSpec:
    values: dict = {
        "user": "bob",
        "tag": "scitex:hub=h:user=bob:server=-",
        "institution_id": "demo-u",
        "quota_limit_bytes": 0,
        "data_dir": "/d/demo-u/bob",
        "resources": GPU,
        "command": COMMAND,
        "log_subdir": ".scitex/logs",
    }
    values.update(changes)
    return notebook_job_spec(**values)


def test_without_a_container_the_server_runs_in_the_job() -> None:
    assert spec(env_names=["JUPYTERHUB_API_TOKEN"]) == BatchJobSpec(
        job_name="scitex-nb-bob",
        comment="scitex:hub=h:user=bob:server=-",
        partition="gpu",
        cpus=4,
        memory_mib=8192,
        time_limit_seconds=7200,
        output_path="/d/demo-u/bob/.scitex/logs/notebook-%j.log",
        workdir="/d/demo-u/bob",
        command=COMMAND,
        gpus=1,
        account="demo",
        qos="short",
        exports=(
            ("SCITEX_PROFILE", "gpu"),
            ("SCITEX_INSTITUTION", "demo-u"),
            ("SCITEX_USER_ROOT", "/d/demo-u/bob"),
            ("SCITEX_QUOTA_LIMIT_BYTES", "0"),
        ),
    )


def test_in_apptainer_with_gpus_binds_and_unsquash() -> None:
    result = spec(
        runtime=APPTAINER,
        image="/img/gpu.sif",
        binds=[Bind.parse("/scratch:/scratch:rw")],
        unsquash=True,
        quota_limit_bytes=5,
        env_names=["PATH", "JPY_API_TOKEN", "LC_ALL", "SCITEX_SERVICE_URL", "HOME"],
    )
    assert result.command == (
        "/usr/bin/apptainer",
        "exec",
        "--cleanenv",
        "--contain",
        "--home",
        "/d/demo-u/bob:/data",
        "--pwd",
        "/data",
        "--unsquash",
        "--nv",
        "--bind",
        "/scratch:/scratch:rw",
        "/img/gpu.sif",
        *COMMAND,
    )
    assert result.forward_env == ("JPY_API_TOKEN", "LC_ALL", "SCITEX_SERVICE_URL")
    assert result.forward_env_prefix == "APPTAINERENV_"
    assert result.exports[2:] == (
        ("SCITEX_USER_ROOT", "/data"),
        ("SCITEX_QUOTA_LIMIT_BYTES", "5"),
    )


def test_the_container_of_a_start() -> None:
    assert (
        notebook_container(
            RuntimeChoice("none"), image="/i.sif", data_dir="/d", binds=(), unsquash=True, gpus=1
        )
        is None
    )
    # A sandbox directory needs no unpacking; no GPUs, no --nv.
    assert notebook_container(
        RuntimeChoice("singularity", "/bin/singularity"),
        image="/img/sandbox",
        data_dir="/d",
        binds=(),
        unsquash=True,
        gpus=0,
    ) == ContainerSpec(
        runtime="singularity",
        executable="/bin/singularity",
        image="/img/sandbox",
        data_dir="/d",
        binds=(),
        gpus=False,
        unsquash=False,
    )


def test_only_the_servers_own_variables_enter_the_container() -> None:
    names = ["SECRET", "JUPYTERHUB_API_URL", "LANG", "PATH", "JPY_X", "SCITEX_PROFILE", "A"]
    assert forwarded_env(names) == ("JPY_X", "JUPYTERHUB_API_URL", "LANG", "SCITEX_PROFILE")
