"""An async SLURM client (argv only), the job records it reads, and the one run-as-user
prefix (:meth:`SlurmClient.as_user`) of the spawner, the queue watcher and the service.

Stock batchspawner runs ``squeue`` once per server per poll and takes any error
as the job's death. Here one :class:`~.watcher.QueueWatcher` per hub runs a single
``squeue`` per interval for all tracked jobs; a job is *gone* only when SLURM
says so (no queue entry, and ``squeue --states=all`` gives a final state or no
longer knows the id). Any error or timeout leaves the job *unknown*: kept.
Users choose job names and comments freely, so squeue's output is framed by
marks they cannot know (:class:`SqueueFraming`), and a job counts as this hub's
only when its tag names the user SLURM says owns it.

One file (over 400 lines) because the records and their parsers are defined by the
exact ``squeue`` fields the client asks for: split, a field list and its parser drift apart.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from traitlets import Dict, Float, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .framing import FramingError, exit_code_text
from .framing import SqueueFraming as SqueueFraming

JOB_ID_RE = re.compile(r"^\d+(?:_\d+)?\Z")
# squeue fields of the hub's queue poll (--format letters).
_SQUEUE_FIELDS = ("%i", "%j", "%u", "%T", "%r", "%B", "%S", "%e", "%k")
# squeue fields of a user's jobs, all states (SlurmClient.user_queue).
USER_QUEUE_FIELDS = ("%i", "%j", "%u", "%T", "%r", "%B", "%V", "%S", "%e", "%k")
# squeue fields of one ended job (--Format names): exit_code has no letter.
_RECORD_FIELDS = ("State", "Reason", "exit_code")

# JobState values after which a job will never run again.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)
PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"})

POLL_DURATION = Histogram(
    "scitex_queue_poll_duration_seconds",
    "Time of one queue-watcher cycle (one squeue for all tracked jobs)",
)
POLL_ERRORS = Counter(
    "scitex_queue_poll_errors_total",
    "Queue-watcher cycles that failed (SLURM unreachable, timeout); jobs kept as unknown",
)
SLURM_COMMANDS = Counter(
    "scitex_slurm_commands_total", "SLURM client commands run by the hub", ["command"]
)
JOBS_BY_STATE = Gauge("scitex_jobs", "This hub's SLURM jobs by state", ["state"])
ORPHANS_CANCELLED = Counter(
    "scitex_orphan_jobs_cancelled_total",
    "Jobs tagged by this hub that no server claimed within the grace time, cancelled",
)
SLURM_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")


class SlurmError(RuntimeError):
    """A SLURM command failed or timed out: the answer is *unknown*, not *gone*."""


class SlurmCommandError(SlurmError):
    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        super().__init__(f"{command} exited {returncode}: {stderr.strip()[:500]}")
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class QueuedJob:
    """A job as ``squeue`` shows it (pending or running)."""

    job_id: str
    name: str
    user: str
    state: str
    reason: str
    node: str
    start_time: str
    end_time: str
    comment: str

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class FinishedJob:
    """A job SLURM says has ended, with how it ended."""

    job_id: str
    state: str
    reason: str
    exit_code: str

    def describe(self) -> str:
        text = {
            "CANCELLED": "the job was cancelled",
            "COMPLETED": "the job ended",
            "TIMEOUT": "the job reached its time limit",
            "NODE_FAIL": "the node running the job failed",
            "OUT_OF_MEMORY": "the job ran out of memory",
            "PREEMPTED": "the job was preempted by a higher-priority job",
            "FAILED": "the job failed",
            "PURGED": "SLURM no longer knows the job",
        }.get(self.state, f"the job ended in state {self.state}")
        details = [f"state {self.state}"]
        if self.exit_code and self.exit_code != "0:0":
            details.append(f"exit code {self.exit_code}")
        if self.reason and self.reason not in ("None", "(null)"):
            details.append(f"reason {self.reason}")
        return f"{text} ({', '.join(details)})"


def parse_squeue(records: Sequence[Sequence[str]]) -> dict[str, QueuedJob]:
    """The queue poll's records (fields of ``_SQUEUE_FIELDS``) -> jobs by id."""
    jobs: dict[str, QueuedJob] = {}
    for record in records:
        job_id, name, user, state, reason, node, start, end, comment = record
        if node in ("n/a", "(null)", "None"):
            node = ""
        jobs[job_id] = QueuedJob(job_id, name, user, state, reason, node, start, end, comment)
    return jobs


