"""Gitea names and the site's Gitea origin: the validation both sides share.

Used by the notebook server (``scitex_server_ext.git`` re-exports all of it) and by the hub's
provisioning (``scitex_spawner.gitea_provision``). Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "BRANCH_MAX",
    "NAME_MAX",
    "OWNER_MAX",
    "URL_MAX",
    "GiteaOrigin",
    "InvalidName",
    "InvalidRemote",
    "redact",
    "validate_branch_name",
    "validate_owner_name",
    "validate_repo_name",
]

NAME_MAX = 100
OWNER_MAX = 40
BRANCH_MAX = 100
URL_MAX = 2048

# Gitea's rules for repository names (AlphaDashDot, not ``.``/``..``/``-``, no ``.git``-like
# suffixes), made stricter: no leading ``-`` or ``.`` and no ``..`` anywhere, so a name can be
# neither an option nor a path step.
_REPO_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_RESERVED_SUFFIXES = (".git", ".wiki", ".rss", ".atom")
# Gitea's rule for user and organization names: alphanumerics with single ``-``, ``_`` or ``.``
# between them (it refuses leading, trailing and consecutive punctuation).
_OWNER_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*")
# A conservative subset of git-check-ref-format for branch names we create or follow.
_BRANCH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_BASE_PATH_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.~-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidName(ValueError):
    """A project, repository, owner or branch name that is not allowed."""


class InvalidRemote(ValueError):
    """A URL that is not a repository on the configured Gitea."""


def _is_plain_text(value: str) -> bool:
    return all(ch.isprintable() and not ch.isspace() for ch in value)


def validate_repo_name(name: object) -> str:
    """Return ``name`` if it is a safe Gitea repository (and project directory) name."""
    if not isinstance(name, str) or not name:
        raise InvalidName("a project name is required")
    if len(name) > NAME_MAX:
        raise InvalidName(f"a project name has at most {NAME_MAX} characters")
    if not _REPO_NAME_RE.fullmatch(name):
        raise InvalidName(
            "a project name uses only letters, digits, '_', '-' and '.', "
            "and starts with a letter, digit or '_'"
        )
    if ".." in name:
        raise InvalidName("a project name may not contain '..'")
    if name.lower().endswith(_RESERVED_SUFFIXES):
        raise InvalidName("a project name may not end in .git, .wiki, .rss or .atom")
    return name


def validate_owner_name(name: object) -> str:
    """Return ``name`` if it is a valid Gitea user or organization name."""
    if not isinstance(name, str) or not name:
        raise InvalidName("an owner (user or organization) name is required")
    if len(name) > OWNER_MAX:
        raise InvalidName(f"an owner name has at most {OWNER_MAX} characters")
    if not _OWNER_NAME_RE.fullmatch(name):
        raise InvalidName(
            "an owner name uses letters and digits, with single '-', '_' or '.' between them"
        )
    return name


def validate_branch_name(name: object) -> str:
    """Return ``name`` if it is a branch name this extension will use in a refspec."""
    if not isinstance(name, str) or not name:
        raise InvalidName("a branch name is required")
    if len(name) > BRANCH_MAX or not _BRANCH_RE.fullmatch(name):
        raise InvalidName("a branch name uses letters, digits, '_', '-', '.' and '/'")
    if ".." in name or "//" in name or name.endswith(("/", ".", ".lock")) or "/." in name:
        raise InvalidName("not a valid branch name")
    return name


@dataclass(frozen=True)
class GiteaOrigin:
    """The configured Gitea: the only place git may talk to."""

    scheme: str
    host: str
    port: int
    base_path: str = ""

    @classmethod
    def parse(cls, url: str) -> GiteaOrigin:
        """Parse the site's Gitea base URL (``https://gitea.example.edu[:port][/sub/path]``)."""
        if not isinstance(url, str) or not url or len(url) > URL_MAX or not _is_plain_text(url):
            raise InvalidRemote("the Gitea URL must be a non-empty URL without spaces")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise InvalidRemote(f"the Gitea URL is not a valid URL: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidRemote("the Gitea URL must start with https:// or http://")
        if "@" in parts.netloc:
            raise InvalidRemote("the Gitea URL must not contain a user name or password")
        if not parts.hostname:
            raise InvalidRemote("the Gitea URL must name a host")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise InvalidRemote("the Gitea URL must not have a query or fragment")
        segments = [s for s in parts.path.split("/") if s]
        for segment in segments:
            if segment in (".", "..") or not _BASE_PATH_SEGMENT_RE.fullmatch(segment):
                raise InvalidRemote("the Gitea URL's path has a character that is not allowed")
        base_path = "".join(f"/{s}" for s in segments)
        return cls(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], base_path)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The canonical base URL, without a trailing slash."""
        return f"{self.scheme}://{self.netloc}{self.base_path}"

    def repo_url(self, owner: str, repo: str) -> str:
        """The clone URL of ``owner/repo`` (both validated here too)."""
        return f"{self.url}/{validate_owner_name(owner)}/{validate_repo_name(repo)}.git"


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced (defence in depth: git never gets them in argv)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
