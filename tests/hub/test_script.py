"""The batch script is a pure function of validated values: exact equality."""

from __future__ import annotations

import pytest

from scitex_hub.script import BatchJobSpec, ScriptError, render_batch_script


def spec(**overrides: object) -> BatchJobSpec:
    values: dict[str, object] = {
        "job_name": "scitex-nb-alice",
        "comment": "scitex:hub=demo:user=alice:server=-",
        "partition": "debug",
        "cpus": 2,
        "memory_mib": 4096,
        "time_limit_seconds": 4 * 3600,
        "output_path": "/data/demo-u/alice/.scitex/logs/notebook-%j.log",
        "workdir": "/data/demo-u/alice",
        "command": ("/opt/scitex/venv/bin/python", "-m", "scitex_server_ext.singleuser"),
        "exports": (("SCITEX_PROFILE", "small"), ("SCITEX_INSTITUTION", "demo-u")),
    }
    values.update(overrides)
    return BatchJobSpec(**values)  # type: ignore[arg-type]


def test_minimal_script() -> None:
    assert render_batch_script(spec()) == (
        "#!/bin/bash\n"
        "#SBATCH --job-name=scitex-nb-alice\n"
        "#SBATCH --comment=scitex:hub=demo:user=alice:server=-\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=2\n"
        "#SBATCH --mem=4096M\n"
        "#SBATCH --time=04:00:00\n"
        "#SBATCH --output=/data/demo-u/alice/.scitex/logs/notebook-%j.log\n"
        "#SBATCH --chdir=/data/demo-u/alice\n"
        "#SBATCH --export=ALL\n"
        "#SBATCH --signal=B:TERM@60\n"
        "\n"
        "set -euo pipefail\n"
        "umask 077\n"
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"\n'
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"\n'
        'export SCITEX_JOB_END="$(( $(date +%s) + 14400 ))"\n'
        "export SCITEX_PROFILE=small\n"
        "export SCITEX_INSTITUTION=demo-u\n"
        "\n"
        "exec /opt/scitex/venv/bin/python -m scitex_server_ext.singleuser\n"
    )


def test_full_script_with_account_gpus_and_container_env() -> None:
    script = render_batch_script(
        spec(
            account="demo",
            qos="normal",
            constraint="gpu&a100",
            gpus=1,
            time_limit_seconds=36 * 3600,
            forward_env=("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL"),
            forward_env_prefix="APPTAINERENV_",
            command=("apptainer", "exec", "--cleanenv", "/img/nb.sif", "python3"),
        )
    )
    assert script == (
        "#!/bin/bash\n"
        "#SBATCH --job-name=scitex-nb-alice\n"
        "#SBATCH --comment=scitex:hub=demo:user=alice:server=-\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --account=demo\n"
        "#SBATCH --qos=normal\n"
        "#SBATCH --constraint=gpu&a100\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=2\n"
        "#SBATCH --mem=4096M\n"
        "#SBATCH --time=1-12:00:00\n"
        "#SBATCH --gpus=1\n"
        "#SBATCH --output=/data/demo-u/alice/.scitex/logs/notebook-%j.log\n"
        "#SBATCH --chdir=/data/demo-u/alice\n"
        "#SBATCH --export=ALL\n"
        "#SBATCH --signal=B:TERM@60\n"
        "\n"
        "set -euo pipefail\n"
        "umask 077\n"
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"\n'
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"\n'
        'export SCITEX_JOB_END="$(( $(date +%s) + 129600 ))"\n'
        "export SCITEX_PROFILE=small\n"
        "export SCITEX_INSTITUTION=demo-u\n"
        '[ -z "${JUPYTERHUB_API_TOKEN+x}" ] || '
        'export APPTAINERENV_JUPYTERHUB_API_TOKEN="${JUPYTERHUB_API_TOKEN}"\n'
        '[ -z "${JUPYTERHUB_API_URL+x}" ] || '
        'export APPTAINERENV_JUPYTERHUB_API_URL="${JUPYTERHUB_API_URL}"\n'
        '[ -z "${SCITEX_JOB_END+x}" ] || export APPTAINERENV_SCITEX_JOB_END="${SCITEX_JOB_END}"\n'
        '[ -z "${SCITEX_JOB_ID+x}" ] || export APPTAINERENV_SCITEX_JOB_ID="${SCITEX_JOB_ID}"\n'
        '[ -z "${SCITEX_NODE+x}" ] || export APPTAINERENV_SCITEX_NODE="${SCITEX_NODE}"\n'
        '[ -z "${SCITEX_INSTITUTION+x}" ] || '
        'export APPTAINERENV_SCITEX_INSTITUTION="${SCITEX_INSTITUTION}"\n'
        '[ -z "${SCITEX_PROFILE+x}" ] || export APPTAINERENV_SCITEX_PROFILE="${SCITEX_PROFILE}"\n'
        "\n"
        "exec apptainer exec --cleanenv /img/nb.sif python3\n"
    )


def test_command_arguments_are_quoted() -> None:
    script = render_batch_script(spec(command=("/opt/py", "--name=a b", "$(id)", "x;y")))
    assert script.endswith("exec /opt/py '--name=a b' '$(id)' 'x;y'\n")


def test_export_values_are_quoted() -> None:
    script = render_batch_script(spec(exports=(("SCITEX_PROFILE", "a'b $(id)"),)))
    assert "export SCITEX_PROFILE='a'\"'\"'b $(id)'\n" in script


@pytest.mark.parametrize(
    "field,value",
    [
        ("partition", "debug\n#SBATCH --uid=0"),
        ("partition", "debug --uid=0"),
        ("output_path", "/data/a b/log"),
        ("workdir", "/data/$(id)"),
        ("job_name", "x;reboot"),
        ("comment", "scitex:hub=x user=y"),
        ("account", "demo\r\n"),
    ],
)
def test_unsafe_directive_values_are_refused(field: str, value: str) -> None:
    with pytest.raises(ScriptError):
        render_batch_script(spec(**{field: value}))


def test_line_breaks_in_the_command_are_refused() -> None:
    with pytest.raises(ScriptError):
        render_batch_script(spec(command=("/opt/py", "a\nb")))


def test_bad_environment_names_are_refused() -> None:
    with pytest.raises(ScriptError):
        render_batch_script(spec(exports=(("A=B", "x"),)))
    with pytest.raises(ScriptError):
        render_batch_script(spec(forward_env=("X;Y",), forward_env_prefix="APPTAINERENV_"))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("job_name", "x\n999\x1fscitex-nb-bob\x1fbob\x1fRUNNING", "job name"),
        ("job_name", "a\x1fb", "job name"),
        ("job_name", "a b", "job name"),
        ("job_name", "%x", "job name"),
        ("job_name", "", "job name"),
        ("job_name", "a" * 1025, "job name"),
        ("comment", "scitex:hub=t:user=alice:server=-\n55 JobState=COMPLETED", "job comment"),
        ("comment", "scitex:hub=t\x1f", "job comment"),
        ("comment", "~r0~", "job comment"),
        ("comment", "", "job comment"),
    ],
)
def test_names_and_comments_slurm_echoes_are_checked_when_the_spec_is_made(
    field: str, value: str, message: str
) -> None:
    """SLURM prints names and comments back to every reader of the queue: ours hold a
    plain charset, refused with a clear error before any script exists."""
    with pytest.raises(ScriptError, match=f"^{message} .* may hold letters, digits and"):
        spec(**{field: value})


def test_compute_job_names_are_script_paths() -> None:
    assert spec(job_name="analysis/fit-2.v1+x_y.py").job_name == "analysis/fit-2.v1+x_y.py"
