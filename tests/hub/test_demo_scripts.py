"""The demo site's profiles, rendered: each batch script asserted by exact equality; and the
demo's accounts (users.sh): the researchers' password and the hub admin's, never the same.

A change to what a profile puts in a job shows up here, reviewed, before it reaches a cluster.
"""

from __future__ import annotations

import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from jupyterhub_config.settings import DEFAULT_CONFIG, expand_env, parse_settings
from scitex_hub.container import RuntimeChoice
from scitex_hub.script import render_batch_script
from scitex_spawner import SciTeXSpawner
from tests.services import require_root

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
        "exec /opt/scitex/bin/apptainer exec --cleanenv --contain --home /var/lib/scitex-dev/data/demo-u/alice:/data --pwd /data --bind /usr:/usr:ro --bind /opt/scitex/venv:/opt/scitex/venv:ro --bind /etc/alternatives:/etc/alternatives:ro /var/lib/scitex-dev/images/scitex-test-sandbox /opt/scitex/venv/bin/python -m scitex_server_ext.singleuser --LanguageServerManager.autodetect=False\n"
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
    # What resolve_container_runtime gives the demo: Apptainer where make demo installs it.
    choice = RuntimeChoice(runtime, "/opt/scitex/bin/apptainer" if runtime != "none" else "")
    spec = spawner.build_job_spec(institution, resources, choice, env_names=ENV_NAMES)
    assert render_batch_script(spec) == EXPECTED[(profile, runtime)]


# ---- demo accounts (deploy/dev/users.sh, demo.sh accounts) ---------------------------------

REPO = Path(__file__).resolve().parents[2]
# Stand-ins for the account tools: users.sh runs for real, but nothing reaches the
# machine's accounts. Each records its argv; chpasswd its input too.
STUBS = {
    "id": 'echo "id $*" >>"$STUB_LOG"; exit 0',
    "useradd": 'echo "useradd $*" >>"$STUB_LOG"',
    "getent": 'echo "getent $*" >>"$STUB_LOG"; echo "$2:x:1001:1001::/nonexistent:/bin/bash"',
    "chpasswd": 'echo "chpasswd $*" >>"$STUB_LOG"; cat >"$STUB_DIR/chpasswd.in"',
}
RESEARCHERS = ["alice", "bob", "carol", "dave", "erin"]


@dataclass
class UsersRun:
    returncode: int
    log: str
    # What chpasswd was given: {user: password}; empty when it did not run.
    passwords: dict[str, str]
    argv: str


