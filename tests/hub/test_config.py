"""The site file: validation names the key; apply_* functions tested on a Config()."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from jupyterhub_config.apply import apply_all, apply_auth, apply_hub, apply_spawner
from jupyterhub_config.settings import (
    DEFAULT_CONFIG,
    SettingsError,
    expand_env,
    load_settings,
    parse_settings,
)
from scitex_hub.institutions import USERNAME_PATTERN
from scitex_hub.profiles import Profile

DEMO: dict[str, Any] = yaml.safe_load(
    expand_env(
        DEFAULT_CONFIG.read_text(), {"SCITEX_DEV_DIR": "/srv/dev", "SCITEX_PREFIX": "/opt/x"}
    )
)


def settings_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEMO)
    data.update(changes)
    return data


def test_demo_file_is_valid() -> None:
    settings = parse_settings(DEMO)
    assert settings.data_root == "/srv/dev/data"
    assert set(settings.institutions) == {"demo-u", "other-u"}
    assert settings.institutions["demo-u"].users == ("alice", "bob")
    assert settings.institutions["other-u"].storage_quota == 5 * 1024**3


def test_load_settings_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scitex.yaml"
    path.write_text(DEFAULT_CONFIG.read_text())
    monkeypatch.setenv("SCITEX_DEV_DIR", "/elsewhere")
    monkeypatch.setenv("SCITEX_CONFIG", str(path))
    assert load_settings().data_root == "/elsewhere/data"


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"data_root": "relative/path"}, "scitex.yaml: data_root: must be an absolute path"),
        ({"surprise": 1}, "scitex.yaml: surprise: Extra inputs are not permitted"),
        ({"auth": {"kind": "kerberos"}}, "scitex.yaml: auth.kind: Input should be"),
        ({"auth": {"kind": "ldap"}}, "auth.kind is 'ldap' but there is no auth.ldap block"),
        ({"institutions": {}}, "scitex.yaml: institutions: Dictionary should have at least 1 item"),
        (
            {"institutions": {"Bad Id": {"name": "X"}}},
            "scitex.yaml: institutions: institution id 'Bad Id'",
        ),
        (
            {"institutions": {"x": {"name": "X", "profiles": ["gpu"]}}},
            "institutions.x.profiles: unknown profile 'gpu'",
        ),
        (
            {"institutions": {"x": {"name": "X", "storage_quota": "lots"}}},
            "scitex.yaml: institutions.x.storage_quota: 'lots' is not a size",
        ),
        (
            {
                "profiles": {
                    "small": {
                        "display_name": "S",
                        "partition": "debug",
                        "cpus": {"default": 8, "max": 2},
                        "memory": "1GiB",
                        "runtime": 60,
                    }
                }
            },
            "scitex.yaml: profiles.small.cpus: default 8 is outside [1, 2]",
        ),
        (
            {
                "profiles": {
                    "small": {
                        "display_name": "S",
                        "partition": "a b",
                        "cpus": 1,
                        "memory": "1GiB",
                        "runtime": 60,
                    }
                }
            },
            "scitex.yaml: profiles.small.partitions: partition 'a b' is not a valid SLURM name",
        ),
        (
            {"notebook": {"args": ["--ServerApp.ip=0.0.0.0\n--foo"]}},
            "is not a --Class.trait=value option",
        ),
        ({"notebook": {"args": ["rm -rf /"]}}, "scitex.yaml: notebook.args: 'rm -rf /' is not a"),
        (
            {"slurm": {"poll_interval": 0}},
            "scitex.yaml: slurm.poll_interval: Input should be greater than 0",
        ),
    ],
)
def test_errors_name_the_key(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(SettingsError) as e:
        parse_settings(settings_with(**change))
    assert expected in str(e.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read the site file"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("hub: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(bad)


def test_unset_variable_is_an_error() -> None:
    with pytest.raises(SettingsError, match=r"\$\{NOPE\}"):
        expand_env("data_root: ${NOPE}", {})
    assert expand_env("a: ${X:-/d}", {}) == "a: /d"


def test_apply_hub() -> None:
    c = Config()
    apply_hub(c, parse_settings(DEMO))
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.db_url == "sqlite:////srv/dev/hub/jupyterhub.sqlite"
    assert c.JupyterHub.cookie_secret_file == "/srv/dev/hub/jupyterhub_cookie_secret"
    assert c.ConfigurableHTTPProxy.command == ["/opt/x/bin/configurable-http-proxy"]
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    # Jobs outlive the hub; a restart re-adopts them.
    assert c.JupyterHub.cleanup_servers is False


def test_apply_auth_pam() -> None:
    c = Config()
    apply_auth(c, parse_settings(DEMO))
    assert c.JupyterHub.authenticator_class == (
        "scitex_spawner.authenticators.SciTeXPAMAuthenticator"
    )
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.manage_groups is True
    assert c.Authenticator.username_pattern == USERNAME_PATTERN
    assert callable(c.Authenticator.post_auth_hook)


def test_apply_auth_ldap_and_oidc(tmp_path: Path) -> None:
    c = Config()
    ldap = {
        "kind": "ldap",
        "ldap": {
            "server_address": "ldap.example.edu",
            "tls_strategy": "on_connect",
            "bind_dn_template": ["uid={username},ou=people,dc=example,dc=edu"],
        },
    }
    apply_auth(c, parse_settings(settings_with(auth=ldap)))
    assert c.JupyterHub.authenticator_class == (
        "scitex_spawner.authenticators.SciTeXLDAPAuthenticator"
    )
    assert c.LDAPAuthenticator.server_address == "ldap.example.edu"
    assert c.LDAPAuthenticator.bind_dn_template == ["uid={username},ou=people,dc=example,dc=edu"]
    assert c.LDAPAuthenticator.auth_state_attributes == ["mail"]

    (tmp_path / "oidc-secret").write_text("secret\n")
    c = Config()
    oidc = {
        "kind": "oidc",
        "oidc": {
            "issuer": "https://id.example.edu/",
            "client_id": "scitex",
            "client_secret_file": str(tmp_path / "oidc-secret"),
            "callback_url": "https://hub.example.edu/hub/oauth_callback",
        },
    }
    apply_auth(c, parse_settings(settings_with(auth=oidc)))
    assert c.JupyterHub.authenticator_class == (
        "scitex_spawner.authenticators.SciTeXOIDCAuthenticator"
    )
    assert c.GenericOAuthenticator.authorize_url == "https://id.example.edu/auth"
    assert c.GenericOAuthenticator.token_url == "https://id.example.edu/token"


def test_apply_spawner() -> None:
    c = Config()
    apply_spawner(c, parse_settings(DEMO))
    assert c.JupyterHub.spawner_class == "scitex"
    assert c.SciTeXSpawner.data_root == "/srv/dev/data"
    assert isinstance(c.SciTeXSpawner.profiles["small"], Profile)
    assert c.SciTeXSpawner.notebook_python == "/opt/x/venv/bin/python"
    assert c.SciTeXSpawner.hub_id == "demo"
    assert c.SlurmClient.slurm_conf == "/srv/dev/slurm/slurm.conf"


def test_apply_all_touches_only_c() -> None:
    settings = parse_settings(DEMO)
    before = settings.model_dump()
    apply_all(Config(), settings)
    assert settings.model_dump() == before
