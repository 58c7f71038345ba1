"""Generate docs/configuration.md from the code, so the reference cannot drift.

Two parts:
- every key of the site file ``scitex.yaml``, walked from the pydantic schema
  (``jupyterhub_config.settings.Settings``): type, default, description;
- every configurable traitlet of ``SciTeXSpawner``, ``SlurmClient``,
  ``QueueWatcher``, ``SpawnRecorder``, ``NameRules`` and the notebook-side
  ``SciTeXExtension``: the
  ``class_traits(config=True)`` that our own code defines, with type, default
  and help.

A key's description is its ``Field(description=...)`` when the schema has one,
else the entry in :data:`DESCRIPTIONS` below. A key with neither, or an entry
for a key that no longer exists, is an error: a new key cannot land undocumented.

Usage:
    python tools/gen_config_docs.py            # write docs/configuration.md
    python tools/gen_config_docs.py --check    # exit 1 if it is out of date
    python tools/gen_config_docs.py --stdout   # print it
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # Run from anywhere: document the source tree, not an installed copy.
    sys.path.insert(0, str(REPO))

from pydantic import BaseModel  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402
from traitlets import HasTraits, TraitType  # noqa: E402

OUTPUT = REPO / "docs" / "configuration.md"

# Descriptions of site-file keys whose schema field has no description yet.
# ``<id>`` stands for an institution id, ``<name>`` for a profile name.
DESCRIPTIONS: dict[str, str] = {
    "hub": "The hub's addresses, database and admins.",
    "hub.bind_url": "Public URL of configurable-http-proxy (what nginx forwards to). "
    "Behind nginx keep it on 127.0.0.1 (or the container network).",
    "hub.hub_bind_url": "Where the hub process itself listens (its REST API and pages, "
    "reached through the proxy and by the notebook servers).",
    "hub.hub_connect_url": "The hub's URL as the notebook servers on the compute nodes "
    "reach it, e.g. `http://login01.cluster:8081`; needed whenever `hub_bind_url` "
    "is not reachable from the nodes (always on a real cluster). "
    "Unset: the servers use `hub_bind_url`.",
    "hub.proxy_api_url": "configurable-http-proxy's REST API, which the hub uses to add "
    "and remove routes. Keep it on 127.0.0.1 or a private network: its token is "
    "`CONFIGPROXY_AUTH_TOKEN`.",
    "hub.db_url": "JupyterHub's database (SQLAlchemy URL). SQLite for one machine; "
    "`postgresql+psycopg://USER@HOST:5432/DB` in production, with the password in a "
    "0600 pgpass file named by `PGPASSFILE` (never in this file).",
    "hub.state_dir": "Directory of the hub's own state: the cookie secret "
    "(`jupyterhub_cookie_secret`) and the pid files of the hub and the proxy.",
    "hub.admin_users": "Usernames that are JupyterHub admins (all users, all servers).",
    "hub.proxy_command": "The configurable-http-proxy command (argv) the hub starts. "
    "Not used when the proxy runs as its own service "
    "(`--ConfigurableHTTPProxy.should_start=False`, as the bare-metal units do).",
    "hub.base_url": "URL prefix of the whole hub, e.g. `/uni-a/` when several hubs share "
    "one host name behind nginx.",
    "auth": "How people sign in: `pam` (Unix accounts, the demo), `ldap` or `oidc`, "
    "each with its own block.",
    "auth.kind": "Which authenticator: `pam`, `ldap` (needs `auth.ldap`) or `oidc` "
    "(needs `auth.oidc`).",
    "auth.ldap": "LDAP settings (jupyterhub-ldapauthenticator); required when "
    "`auth.kind` is `ldap`.",
    "auth.ldap.server_address": "Host name of the LDAP server.",
    "auth.ldap.server_port": "Port of the LDAP server (389; 636 for LDAPS).",
    "auth.ldap.tls_strategy": "`before_bind` (StartTLS), `on_connect` (LDAPS) or "
    "`insecure` (plain LDAP: only for a directory on the same host, or tests).",
    "auth.ldap.bind_dn_template": "DN templates tried in turn to bind as the user, with "
    "`{username}`, e.g. `uid={username},ou=people,dc=example,dc=edu`.",
    "auth.ldap.lookup_dn": "Search the user's DN first (with `user_search_base` and "
    "`user_attribute`) instead of building it from a template.",
    "auth.ldap.user_search_base": "Base DN where users are searched (`lookup_dn`).",
    "auth.ldap.user_attribute": "Attribute that holds the username (`uid`, or "
    "`sAMAccountName` on Active Directory).",
    "auth.ldap.lookup_dn_search_user": "DN of a service account for the search, when the "
    "directory does not allow anonymous searches.",
    "auth.ldap.lookup_dn_search_password_file": "File holding that account's password "
    "(absolute path, mode 0600): the password never appears in this file.",
    "auth.ldap.group_search_base": "Base DN of groups: a bare group name in "
    "`institutions.<id>.ldap_groups` means `cn=<name>,<group_search_base>`.",
    "auth.ldap.group_search_filter": "LDAP filter that finds a user's groups "
    "(ldapauthenticator's `group_search_filter`).",
    "auth.ldap.member_of": "Also read the user's `memberOf` attribute for groups (Active "
    "Directory, OpenLDAP's memberof overlay). Off: a directory without that attribute "
    "would fail the sign-in.",
    "auth.oidc": "OpenID Connect settings (oauthenticator's GenericOAuthenticator); "
    "required when `auth.kind` is `oidc`.",
    "auth.oidc.issuer": "The provider's issuer URL.",
    "auth.oidc.client_id": "This hub's client id at the provider.",
    "auth.oidc.client_secret_file": "File holding the client secret (absolute path, mode 0600).",
    "auth.oidc.callback_url": "`https://<hub>/hub/oauth_callback`, registered at the provider.",
    "auth.oidc.authorize_url": "Authorization endpoint. Default `<issuer>/auth`.",
    "auth.oidc.token_url": "Token endpoint. Default `<issuer>/token`.",
    "auth.oidc.userdata_url": "Userinfo endpoint. Default `<issuer>/me`.",
    "auth.oidc.scopes": "Scopes asked for; `email` (for institution domains) and a "
    "`groups` claim (for directory groups) place users in institutions.",
    "auth.oidc.username_claim": "Claim that becomes the username; it must be the user's "
    "Unix account name on the cluster (jobs run as that account).",
    "auth.oidc.login_service": 'Name on the sign-in button ("Sign in with ...").',
    "data_root": "Absolute path of users' data on the shared filesystem: "
    "`<data_root>/<institution>/<user>`, created 0700 and owned by the user, bound at "
    "`/data` in the container. Must be the same path on the hub and on every compute node.",
    "institutions": "Institutions (tenants), by id (lowercase letters, digits, `-`: it "
    "becomes a directory and a JupyterHub group). At least one.",
    "institutions.<id>.name": "Display name.",
    "institutions.<id>.domains": "Email domains (OIDC `email` claim) that place a user here.",
    "institutions.<id>.ldap_groups": "Directory groups (LDAP, or an OIDC `groups` claim) "
    "that place a user here: a group DN or a bare name under `auth.ldap.group_search_base`.",
    "institutions.<id>.users": "Usernames placed here explicitly (wins over groups and domains).",
    "institutions.<id>.admins": "Institution admins: they manage this institution's users "
    "only (JupyterHub RBAC).",
    "institutions.<id>.storage_quota": "Storage quota per user, as a size (`100GiB`) or bytes.",
    "institutions.<id>.profiles": "Names of the profiles this institution's users may "
    "choose; each must exist under `profiles`.",
    "institutions.<id>.slurm_account": "SLURM account (`--account`) of this institution's jobs.",
    "institutions.<id>.gitea_org": "Gitea organisation of this institution's projects.",
    "profiles": "Resource profiles users choose from, by name (lowercase letters, digits, "
    "`-`, `_`). At least one.",
    "profiles.<name>.display_name": "What users see in the spawn form.",
    "profiles.<name>.description": "A longer text under the name in the spawn form.",
    "profiles.<name>.partitions": "SLURM partitions to choose from (the first is the "
    "default). `partition: NAME` is the short form for one.",
    "profiles.<name>.cpus": "CPUs (`--cpus-per-task`).",
    "profiles.<name>.memory": "Memory (`--mem`), as a size: `512MiB`, `4GiB`.",
    "profiles.<name>.runtime": "Wall time (`--time`), as `HH:MM:SS` or `D-HH:MM:SS`.",
    "profiles.<name>.gpus": "GPUs (`--gpus=N`: needs `SelectType=select/cons_tres`); the "
    "container gets `--nv` when N > 0.",
    "profiles.<name>.image": "Container image (SIF, absolute path) for this profile; "
    "default `container.image`.",
    "profiles.<name>.constraint": "SLURM node features (`--constraint`), e.g. `a100`.",
    "profiles.<name>.qos": "SLURM QoS (`--qos`).",
    "slurm": "How the hub talks to SLURM.",
    "slurm.conf": "Path of `slurm.conf`, passed as `SLURM_CONF` to every SLURM command "
    "and job. Unset: SLURM's default (`/etc/slurm/slurm.conf`).",
    "slurm.bin_dir": "Directory of `sbatch`, `squeue`, `sacct`, `scancel`. Unset: `PATH`.",
    "slurm.poll_interval": "Seconds between the hub's queue polls: one `squeue` for all "
    "servers, whatever their number.",
    "slurm.queue_wait_timeout": "Seconds a server's job may wait in the queue before the "
    "spawn gives up and cancels it (pending is not a failure).",
    "slurm.startup_timeout": "Seconds from the job running to the notebook server answering.",
    "slurm.submit_prefix": "Command prefix that runs SLURM commands as the user; "
    "`{username}` is replaced. Default: `runuser -u {username} --` when the hub runs "
    "as root, else `sudo -n -u {username} --`.",
    "slurm.hub_id": "Tag in this hub's job comments (`scitex:hub=<hub_id>:...`), so a "
    "restarted hub finds its jobs and several hubs can share a cluster. Unique per hub.",
    "slurm.orphan_grace": "Seconds a job tagged with this hub's `hub_id` may stay in the "
    "queue with no server claiming it before it is cancelled as an orphan (e.g. after a "
    "hub crash during `sbatch`); counted from the hub's start too, so servers re-adopt "
    "their jobs first.",
    "container": "How the notebook server runs inside the job.",
    "container.runtime": "`apptainer` or `singularity` (`exec --cleanenv` of the image, "
    "explicit binds), `auto` (Apptainer where installed, else no container, said in "
    "the log), or `none`.",
    "container.executable": "Absolute path of the `apptainer`/`singularity` command on "
    "the compute nodes. Unset: found on `PATH`.",
    "container.image": "Default image (SIF file or sandbox directory, absolute path) "
    "for profiles without their own.",
    "container.extra_binds": "Extra binds for every server, `SRC[:DST[:ro]]`, e.g. "
    "`/shared/datasets:/datasets:ro`.",
    "container.unsquash": "Pass `--unsquash` (SIF images where users cannot mount them "
    "with FUSE; slower start).",
    "notebook": "The notebook server inside the job.",
    "notebook.python": "The Python that runs the notebook server in the job (inside the "
    "image when there is one); it needs jupyterhub, jupyter_server and "
    "scitex_server_ext. Default: the hub's own Python.",
    "notebook.default_url": "Page a new server opens (`/lab`).",
    "notebook.args": "Extra notebook-server options, each `--Class.trait=value`.",
    "gitea": "The site's Gitea (projects). Unset: projects stay local git repositories.",
    "gitea.url": "Gitea's URL as the hub and the notebook servers reach it.",
    "gitea.admin_token_file": "File with a Gitea admin token (mode 0600), used by the hub "
    "to create users, organisations and per-user tokens.",
}

# Integer fields that the schema parses from a size (``100GiB``).
SIZE_KEYS = {"institutions.<id>.storage_quota"}

# Defaults that are computed on the machine at start-up: shown as words, so the
# generated file is the same on every machine.
COMPUTED_DEFAULTS = {
    "notebook.python": "the hub's Python",
}

TRAIT_CLASSES = (
    ("scitex_spawner.spawner", "SciTeXSpawner", "c.SciTeXSpawner", "the hub"),
    ("scitex_hub.slurm", "SlurmClient", "c.SlurmClient", "the hub"),
    ("scitex_hub.slurm", "QueueWatcher", "c.QueueWatcher", "the hub"),
    ("scitex_spawner.records", "SpawnRecorder", "c.SpawnRecorder", "the hub"),
    ("scitex_spawner.authenticators", "NameRules", "c.NameRules", "the hub's authenticators"),
    (
        "scitex_service.app",
        "SciTeXService",
        "c.SciTeXService",
        "the scitex service, written by apply_services",
    ),
    (
        "scitex_service.jobs",
        "ComputeJobs",
        "c.ComputeJobs",
        "the scitex service, written by apply_services",
    ),
    (
        "scitex_service.scanner",
        "UsageScanner",
        "c.UsageScanner",
        "the scitex service, written by apply_services",
    ),
    (
        "scitex_server_ext.app",
        "SciTeXExtension",
        "c.SciTeXExtension",
        "each notebook server, in jupyter_server_config",
    ),
)

OWN_PACKAGES = (
    "scitex_hub",
    "scitex_spawner",
    "scitex_service",
    "scitex_server_ext",
    "jupyterhub_config",
)

HEADER = """\
# Configuration reference