def run_users(tmp_path: Path, **env: str) -> UsersRun:
    require_root()  # users.sh refuses to run otherwise (CI runs as root)
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    (stubs / "chpasswd.in").unlink(missing_ok=True)
    (stubs / "argv.log").write_text("")
    proc = subprocess.run(
        ["bash", str(REPO / "deploy" / "dev" / "users.sh")],
        env={
            "PATH": f"{stubs}:/usr/bin:/bin",
            "SCITEX_DEV_DIR": str(tmp_path / "dev"),
            "STUB_DIR": str(stubs),
            "STUB_LOG": str(stubs / "argv.log"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    fed = stubs / "chpasswd.in"
    lines = fed.read_text().splitlines() if fed.exists() else []
    return UsersRun(
        proc.returncode,
        proc.stderr + proc.stdout,
        dict(line.split(":", 1) for line in lines),
        (stubs / "argv.log").read_text(),
    )


def stored(tmp_path: Path, name: str) -> str:
    path = tmp_path / "dev" / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    return path.read_text().strip()


def test_users_sh_generates_a_separate_admin_password_and_keeps_both(tmp_path: Path) -> None:
    first = run_users(tmp_path)
    assert first.returncode == 0, first.log
    researchers, admin = stored(tmp_path, "demo-password"), stored(tmp_path, "demo-admin-password")
    assert len(researchers) == len(admin) == 20 and researchers != admin
    assert first.passwords == {**dict.fromkeys(RESEARCHERS, researchers), "admin": admin}
    # Each printed on its own line, with where it is kept.
    lines = first.log.splitlines()
    assert (
        f"[scitex-dev users] researchers' password (generated; in {tmp_path}/dev/demo-password): "
        f"{researchers}"
    ) in lines
    assert (
        f"[scitex-dev users] admin's password (generated; in {tmp_path}/dev/demo-admin-password): "
        f"{admin}"
    ) in lines
    # Never on a command line.
    assert researchers not in first.argv and admin not in first.argv

    # Again: the same passwords (the stored ones), set again.
    again = run_users(tmp_path)
    assert again.returncode == 0, again.log
    assert again.passwords == first.passwords
    assert (stored(tmp_path, "demo-password"), stored(tmp_path, "demo-admin-password")) == (
        researchers,
        admin,
    )
    assert "admin's password (reused;" in again.log


def test_users_sh_takes_both_passwords_from_the_environment(tmp_path: Path) -> None:
    run = run_users(
        tmp_path, SCITEX_DEMO_PASSWORD="researchers-pw", SCITEX_DEMO_ADMIN_PASSWORD="admin-pw"
    )
    assert run.returncode == 0, run.log
    assert run.passwords == {**dict.fromkeys(RESEARCHERS, "researchers-pw"), "admin": "admin-pw"}
    assert stored(tmp_path, "demo-password") == "researchers-pw"
    assert stored(tmp_path, "demo-admin-password") == "admin-pw"
    assert "admin's password (from SCITEX_DEMO_ADMIN_PASSWORD;" in run.log
    # Only the researchers' chosen: the admin's stays its own (the stored one).
    run = run_users(tmp_path, SCITEX_DEMO_PASSWORD="new-researchers-pw")
    assert run.passwords["admin"] == "admin-pw"
    assert run.passwords["alice"] == "new-researchers-pw"


def test_users_sh_refuses_one_password_for_researchers_and_admin(tmp_path: Path) -> None:
    run = run_users(tmp_path, SCITEX_DEMO_PASSWORD="same", SCITEX_DEMO_ADMIN_PASSWORD="same")
    assert run.returncode == 1
    assert (
        "ERROR: SCITEX_DEMO_ADMIN_PASSWORD equals the researchers' password: a researcher's "
        "password must never sign in as admin; choose another"
    ) in run.log
    assert run.passwords == {}
    assert not (tmp_path / "dev" / "demo-admin-password").exists()


def test_users_sh_moves_an_admin_off_the_researchers_password(tmp_path: Path) -> None:
    # An older demo: one password file, the admin had the researchers' password.
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "demo-password").write_text("old-shared-pw\n")
    run = run_users(tmp_path)
    assert run.returncode == 0, run.log
    admin = stored(tmp_path, "demo-admin-password")
    assert run.passwords == {**dict.fromkeys(RESEARCHERS, "old-shared-pw"), "admin": admin}
    assert admin != "old-shared-pw"
    # The researchers' password chosen equal to the stored admin one: the admin gets a new one.
    run = run_users(tmp_path, SCITEX_DEMO_PASSWORD=admin)
    assert run.returncode == 0, run.log
    assert run.passwords["alice"] == admin
    assert run.passwords["admin"] not in (admin, "")
    assert stored(tmp_path, "demo-admin-password") == run.passwords["admin"]


def test_demo_sh_prints_each_password_on_its_own_line(tmp_path: Path) -> None:
    require_root()
    run_users(
        tmp_path, SCITEX_DEMO_PASSWORD="researchers-pw", SCITEX_DEMO_ADMIN_PASSWORD="admin-pw"
    )
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / "dev" / "demo.sh"), "accounts"],
        env={"PATH": "/usr/bin:/bin", "SCITEX_DEV_DIR": str(tmp_path / "dev")},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    lines = [line.strip() for line in out.splitlines()]
    assert "Researchers' password: researchers-pw" in lines
    assert "Hub admin: admin" in lines
    assert "Admin's password: admin-pw" in lines
