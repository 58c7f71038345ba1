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
        for name in value:
            if not USERNAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid username")
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

    def of_groups(self, group_names: Iterable[str]) -> str | None:
        """The institution a hub user belongs to, from their JupyterHub groups."""
        hits = [g for g in group_names if g in self.institutions]
        return hits[0] if len(hits) == 1 else None


def _email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()