<!-- Generated by tools/gen_config_docs.py from the code: do not edit by hand.
     Regenerate with `python tools/gen_config_docs.py`; tests/hub/test_config_docs.py
     fails when this file is out of date. -->

SciTeX Hub is configured in two layers:

1. **The site file `scitex.yaml`** (path in `$SCITEX_CONFIG`; the demo's is
   `jupyterhub_config/scitex.yaml`, a production install's `/etc/scitex/scitex.yaml`).
   It is validated when the hub starts; an error names the key and the reason and the
   hub does not start. `${NAME}` and `${NAME:-default}` are read from the environment.
   Secrets are never values in this file: keys ending in `_file` name a file (mode 0600).
2. **Traitlets.** On the hub, `jupyterhub_config/apply.py` sets them from the site
   file; one the site file does not cover goes on the hub's command line
   (`--Class.trait=value`, e.g. appended to `scitex-hub` in its unit). In the notebook
   servers, `c.SciTeXExtension.*` goes in a `jupyter_server_config` file of the image.
   JupyterHub's own traitlets (`c.JupyterHub.*`, `c.Spawner.*`, authenticators) are
   documented by JupyterHub.

Secrets and run-time settings that come from the environment, not from either layer:

"""

ENVIRONMENT = (
    ("SCITEX_CONFIG", "the hub", "path of the site file"),
    (
        "JUPYTERHUB_CRYPT_KEY",
        "the hub",
        (
            "key that encrypts users' auth state (`openssl rand -hex 32`); "
            "auth state is on only when it is set"
        ),
    ),
    (
        "CONFIGPROXY_AUTH_TOKEN",
        "the hub and configurable-http-proxy",
        "the proxy API's token, when the proxy runs as its own service",
    ),
    (
        "PGPASSFILE",
        "the hub (libpq)",
        "a 0600 pgpass file with the PostgreSQL password, so `hub.db_url` holds none",
    ),
    (
        "JPY_COOKIE_SECRET",
        "the hub",
        (
            "the cookie secret, hex; when unset JupyterHub reads "
            "`hub.state_dir/jupyterhub_cookie_secret` (mode 0600)"
        ),
    ),
)


def environment_table() -> str:
    rows = ["| variable | read by | holds |", "|---|---|---|"]
    rows += [f"| `{name}` | {who} | {what} |" for name, who, what in ENVIRONMENT]
    return "\n".join(rows) + "\n"


class DocsError(RuntimeError):
    """The schema and the descriptions disagree."""


# ---- the site file ---------------------------------------------------------------


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_range(tp: Any) -> bool:
    """IntRange, SizeRange, DurationRange: a scalar, or ``{default, min, max}``."""
    return _is_model(tp) and set(tp.model_fields) == {"default", "min", "max"}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if (typing.get_origin(tp) in (typing.Union, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return tp, False


_RANGE_WORDS = {
    "IntRange": "integer",
    "SizeRange": "size",
    "DurationRange": "duration",
}


def type_name(tp: Any) -> str:
    tp, optional = _strip_optional(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is str:
        name = "string"
    elif tp is bool:
        name = "boolean"
    elif tp is int:
        name = "integer"
    elif tp is float:
        name = "number"
    elif origin is typing.Literal:
        name = "one of " + ", ".join(f"`{a}`" for a in args)
    elif origin in (tuple, list) and args:
        name = f"list of {type_name(args[0])}s"
    elif origin is dict:
        value = "a mapping (see below)" if _is_model(args[1]) else type_name(args[1])
        name = f"mapping of name to {value}"
    elif _is_range(tp):
        word = _RANGE_WORDS.get(tp.__name__, "value")
        name = f"{word}, or `{{default, min, max}}`"
    elif _is_model(tp):
        name = "mapping"
    else:
        name = getattr(tp, "__name__", str(tp))
    return f"{name} or null" if optional and name != "mapping" else name


def _yamlish(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '""' if value == "" else value
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yamlish(v) for v in value) + "]"
    if isinstance(value, BaseModel):
        dumped = value.model_dump(exclude_none=True)
        if set(dumped) == {"default"}:
            return _yamlish(dumped["default"])
        return "{" + ", ".join(f"{k}: {_yamlish(v)}" for k, v in dumped.items()) + "}"
    return str(value)


def default_text(path: str, field: Any) -> str:
    if path in COMPUTED_DEFAULTS:
        return COMPUTED_DEFAULTS[path]
    if field.default_factory is not None:
        raise DocsError(f"{path}: a computed default needs an entry in COMPUTED_DEFAULTS")
    if field.default is PydanticUndefined:
        return "**required**"
    if path in SIZE_KEYS:
        from scitex_hub.units import format_size

        return f"`{format_size(field.default)}`"
    if _is_model(field.annotation) and not _is_range(field.annotation):
        return "(see below)"
    return f"`{_yamlish(field.default)}`"


_RST_ROLE_RE = re.compile(r":(?:class|meth|func|mod|attr):`~?([^`]+)`")


def _prose(text: str) -> str:
    """Docstring markup (reST roles, double backticks) as Markdown."""
    return _RST_ROLE_RE.sub(r"`\1`", text).replace("``", "`")


def _cell(text: str) -> str:
    return " ".join(_prose(text).replace("|", "\\|").split())


class SiteDocs:
    """Walks the schema into one table per block."""

    def __init__(self, descriptions: dict[str, str]) -> None:
        self.descriptions = descriptions
        self.used: set[str] = set()
        self.missing: list[str] = []
        # (block path, block intro, rows)
        self.tables: list[tuple[str, str, list[tuple[str, str, str, str]]]] = []

    def describe(self, path: str, field: Any) -> str:
        if field.description:
            return str(field.description)
        if path in self.descriptions:
            self.used.add(path)
            return self.descriptions[path]
        self.missing.append(path)
        return ""

    def walk(self, model: type[BaseModel], prefix: str, intro: str) -> None:
        rows: list[tuple[str, str, str, str]] = []
        nested: list[tuple[type[BaseModel], str, str]] = []
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            tp, _ = _strip_optional(field.annotation)
            description = self.describe(path, field)
            shown_type = "size" if path in SIZE_KEYS else type_name(field.annotation)
            rows.append((path, shown_type, default_text(path, field), description))
            if typing.get_origin(tp) is dict:
                value_type = typing.get_args(tp)[1]
                if _is_model(value_type):
                    key = "<id>" if name == "institutions" else "<name>"
                    nested.append((value_type, f"{path}.{key}.", _doc(value_type)))
            elif _is_model(tp) and not _is_range(tp):
                nested.append((tp, f"{path}.", _doc(tp)))
        self.tables.append((prefix.rstrip("."), intro, rows))
        for sub, sub_prefix, sub_intro in nested:
            self.walk(sub, sub_prefix, sub_intro)

    def markdown(self) -> str:
        out = ["## The site file: `scitex.yaml`", ""]
        for block, intro, rows in self.tables:
            out.append(f"### `{block}`" if block else "### Top level")
            out.append("")
            if intro:
                out.extend([intro, ""])
            out.append("| key | type | default | description |")
            out.append("|---|---|---|---|")
            for path, tp, default, description in rows:
                out.append(f"| `{path}` | {_cell(tp)} | {_cell(default)} | {_cell(description)} |")
            out.append("")
        out.extend(
            [
                (
                    "Sizes are written `512MiB`, `4GiB`, `1TiB` (or bytes); durations `HH:MM:SS`, "
                    "`D-HH:MM:SS` (or seconds). A range `{default, min, max}` lets users choose "
                    "within it in the spawn form; a plain value fixes it."
                ),
                "",
            ]
        )
        return "\n".join(out)


def _doc(obj: Any) -> str:
    doc = obj.__dict__.get("__doc__")
    if not doc:
        return ""
    # BaseModel subclasses without a docstring inherit none; ours are prose.
    return _prose(" ".join(inspect.cleandoc(doc).split()))


def site_docs(descriptions: dict[str, str] | None = None) -> str:
    from jupyterhub_config.settings import Settings

    docs = SiteDocs(DESCRIPTIONS if descriptions is None else descriptions)
    docs.walk(Settings, "", "")
    problems = []
    if docs.missing:
        problems.append(
            "site-file keys without a description (add Field(description=...) in the "
            "schema, or an entry in DESCRIPTIONS in tools/gen_config_docs.py): "
            + ", ".join(docs.missing)
        )
    stale = sorted(set(docs.descriptions) - docs.used - _all_paths(docs))
    if stale:
        problems.append("DESCRIPTIONS names keys the schema does not have: " + ", ".join(stale))
    if problems:
        raise DocsError("\n".join(problems))
    return docs.markdown()


def _all_paths(docs: SiteDocs) -> set[str]:
    return {path for _, _, rows in docs.tables for path, *_ in rows}


# ---- traitlets ---------------------------------------------------------------------


def _defining_class(cls: type[HasTraits], name: str) -> type:
    for klass in cls.__mro__:
        if name in klass.__dict__ and isinstance(klass.__dict__[name], TraitType):
            return klass
    return cls


def _has_dynamic_default(cls: type[HasTraits], name: str) -> bool:
    for klass in cls.__mro__:
        generators = klass.__dict__.get("_trait_default_generators", {})
        if name in generators:
            return not isinstance(generators[name], TraitType)
    return False


def trait_type(trait: TraitType[Any, Any]) -> str:
    name = type(trait).__name__
    inner = getattr(trait, "_trait", None)
    if inner is not None:
        name += f" of {type(inner).__name__}"
    if name == "Type":
        name += f" (a subclass of `{trait.klass.__name__}`)"  # type: ignore[attr-defined]
    return name


def trait_default(cls: type[HasTraits], name: str, trait: TraitType[Any, Any]) -> str:
    if _has_dynamic_default(cls, name):
        return "computed (see help)"
    value = trait.default_value_repr()
    return f"`{value}`"


def traitlet_docs() -> str:
    import importlib

    out = ["## Traitlets", ""]
    out.append(
        "The configurable traitlets our classes define. Inherited ones (JupyterHub's "
        "`Spawner`, batchspawner's `BatchSpawnerBase`, jupyter-server's `ExtensionApp`) "
        "keep their own documentation; those whose default we change are listed under "
        "each class."
    )
    out.append("")
    for module, class_name, prefix, where in TRAIT_CLASSES:
        cls = getattr(importlib.import_module(module), class_name)
        out.append(f"### `{class_name}` ({where})")
        out.append("")
        doc = _doc(cls)
        if doc:
            out.extend([doc, ""])
        out.append("| traitlet | type | default | help |")
        out.append("|---|---|---|---|")
        changed = []
        for name, trait in sorted(cls.class_traits(config=True).items()):
            owner = _defining_class(cls, name)
            if not owner.__module__.startswith(OWN_PACKAGES):
                if _has_dynamic_default(cls, name) and _default_set_by_us(cls, name):
                    changed.append(f"`{name}` (from `{owner.__name__}`)")
                continue
            help_text = inspect.cleandoc(trait.help or "")
            if not help_text:
                raise DocsError(f"{class_name}.{name} has no help=")
            out.append(
                f"| `{prefix}.{name}` | {_cell(trait_type(trait))} | "
                f"{_cell(trait_default(cls, name, trait))} | {_cell(help_text)} |"
            )
        out.append("")
        if changed:
            out.append(
                "Inherited traitlets whose default this class computes: " + ", ".join(changed) + "."
            )
            out.append("")
    return "\n".join(out)


def _default_set_by_us(cls: type[HasTraits], name: str) -> bool:
    for klass in cls.__mro__:
        generators = klass.__dict__.get("_trait_default_generators", {})
        if name in generators:
            return klass.__module__.startswith(OWN_PACKAGES)
    return False


def generate() -> str:
    return HEADER + environment_table() + "\n" + site_docs() + "\n" + traitlet_docs()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    mode.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    try:
        text = generate()
    except DocsError as e:
        print(f"gen_config_docs: {e}", file=sys.stderr)
        return 2
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python tools/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
