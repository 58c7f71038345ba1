"""The site file ``scitex.yaml``: its schema and its loader.

One validated file per site. An error stops the hub with the key and the reason
(``scitex.yaml: profiles.small.cpus.max: ...``).

One file (over 400 lines): the schema is one tree of pydantic models whose cross-checks
(profiles named by institutions, the admin names, the service URL) need all of it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scitex_gitea.names import InvalidName, validate_owner_name
from scitex_hub.container import Bind
from scitex_hub.institutions import INSTITUTION_ID_RE, USERNAME_RE, Institution
from scitex_hub.profiles import PROFILE_NAME_RE, Profile

DEFAULT_CONFIG = Path(__file__).with_name("scitex.yaml")


class SettingsError(ValueError):
    """The site file is missing or invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSection(_Section):
    bind_url: str = "http://127.0.0.1:8000"
    hub_bind_url: str = "http://127.0.0.1:8081"
    hub_connect_url: str | None = None
    proxy_api_url: str = "http://127.0.0.1:8001"
    db_url: str = "sqlite:///jupyterhub.sqlite"
    state_dir: str = "."
    admin_users: tuple[str, ...] = ()
    proxy_command: tuple[str, ...] = ("configurable-http-proxy",)
    base_url: str = "/"


_URL_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*\Z")


def _check_url(value: str | None) -> str | None:
    if value is not None and not _URL_RE.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _check_abs(value: str | None) -> str | None:
    if value is not None and not os.path.isabs(value):
        raise ValueError(f"must be an absolute path, got {value!r}")
    return value


class LdapSection(_Section):
    """``LDAPAuthenticator`` (jupyterhub-ldapauthenticator 2.x). Which directory
    groups place a user in an institution is ``institutions.*.ldap_groups``: a
    group DN, or a bare name under ``group_search_base``."""

    server_address: str = Field(min_length=1)
    server_port: int = Field(default=389, ge=1, le=65535)
    # "insecure" is plain LDAP: for a directory on the same host or in tests.
    tls_strategy: Literal["before_bind", "on_connect", "insecure"] = "before_bind"
    bind_dn_template: tuple[str, ...] = ()
    lookup_dn: bool = False
    user_search_base: str | None = None
    user_attribute: str = "uid"
    lookup_dn_search_user: str | None = None
    lookup_dn_search_password_file: str | None = None
    group_search_base: str | None = None
    group_search_filter: str | None = None
    # Read the user's memberOf too (Active Directory, OpenLDAP's memberof
    # overlay). Off by default: asking a directory for an attribute its schema
    # lacks fails the sign-in.
    member_of: bool = False

    @field_validator("bind_dn_template")
    @classmethod
    def _templates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for template in value:
            if "{username}" not in template:
                raise ValueError(f"{template!r} has no {{username}}")
        return value

    @field_validator("lookup_dn_search_password_file")
    @classmethod
    def _password_path(cls, value: str | None) -> str | None:
        return _check_abs(value)

    @model_validator(mode="after")
    def _how_to_find_the_user(self) -> LdapSection:
        if not self.bind_dn_template and not self.lookup_dn:
            raise ValueError("give bind_dn_template, or lookup_dn: true with user_search_base")
        if self.lookup_dn and not self.user_search_base:
            raise ValueError("lookup_dn needs user_search_base")
        if self.lookup_dn_search_password_file and not self.lookup_dn_search_user:
            raise ValueError("lookup_dn_search_password_file needs lookup_dn_search_user")
        return self


