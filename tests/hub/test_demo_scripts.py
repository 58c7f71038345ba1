"""The demo site's profiles, rendered: each batch script asserted by exact equality.

A change to what a profile puts in a job shows up here, reviewed, before it reaches a cluster.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from jupyterhub_config.settings import DEFAULT_CONFIG, expand_env, parse_settings
from scitex_spawner import SciTeXSpawner
from scitex_spawner.script import render_batch_script

SETTINGS = parse_settings(
    yaml.safe_load(
        expand_env(
            DEFAULT_CONFIG.read_text(),
            {"SCITEX_DEV_DIR": "/var/lib/scitex-dev", "SCITEX_PREFIX": "/opt/scitex"},
        )
    )
)
ENV_NAMES = ["JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "PATH"]

EXPECTED = {
    ("small", "none"): (
        "#!/bin/bash\n"
        "#SBATCH --job-name=scitex-nb-alice\n"
        "#SBATCH --comment=scitex:hub=demo:user=alice:server=-\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=512M\n"
        "#SBATCH --time=01:00:00\n"
        "#SBATCH --output=/var/lib/scitex-dev/data/demo-u/alice/.scitex/logs/notebook-%j.log\n"
        "#SBATCH --chdir=/var/lib/scitex-dev/data/demo-u/alice\n"
        "#SBATCH --export=ALL\n"
        "#SBATCH --signal=B:TERM@60\n"
        "\n"
        "set -euo pipefail\n"
        "umask 077\n"
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"\n'
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"\n'
        'export SCITEX_JOB_END="$(( $(date +%s) + 3600 ))"\n'
        "export SCITEX_PROFILE=small\n"
        "export SCITEX_INSTITUTION=demo-u\n"
        "export SCITEX_USER_ROOT=/var/lib/scitex-dev/data/demo-u/alice\n"
        "export SCITEX_QUOTA_LIMIT_BYTES=10737418240\n"
        "\n"
        "exec /opt/scitex/venv/bin/python -m scitex_server_ext.singleuser --LanguageServerManager.autodetect=False\n"
    ),
    ("small", "apptainer"): (
        "#!/bin/bash\n"
        "#SBATCH --job-name=scitex-nb-alice\n"
        "#SBATCH --comment=scitex:hub=demo:user=alice:server=-\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=512M\n"
        "#SBATCH --time=01:00:00\n"
        "#SBATCH --output=/var/lib/scitex-dev/data/demo-u/alice/.scitex/logs/notebook-%j.log\n"
        "#SBATCH --chdir=/var/lib/scitex-dev/data/demo-u/alice\n"
        "#SBATCH --export=ALL\n"
        "#SBATCH --signal=B:TERM@60\n"
        "\n"
        "set -euo pipefail\n"
        "umask 077\n"
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"\n'
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"\n'
        'export SCITEX_JOB_END="$(( $(date +%s) + 3600 ))"\n'
        "export SCITEX_PROFILE=small\n"
        "export SCITEX_INSTITUTION=demo-u\n"
        "export SCITEX_USER_ROOT=/data\n"
        "export SCITEX_QUOTA_LIMIT_BYTES=10737418240\n"
        '[ -z "${JUPYTERHUB_API_TOKEN+x}" ] || export APPTAINERENV_JUPYTERHUB_API_TOKEN="${JUPYTERHUB_API_TOKEN}"\n'
        '[ -z "${JUPYTERHUB_API_URL+x}" ] || export APPTAINERENV_JUPYTERHUB_API_URL="${JUPYTERHUB_API_URL}"\n'
        '[ -z "${SCITEX_JOB_END+x}" ] || export APPTAINERENV_SCITEX_JOB_END="${SCITEX_JOB_END}"\n'
        '[ -z "${SCITEX_JOB_ID+x}" ] || export APPTAINERENV_SCITEX_JOB_ID="${SCITEX_JOB_ID}"\n'
        '[ -z "${SCITEX_NODE+x}" ] || export APPTAINERENV_SCITEX_NODE="${SCITEX_NODE}"\n'
        '[ -z "${SCITEX_INSTITUTION+x}" ] || export APPTAINERENV_SCITEX_INSTITUTION="${SCITEX_INSTITUTION}"\n'
        '[ -z "${SCITEX_PROFILE+x}" ] || export APPTAINERENV_SCITEX_PROFILE="${SCITEX_PROFILE}"\n'
        '[ -z "${SCITEX_QUOTA_LIMIT_BYTES+x}" ] || export APPTAINERENV_SCITEX_QUOTA_LIMIT_BYTES="${SCITEX_QUOTA_LIMIT_BYTES}"\n'
        '[ -z "${SCITEX_USER_ROOT+x}" ] || export APPTAINERENV_SCITEX_USER_ROOT="${SCITEX_USER_ROOT}"\n'
        "\n"
        "exec apptainer exec --cleanenv --contain --home /var/lib/scitex-dev/data/demo-u/alice:/data --pwd /data --bind /usr:/usr:ro --bind /opt/scitex/venv:/opt/scitex/venv:ro --bind /etc/alternatives:/etc/alternatives:ro /var/lib/scitex-dev/images/scitex-test-sandbox /opt/scitex/venv/bin/python -m scitex_server_ext.singleuser --LanguageServerManager.autodetect=False\n"
    ),
    ("medium", "none"): (
        "#!/bin/bash\n"
        "#SBATCH --job-name=scitex-nb-alice\n"
        "#SBATCH --comment=scitex:hub=demo:user=alice:server=-\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=2\n"
        "#SBATCH --mem=1024M\n"
        "#SBATCH --time=04:00:00\n"
        "#SBATCH --output=/var/lib/scitex-dev/data/demo-u/alice/.scitex/logs/notebook-%j.log\n"
        "#SBATCH --chdir=/var/lib/scitex-dev/data/demo-u/alice\n"
        "#SBATCH --export=ALL\n"
        "#SBATCH --signal=B:TERM@60\n"
        "\n"
        "set -euo pipefail\n"
        "umask 077\n"
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"\n'
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"\n'
        'export SCITEX_JOB_END="$(( $(date +%s) + 14400 ))"\n'
        "export SCITEX_PROFILE=medium\n"
        "export SCITEX_INSTITUTION=demo-u\n"
        "export SCITEX_USER_ROOT=/var/lib/scitex-dev/data/demo-u/alice\n"
        "export SCITEX_QUOTA_LIMIT_BYTES=10737418240\n"
        "\n"
        "exec /opt/scitex/venv/bin/python -m scitex_server_ext.singleuser --LanguageServerManager.autodetect=False\n"
    ),
    ("other-small", "none"): (
        "#!/bin/bash\n"
        "#SBATCH --job-name=scitex-nb-carol\n"
        "#SBATCH --comment=scitex:hub=demo:user=carol:server=-\n"
        "#SBATCH --partition=debug\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=512M\n"
        "#SBATCH --time=02:00:00\n"
        "#SBATCH --output=/var/lib/scitex-dev/data/other-u/carol/.scitex/logs/notebook-%j.log\n"
        "#SBATCH --chdir=/var/lib/scitex-dev/data/other-u/carol\n"
        "#SBATCH --export=ALL\n"
        "#SBATCH --signal=B:TERM@60\n"
        "\n"
        "set -euo pipefail\n"
        "umask 077\n"
        'export SCITEX_JOB_ID="${SLURM_JOB_ID}"\n'
        'export SCITEX_NODE="${SLURMD_NODENAME:-$(hostname -s)}"\n'
        'export SCITEX_JOB_END="$(( $(date +%s) + 7200 ))"\n'
        "export SCITEX_PROFILE=other-small\n"
        "export SCITEX_INSTITUTION=other-u\n"
        "export SCITEX_USER_ROOT=/var/lib/scitex-dev/data/other-u/carol\n"
        "export SCITEX_QUOTA_LIMIT_BYTES=5368709120\n"
        "\n"
        "exec /opt/scitex/venv/bin/python -m scitex_server_ext.singleuser --LanguageServerManager.autodetect=False\n"
    ),
}


def spawner_for(user: str, institution: str) -> SciTeXSpawner:
    return SciTeXSpawner(
        user=SimpleNamespace(
            name=user, groups=[SimpleNamespace(name=institution)], url=f"/user/{user}/"
        ),
        profiles=dict(SETTINGS.profiles),
        institutions=dict(SETTINGS.institutions),
        data_root=SETTINGS.data_root,
        notebook_python=SETTINGS.notebook.python,
        hub_id=SETTINGS.slurm.hub_id,
        args=list(SETTINGS.notebook.args),
        container_image=SETTINGS.container.image or "",
        container_binds=list(SETTINGS.container.extra_binds),
    )


@pytest.mark.parametrize("profile,runtime", list(EXPECTED))
def test_demo_profile_renders_exactly(profile: str, runtime: str) -> None:
    user, institution = ("carol", "other-u") if profile == "other-small" else ("alice", "demo-u")
    spawner = spawner_for(user, institution)
    resources = spawner.resolve_resources({"profile": profile})
    spec = spawner.build_job_spec(institution, resources, runtime, env_names=ENV_NAMES)
    assert render_batch_script(spec) == EXPECTED[(profile, runtime)]
