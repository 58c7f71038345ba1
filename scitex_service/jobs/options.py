"""``GET api/jobs/options``: the resources a user may ask for a compute job.

JupyterLab's "Submit as SLURM job" dialog offers exactly these: the profiles of the caller's
institution, in the site file's order (the first is the default, as in
:func:`~scitex_hub.profiles.resolve_user_options`), each with its partitions and the
default and range of CPUs, memory, wall time and GPUs. The submission is checked again by
``POST api/jobs``; this answer only spares the user a refused request.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from scitex_hub.profiles import DurationRange, IntRange, Profile, SizeRange

from ..handlers import requires_jobs_scope
from .handlers import JobsAPIHandler

__all__ = ["JobOptionsHandler", "job_options", "profile_options"]


def _range(allowed: IntRange | SizeRange | DurationRange) -> dict[str, Any]:
    values = (allowed.default, allowed.lowest, allowed.highest)
    # Counts as numbers; sizes and durations as the site file writes them ("4GiB",
    # "04:00:00"), which is what a submission sends back.
    shown = [v if isinstance(allowed, IntRange) else allowed.format(v) for v in values]
    return dict(zip(("default", "min", "max"), shown, strict=True))


def profile_options(name: str, profile: Profile) -> dict[str, Any]:
    return {
        "name": name,
        "display_name": profile.display_name,
        "description": profile.description,
        "partitions": list(profile.partitions),
        "cpus": _range(profile.cpus),
        "memory": _range(profile.memory),
        "runtime": _range(profile.runtime),
        "gpus": _range(profile.gpus),
    }


def job_options(
    profiles: dict[str, Profile],
    allowed: tuple[str, ...] | list[str],
    interpreters: tuple[tuple[str, tuple[str, ...]], ...],
) -> dict[str, Any]:
    """The answer for a user whose institution allows ``allowed`` (in order)."""
    usable = [name for name in allowed if name in profiles]
    return {
        "default_profile": usable[0] if usable else None,
        "profiles": [profile_options(name, profiles[name]) for name in usable],
        # The script endings the service knows how to run (jobs.bash, jobs.python).
        "script_suffixes": [suffix for suffix, _ in interpreters],
    }


class JobOptionsHandler(JobsAPIHandler):
    """``GET api/jobs/options``: the caller's institution's profiles, for job dialogs."""

    @requires_jobs_scope
    async def get(self) -> None:
        key, institution = await self.institution(self.caller().name)
        answer = job_options(self.jobs.profiles, institution.profiles, self.jobs.site.interpreters)
        self.send({"institution": key, **answer})


def job_options_handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    # Before api/jobs/{id}, which would take "options" for a job id.
    return [(prefix + "api/jobs/options", JobOptionsHandler)]
