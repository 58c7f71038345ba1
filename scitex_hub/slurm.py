"""An async SLURM client (argv only) and the one queue watcher a hub shares.

Stock batchspawner runs ``squeue`` once per server per poll and takes any error
as the job's death. Here one :class:`QueueWatcher` per hub runs a single
``squeue`` per interval for all tracked jobs; a job is *gone* only when SLURM
says so (no queue entry, and ``squeue --states=all`` gives a final state or no
longer knows the id). Any error or timeout leaves the job *unknown*: kept.
Users choose job names and comments freely, so squeue's output is framed by
marks they cannot know (:class:`SqueueFraming`), and a job counts as this hub's
only when its tag names the user SLURM says owns it.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from prometheus_client import Counter, Gauge, Histogram
from traitlets import Dict, Float, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .framing import FramingError, exit_code_text
from .framing import SqueueFraming as SqueueFraming

JOB_ID_RE = re.compile(r"^\d+(?:_\d+)?\Z")
# squeue fields of the hub's queue poll (--format letters).
_SQUEUE_FIELDS = ("%i", "%j", "%u", "%T", "%r", "%B", "%S", "%e", "%k")
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
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")


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


@dataclass(frozen=True)
class JobView:
    """What the watcher knows of one job: queued, finished, or unknown."""

    status: str  # "queued" | "finished" | "unknown"
    queued: QueuedJob | None = None
    finished: FinishedJob | None = None


def tagged_for_owner(job: QueuedJob, tag: str) -> bool:
    """Tagged ``tag`` (a hub's ``scitex:hub=<id>:``) for the user who owns it: anyone can
    copy a tag into the comment of a job of their own, but it then names them, not the
    victim."""
    return job.comment.startswith(f"{tag}user={job.user}:")


class QueueWatcher(LoggingConfigurable):
    """One per hub: a single ``squeue`` per cycle, shared by every spawner.

    Spawners :meth:`track` their job ids and read :meth:`view`; none runs
    ``squeue`` itself. While any spawn is waiting for its job to change state
    the watcher polls every ``fast_interval`` seconds, else every ``interval``.
    """

    _shared: ClassVar[dict[tuple[Any, ...], QueueWatcher]] = {}

    interval = Float(10.0, help="Seconds between queue polls.").tag(config=True)
    fast_interval = Float(
        0.5, help="Seconds between queue polls while a spawn waits for its job."
    ).tag(config=True)
    orphan_grace = Float(
        120.0,
        help="""Seconds a job tagged by this hub may stay in the queue unclaimed by any
        server before it is cancelled as an orphan (e.g. after a hub crash during
        sbatch). Counted from the watcher's start too, so a restarted hub first lets
        every server re-adopt its job.""",
    ).tag(config=True)

    def __init__(self, client: SlurmClient, tag: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.tag = tag
        self.jobs: dict[str, QueuedJob] = {}
        self.finished: dict[str, FinishedJob] = {}
        self.tracked: set[str] = set()
        self.node_addrs: dict[str, str] = {}
        self.last_success: float | None = None
        self.last_error = ""
        self.errors = 0
        self.cycles = 0
        self._hurry = 0
        self.started_at = time.monotonic()
        self.unclaimed_since: dict[str, float] = {}
        # How to run scancel as a job's owner ({username} is replaced).
        self.cancel_prefix: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._cycle_done = asyncio.Event()
        self._wakeup = asyncio.Event()

    @classmethod
    def shared(cls, client: SlurmClient, tag: str, **kwargs: Any) -> QueueWatcher:
        """The hub's watcher for this SLURM configuration and job tag."""
        key = (type(client), client.slurm_conf, client.bin_dir, tag)
        watcher = cls._shared.get(key)
        if watcher is None or watcher._loop_closed():
            watcher = cls(client, tag, **kwargs)
            cls._shared[key] = watcher
        return watcher

    @classmethod
    def reset_shared(cls) -> None:
        for watcher in cls._shared.values():
            watcher.stop()
        cls._shared.clear()

    def _loop_closed(self) -> bool:
        return self._task is not None and self._task.get_loop().is_closed()

    def is_ours(self, job: QueuedJob) -> bool:
        return tagged_for_owner(job, self.tag)

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def track(self, job_id: str) -> None:
        self.tracked.add(job_id)
        self.ensure_running()

    def untrack(self, job_id: str) -> None:
        self.tracked.discard(job_id)
        self.finished.pop(job_id, None)

    def view(self, job_id: str) -> JobView:
        if job_id in self.jobs:
            return JobView("queued", queued=self.jobs[job_id])
        if job_id in self.finished:
            return JobView("finished", finished=self.finished[job_id])
        return JobView("unknown")

    def node_address(self, node: str) -> str:
        """The address the hub reaches ``node`` at (NodeAddr), else its name."""
        return self.node_addrs.get(node, node)

    async def next_cycle(self, timeout: float | None = None) -> bool:
        """Wait for the next completed poll (successful or not); False on timeout."""
        self.ensure_running()
        event = self._cycle_done
        self._wakeup.set()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def hurry(self) -> _Hurry:
        """Context manager: poll fast while a spawn waits for its job."""
        return _Hurry(self)

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            delay = self.fast_interval if self._hurry else self.interval
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def poll_once(self) -> None:
        started = time.monotonic()
        try:
            await self._refresh()
        except SlurmError as e:
            self.errors += 1
            self.last_error = str(e)
            POLL_ERRORS.inc()
            self.log.warning("Queue watcher: SLURM did not answer (%s); jobs kept as unknown", e)
        except Exception:
            self.errors += 1
            POLL_ERRORS.inc()
            self.log.exception("Queue watcher: unexpected error; jobs kept as unknown")
        finally:
            self.cycles += 1
            POLL_DURATION.observe(time.monotonic() - started)
            done, self._cycle_done = self._cycle_done, asyncio.Event()
            done.set()

    async def _refresh(self) -> None:
        queue = await self.client.queue()
        ours = {job_id: job for job_id, job in queue.items() if self.is_ours(job)}
        unseen_nodes = {job.node for job in ours.values() if job.node} - set(self.node_addrs)
        if unseen_nodes:
            try:
                self.node_addrs = await self.client.node_addresses()
            except SlurmError as e:
                self.log.warning("Queue watcher: cannot read node addresses: %s", e)
        for job_id in sorted(self.tracked - set(ours) - set(self.finished)):
            # Left the queue: ask the controller how it ended. If it cannot
            # say, the job stays unknown and is asked again next cycle.
            try:
                record = await self.client.job_record(job_id)
            except SlurmError as e:
                self.log.warning("Queue watcher: no record for job %s yet: %s", job_id, e)
                continue
            if record is not None:
                self.finished[job_id] = record
        self.jobs = ours
        self.last_success = time.time()
        await self._sweep_orphans(ours)
        counts: dict[str, int] = {}
        for job in ours.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        for state in PENDING_STATES | RUNNING_STATES:
            JOBS_BY_STATE.labels(state=state).set(counts.get(state, 0))

    async def _sweep_orphans(self, ours: dict[str, QueuedJob]) -> None:
        now = time.monotonic()
        for job_id in list(self.unclaimed_since):
            if job_id not in ours or job_id in self.tracked:
                del self.unclaimed_since[job_id]
        for job_id, job in ours.items():
            if job_id in self.tracked:
                continue
            since = self.unclaimed_since.setdefault(job_id, now)
            if min(now - since, now - self.started_at) < self.orphan_grace:
                continue
            if not _USER_RE.match(job.user):
                continue
            prefix = [part.replace("{username}", job.user) for part in self.cancel_prefix]
            self.log.warning(
                "Queue watcher: job %s of %s is tagged by this hub but no server claims it; "
                "cancelling it",
                job_id,
                job.user,
            )
            try:
                await self.client.cancel(job_id, prefix=prefix)
            except SlurmError as e:
                self.log.warning("Queue watcher: cancelling orphan %s failed: %s", job_id, e)
                continue
            ORPHANS_CANCELLED.inc()
            del self.unclaimed_since[job_id]


class _Hurry:
    def __init__(self, watcher: QueueWatcher) -> None:
        self.watcher = watcher

    def __enter__(self) -> QueueWatcher:
        self.watcher._hurry += 1
        self.watcher._wakeup.set()
        return self.watcher

    def __exit__(self, *exc: object) -> None:
        self.watcher._hurry -= 1
