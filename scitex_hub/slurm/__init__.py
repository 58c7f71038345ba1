"""The one SLURM layer of the hub side: an argv-only client, squeue output no job name
can forge, the queue watcher a hub shares, and a user's queue as the service reads it.

``client``: :class:`SlurmClient` (sbatch, squeue, scontrol, scancel with timeouts),
the job records and their parsers; ``framing``: :class:`SqueueFraming`; ``watcher``:
:class:`QueueWatcher` (one ``squeue`` per cycle for every tracked job).
"""

from .client import (
    FINAL_STATES,
    JOB_ID_RE,
    PENDING_STATES,
    RUNNING_STATES,
    SLURM_USER_RE,
    USER_QUEUE_FIELDS,
    FinishedJob,
    QueuedJob,
    QueueEntry,
    SlurmClient,
    SlurmCommandError,
    SlurmError,
    parse_node_addresses,
    parse_queue,
    parse_slurm_time,
    parse_squeue,
    slurm_reason,
    slurm_time,
    slurm_time_text,
)
from .framing import FramingError, SqueueFraming, exit_code_text
from .watcher import JobView, QueueWatcher, tagged_for_owner

__all__ = [
    "FINAL_STATES",
    "JOB_ID_RE",
    "PENDING_STATES",
    "RUNNING_STATES",
    "SLURM_USER_RE",
    "USER_QUEUE_FIELDS",
    "FinishedJob",
    "FramingError",
    "JobView",
    "QueueEntry",
    "QueueWatcher",
    "QueuedJob",
    "SlurmClient",
    "SlurmCommandError",
    "SlurmError",
    "SqueueFraming",
    "exit_code_text",
    "parse_node_addresses",
    "parse_queue",
    "parse_slurm_time",
    "parse_squeue",
    "slurm_reason",
    "slurm_time",
    "slurm_time_text",
    "tagged_for_owner",
]
