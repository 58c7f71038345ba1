"""The files a site copies, exercised as they are: deploy/hub/scitex.yaml.example and
deploy/baremetal/scitex.yaml.template through the real loader and ``apply_all``,
deploy/hub/compose.env.example against the production Compose file, make-secrets.sh in a
temporary directory, deploy/dev/compose_site.py's edits of the examples, and
docs/admin-guide.md's Compose steps and sudo rules against the code.

tests/hub/test_compose.py checks the Compose file itself; this file checks that what a site
copies from the examples and the guide works with it and with the code. One file (over 400
lines) because its tests read these files against each other through shared helpers (the
example in a temporary secrets directory, the guide's sections and commands).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from traitlets.config import Config

from jupyterhub_config.apply import apply_all, apply_gitea
from jupyterhub_config.settings import Settings, SettingsError, load_settings
from scitex_hub.slurm.client import SlurmClient
from tests.services import missing

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.prod.yml"
COMPOSE_LOCAL = DEPLOY / "docker-compose.local.yml"
SITE_EXAMPLE = DEPLOY / "hub" / "scitex.yaml.example"
ENV_EXAMPLE = DEPLOY / "hub" / "compose.env.example"
MAKE_SECRETS = DEPLOY / "hub" / "make-secrets.sh"
COMPOSE_SITE = DEPLOY / "dev" / "compose_site.py"
BAREMETAL_TEMPLATE = DEPLOY / "baremetal" / "scitex.yaml.template"
GUIDE = REPO / "docs" / "admin-guide.md"
NOTEBOOK_DEF = REPO / "containers" / "scitex-notebook.def"
CRYPT_KEY = "ab" * 32


def compose_file() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def guide_section(title_start: str) -> str:
    text = GUIDE.read_text()
    start = text.index(f"\n## {title_start}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def shell_commands(section: str) -> list[str]:
    """The ```sh blocks of ``section``, one string per command (continuations joined)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip()]
    return commands


# ---- deploy/hub/scitex.yaml.example, as the hub container reads it -----------------------


def site_example_in(tmp_path: Path) -> tuple[Path, Path]:
    """The example with the container's /run/secrets pointing at a temporary directory
    holding what make-secrets.sh and section 3 of the guide put there."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    for name, value in {
        "oidc_client_secret": "client-secret\n",
        "gitea_admin_token": "0123456789abcdef\n",
        "gitea_admin_password": "cd" * 24 + "\n",
    }.items():
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o600)
    site = tmp_path / "scitex.yaml"
    site.write_text(SITE_EXAMPLE.read_text().replace("/run/secrets/", f"{secrets}/"))
    return site, secrets


@pytest.fixture
def site_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Config, Path]:
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", CRYPT_KEY)
    site, secrets = site_example_in(tmp_path)
    settings = load_settings(site)
    c = Config()
    apply_all(c, settings)
    return settings, c, secrets


def test_site_example_notebook_python_is_the_images_python(
    site_example: tuple[Settings, Config, Path],
) -> None:
    settings, c, _ = site_example
    definition = NOTEBOOK_DEF.read_text()
    venv = re.search(r"python3 -m venv (\S+)", definition)
    assert venv, "the notebook image makes its venv"
    assert settings.notebook.python == f"{venv.group(1)}/bin/python" == "/opt/venv/bin/python"
    assert c.SciTeXSpawner.notebook_python == "/opt/venv/bin/python"
    assert f"{venv.group(1)}/bin/pip install" in definition
    assert c.SciTeXSpawner.container_runtime == "apptainer"


def test_site_example_oidc_uses_keycloaks_endpoints(
    site_example: tuple[Settings, Config, Path],
) -> None:
    settings, c, _ = site_example
    assert settings.auth.oidc is not None
    issuer = settings.auth.oidc.issuer
    assert re.fullmatch(r"https://[^/]+/realms/[^/]+", issuer), "a Keycloak realm"
    auth = c.GenericOAuthenticator
    assert auth.authorize_url == f"{issuer}/protocol/openid-connect/auth"
    assert auth.token_url == f"{issuer}/protocol/openid-connect/token"
    assert auth.userdata_url == f"{issuer}/protocol/openid-connect/userinfo"
    assert auth.client_secret == "client-secret"
    assert auth.username_claim == "preferred_username"
    # The guide's OIDC example names the same endpoints.
    sign_in = guide_section("5. Sign-in")
    for url in (auth.authorize_url, auth.token_url, auth.userdata_url):
        assert url in sign_in


def test_site_example_secrets_are_the_compose_files(
    site_example: tuple[Settings, Config, Path],
) -> None:
    """Every secret file the example names is one the hub container gets at /run/secrets."""
    settings, _, secrets = site_example
    hub_secrets = set(compose_file()["services"]["hub"]["secrets"])
    assert settings.gitea is not None and settings.auth.oidc is not None
    named = [
        settings.auth.oidc.client_secret_file,
        settings.gitea.admin_token_file,
        settings.gitea.admin_password_file,
    ]
    for path in named:
        assert path is not None and Path(path).parent == secrets
        assert Path(path).name in hub_secrets
    assert settings.data_root == env_example()["SCITEX_DATA_ROOT"]


def test_site_example_gitea_admin_is_the_one_the_guide_creates(
    site_example: tuple[Settings, Config, Path],
) -> None:
    settings, c, _ = site_example
    assert settings.gitea is not None
    commands = shell_commands(guide_section("3. Docker Compose"))
    create = [cmd for cmd in commands if "gitea admin user create" in cmd]
    token = [cmd for cmd in commands if "generate-access-token" in cmd]
    assert len(create) == 1 and len(token) == 1
    assert f"--username {settings.gitea.admin_user} " in create[0]
    assert "--must-change-password=false" in create[0]
    # The password make-secrets.sh wrote, on standard input; the admin_password_file is it.
    assert create[0].endswith("< secrets/gitea_admin_password")
    assert Path(settings.gitea.admin_password_file or "").name == "gitea_admin_password"
    assert f"--username {settings.gitea.admin_user} " in token[0]
    assert token[0].endswith("> secrets/gitea_admin_token")
    assert Path(settings.gitea.admin_token_file).name == "gitea_admin_token"
    # Provisioning is on: the hub wraps its sign-in hook and hands tokens to servers.
    assert c.Authenticator.enable_auth_state is True
    assert c.Spawner.auth_state_hook.__name__ == "gitea_auth_state_hook"


def test_the_guide_makes_the_gitea_token_before_the_hub_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub refuses to start with make-secrets.sh's empty token, so section 3 starts
    PostgreSQL and Gitea, creates the admin and its token, and only then the rest."""
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", CRYPT_KEY)
    site, secrets = site_example_in(tmp_path)
    (secrets / "gitea_admin_token").write_text("")
    with pytest.raises(SettingsError, match=r"gitea.admin_token_file: .* is empty"):
        apply_gitea(Config(), load_settings(site))

    commands = shell_commands(guide_section("3. Docker Compose"))

    def first(fragment: str) -> int:
        return next(i for i, cmd in enumerate(commands) if fragment in cmd)

    assert first("make-secrets.sh") < first("up -d postgres gitea")
    assert first("up -d postgres gitea") < first("gitea admin user create")
    assert first("gitea admin user create") < first("generate-access-token")
    assert first("generate-access-token") < first("up -d --build")
    compose_commands = [cmd for cmd in commands if cmd.startswith("docker-compose")]
    assert compose_commands
    assert all(
        cmd.startswith("docker-compose -p scitex -f docker-compose.prod.yml ")
        for cmd in compose_commands
    )


def test_the_guide_runs_upgrade_db_through_the_entrypoint() -> None:
    upgrades = guide_section("8. Upgrades")
    assert "docker-compose -p scitex -f docker-compose.prod.yml run --rm hub upgrade-db" in upgrades
    entrypoint = (DEPLOY / "hub" / "entrypoint.sh").read_text()
    assert "upgrade-db)" in entrypoint
    for variable in ("PGPASSFILE", "JUPYTERHUB_CRYPT_KEY"):
        assert f"export {variable}" in entrypoint or re.search(
            rf"export [A-Z_ ]*\b{variable}\b", entrypoint
        )
    # Bare metal: the unit's environment file first.
    assert ". /etc/scitex/secrets/hub.env; exec /opt/scitex-hub/bin/scitex-hub upgrade-db" in (
        upgrades
    )


# ---- deploy/baremetal/scitex.yaml.template, as install.sh renders it ----------------------


def render_template(text: str, values: dict[str, str]) -> str:
    """install.sh's ``render``: every ``@NAME@`` replaced, an unknown one an error."""
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)


def test_baremetal_template_renders_into_a_working_site_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    prefix = "/opt/scitex-hub"
    values = {
        "PREFIX": prefix,
        "CONFIG_DIR": "/etc/scitex",
        "STATE_DIR": "/var/lib/scitex",
        "DATA_ROOT": "/shared/scitex/data",
        "DB_URL": "postgresql+psycopg://jupyterhub@127.0.0.1:5432/jupyterhub",
        "PARTITION": "interactive",
        "HUB_ID": "lab01",
        # What install.sh writes for --slurm-conf, and without it.
        "SLURM_CONF_LINE": '  conf: "/etc/slurm/slurm.conf"',
    }
    install = (DEPLOY / "baremetal" / "install.sh").read_text()
    for name in values:
        assert f"{name}=${name}" in install, f"install.sh passes {name} to render"
    site = tmp_path / "scitex.yaml"
    site.write_text(render_template(BAREMETAL_TEMPLATE.read_text(), values))
    settings = load_settings(site)
    c = Config()
    apply_all(c, settings)
    assert c.JupyterHub.db_url == values["DB_URL"]
    assert c.JupyterHub.cookie_secret_file == "/var/lib/scitex/hub/jupyterhub_cookie_secret"
    assert c.ConfigurableHTTPProxy.command == [f"{prefix}/bin/configurable-http-proxy"]
    assert c.SciTeXSpawner.notebook_python == f"{prefix}/venv/bin/python"
    assert c.SciTeXSpawner.container_runtime == "none"
    assert c.SciTeXSpawner.data_root == values["DATA_ROOT"]
    assert c.SciTeXSpawner.hub_id == "lab01"
    assert c.SciTeXSpawner.profiles["default"].partitions == ("interactive",)
    assert c.SlurmClient.slurm_conf == "/etc/slurm/slurm.conf"
    assert c.JupyterHub.authenticator_class.endswith("SciTeXPAMAuthenticator")
    # install.sh makes the venv with python3 -m venv $PREFIX/venv.
    assert re.search(r'-m venv "?\$PREFIX/venv', install)

    values["SLURM_CONF_LINE"] = "  # conf: /etc/slurm/slurm.conf"
    site.write_text(render_template(BAREMETAL_TEMPLATE.read_text(), values))
    assert load_settings(site).slurm.conf is None


# ---- deploy/hub/compose.env.example against the Compose file --------------------------------


def test_env_example_sets_every_variable_compose_requires() -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))
    env = env_example()
    assert required, "the Compose file requires some variables"
    assert required <= {name for name, value in env.items() if value}
    assert env["COMPOSE_PROJECT_NAME"] == "scitex"
    assert all(re.match(r"(SCITEX|SLURM|MUNGE|COMPOSE)_", name) for name in env), env
    # The whole file interpolates with it, as Compose would.
    from tests.hub.test_compose import interpolate

    resolved = interpolate(compose_file(), env)
    assert resolved["services"]["hub"]["environment"]["SCITEX_CONFIG"]


def test_env_example_names_exactly_the_variables_compose_reads() -> None:
    """Every ``${VAR}`` of the production file is in the example (set, or a commented
    default), and nothing else is: a variable no Compose file reads misleads an admin."""
    read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    named = set(re.findall(r"^(?:# ?)?([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    assert read <= named, read - named
    assert named - read == {"COMPOSE_PROJECT_NAME"}
    assert "SCITEX_HUB_API_BIND" not in ENV_EXAMPLE.read_text()


# ---- the host-network layout: the site file, .env and the Compose file agree -----------------


def host_port(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port}"


def test_site_example_fits_the_host_network_layout(
    site_example: tuple[Settings, Config, Path],
) -> None:
    """The hub and nginx on the host's network, PostgreSQL and Gitea published on its
    loopback: each address in the site file is one the Compose file serves."""
    settings, _, _ = site_example
    env = env_example()
    from tests.hub.test_compose import interpolate

    services = interpolate(compose_file(), env)["services"]
    nginx = services["nginx"]["environment"]
    hub = settings.hub
    assert services["hub"]["network_mode"] == services["nginx"]["network_mode"] == "host"
    # The proxy: nginx's upstream, on loopback; its API too.
    assert host_port(hub.bind_url) == nginx["SCITEX_HUB_UPSTREAM"] == "127.0.0.1:8000"
    assert urlparse(hub.proxy_api_url).hostname == "127.0.0.1"
    # The hub's API: bound by the hub itself on the cluster-facing address (no published
    # port), the one the compute nodes connect to; the scitex service listens there too.
    bind, connect = urlparse(hub.hub_bind_url), urlparse(hub.hub_connect_url or "")
    assert bind.hostname not in ("0.0.0.0", "127.0.0.1", "localhost", "::", None)
    assert (bind.hostname, bind.port) == (connect.hostname, connect.port)
    assert "ports" not in services["hub"]
    assert urlparse(settings.service_listen_url()).hostname == bind.hostname
    # PostgreSQL and Gitea: published where .env says, loopback only; the hub's database
    # URL and nginx's /git/ upstream are those addresses.
    assert env["SCITEX_POSTGRES_BIND"] == "127.0.0.1:5432"
    assert env["SCITEX_GITEA_BIND"] == "127.0.0.1:3000"
    assert services["postgres"]["ports"] == [f"{env['SCITEX_POSTGRES_BIND']}:5432"]
    assert services["gitea"]["ports"] == [f"{env['SCITEX_GITEA_BIND']}:3000"]
    assert hub.db_url == f"postgresql+psycopg://jupyterhub@{env['SCITEX_POSTGRES_BIND']}/jupyterhub"
    assert nginx["SCITEX_GITEA_UPSTREAM"] == env["SCITEX_GITEA_BIND"]
    # Gitea and the OIDC callback as nginx serves them.
    assert settings.gitea is not None and settings.auth.oidc is not None
    assert settings.gitea.url == f"{env['SCITEX_PUBLIC_URL']}/git"
    assert settings.auth.oidc.callback_url == f"{env['SCITEX_PUBLIC_URL']}/hub/oauth_callback"


def compose_site_module() -> Any:
    spec = importlib.util.spec_from_file_location("compose_site", COMPOSE_SITE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_site_edits_give_a_working_site_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/dev/compose_site.py (``make demo-compose``, tests/e2e/test_compose.py) edits
    the examples as an admin would; the result loads, and agrees with
    docker-compose.local.yml's ports."""
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", CRYPT_KEY)
    compose_site = compose_site_module()
    site, _ = site_example_in(tmp_path)
    data = compose_site.edit_site(yaml.safe_load(site.read_text()), "/srv/demo/data", "/etc/sl")
    site.write_text(yaml.safe_dump(data, sort_keys=False))
    settings = load_settings(site)
    apply_all(Config(), settings)
    env_text = compose_site.edit_env(ENV_EXAMPLE.read_text(), "/srv/demo/data", "/etc/sl")
    env = {}
    for line in env_text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value
    # Only lines the example has are edited; none is added.
    assert set(env) == set(env_example())
    assert env["SCITEX_DATA_ROOT"] == settings.data_root == "/srv/demo/data"
    assert env["SCITEX_POSTGRES_BIND"] == compose_site.POSTGRES_BIND
    assert settings.hub.db_url == (
        f"postgresql+psycopg://jupyterhub@{env['SCITEX_POSTGRES_BIND']}/jupyterhub"
    )
    local = yaml.safe_load(COMPOSE_LOCAL.read_text())["services"]
    nginx = local["nginx"]["environment"]
    assert host_port(settings.hub.bind_url) == nginx["SCITEX_HUB_UPSTREAM"]
    assert nginx["SCITEX_GITEA_UPSTREAM"] == env["SCITEX_GITEA_BIND"]
    assert settings.gitea is not None
    assert host_port(settings.gitea.url) == env["SCITEX_GITEA_BIND"]
    health = local["hub"]["healthcheck"]["test"][-1]
    assert health == f"{settings.hub.hub_bind_url}/hub/health"
    assert settings.service_listen_url() == f"http://127.0.0.1:{compose_site.SERVICE_PORT}"
    # A different example is refused rather than edited into a file that points nowhere.
    example = yaml.safe_load(SITE_EXAMPLE.read_text())
    example["hub"]["db_url"] = "postgresql+psycopg://jupyterhub@postgres:5432/jupyterhub"
    with pytest.raises(SystemExit, match=re.escape("no @127.0.0.1:5432/")):
        compose_site.edit_site(example, "/srv/demo/data", "/etc/sl")


# ---- make-secrets.sh --------------------------------------------------------------------------


def test_make_secrets_keeps_what_the_admin_filled_in(tmp_path: Path) -> None:
    """Beyond test_compose.py's run: a directory that existed with looser modes is made
    private, every Compose secret but the TLS pair is made, and a token and client secret
    filled in after the first run survive a second."""
    if not shutil.which("openssl"):
        missing("openssl", "not installed")
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    first = subprocess.run(
        ["bash", str(MAKE_SECRETS), str(directory)], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    made = {p.name for p in directory.iterdir()}
    assert made == set(compose_file()["secrets"]) - {"tls_cert", "tls_key"}
    for name in made:
        # Owner read-write; at most group read (a secret a service reads as its own
        # user may be shared with its group); never anything for others.
        mode = stat.S_IMODE((directory / name).stat().st_mode)
        assert mode & 0o600 == 0o600 and mode & 0o137 == 0, (name, oct(mode))
    assert "to fill in: gitea_admin_token oidc_client_secret" in first.stdout

    # Section 3 of the guide: the token from Gitea, the client secret from the provider.
    (directory / "gitea_admin_token").write_text("token-from-gitea\n")
    (directory / "oidc_client_secret").write_text("from-the-idp\n")
    before = {p.name: p.read_text() for p in directory.iterdir()}
    again = subprocess.run(
        ["bash", str(MAKE_SECRETS), str(directory)], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_text() for p in directory.iterdir()} == before
    assert "to fill in" not in again.stdout
    assert "token-from-gitea" not in again.stdout


# ---- the guide's sudo rules against the code -------------------------------------------------

CODE_DIRS = ("scitex_hub", "scitex_spawner", "scitex_service")


def sudoers_rules() -> dict[str, str]:
    """The guide's ``SCITEX_AS_USER`` commands: basename -> argument pattern."""
    block = re.search(r"```sudoers\n(.*?)```", GUIDE.read_text(), re.S)
    assert block, "the guide has a sudoers block"
    text = re.sub(r"\\\n\s*", " ", block.group(1))
    alias = re.search(r"^Cmnd_Alias SCITEX_AS_USER = (.*)$", text, re.M)
    assert alias
    rules = {}
    for entry in alias.group(1).split(","):
        path, _, args = entry.strip().partition(" ")
        assert path.startswith("/"), f"sudoers needs full paths: {entry!r}"
        rules[Path(path).name] = args.strip()
    assert re.search(r"^Defaults:scitex-hub .*!env_reset", text, re.M)
    assert re.search(r"^scitex-hub ALL = \(%scitex-users\) NOPASSWD: SCITEX_AS_USER$", text, re.M)
    return rules


def commands_through_the_prefix() -> dict[str, set[str]]:
    """Every call in our code that runs something through the run-as-user prefix:
    ``SlurmClient.submit``/``cancel`` with ``prefix=``, and the service's ``run_as_user``
    with a literal argv. Returns caller kind -> the files it is in."""
    found: dict[str, set[str]] = {}
    for directory in CODE_DIRS:
        for path in sorted((REPO / directory).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                name = node.func.attr
                if any(k.arg == "prefix" for k in node.keywords):
                    assert name in ("submit", "cancel"), f"{path}: {name}(prefix=...)"
                    found.setdefault(name, set()).add(path.name)
                elif name == "run_as_user" and node.args:
                    argv = node.args[1]
                    assert isinstance(argv, ast.List), f"{path}: run_as_user with a literal argv"
                    first = argv.elts[0]
                    assert isinstance(first, ast.Constant) and isinstance(first.value, str)
                    found.setdefault(f"run_as_user:{first.value}", set()).add(path.name)
    return found


async def test_sudo_rules_cover_every_command_run_as_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = commands_through_the_prefix()
    assert set(found) == {"submit", "cancel", "run_as_user:mkdir"}, found
    assert "spawner.py" in found["submit"] and "submission.py" in found["submit"]
    assert {"spawner.py", "watcher.py", "submission.py"} <= found["cancel"]

    # The argv each really runs, with the non-root default prefix.
    ran: list[list[str]] = []

    async def record(self: SlurmClient, argv: list[str], **kwargs: Any) -> str:
        ran.append(list(argv))
        return "4242\n"

    monkeypatch.setattr(SlurmClient, "run", record)
    client = SlurmClient(run_as_prefix=["sudo", "-n", "-u", "{username}", "--"])
    prefix = client.as_user("alice")
    await client.submit("#!/bin/sh\n", prefix=prefix, env={})
    await client.cancel("4242", prefix=prefix)
    await client.cancel("4242_3", prefix=prefix)
    submission = (REPO / "scitex_service" / "jobs" / "submission.py").read_text()
    mkdir = re.search(r'run_as_user\(user, \[("mkdir".*?)\], env\)', submission)
    assert mkdir
    literal = ast.literal_eval(f"[{mkdir.group(1).replace('log_dir', repr('LOG'))}]")
    log_dir = "/shared/scitex/data/example-u/alice/projects/p1/.scitex/jobs"
    ran.append([*prefix, *(log_dir if a == "LOG" else a for a in literal)])

    rules = sudoers_rules()
    assert set(rules) == {"sbatch", "scancel", "mkdir"}
    for argv in ran:
        assert argv[:5] == ["sudo", "-n", "-u", "alice", "--"]
        command, args = Path(argv[5]).name, " ".join(argv[6:])
        assert command in rules, f"no sudo rule for {command}"
        assert fnmatch.fnmatchcase(args, rules[command]), (argv, rules[command])
    # The rules are no wider than needed: a submission with other options is refused.
    assert not fnmatch.fnmatchcase("--uid=0 --parsable", rules["sbatch"])
    assert not fnmatch.fnmatchcase("-p -- /etc/x", rules["mkdir"])


def test_sudoers_block_is_valid_for_visudo(tmp_path: Path) -> None:
    visudo = shutil.which("visudo", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not visudo:
        missing("visudo", "sudo is not installed (apt-get install sudo)")
    assert visudo
    block = re.search(r"```sudoers\n(.*?)```", GUIDE.read_text(), re.S)
    assert block
    snippet = tmp_path / "scitex-hub"
    snippet.write_text(block.group(1))
    snippet.chmod(0o440)
    out = subprocess.run([visudo, "-cf", str(snippet)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_hub_health_check_follows_the_site_file() -> None:
    from jupyterhub_config.health import health_url

    assert health_url("http://10.0.0.10:8081", "/") == "http://10.0.0.10:8081/hub/health"
    assert health_url("http://0.0.0.0:8081", "/") == "http://127.0.0.1:8081/hub/health"
    assert health_url("http://[::]:8081", "/jh/") == "http://[::1]:8081/jh/hub/health"
    hub = yaml.safe_load(SITE_EXAMPLE.read_text())["hub"]
    assert health_url(hub["hub_bind_url"], hub.get("base_url", "/")) == (
        "http://10.0.0.10:8081/hub/health"
    )
    # The Compose file's check asks there, not at a port of its own.
    hub_service = yaml.safe_load(COMPOSE.read_text())["services"]["hub"]
    assert hub_service["healthcheck"]["test"] == [
        "CMD",
        "/opt/scitex/venv/bin/python",
        "-m",
        "jupyterhub_config.health",
    ]
