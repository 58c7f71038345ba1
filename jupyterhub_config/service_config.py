"""What the scitex hub service takes from the site file: its traitlets configuration.

``apply_services`` puts it, as JSON, in the environment the hub starts the service with
(``SCITEX_SERVICE_CONFIG``); the service loads it over its defaults and validates every
value back (``scitex_service``), so the service itself never reads the site file.
"""

from __future__ import annotations

from typing import Any

from scitex_hub.profiles import Profile
from scitex_hub.units import format_duration

from .settings import Settings

__all__ = ["SERVICE_CONFIG_ENV", "profile_config", "service_config"]

# The service's traitlets configuration (JSON) in its environment: scitex_service.app.
SERVICE_CONFIG_ENV = "SCITEX_SERVICE_CONFIG"


def profile_config(profile: Profile) -> dict[str, Any]:
    """A profile as JSON that validates back into the same profile: pydantic's dump, with
    wall times written as the site file writes them (a bare number there is minutes)."""
    data = profile.model_dump(mode="json")
    data["runtime"] = {
        key: None if seconds is None else format_duration(seconds)
        for key, seconds in data["runtime"].items()
    }
    return data


def service_config(settings: Settings) -> dict[str, dict[str, Any]]:
    """Everything the scitex service takes from the site file, as its traitlets
    configuration (sections by class; plain JSON values). The database URL is not here:
    it may hold a password and travels as ``SCITEX_DB_URL``."""
    jobs, container, slurm = settings.jobs, settings.container, settings.slurm
    binds = jobs.extra_binds if jobs.extra_binds is not None else container.extra_binds
    slurm_client: dict[str, Any] = {}
    if slurm.conf:
        slurm_client["slurm_conf"] = slurm.conf
    if slurm.bin_dir:
        slurm_client["bin_dir"] = slurm.bin_dir
    if slurm.submit_prefix is not None:
        slurm_client["run_as_prefix"] = list(slurm.submit_prefix)
    return {
        "SciTeXService": {
            "service_url": settings.service_listen_url(),
            "data_root": settings.data_root,
            "institutions": {
                key: institution.model_dump(mode="json")
                for key, institution in settings.institutions.items()
            },
        },
        "UsageScanner": {
            "interval": settings.service.usage_scan_interval,
            "retention_days": settings.service.usage_retention_days,
        },
        "ComputeJobs": {
            "hub_id": slurm.hub_id,
            "data_root": settings.data_root,
            "profiles": {name: profile_config(p) for name, p in settings.profiles.items()},
            # Resolved by the service at start (auto: Apptainer when it and the image are there).
            "runtime": container.runtime,
            "executable": container.executable or "",
            "image": jobs.image or container.image or "",
            "binds": list(binds),
            "unsquash": container.unsquash,
            "interpreters": {".sh": [jobs.bash], ".py": [jobs.python]},
            "max_queued_per_user": jobs.max_queued_per_user,
            "history_limit": jobs.history_limit,
            "denied_users": sorted(settings.denied_users()),
            "min_uid": settings.auth.min_uid,
        },
        "SlurmClient": slurm_client,
    }