class OidcSection(_Section):
    """``GenericOAuthenticator`` (oauthenticator) against an OpenID Connect provider.
    The endpoints default to ``<issuer>/auth``, ``/token`` and ``/me``; take the
    real ones from ``<issuer>/.well-known/openid-configuration``."""

    issuer: str
    client_id: str = Field(min_length=1)
    client_secret_file: str
    callback_url: str
    authorize_url: str | None = None
    token_url: str | None = None
    userdata_url: str | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    username_claim: str = Field(default="preferred_username", min_length=1)
    login_service: str = Field(default="your institution", min_length=1, max_length=100)

    @field_validator("issuer", "callback_url", "authorize_url", "token_url", "userdata_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("client_secret_file")
    @classmethod
    def _secret_path(cls, value: str) -> str:
        _check_abs(value)
        return value


# Always refused, whatever auth.denied_users says (with gitea.admin_user).
ALWAYS_DENIED_USERS = ("root",)


class AuthSection(_Section):
    kind: Literal["pam", "ldap", "oidc"] = "pam"
    ldap: LdapSection | None = None
    oidc: OidcSection | None = None
    min_uid: int = Field(
        default=1000,
        ge=1,
        le=2**32 - 2,
        description="Lowest UID of an account that may sign in. A name that is a Unix account "
        "on the hub's machine with a smaller UID (root, daemon, www-data, postgres: system "
        "accounts) is refused at sign-in, whichever authenticator vouched for it, with a page "
        "that says why and nothing created; the spawner checks again before every job. A name "
        "with no Unix account on the hub's machine is not refused by this rule.",
    )
    denied_users: tuple[str, ...] = Field(
        default=("root", "nobody", "slurm", "munge"),
        description="Names refused at sign-in whatever their UID (JupyterHub's "
        "`Authenticator.blocked_users`): service accounts whose UIDs lie above `min_uid` "
        "(Debian gives `slurm` 64030, `nobody` 65534). `root` and `gitea.admin_user` are "
        "refused in addition, always. A user of that name who signed in before is stripped "
        "of roles and groups and their server is stopped when the hub starts.",
    )

    @field_validator("denied_users")
    @classmethod
    def _denied_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not USERNAME_RE.match(name):
                raise ValueError(
                    f"{name!r} is not a username (lowercase letters, digits, _ and -, "
                    "starting with a letter or _)"
                )
        return value

    @model_validator(mode="after")
    def _block_for_kind(self) -> AuthSection:
        if self.kind == "ldap" and self.ldap is None:
            raise ValueError("auth.kind is 'ldap' but there is no auth.ldap block")
        if self.kind == "oidc" and self.oidc is None:
            raise ValueError("auth.kind is 'oidc' but there is no auth.oidc block")
        return self


class SlurmSection(_Section):
    conf: str | None = None
    bin_dir: str | None = None
    poll_interval: float = Field(default=10.0, gt=0)
    queue_wait_timeout: int = Field(default=24 * 3600, gt=0)
    startup_timeout: int = Field(default=300, gt=0)
    submit_prefix: tuple[str, ...] | None = None
    hub_id: str = Field(
        default="scitex", pattern=r"^[A-Za-z0-9_.-]{1,32}$"
    )  # Rust regex: $ is end of text
    orphan_grace: float = Field(default=120.0, gt=0)


class ContainerSection(_Section):
    runtime: Literal["auto", "apptainer", "singularity", "none"] = "none"
    executable: str | None = None
    image: str | None = None
    extra_binds: tuple[str, ...] = ()
    unsquash: bool = False

    @field_validator("extra_binds")
    @classmethod
    def _binds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for bind in value:
            Bind.parse(bind)
        return value

    @field_validator("image", "executable")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value


_SERVER_ARG_RE = re.compile(r"^--[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+=[^\n\r\0]*\Z")


class NotebookSection(_Section):
    python: str = Field(default_factory=lambda: sys.executable)
    default_url: str = "/lab"
    args: tuple[str, ...] = ()

    @field_validator("args")
    @classmethod
    def _server_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arg in value:
            if not _SERVER_ARG_RE.match(arg):
                raise ValueError(f"{arg!r} is not a --Class.trait=value option")
        return value


class GiteaSection(_Section):
    url: str = Field(description="Gitea's base URL (`https://gitea.example.edu`).")
    admin_token_file: str = Field(description="File with the admin's API token (mode 0600).")
    admin_user: str = Field(
        default="gitea-admin",
        description="The Gitea admin's login: Gitea mints user tokens only with a password.",
    )
    # Optional in the schema (older site files lack it); the hub refuses to start without it.
    admin_password_file: str | None = Field(
        default=None, description="File with that admin's password (mode 0600)."
    )
    request_timeout: float = Field(default=10.0, gt=0, description="Seconds per Gitea request.")
    validate_cert: bool = Field(default=True, description="Check Gitea's TLS certificate.")

    @field_validator("url")
    @classmethod
    def _gitea_url(cls, value: str) -> str:
        if not _URL_RE.match(value) or "@" in value or "?" in value or "#" in value:
            raise ValueError(f"must be an http(s) URL without user, query or fragment: {value!r}")
        return value.rstrip("/")

    @field_validator("admin_user")
    @classmethod
    def _gitea_login(cls, value: str) -> str:
        try:
            return validate_owner_name(value)
        except InvalidName as e:
            raise ValueError(str(e)) from None

    @field_validator("admin_token_file", "admin_password_file")
    @classmethod
    def _secret_path(cls, value: str | None) -> str | None:
        return _check_abs(value)


SERVICE_DEFAULT_PORT = 8090
_SERVICE_URL_RE = re.compile(r"^http://[A-Za-z0-9.-]+:\d{1,5}/?\Z")


class ServiceSection(_Section):
    """The scitex hub service (``/services/scitex/``): quota admin API, usage scanner."""

    url: str | None = Field(
        default=None,
        description="Where the scitex hub service listens (`http://HOST:PORT`); the hub "
        "proxies `/services/scitex/` to it. Default: port 8090 on the host of "
        "`hub.hub_connect_url` (where compute nodes reach the hub, so notebook servers "
        "reach the service there too), else on 127.0.0.1.",
    )
    usage_scan_interval: float = Field(
        default=600.0,
        gt=0,
        description="Seconds between the service's passes over every "
        "`<data_root>/<institution>/<user>` (one walk per user per pass); the admin API "
        "and the start-up quota check read the last measurement.",
    )
    usage_retention_days: int = Field(
        default=90,
        ge=1,
        description="Days usage measurements are kept in `scitex_usage` (each user's newest "
        "is always kept).",
    )

    @field_validator("url")
    @classmethod
    def _listen_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _SERVICE_URL_RE.match(value):
            raise ValueError(f"must be http://HOST:PORT (where the service listens), got {value!r}")
        return value.rstrip("/")


class QuotaSection(_Section):
    """Storage quotas at server start. The limits themselves are
    ``institutions.<id>.storage_quota`` and the per-user overrides admins set through the
    scitex hub service (docs/quota.md)."""

    over_quota: Literal["cleanup", "refuse"] = Field(
        default="cleanup",
        description="What a start does when the user's last measured usage is at or over "
        "their limit. `cleanup`: the server starts so they can delete or move files; the "
        "spawn progress says so (usage, limit, whom to ask), and the server refuses saves "
        "that add data until usage is below the limit. `refuse`: no server starts (403 with "
        "the same facts) until an admin frees space or raises the quota.",
    )


class JobsSection(_Section):
    """Compute jobs submitted from JupyterLab through the scitex hub service (docs/jobs.md)."""

    image: str | None = Field(
        default=None,
        description="The compute image (SIF or sandbox directory); default `container.image`. "
        "The runtime is `container.runtime` (`none`: jobs run directly on the node).",
    )
    max_queued_per_user: int = Field(
        default=10,
        ge=1,
        le=10000,
        description="Jobs a user may have pending or running at once; one more gets 429.",
    )
    history_limit: int = Field(
        default=50,
        ge=1,
        le=10000,
        description="Ended jobs a user's job list shows (newest first), kept in "
        "`scitex_compute_jobs` after SLURM forgets them; older ones still answer by id.",
    )
    extra_binds: tuple[str, ...] | None = Field(
        default=None,
        description="Binds for every job's container (`/src[:/dst[:ro|rw]]`); default "
        "`container.extra_binds`. The project is bound at /project, the user's data at /data.",
    )
    python: str = Field(
        default="python3", min_length=1, description="Runs `.py` scripts inside the image."
    )
    bash: str = Field(default="bash", min_length=1, description="Runs `.sh` scripts.")
    service_url: str | None = Field(
        default=None,
        description="The scitex service's URL as notebook servers (on compute nodes) reach "
        "it; default: with `hub.hub_connect_url`, the service where it listens on that host "
        "(`service.url`) + `hub.base_url` + `services/scitex/`; else `hub.bind_url` + "
        "`hub.base_url` + `services/scitex/` (through the proxy).",
    )

    @field_validator("image")
    @classmethod
    def _image_path(cls, value: str | None) -> str | None:
        return _check_abs(value)

    @field_validator("extra_binds")
    @classmethod
    def _job_binds(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for bind in value or ():
            Bind.parse(bind)
        return value

    @field_validator("python", "bash")
    @classmethod
    def _command_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_./+-]+", value):
            raise ValueError(f"must be a command name or path without spaces, got {value!r}")
        return value

    @field_validator("service_url")
    @classmethod
    def _service_url(cls, value: str | None) -> str | None:
        _check_url(value)
        return value if value is None else value.rstrip("/") + "/"


class Settings(_Section):
    hub: HubSection = HubSection()
    auth: AuthSection = AuthSection()
    data_root: str
    institutions: dict[str, Institution] = Field(min_length=1)
    profiles: dict[str, Profile] = Field(min_length=1)
    slurm: SlurmSection = SlurmSection()
    container: ContainerSection = ContainerSection()
    notebook: NotebookSection = NotebookSection()
    gitea: GiteaSection | None = None
    jobs: JobsSection = Field(
        default=JobsSection(),
        description="Compute jobs from JupyterLab: image, per-user limit. See docs/jobs.md.",
    )
    service: ServiceSection = Field(
        default=ServiceSection(),
        description="The scitex hub service (`/services/scitex/`): quota overrides, usage "
        "and spawn records API, and the usage scanner. See docs/hub-service.md.",
    )
    quota: QuotaSection = Field(
        default=QuotaSection(),
        description="Storage quotas: what a start over the limit does. See docs/quota.md.",
    )

    @field_validator("data_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value

    @field_validator("institutions")
    @classmethod
    def _institution_ids(cls, value: dict[str, Institution]) -> dict[str, Institution]:
        for key in value:
            if not INSTITUTION_ID_RE.match(key):
                raise ValueError(
                    f"institution id {key!r}: use lowercase letters, digits and - "
                    "(it becomes a directory and a group name)"
                )
        return value

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: dict[str, Profile]) -> dict[str, Profile]:
        for name in value:
            if not PROFILE_NAME_RE.match(name):
                raise ValueError(f"profile name {name!r}: use lowercase letters, digits, - and _")
        return value

    @model_validator(mode="after")
    def _images_for_containers(self) -> Settings:
        if self.container.runtime in ("apptainer", "singularity") and not self.container.image:
            missing = [name for name, p in self.profiles.items() if not p.image]
            if missing:
                raise ValueError(
                    f"container.image: runtime {self.container.runtime!r} needs an image "
                    f"(profiles without their own image: {', '.join(missing)})"
                )
        return self

    def service_listen_url(self) -> str:
        """Where the scitex service listens: ``service.url``, else port 8090 on the host
        compute nodes reach the hub at (``hub.hub_connect_url``), else on 127.0.0.1."""
        if self.service.url:
            return self.service.url
        host = urlparse(self.hub.hub_connect_url or "").hostname or "127.0.0.1"
        return f"http://{host}:{SERVICE_DEFAULT_PORT}"

    def denied_users(self) -> frozenset[str]:
        """Every name refused at sign-in by name: ``auth.denied_users``, root, and the
        Gitea admin's login (the hub mints tokens with its password: a hub user of that
        name would get a token of the Gitea admin)."""
        names = set(self.auth.denied_users) | set(ALWAYS_DENIED_USERS)
        if self.gitea is not None:
            names.add(self.gitea.admin_user.lower())
        return frozenset(names)

    @model_validator(mode="after")
    def _no_denied_user_listed(self) -> Settings:
        denied = self.denied_users()
        listed = [("hub.admin_users", self.hub.admin_users)]
        for key, institution in self.institutions.items():
            listed += [
                (f"institutions.{key}.users", institution.users),
                (f"institutions.{key}.admins", institution.admins),
            ]
            listed += [
                (f"institutions.{key}.labs.{lab_id}.users", lab.users)
                for lab_id, lab in institution.labs.items()
            ]
        for where, names in listed:
            for name in names:
                if name in denied:
                    raise ValueError(
                        f"{where}: {name!r} is refused at sign-in (auth.denied_users, root "
                        "and gitea.admin_user): no person may use that name"
                    )
        return self

    @model_validator(mode="after")
    def _profiles_exist(self) -> Settings:
        for key, institution in self.institutions.items():
            for name in institution.profiles:
                if name not in self.profiles:
                    raise ValueError(
                        f"institutions.{key}.profiles: unknown profile {name!r} "
                        f"(defined: {', '.join(sorted(self.profiles))})"
                    )
        return self


def _format_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def parse_settings(data: Any, source: str = "scitex.yaml") -> Settings:
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: the file must hold a mapping of settings")
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise SettingsError(_format_error(source, e)) from None


_VAR_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """``${NAME}`` and ``${NAME:-default}`` from the environment, so one file serves
    several installs (the demo's paths follow ``SCITEX_DEV_DIR``)."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        value = env.get(name)
        if value:
            return value
        if fallback is not None:
            return fallback
        raise SettingsError(f"${{{name}}} is used in the site file but not set")

    return _VAR_RE.sub(substitute, text)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the site file (``$SCITEX_CONFIG``, else the default)."""
    path = Path(path or os.environ.get("SCITEX_CONFIG") or DEFAULT_CONFIG)
    try:
        text = path.read_text()
    except OSError as e:
        raise SettingsError(f"{path}: cannot read the site file: {e.strerror}") from None
    try:
        data = yaml.safe_load(expand_env(text))
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: not valid YAML: {e}") from None
    return parse_settings(data, str(path))
