"""A submission's body, checked for its form only: ``{"project", "script", "resources"?}``.

The paths are checked against the filesystem later (:mod:`.paths`), the resources against
the caller's institution's profiles (``scitex_hub.profiles.resolve_user_options``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scitex_hub.jobspecs.compute import JobRequestError

__all__ = ["PROJECT_RE", "JobRequest", "JobRequestError", "check_script_path", "parse_job_request"]

PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# One path component of a script; '.' and '..' are refused apart.
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.+-]{1,255}")
MAX_SCRIPT_LENGTH = 1024
REQUEST_KEYS = frozenset({"project", "script", "resources"})


@dataclass(frozen=True)
class JobRequest:
    project: str
    # Relative to the project, '/'-separated, no '.' or '..' components.
    script: str
    resources: Mapping[str, Any]


def parse_job_request(body: bytes) -> JobRequest:
    """``{"project", "script", "resources"?}`` -> :class:`JobRequest`; the form only (the
    paths are checked against the filesystem by ``ComputeJobs.locate``)."""
    usage = 'send {"project": <name>, "script": <path in the project>, "resources": {...}}'
    try:
        data = json.loads(body or b"")
    except ValueError:
        raise JobRequestError(f"The body is not JSON: {usage}") from None
    if not isinstance(data, dict):
        raise JobRequestError(f"The body must be a JSON object: {usage}")
    unknown = sorted(set(data) - REQUEST_KEYS)
    if unknown:
        raise JobRequestError(f"Unknown keys {', '.join(unknown)}: {usage}")
    project, script = data.get("project"), data.get("script")
    resources = data.get("resources") or {}
    if not isinstance(project, str) or not project:
        raise JobRequestError(f"No project: {usage}")
    if not PROJECT_RE.fullmatch(project) or project.endswith(".git"):
        raise JobRequestError(f"{project!r} is not a project name")
    if not isinstance(script, str) or not script:
        raise JobRequestError(f"No script: {usage}")
    if not isinstance(resources, dict):
        raise JobRequestError('resources must be an object such as {"cpus": 2}')
    return JobRequest(project, check_script_path(script), resources)


def check_script_path(script: str) -> str:
    """A relative path inside the project: no NUL, no absolute path, no '..'; 400 otherwise."""
    if "\0" in script:
        raise JobRequestError("The script path contains a NUL byte")
    if script.startswith("/"):
        raise JobRequestError(f"The script must be a path relative to the project, not {script!r}")
    if len(script) > MAX_SCRIPT_LENGTH:
        raise JobRequestError(f"The script path is longer than {MAX_SCRIPT_LENGTH} characters")
    parts = script.split("/")
    if ".." in parts:
        raise JobRequestError(f"The script {script!r} leads outside the project ('..')")
    parts = [p for p in parts if p not in ("", ".")]
    if not parts or not all(_COMPONENT_RE.fullmatch(p) for p in parts):
        raise JobRequestError(
            f"The script path {script!r} may hold letters, digits, _ . + - and / only"
        )
    return "/".join(parts)
