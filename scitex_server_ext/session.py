"""What this notebook server knows about its own SLURM session."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SessionInfo:
    """The session as the batch script describes it through ``SCITEX_*`` variables.

    The batch script exports these (the container sees them through
    ``APPTAINERENV_*``), so the extension needs no SLURM client inside the image.
    """

    user: str
    institution: str
    job_id: str
    node: str
    profile: str
    job_end_epoch: int | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SessionInfo:
        end = environ.get("SCITEX_JOB_END", "")
        return cls(
            user=environ.get("JUPYTERHUB_USER", ""),
            institution=environ.get("SCITEX_INSTITUTION", ""),
            job_id=environ.get("SCITEX_JOB_ID", ""),
            node=environ.get("SCITEX_NODE", ""),
            profile=environ.get("SCITEX_PROFILE", ""),
            job_end_epoch=int(end) if end.isdigit() else None,
        )

    def time_left_seconds(self, now: float | None = None) -> int | None:
        if self.job_end_epoch is None:
            return None
        now = time.time() if now is None else now
        return max(0, int(self.job_end_epoch - now))

    def as_json(self, now: float | None = None) -> dict[str, object]:
        return {
            "user": self.user,
            "institution": self.institution,
            "job_id": self.job_id,
            "node": self.node,
            "profile": self.profile,
            "time_left_seconds": self.time_left_seconds(now),
        }