@dataclass(frozen=True)
class QueueEntry:
    """One of the user's jobs as ``squeue --states=all`` shows it."""

    job_id: str
    name: str
    user: str
    state: str
    reason: str
    node: str
    submitted_at: str
    start_time: str
    end_time: str
    comment: str

    @property
    def project(self) -> str:
        for part in self.comment.split(":"):
            if part.startswith("project="):
                return part[len("project=") :]
        return ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def parse_queue(records: Sequence[Sequence[str]]) -> list[QueueEntry]:
    """squeue's records (fields of ``USER_QUEUE_FIELDS``, see ``SlurmClient.squeue``)."""
    entries = []
    for record in records:
        job_id, name, user, state, reason, node, submitted, start, end, comment = record
        if node in ("n/a", "(null)", "None"):
            node = ""
        entries.append(
            QueueEntry(job_id, name, user, state, reason, node, submitted, start, end, comment)
        )
    return entries


def slurm_time(value: str) -> str | None:
    return None if value in ("", "N/A", "Unknown", "None") else value


def slurm_reason(value: str) -> str:
    return "" if value in ("None", "(null)") else value


def parse_slurm_time(value: str) -> datetime | None:
    """squeue's ``2026-12-01T02:18:33`` (SLURM's local time, no zone) -> aware datetime."""
    text = slurm_time(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # The service runs beside slurmctld (the same timezone): naive means local.
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def slurm_time_text(value: datetime | None) -> str:
    """An aware datetime as squeue prints it (local time, no zone), so recorded and live
    jobs read the same; ``""`` for none."""
    if value is None:
        return ""
    return value.astimezone().replace(tzinfo=None).isoformat(timespec="seconds")


def parse_node_addresses(output: str) -> dict[str, str]:
    """``NodeName -> NodeAddr`` from ``scontrol -o show node``."""
    addresses: dict[str, str] = {}
    for line in output.splitlines():
        name = re.search(r"(?:^|\s)NodeName=(\S+)", line)
        addr = re.search(r"(?:^|\s)NodeAddr=(\S+)", line)
        if name:
            addresses[name.group(1)] = addr.group(1) if addr else name.group(1)
    return addresses


class SlurmClient(LoggingConfigurable):
    """Runs ``sbatch``/``squeue``/``scontrol``/``scancel`` as argv, with a timeout.

    Sites swap it through ``SciTeXSpawner.slurm_client_class``.
    """

    slurm_conf = Unicode(
        "",
        help="""Path of slurm.conf, passed as SLURM_CONF to every SLURM command and job.

        Empty: SLURM's built-in default (/etc/slurm/slurm.conf).""",
    ).tag(config=True)

    bin_dir = Unicode(
        "",
        help="Directory holding sbatch, squeue, scontrol and scancel. Empty: found on PATH.",
    ).tag(config=True)

    command_timeout = Float(
        30.0,
        help="""Seconds a SLURM command may take. A command that takes longer is killed and
        its answer counts as unknown (never as the job's end).""",
    ).tag(config=True)

    extra_env = Dict(
        help="Extra environment for SLURM commands (e.g. SLURM_CLUSTERS). No secrets here.",
    ).tag(config=True)

    path = Unicode(
        help="PATH for SLURM commands and, through sbatch, for the job.",
    ).tag(config=True)

    run_as_prefix = List(
        Unicode(),
        help="""Command prefix that runs a SLURM command (and the few file commands of a
        submission) as the user; ``{username}`` is replaced. Default: ``runuser -u
        {username} --`` when the hub side runs as root, else ``sudo -n -u {username} --``.""",
    ).tag(config=True)

    @default("run_as_prefix")
    def _default_run_as_prefix(self) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "{username}", "--"]
        return ["sudo", "-n", "-u", "{username}", "--"]

    @validate("run_as_prefix")
    def _check_run_as_prefix(self, proposal: Any) -> list[str]:
        value = [str(part) for part in proposal["value"]]
        if value and "{username}" not in " ".join(value):
            raise ValueError(
                f"SlurmClient.run_as_prefix must name the user ({{username}}), got {value!r}"
            )
        return value

    def as_user(self, user: str) -> list[str]:
        """The prefix that runs a command as ``user``. Only a name SLURM and Unix take
        ever reaches it (the callers apply the sign-in's name rules first)."""
        if not SLURM_USER_RE.match(user):
            raise ValueError(f"not a user name SLURM takes: {user!r}")
        return [part.replace("{username}", user) for part in self.run_as_prefix]

    @default("path")
    def _default_path(self) -> str:
        return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    @validate("slurm_conf")
    def _check_slurm_conf(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not os.path.isabs(value):
            raise ValueError(f"SlurmClient.slurm_conf must be an absolute path, got {value!r}")
        return value

    def command(self, name: str) -> str:
        return os.path.join(self.bin_dir, name) if self.bin_dir else name

    def base_env(self) -> dict[str, str]:
        env = {"PATH": self.path, "LANG": "C.UTF-8"}
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        env.update({str(k): str(v) for k, v in self.extra_env.items()})
        return env

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run ``argv`` (never through a shell) and return its stdout.

        Raises :class:`SlurmError` on a non-zero exit, a timeout or a missing
        command. ``env`` replaces the environment entirely: the hub's own
        variables (proxy token, crypt key) never reach SLURM or a job.
        """
        name = os.path.basename(argv[0]) if argv else "?"
        # Count the SLURM command itself, not the runuser/sudo in front of it.
        for arg in argv:
            base = os.path.basename(arg)
            if base in ("sbatch", "squeue", "scontrol", "scancel", "sacct"):
                name = base
                break
        if name == "squeue" and any(arg.startswith("--jobs=") for arg in argv):
            name = "squeue --jobs"  # one ended job's record, apart from the queue polls
        SLURM_COMMANDS.labels(command=name).inc()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(env) if env is not None else self.base_env(),
            )
        except OSError as e:
            raise SlurmError(f"cannot run {name}: {e.strerror or e}") from e
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                timeout=self.command_timeout,
            )
        except (asyncio.TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise SlurmError(f"{name} did not answer within {self.command_timeout:g} s") from None
        if proc.returncode != 0:
            raise SlurmCommandError(name, proc.returncode or 0, err.decode(errors="replace"))
        return out.decode(errors="replace")

    async def submit(self, script: str, *, prefix: Sequence[str], env: Mapping[str, str]) -> str:
        """Submit ``script`` on stdin as whoever ``prefix`` makes us; return the job id."""
        out = await self.run([*prefix, self.command("sbatch"), "--parsable"], stdin=script, env=env)
        lines = out.strip().splitlines()
        job_id = lines[-1].split(";")[0].strip() if lines else ""
        if not JOB_ID_RE.match(job_id):
            raise SlurmError(f"sbatch gave no job id (output: {out.strip()[:200]!r})")
        return job_id

    async def cancel(self, job_id: str, *, prefix: Sequence[str] = ()) -> None:
        if not JOB_ID_RE.match(job_id):
            raise ValueError(f"not a SLURM job id: {job_id!r}")
        await self.run([*prefix, self.command("scancel"), job_id], env=self.base_env())

    async def squeue(
        self, fields: Sequence[str], *args: str, long: bool = False
    ) -> list[tuple[str, ...]]:
        """``squeue --noheader ARGS`` -> one tuple of ``fields`` per job.

        ``fields`` are ``--format`` letters (``%i``), or ``--Format`` names with
        ``long``. The output is framed by fresh marks (:class:`SqueueFraming`), so no
        job name or comment can end a field or add a record.
        """
        framing = SqueueFraming.fresh()
        env = self.base_env()
        env["SQUEUE_FORMAT2" if long else "SQUEUE_FORMAT"] = (
            framing.long_format(fields) if long else framing.format(fields)
        )
        out = await self.run([self.command("squeue"), "--noheader", *args], env=env)
        try:
            return framing.records(out, len(fields))
        except FramingError as e:
            raise SlurmError(
                f"{e} (squeue takes its format from SQUEUE_FORMAT in its environment: "
                "a wrapper in slurm.bin_dir must pass the environment on)"
            ) from None

    async def queue(self) -> dict[str, QueuedJob]:
        """Every job in the queue (all users), in one ``squeue``."""
        return parse_squeue(await self.squeue(_SQUEUE_FIELDS, "--all"))

    async def user_queue(self, user: str) -> list[QueueEntry]:
        """Every job of ``user`` SLURM still lists (all states), in one ``squeue``; only
        jobs SLURM says ``user`` owns."""
        if not SLURM_USER_RE.match(user):
            raise ValueError(f"not a user name SLURM takes: {user!r}")
        records = await self.squeue(USER_QUEUE_FIELDS, f"--user={user}", "--states=all")
        return [job for job in parse_queue(records) if job.user == user]

    async def job_record(self, job_id: str) -> FinishedJob | None:
        """The controller's record of a job that left the queue.

        ``None`` while SLURM still calls it pending or running. A job the
        controller no longer knows (purged after MinJobAge) is reported as
        ``PURGED``: SLURM has said it is gone.
        """
        if not JOB_ID_RE.match(job_id):
            raise ValueError(f"not a SLURM job id: {job_id!r}")
        try:
            # squeue, not scontrol: scontrol's one line holds the job's name, comment
            # and paths unframed, and any of them can spell " JobState=...".
            records = await self.squeue(
                _RECORD_FIELDS, "--states=all", f"--jobs={job_id}", long=True
            )
        except SlurmCommandError as e:
            if "Invalid job id" in e.stderr:
                return FinishedJob(job_id, "PURGED", "", "")
            raise
        if len(records) != 1:
            raise SlurmError(f"squeue gave {len(records)} records for job {job_id}")
        [(state, reason, exit_code)] = records
        if state not in FINAL_STATES:
            return None
        return FinishedJob(job_id, state, reason, exit_code_text(exit_code))

    async def node_addresses(self) -> dict[str, str]:
        out = await self.run([self.command("scontrol"), "--oneliner", "show", "node"])
        return parse_node_addresses(out)
