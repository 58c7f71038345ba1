"""The edits a site makes to the shipped examples, for the Compose stack on this machine.

``make demo-compose`` and tests/e2e/test_compose.py copy deploy/hub/compose.env.example and
deploy/hub/scitex.yaml.example as docs/admin-guide.md section 3 says, then make the edits an
admin makes with an editor (the ones the guide names): this host's names, addresses and
paths, ports beside the other tests' services (the .env binds and the site file's URLs that
go with them), PAM sign-in with the demo accounts (a site uses OIDC or LDAP), the dev
cluster's partitions and the demo's notebook image. Every other key stays as the example has
it.

    python3 compose_site.py env DEPLOY_DIR DATA_ROOT SLURM_CONF_DIR
    python3 compose_site.py site DEPLOY_DIR DATA_ROOT SLURM_CONF_DIR
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

PUBLIC_URL = "https://127.0.0.1:8443"
# Beside the other tests' services (8000/8001/8081/8090 are the demo hub's, 5433 the dev
# PostgreSQL's).
PROXY_PORT, HUB_API_PORT, PROXY_API_PORT, SERVICE_PORT = 18000, 18081, 18001, 18090
POSTGRES_BIND, GITEA_BIND = "127.0.0.1:15432", "127.0.0.1:13000"


def edit_env(text: str, data_root: str, slurm_conf_dir: str) -> str:
    """compose.env.example with this host's values; unknown keys are kept as they are."""
    values = {
        "SCITEX_SERVER_NAME": "localhost",
        "SCITEX_PUBLIC_URL": PUBLIC_URL,
        "SCITEX_DATA_ROOT": data_root,
        "SLURM_CONF_DIR": slurm_conf_dir,
        "MUNGE_SOCKET_DIR": "/run/munge",
        "SCITEX_POSTGRES_BIND": POSTGRES_BIND,
        "SCITEX_GITEA_BIND": GITEA_BIND,
    }
    out = []
    for line in text.splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=", line)
        if match and match.group(1) in values:
            line = f"{match.group(1)}={values.pop(match.group(1))}"
        out.append(line)
    out += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(out) + "\n"


def edit_site(data: dict[str, Any], data_root: str, slurm_conf_dir: str) -> dict[str, Any]:
    """scitex.yaml.example with this host's values."""
    dev_dir = os.environ.get("SCITEX_DEV_DIR", "/var/lib/scitex-dev")
    prefix = os.environ.get("SCITEX_PREFIX", "/opt/scitex")
    hub = data["hub"]
    # nginx's upstream in docker-compose.local.yml.
    hub["bind_url"] = f"http://127.0.0.1:{PROXY_PORT}"
    # The cluster-facing address: the compute node is this host.
    hub["hub_bind_url"] = f"http://127.0.0.1:{HUB_API_PORT}"
    hub["hub_connect_url"] = f"http://127.0.0.1:{HUB_API_PORT}"
    hub["proxy_api_url"] = f"http://127.0.0.1:{PROXY_API_PORT}"
    # The port of SCITEX_POSTGRES_BIND, as the guide says to keep them together.
    example_db = "@127.0.0.1:5432/"
    if example_db not in hub["db_url"]:
        raise SystemExit(f"hub.db_url of the example has no {example_db}: {hub['db_url']}")
    hub["db_url"] = hub["db_url"].replace(example_db, f"@{POSTGRES_BIND}/")
    hub["admin_users"] = ["admin"]
    # The scitex service's port (8090 by default, the demo hub's).
    data["service"] = {"url": f"http://127.0.0.1:{SERVICE_PORT}"}
    data["auth"] = {"kind": "pam", "min_uid": 1000, "denied_users": ["root", "nobody"]}
    data["data_root"] = data_root
    data["institutions"] = {
        "demo-u": {
            "name": "Demo University",
            "users": ["alice", "bob"],
            "storage_quota": "10GiB",
            "profiles": ["small"],
        },
        "other-u": {
            "name": "Other University",
            "users": ["carol"],
            "storage_quota": "5GiB",
            "profiles": ["small"],
        },
    }
    small = data["profiles"]["small"]
    small.update(partition="debug", memory={"default": "512MiB", "max": "2GiB"})
    small["cpus"] = {"default": 1, "max": 2}
    data["profiles"] = {"small": small}
    data["slurm"]["conf"] = f"{slurm_conf_dir}/slurm.conf"
    data["container"] = {
        "runtime": "auto",
        "image": f"{dev_dir}/images/scitex-test-sandbox",
        "extra_binds": [
            "/usr:/usr:ro",
            f"{prefix}/venv:{prefix}/venv:ro",
            "/etc/alternatives:/etc/alternatives:ro",
        ],
    }
    data["notebook"] = {
        "python": f"{prefix}/venv/bin/python",
        "args": ["--LanguageServerManager.autodetect=False"],
    }
    # Gitea's published port, not the public URL's /git: the hub's image does not
    # trust the demo's test CA (a site's certificate is a real one).
    data["gitea"]["url"] = f"http://{GITEA_BIND}"
    return data


def main(argv: list[str]) -> None:
    what, deploy, data_root, slurm_conf_dir = argv
    deploy_dir = Path(deploy)
    if what == "env":
        example = (deploy_dir / "hub" / "compose.env.example").read_text()
        (deploy_dir / ".env").write_text(edit_env(example, data_root, slurm_conf_dir))
    elif what == "site":
        example = yaml.safe_load((deploy_dir / "hub" / "scitex.yaml.example").read_text())
        site = edit_site(example, data_root, slurm_conf_dir)
        (deploy_dir / "hub" / "scitex.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
