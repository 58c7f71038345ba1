"""The production Compose layout (deploy/docker-compose.prod.yml), checked without Docker.

tests/e2e/test_compose.py brings the file up with docker-compose; these checks need no
engine and run with the unit tests: the file against the Compose Specification's JSON
schema (the copy the npm package ``dclint`` ships, installed by
deploy/dev/install-system.sh), and what this layout promises (secrets only as files,
every mounted file present, the SLURM client wiring, the host-network layout with
PostgreSQL and Gitea on loopback). The parts that can run outside Docker do: the
PostgreSQL init SQL on a real PostgreSQL, the hub image's entry point, nginx on the
rendered templates. One file (over 400 lines): every test reads the same Compose file
through the shared fixtures (parsed, then interpolated as Compose does).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.services import PREFIX, missing

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.prod.yml"
SCHEMA = (
    Path(PREFIX) / "compose-schema" / "node_modules" / "dclint" / "schemas" / "compose.schema.json"
)

# What deploy/hub/compose.env.example gives, for interpolation.
EXAMPLE_ENV = {
    "SCITEX_SERVER_NAME": "hub.example.edu",
    "SCITEX_PUBLIC_URL": "https://hub.example.edu",
    "SCITEX_DATA_ROOT": "/shared/scitex/data",
}


def compose_schema() -> dict[str, Any]:
    if not SCHEMA.is_file():
        missing(
            "the Compose Specification schema",
            f"{SCHEMA} is missing (npm package dclint; deploy/dev/install-system.sh installs it)",
        )
    import json

    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    return dict(schema)


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VAR_RE.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(interpolate(compose, EXAMPLE_ENV))


# ---- the Compose Specification -------------------------------------------------


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], resolved: dict[str, Any]
) -> None:
    schema = compose_schema()
    validator = jsonschema.Draft7Validator(schema)
    assert [e.message for e in validator.iter_errors(compose)] == []
    assert [e.message for e in validator.iter_errors(resolved)] == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["services"]["hub"].update(restart_policy="always"), "restart_policy"),
        (lambda c: c["services"]["gitea"].update(ports="3000:3000"), "is not of type 'array'"),
        (lambda c: c.update(servics={}), "servics"),
        (lambda c: c["secrets"]["tls_key"].update(file=["x"]), "is not of type 'string'"),
    ],
)
def test_the_schema_check_catches_mistakes(
    compose: dict[str, Any], mutate: Any, expected: str
) -> None:
    broken = yaml.safe_load(yaml.safe_dump(compose))
    mutate(broken)
    errors = [e.message for e in jsonschema.Draft7Validator(compose_schema()).iter_errors(broken)]
    assert any(expected in e for e in errors), errors


def test_required_settings_fail_loudly_when_unset(compose: dict[str, Any]) -> None:
    env = dict(EXAMPLE_ENV)
    del env["SCITEX_DATA_ROOT"]
    with pytest.raises(KeyError, match="SCITEX_DATA_ROOT"):
        interpolate(compose, env)


# ---- what the layout promises ------------------------------------------------------

SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CRYPT|_KEY\b|__KEY__", re.IGNORECASE)


def test_the_four_parts_and_no_redis(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {"postgres", "gitea", "hub", "nginx"}
    assert not any("redis" in str(s.get("image", "")) for s in resolved["services"].values())
    assert "No Redis" in COMPOSE.read_text()


def test_secrets_are_files_never_values(resolved: dict[str, Any]) -> None:
    declared = resolved["secrets"]
    assert all(set(spec) == {"file"} for spec in declared.values()), declared
    used = set()
    for name, service in resolved["services"].items():
        used |= set(service.get("secrets", []))
        for key, value in service.get("environment", {}).items():
            if SECRET_WORDS.search(key):
                # A secret's *name* may appear, as a file under /run/secrets.
                assert key.endswith("_FILE") or str(value).startswith("/run/secrets/"), (
                    f"{name}: {key}={value!r} looks like a secret value"
                )
                assert str(value).startswith("/run/secrets/"), (name, key, value)
                assert str(value).removeprefix("/run/secrets/") in service["secrets"], (name, key)
    assert used == set(declared), set(declared) ^ used
    env_file = (DEPLOY / "gitea" / "gitea.env").read_text()
    settings = [line for line in env_file.splitlines() if line and not line.startswith("#")]
    assert settings, "gitea.env sets nothing"
    assert not [line for line in settings if SECRET_WORDS.search(line.split("=")[0])]


def test_every_mounted_file_and_build_input_exists(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source == "./hub/scitex.yaml":
                # The site's own file, copied from the example (the guide's step).
                source += ".example"
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
        for env_file in service.get("env_file", []):
            assert (DEPLOY / env_file).is_file(), env_file
    build = resolved["services"]["hub"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"Dockerfile: COPY {source}"


def test_the_image_copies_every_part_of_the_package() -> None:
    """What pyproject.toml builds into the wheel must be in the image's build."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = set(wheel["packages"]) | {src.split("/")[0] for src in wheel.get("shared-data", {})}
    needed |= {"pyproject.toml", "README.md"}
    copied = set()
    for line in (DEPLOY / "hub" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "/src" in line:
            copied |= {source.rstrip("/") for source in line.split()[1:-1]}
    assert needed <= copied, needed - copied


def test_hub_has_the_cluster_slurm_client(resolved: dict[str, Any]) -> None:
    hub = resolved["services"]["hub"]
    mounts = {v.split(":")[1]: v for v in hub["volumes"]}
    assert mounts["/etc/slurm"].endswith(":ro")
    assert mounts["/run/munge"] == "/run/munge:/run/munge:ro"
    assert hub["environment"]["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    # Users' data at the same path as on the compute nodes.
    assert "/shared/scitex/data:/shared/scitex/data" in hub["volumes"]
    # The login-node layout: the hub is on the host's network, where slurmctld, the
    # compute nodes' servers and the jobs' calls to its API are.
    assert hub["network_mode"] == "host"
    assert "ports" not in hub and "networks" not in hub
    dockerfile = (DEPLOY / "hub" / "Dockerfile").read_text()
    assert "slurm-client" in dockerfile and "munge" in dockerfile
    assert "configurable-http-proxy" in dockerfile


def test_only_nginx_faces_the_network_and_the_rest_binds_loopback(
    resolved: dict[str, Any],
) -> None:
    # nginx listens on 80/443 itself (host network); PostgreSQL and Gitea publish
    # on the host's loopback only, for the hub and nginx.
    assert resolved["services"]["nginx"]["network_mode"] == "host"
    env = resolved["services"]["nginx"]["environment"]
    assert (env["SCITEX_HTTPS_LISTEN"], env["SCITEX_HTTP_LISTEN"]) == ("443", "80")
    assert resolved["services"]["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert resolved["services"]["gitea"]["ports"] == ["127.0.0.1:3000:3000"]
    for name in ("postgres", "gitea"):
        assert resolved["services"][name]["networks"] == ["backend"]
    # No top-level name: Debian's docker-compose 1.29 rejects it (-p scitex instead).
    assert "name" not in resolved


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest" and re.match(r"\d", tag), f"{name}: {image}"


def test_example_site_file_is_valid() -> None:
    from jupyterhub_config.settings import parse_settings

    data = yaml.safe_load((DEPLOY / "hub" / "scitex.yaml.example").read_text())
    settings = parse_settings(data, "scitex.yaml.example")
    # The hub is on the host's network: PostgreSQL where it publishes, on loopback.
    assert settings.hub.db_url == "postgresql+psycopg://jupyterhub@127.0.0.1:5432/jupyterhub"
    assert ":" not in settings.hub.db_url.split("//", 1)[1].split("@")[0], "no password"
    assert settings.hub.state_dir == "/srv/scitex/state"
    assert settings.slurm.conf == "/etc/slurm/slurm.conf"


def test_make_secrets_makes_private_files_and_keeps_them(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    if not shutil.which("openssl"):
        missing("openssl", "not installed")
    directory = tmp_path / "secrets"
    script = DEPLOY / "hub" / "make-secrets.sh"
    out = subprocess.run(["bash", str(script), str(directory)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "still needed" in out.stdout and "tls_cert tls_key" in out.stdout
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    expected = set(resolved["secrets"]) - {"tls_cert", "tls_key"}
    assert {p.name for p in directory.iterdir()} == expected
    values = {}
    for path in directory.iterdir():
        # gitea_db_password: read by PostgreSQL's init (uid 999) and Gitea (gid 1000).
        private = 0o640 if path.name == "gitea_db_password" and os.geteuid() == 0 else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == private, path
        values[path.name] = path.read_text()
    assert len(values["jupyterhub_crypt_key"].strip()) == 64  # 32 bytes, hex
    assert values["gitea_admin_token"] == ""  # to fill in
    # No value is printed.
    assert not [v for v in values.values() if v.strip() and v.strip() in out.stdout]
    again = subprocess.run(["bash", str(script), str(directory)], capture_output=True, text=True)
    assert again.returncode == 0
    assert {p.name: p.read_text() for p in directory.iterdir()} == values


# ---- the hub image's entry point -------------------------------------------------------


def test_entrypoint_puts_secrets_in_files_and_env(tmp_path: Path) -> None:
    venv_python = Path(PREFIX) / "venv" / "bin" / "python"
    if not venv_python.exists():
        missing("the project venv", f"{venv_python} is missing")
    secrets, state = tmp_path / "secrets", tmp_path / "state"
    secrets.mkdir()
    (secrets / "hub_db_password").write_text("pa:ss\\word\n")
    (secrets / "jupyterhub_cookie_secret").write_text("ab" * 32 + "\n")
    (secrets / "jupyterhub_crypt_key").write_text("cd" * 32 + "\n")
    (secrets / "configproxy_auth_token").write_text("ef" * 32 + "\n")
    out = subprocess.run(
        [
            "sh",
            str(DEPLOY / "hub" / "entrypoint.sh"),
            "sh",
            "-c",
            'printf "%s|%s|%s" "$PGPASSFILE" "$JUPYTERHUB_CRYPT_KEY" "$CONFIGPROXY_AUTH_TOKEN"',
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "SCITEX_SECRETS": str(secrets),
            "SCITEX_STATE_DIR": str(state),
        },
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{state}/pgpass|{'cd' * 32}|{'ef' * 32}"
    assert (state / "pgpass").read_text() == "*:*:*:*:pa\\:ss\\\\word\n"
    assert (state / "jupyterhub_cookie_secret").read_text() == "ab" * 32
    for name in ("pgpass", "jupyterhub_cookie_secret"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600


def test_entrypoint_refuses_a_missing_secret(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    out = subprocess.run(
        ["sh", str(DEPLOY / "hub" / "entrypoint.sh"), "true"],
        env={
            "PATH": "/usr/bin:/bin",
            "SCITEX_SECRETS": str(tmp_path / "secrets"),
            "SCITEX_STATE_DIR": str(tmp_path / "state"),
        },
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "secret jupyterhub_crypt_key is missing" in out.stderr


# ---- nginx on the rendered templates ------------------------------------------------------


def test_nginx_accepts_the_compose_rendering(resolved: dict[str, Any], tmp_path: Path) -> None:
    """The templates rendered with the compose file's values pass ``nginx -t``."""
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    if not nginx or not shutil.which("openssl"):
        missing("nginx", "nginx or openssl is not installed (deploy/dev/install-system.sh)")
    env = dict(resolved["services"]["nginx"]["environment"])
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hub.example.edu"],
        check=True, capture_output=True,
    )  # fmt: skip
    extra = tmp_path / "scitex.d"
    extra.mkdir()
    # nginx is on the host's network: its upstreams are the proxy and Gitea's published
    # port on loopback, as they are (no container names).
    assert env["SCITEX_HUB_UPSTREAM"] == "127.0.0.1:8000"
    assert env["SCITEX_GITEA_UPSTREAM"] == "127.0.0.1:3000"
    env.update(
        SCITEX_TLS_CERT=str(cert),
        SCITEX_TLS_KEY=str(key),
        SCITEX_EXTRA_CONF_DIR=str(extra),
        SCITEX_NGINX_DIR=str(tmp_path),
        SCITEX_HTTPS_LISTEN=f"127.0.0.1:{_free_port()}",
        SCITEX_HTTP_LISTEN=f"127.0.0.1:{_free_port()}",
    )

    def render(template: str, target: Path) -> None:
        text = (DEPLOY / "nginx" / template).read_text()
        target.write_text(re.sub(r"\$\{(SCITEX_[A-Z_]+)\}", lambda m: env[m.group(1)], text))

    render("scitex.conf.template", tmp_path / "scitex.conf")
    render("gitea.conf.template", extra / "gitea.conf")
    render("nginx-test.conf.template", tmp_path / "nginx.conf")
    assert "${" not in (tmp_path / "scitex.conf").read_text(), "a placeholder is left"
    assert "$connection_upgrade" in (tmp_path / "scitex.conf").read_text()
    (tmp_path / "tmp").mkdir()
    out = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- PostgreSQL's init SQL on a real PostgreSQL ------------------------------------------------


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[tuple[Path, Path, int]]:
    """A throwaway PostgreSQL cluster (initdb in a temporary directory): the init
    SQL creates roles, which are cluster-wide, so it gets a cluster of its own."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not bins:
        missing("PostgreSQL", "no /usr/lib/postgresql/*/bin (deploy/dev/postgres.sh installs it)")
    if os.geteuid() != 0:
        missing("root", "PostgreSQL runs as the postgres user (runuser)")
    bin_dir = bins[-1].parent
    root = Path(tempfile.mkdtemp(prefix="scitex-pg-", dir="/tmp"))
    shutil.chown(root, "postgres", "postgres")
    port = _free_port()

    def as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=60
        )

    out = as_postgres(
        str(bin_dir / "initdb"), "-D", f"{root}/data", "-U", "postgres",
        "--auth-local=trust", "--auth-host=scram-sha-256",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = as_postgres(
        str(bin_dir / "pg_ctl"), "-D", f"{root}/data", "-l", f"{root}/log", "-w",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    try:
        yield bin_dir, root, port
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", f"{root}/data", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_init_sql_makes_two_private_databases(
    private_postgres: tuple[Path, Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    bin_dir, root, port = private_postgres
    secrets = root / "secrets"
    secrets.mkdir()
    (secrets / "hub_db_password").write_text("hub-pw-0123\n")
    (secrets / "gitea_db_password").write_text("gitea-pw-4567\n")
    for path in (secrets, *secrets.iterdir()):
        shutil.chown(path, "postgres", "postgres")
    sql = DEPLOY / "postgres" / "init" / "10-scitex-databases.sql"
    # As the postgres image runs it (psql -v ON_ERROR_STOP=1 -f), with our secrets dir.
    out = subprocess.run(
        ["runuser", "-u", "postgres", "--", str(bin_dir / "psql"), "-X", "-q",
         "-v", "ON_ERROR_STOP=1", "-v", f"secrets={secrets}",
         "-h", str(root), "-p", str(port), "-U", "postgres", "-d", "postgres", "-f", str(sql)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "hub-pw" not in out.stdout + out.stderr

    def connect(user: str, db: str, password: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=port, user=user, dbname=db, password=password, connect_timeout=5
        )

    with connect("jupyterhub", "jupyterhub", "hub-pw-0123") as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'jupyterhub'"
        ).fetchone()
        assert owner == ("jupyterhub",)
    with connect("gitea", "gitea", "gitea-pw-4567") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("gitea",)
    # Each role reaches only its own database; wrong passwords are refused.
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect("jupyterhub", "gitea", "hub-pw-0123")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        connect("gitea", "jupyterhub", "gitea-pw-4567")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect("jupyterhub", "jupyterhub", "wrong")

    # The hub's way in: a URL without password plus a pgpass file (PGPASSFILE), as
    # the image's entry point writes it; JupyterHub creates its schema there.
    from jupyterhub import orm

    pgpass = tmp_path / "pgpass"
    pgpass.write_text("*:*:*:*:hub-pw-0123\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    session = orm.new_session_factory(
        f"postgresql+psycopg://jupyterhub@127.0.0.1:{port}/jupyterhub"
    )()
    session.add(orm.User(name="alice"))
    session.commit()
    assert [u.name for u in session.query(orm.User)] == ["alice"]
    session.close()


def test_munge_answers_through_a_read_only_bind_mount(tmp_path: Path) -> None:
    """The hub container mounts the host's /run/munge read-only: a client can still
    talk to munged's socket through such a mount (what sbatch in the container does)."""
    socket_path = Path("/run/munge/munge.socket.2")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("munge"):
        missing("munge", "needs root, unshare and munge (deploy/dev/slurm.sh)")
    if not socket_path.exists():
        missing("munge", f"munged is not running ({socket_path}; deploy/dev/slurm.sh start)")
    target = tmp_path / "munge"
    target.mkdir()
    script = (
        f"mount --bind /run/munge {target} && mount -o remount,bind,ro {target} && "
        f"if touch {target}/probe 2>/dev/null; then echo WRITABLE; exit 1; fi; "
        f"munge -n -S {target}/munge.socket.2 | unmunge -S {target}/munge.socket.2"
    )
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "STATUS:          Success (0)" in out.stdout
