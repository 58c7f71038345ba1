"""Institutions (tenants): who belongs where, and what each may use."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .profiles import SLURM_NAME_RE
from .units import parse_size

INSTITUTION_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
# Usernames that are safe as a path component, a SLURM job name and a Unix
# account: what ``JupyterHub.username_pattern`` enforces at sign-in.
USERNAME_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}\Z"
USERNAME_RE = re.compile(USERNAME_PATTERN)
_DOMAIN_RE = re.compile(r"^(?=.{1,253}\Z)[a-z0-9-]+(\.[a-z0-9-]+)+\Z")
# A lab id is a Gitea team name (``lab-<id>``: letters, digits, ``-_.``) and part of a
# JupyterHub group name (``<institution>:<lab>``).
LAB_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
# ":" never occurs in an institution id, so a lab group never names an institution and
# ``InstitutionDirectory.of_groups`` still finds exactly one.
LAB_GROUP_SEP = ":"


def _check_usernames(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if not USERNAME_RE.match(name):
            raise ValueError(f"{name!r} is not a valid username")
    return value


def lab_group(institution_id: str, lab_id: str) -> str:
    """The JupyterHub group of a lab: ``<institution>:<lab>``."""
    return f"{institution_id}{LAB_GROUP_SEP}{lab_id}"


class Lab(BaseModel):
    """A research group inside an institution: a JupyterHub group and a Gitea team."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="Display name.")
    users: tuple[str, ...] = Field(
        default=(), description="Usernames in this lab (PAM, or any authenticator)."
    )
    ldap_groups: tuple[str, ...] = Field(
        default=(),
        description="Directory groups (LDAP: a DN, or a name meaning "
        "`cn=<name>,<group_search_base>`) whose members are in this lab.",
    )
    groups: tuple[str, ...] = Field(
        default=(), description="OIDC `groups` claim values whose holders are in this lab."
    )

    @field_validator("users")
    @classmethod
    def _check_users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_usernames(value)


class Institution(BaseModel):
    """One tenant as declared in ``scitex.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    domains: tuple[str, ...] = ()
    ldap_groups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    storage_quota: int = Field(default=100 * 1024**3, ge=0)
    profiles: tuple[str, ...] = ()
    slurm_account: str | None = None
    gitea_org: str | None = None
    labs: dict[str, Lab] = Field(
        default={},  # pydantic copies a mutable default for each instance
        description="Labs (research groups) by id (lowercase letters, digits, `-`): each is "
        "a JupyterHub group `<institution>:<lab>` and a Gitea team `lab-<lab>` in the "
        "institution's organization. Only this institution's users are placed in its labs.",
    )

    @field_validator("storage_quota", mode="before")
    @classmethod
    def _parse_quota(cls, value: Any) -> int:
        return parse_size(value)

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(d.lower() for d in value)
        for domain in lowered:
            if not _DOMAIN_RE.match(domain):
                raise ValueError(f"{domain!r} is not an email domain")
        return lowered

    @field_validator("users", "admins")
    @classmethod
    def _check_users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_usernames(value)

    @field_validator("labs")
    @classmethod
    def _check_lab_ids(cls, value: dict[str, Lab]) -> dict[str, Lab]:
        for key in value:
            if not LAB_ID_RE.match(key):
                raise ValueError(
                    f"lab id {key!r}: use lowercase letters, digits and - (it becomes a "
                    "group name and a Gitea team name)"
                )
        return value

    @field_validator("slurm_account")
    @classmethod
    def _check_account(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_NAME_RE.match(value):
            raise ValueError(f"{value!r} is not a valid SLURM account name")
        return value


def load_institutions(raw: Mapping[str, Any]) -> dict[str, Institution]:
    institutions: dict[str, Institution] = {}
    for key, spec in raw.items():
        if not INSTITUTION_ID_RE.match(key):
            raise ValueError(
                f"institution id {key!r}: use lowercase letters, digits and -, "
                "it becomes a directory and a group name"
            )
        institutions[key] = (
            spec if isinstance(spec, Institution) else Institution.model_validate(spec)
        )
    return institutions


class InstitutionDirectory:
    """Maps a signed-in identity to exactly one institution, or to none."""

    def __init__(self, institutions: Mapping[str, Institution]) -> None:
        self.institutions = dict(institutions)

    def match(
        self,
        username: str,
        *,
        email: str | None = None,
        groups: Iterable[str] = (),
    ) -> str | None:
        """The institution id for this identity.

        Explicit user lists win, then directory groups (LDAP, OIDC ``groups``),
        then the email domain (OIDC). An identity that matches two institutions
        by the same rule is ambiguous and maps to none: better refused than
        placed in the wrong tenant.
        """
        for rule in (
            lambda inst: username in inst.users,
            lambda inst: bool(set(groups) & set(inst.ldap_groups)),
            lambda inst: email is not None and _email_domain(email) in inst.domains,
        ):
            hits = [key for key, inst in self.institutions.items() if rule(inst)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                return None
        return None

    def labs_of(
        self, institution_id: str, username: str, *, groups: Iterable[str] = ()
    ) -> list[str]:
        """The ids of the labs of ``institution_id`` this identity is in (site-file order):
        listed by name, or holding one of the lab's directory or OIDC groups."""
        institution = self.institutions.get(institution_id)
        if institution is None:
            return []
        held = set(groups)
        return [
            key
            for key, lab in institution.labs.items()
            if username in lab.users or held & (set(lab.ldap_groups) | set(lab.groups))
        ]

    def of_groups(self, group_names: Iterable[str]) -> str | None:
        """The institution a hub user belongs to, from their JupyterHub groups."""
        hits = [g for g in group_names if g in self.institutions]
        return hits[0] if len(hits) == 1 else None

    def labs_of_groups(self, institution_id: str, group_names: Iterable[str]) -> list[str]:
        """The ids of ``institution_id``'s labs among a hub user's JupyterHub groups."""
        institution = self.institutions.get(institution_id)
        if institution is None:
            return []
        prefix = institution_id + LAB_GROUP_SEP
        named = {g.removeprefix(prefix) for g in group_names if g.startswith(prefix)}
        return [key for key in institution.labs if key in named]


def _email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()
