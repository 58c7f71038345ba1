"""The scan backend, for real on a temporary tree, checked against GNU du."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from scitex_quota import CommandResult, QuotaCommandError, ScanCancelled, Usage, du_scan, scan_tree
from scitex_quota.scan import du_batches, parallel_du_scan
from scitex_server_ext.quota.base import QuotaBackend, UsageUnavailable
from scitex_server_ext.quota.scan import ScanQuotaBackend


def du_bytes(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-x", "-B1", "--", str(path)], check=True, capture_output=True
    )
    return int(out.stdout.split()[0])


def build_tree(base: Path, *, cross_link: bool = True) -> Path:
    """A user root with loose files, nested directories, projects, links and a sparse file."""
    root = base / "alice"
    (root / "data" / "raw" / "2024").mkdir(parents=True)
    (root / "notes.txt").write_bytes(b"n" * 10)
    (root / "data" / "big.bin").write_bytes(os.urandom(300_000))
    for i in range(50):
        (root / "data" / "raw" / "2024" / f"r{i}.csv").write_bytes(b"x" * (i * 97 + 1))
    (root / "projects" / "alpha" / "src").mkdir(parents=True)
    (root / "projects" / "alpha" / "src" / "main.py").write_bytes(b"print(1)\n" * 2000)
    (root / "projects" / "beta").mkdir()
    (root / "projects" / "beta" / "paper.tex").write_bytes(b"\\documentclass{article}\n" * 500)
    (root / "projects" / "README").write_text("not a project: a file")
    # A hard link within one unit: counted once by every engine.
    os.link(root / "data" / "big.bin", root / "data" / "raw" / "big-again.bin")
    if cross_link:
        # ... and one across units (data, projects/beta): counted once, as one du does.
        os.link(root / "data" / "big.bin", root / "projects" / "beta" / "big-link.bin")
    # Symlinks are not followed: neither to a big file outside nor to a directory.
    outside = base / "outside.bin"
    outside.write_bytes(os.urandom(500_000))
    (root / "link-out").symlink_to(outside)
    (root / "data" / "link-out").symlink_to(outside)
    (root / "projects" / "gamma").symlink_to(root / "data")
    (root / "data-link").symlink_to(root / "data")
    # Sparse: 50 MB long, one block written.
    with open(root / "sparse.img", "wb") as f:
        f.seek(50_000_000)
        f.write(b"end")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


@pytest.fixture
def plain_tree(tmp_path: Path) -> Path:
    """``tree`` without the hard link across units: every engine and setting agrees."""
    return build_tree(tmp_path, cross_link=False)


@pytest.mark.parametrize("threads", [1, 4])
def test_scan_matches_du(tree: Path, threads: int) -> None:
    result = scan_tree(str(tree), threads=threads)
    assert result.used_bytes == du_bytes(tree)
    assert result.errors == 0
    expected_files = sum(len(dirs) + len(files) for _, dirs, files in os.walk(tree))
    assert result.files == expected_files


def test_project_subtotals_match_du(tree: Path) -> None:
    result = scan_tree(str(tree))
    # Symlinked "gamma" and the loose README are not projects.
    assert sorted(result.projects) == ["alpha", "beta"]
    assert result.projects["alpha"] == du_bytes(tree / "projects" / "alpha")
    assert result.projects["beta"] == du_bytes(tree / "projects" / "beta")


def test_allocated_not_apparent_size(tree: Path) -> None:
    # The sparse file is 50 MB long but takes a block or so: the quota charges blocks.
    result = scan_tree(str(tree))
    assert result.used_bytes < 10_000_000
    # A 10-byte file still takes a whole block.
    assert scan_tree(str(tree / "data" / "raw")).used_bytes >= 51 * 4096


def test_only_projects_walks_just_the_projects(tree: Path) -> None:
    full = scan_tree(str(tree))
    part = scan_tree(str(tree), only_projects=True)
    assert part.projects == full.projects
    assert part.files < full.files


def test_missing_root_and_file_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_tree(str(tmp_path / "nope"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        scan_tree(str(tmp_path / "f"))


def test_cancel_stops_the_walk(tree: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ScanCancelled):
        scan_tree(str(tree), cancel=cancel)


async def test_du_engine_gives_the_same_numbers(tree: Path) -> None:
    python = scan_tree(str(tree))
    du = await du_scan(str(tree))
    assert du.used_bytes == python.used_bytes
    assert du.projects == python.projects


async def test_backend_caches_and_never_walks_inside_usage(plain_tree: Path) -> None:
    backend = ScanQuotaBackend(root=str(plain_tree))
    calls = 0
    real_measure = backend.measure

    async def counting_measure() -> Usage:
        nonlocal calls
        calls += 1
        return await real_measure()

    backend.measure = counting_measure  # type: ignore[method-assign]
    try:
        first = await backend.usage()
        assert first.used_bytes == du_bytes(plain_tree)
        assert first.source == "scan"
        assert first.measured_at.tzinfo is not None
        assert [p.name for p in first.projects] == ["alpha", "beta"]
        # More files appear; the cached answer does not change until the next scan.
        (plain_tree / "more.bin").write_bytes(os.urandom(100_000))
        for _ in range(100):
            assert await backend.usage() is first
        assert calls == 1
        second = await backend.refresh()
        assert calls == 2
        assert second.used_bytes == du_bytes(plain_tree)
        assert await backend.usage() is second
        assert second.started <= second.finished
    finally:
        await backend.stop()


async def test_backend_du_engine(plain_tree: Path) -> None:
    for jobs in (1, 2, 3):
        backend = ScanQuotaBackend(root=str(plain_tree), engine="du", du_jobs=jobs)
        try:
            usage = await backend.usage()
            assert usage.used_bytes == du_bytes(plain_tree)
            assert {p.name: p.used_bytes for p in usage.projects} == {
                "alpha": du_bytes(plain_tree / "projects" / "alpha"),
                "beta": du_bytes(plain_tree / "projects" / "beta"),
            }
        finally:
            await backend.stop()


async def test_concurrent_first_requests_share_one_walk(tree: Path) -> None:
    backend = ScanQuotaBackend(root=str(tree))
    calls = 0
    real_measure = backend.measure

    async def counting_measure() -> Usage:
        nonlocal calls
        calls += 1
        return await real_measure()

    backend.measure = counting_measure  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*(backend.usage() for _ in range(20)))
        assert len({id(r) for r in results}) == 1
        assert calls == 1
    finally:
        await backend.stop()


async def test_failed_measurement_is_reported_not_retried_per_request(tmp_path: Path) -> None:
    backend = ScanQuotaBackend(root=str(tmp_path / "missing"), interval=3600)
    try:
        with pytest.raises(UsageUnavailable, match="could not be measured"):
            await backend.usage()
        # The failure is remembered: no new walk per request until the timer retries.
        with pytest.raises(UsageUnavailable):
            await backend.usage()
        assert backend.latest is None
    finally:
        await backend.stop()


async def test_timer_measures_periodically(plain_tree: Path) -> None:
    backend = ScanQuotaBackend(root=str(plain_tree), interval=0.05, max_duty_cycle=1.0)
    try:
        backend.start()
        first = await backend.usage()
        (plain_tree / "later.bin").write_bytes(os.urandom(200_000))
        for _ in range(200):
            await asyncio.sleep(0.02)
            latest = backend.latest
            if latest is not None and latest.used_bytes != first.used_bytes:
                break
        assert backend.latest is not None
        assert backend.latest.used_bytes == du_bytes(plain_tree)
    finally:
        await backend.stop()


def test_duty_cycle_spaces_out_long_walks() -> None:
    backend = ScanQuotaBackend(root="/", interval=60, max_duty_cycle=0.1)
    assert backend.next_delay(1.0) == pytest.approx(59.0)
    # A 30-second walk starts again 300 s after its start, not 60 s.
    assert backend.next_delay(30.0) == pytest.approx(270.0)


def test_settings_are_validated() -> None:
    from traitlets import TraitError

    with pytest.raises(TraitError, match="interval"):
        ScanQuotaBackend(root="/", interval=0)
    with pytest.raises(TraitError, match="max_duty_cycle"):
        ScanQuotaBackend(root="/", max_duty_cycle=1.5)
    with pytest.raises(TraitError, match="threads"):
        ScanQuotaBackend(root="/", threads=0)
    with pytest.raises(TraitError, match="du_jobs must be at least 1"):
        ScanQuotaBackend(root="/", du_jobs=0)
    assert isinstance(ScanQuotaBackend(root="/"), QuotaBackend)


def test_auto_engine_prefers_du_and_falls_back_to_python(tree: Path) -> None:
    assert ScanQuotaBackend(root=str(tree)).effective_engine == "du"
    missing_du = ScanQuotaBackend(root=str(tree), du_command="/nonexistent/du")
    assert missing_du.effective_engine == "python"
    assert ScanQuotaBackend(root=str(tree), engine="python").effective_engine == "python"


# -- parallel du walks (du_jobs > 1) -------------------------------------------------


def build_empty(base: Path) -> Path:
    (base / "u").mkdir()
    return base / "u"


def build_only_files(base: Path) -> Path:
    root = base / "u"
    root.mkdir()
    for i in range(20):
        (root / f"f{i}.txt").write_bytes(b"y" * (i * 1013 + 1))
    # Hard-linked loose files are counted once among themselves.
    os.link(root / "f3.txt", root / "f3-again.txt")
    (root / "dangling").symlink_to(base / "nowhere")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(20_000_000)
    return root


def build_many_units(base: Path) -> Path:
    """42 units of uneven size and depth: several units per du batch."""
    root = base / "u"
    for t in range(30):
        d = root / f"top{t:02d}"
        for depth in range(t % 4):
            d = d / f"level{depth}"
        d.mkdir(parents=True)
        for i in range(t % 7 * 5):
            (d / f"f{i}").write_bytes(b"z" * (i * 311 + t))
    for p in range(12):
        d = root / "projects" / f"p{p:02d}" / "src"
        d.mkdir(parents=True)
        for i in range(p + 1):
            (d / f"m{i}.py").write_bytes(b"pass\n" * (i * 50 + 1))
    (root / "projects" / "notes.md").write_text("a loose file in projects/")
    (root / "projects" / "borrowed").symlink_to(root / "top05")
    return root


def build_projects_only(base: Path) -> Path:
    root = base / "u"
    (root / "projects" / "one").mkdir(parents=True)
    (root / "projects" / "one" / "a.dat").write_bytes(os.urandom(70_000))
    (root / "projects" / "two").mkdir()
    (root / "projects" / "empty").mkdir()
    (root / "elsewhere").mkdir()
    # A symlinked "project" is not a project and costs nothing.
    (root / "projects" / "linked").symlink_to(root / "elsewhere")
    return root


def build_empty_projects_dir(base: Path) -> Path:
    root = base / "u"
    (root / "projects").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    return root


TREES: dict[str, Callable[[Path], Path]] = {
    "mixed": lambda base: build_tree(base, cross_link=False),
    "empty root": build_empty,
    "only files": build_only_files,
    "many units": build_many_units,
    "projects only": build_projects_only,
    "empty projects dir": build_empty_projects_dir,
}


@pytest.mark.parametrize("shape", list(TREES))
async def test_parallel_du_equals_one_du_and_python(tmp_path: Path, shape: str) -> None:
    root = TREES[shape](tmp_path)
    one = await du_scan(str(root))
    python = scan_tree(str(root))
    assert one.used_bytes == python.used_bytes == du_bytes(root)
    assert one.projects == python.projects
    for jobs in (1, 2, 3, 5):
        parallel = await parallel_du_scan(str(root), jobs=jobs)
        assert parallel.used_bytes == one.used_bytes, jobs
        assert parallel.projects == one.projects, jobs
        assert parallel.errors == 0


def test_du_batches_are_consecutive_and_about_four_per_job() -> None:
    assert du_batches([], 2) == []
    assert du_batches(["a", "b", "c"], 4) == [["a"], ["b"], ["c"]]
    assert du_batches(list(range(10)), 2) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert du_batches(list(range(10)), 1) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert du_batches(list(range(17)), 2) == [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7, 8],
        [9, 10, 11],
        [12, 13, 14],
        [15, 16],
    ]
    # Never more than MAX_BATCH (512) paths on one command line.
    assert [len(b) for b in du_batches(list(range(5000)), 1)] == [512] * 9 + [392]


@pytest.fixture
def logging_du(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A du_command that records each call's arguments, then runs the real du."""
    log = tmp_path / "du-calls.log"
    script = tmp_path / "logging-du"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec du "$@"\n')
    script.chmod(0o755)
    yield str(script), log


async def test_backend_du_jobs_1_is_one_du_and_more_is_several(
    plain_tree: Path, logging_du: tuple[str, Path]
) -> None:
    du_command, log = logging_du
    one = ScanQuotaBackend(root=str(plain_tree), du_command=du_command, du_jobs=1)
    single = await one.measure()
    calls = log.read_text().splitlines()
    assert calls == [f"-x -B1 -0 --max-depth=2 -- {plain_tree}"]

    log.unlink()
    three = ScanQuotaBackend(root=str(plain_tree), du_command=du_command, du_jobs=3)
    parallel = await three.measure()
    calls = sorted(log.read_text().splitlines())
    # Units data, projects/alpha, projects/beta: one batch each (3 jobs, all at once).
    assert calls == [
        f"-x -B1 -0 -s -- {plain_tree}/data",
        f"-x -B1 -0 -s -- {plain_tree}/projects/alpha",
        f"-x -B1 -0 -s -- {plain_tree}/projects/beta",
    ]
    assert parallel.used_bytes == single.used_bytes
    assert parallel.projects == single.projects


def fake_du_output(paths: Sequence[str], size: int = 4096) -> str:
    return "".join(f"{size}\t{p}\0" for p in paths)


async def test_workers_pull_batches_as_they_finish(tmp_path: Path) -> None:
    root = tmp_path / "u"
    for i in range(16):
        (root / f"d{i:02d}").mkdir(parents=True)
    # More subdirectories, a higher link count: started first, as likely the biggest.
    for sub in ("x", "y"):
        (root / "d09" / sub).mkdir()
    running = peak = 0
    started: list[list[str]] = []
    finished: list[list[str]] = []

    async def runner(argv: Sequence[str], timeout: float) -> CommandResult:
        nonlocal running, peak
        paths = list(argv[argv.index("--") + 1 :])
        names = [os.path.basename(p) for p in paths]
        started.append(names)
        running += 1
        peak = max(peak, running)
        # The first batch is slow: meanwhile the other worker takes all the rest.
        await asyncio.sleep(0.3 if names[0] == "d09" else 0.001)
        running -= 1
        finished.append(names)
        return CommandResult(0, fake_du_output(paths), "")

    result = await parallel_du_scan(str(root), jobs=2, runner=runner)
    assert peak == 2
    # 16 units, 2 jobs: 8 batches of 2, d09 first; the slow one finishes last.
    assert started[:2] == [["d09", "d00"], ["d01", "d02"]]
    assert len(finished) == 8
    assert finished[-1] == ["d09", "d00"]
    assert sorted(n for batch in finished for n in batch) == [f"d{i:02d}" for i in range(16)]
    assert result.used_bytes == os.lstat(root).st_blocks * 512 + 16 * 4096


async def test_a_failing_du_stops_the_others(tmp_path: Path) -> None:
    root = tmp_path / "u"
    for i in range(4):
        (root / f"d{i}").mkdir(parents=True)
    cancelled: list[str] = []

    async def runner(argv: Sequence[str], timeout: float) -> CommandResult:
        paths = list(argv[argv.index("--") + 1 :])
        if paths[0].endswith("/d0"):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(paths[0])
                raise
        return CommandResult(2, "", "du: fts_read failed: Input/output error\n")

    t0 = time.monotonic()
    with pytest.raises(QuotaCommandError, match="status 2: du: fts_read failed"):
        await parallel_du_scan(str(root), jobs=2, runner=runner)
    assert time.monotonic() - t0 < 5
    assert cancelled == [str(root / "d0")]


async def test_parallel_du_timeout_kills_the_walks(tmp_path: Path) -> None:
    root = tmp_path / "u"
    for i in range(3):
        (root / f"d{i}").mkdir(parents=True)
    pids = tmp_path / "pids"
    hanging = tmp_path / "hanging-du"
    hanging.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 30\n")
    hanging.chmod(0o755)
    t0 = time.monotonic()
    with pytest.raises(QuotaCommandError, match=r"did not finish within 0\.5 s"):
        await parallel_du_scan(str(root), jobs=2, du_command=str(hanging), timeout=0.5)
    assert time.monotonic() - t0 < 5
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2
    # Killed (they would sleep 30 s): gone once reaped, which may lag the kill a little.
    for _ in range(100):
        if not any(alive(pid) for pid in started):
            break
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in started)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A killed process not yet reaped is a zombie (state Z): not running.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Gone; reaped between the open and the read (ESRCH) counts the same.
        return False


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory other users can enter (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="scitex-scan-test-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


async def test_unreadable_directories_are_errors_not_failures(
    shared_tmp: Path, tmp_path: Path
) -> None:
    root = build_tree(shared_tmp, cross_link=False)
    (root / "locked").mkdir()
    (root / "locked" / "secret.bin").write_bytes(os.urandom(100_000))
    (root / "data" / "raw" / "2024").chmod(0)
    (root / "projects" / "beta").chmod(0)
    (root / "locked").chmod(0)
    du_command = "du"
    if os.geteuid() == 0:
        # root reads everything: walk as nobody instead.
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to run du as nobody"
        wrapper = tmp_path / "du-as-nobody"
        wrapper.write_text(
            f'#!/bin/sh\nexec {setpriv} --reuid=65534 --regid=65534 --clear-groups du "$@"\n'
        )
        wrapper.chmod(0o755)
        du_command = str(wrapper)
    try:
        one = await du_scan(str(root), du_command=du_command)
        parallel = await parallel_du_scan(str(root), jobs=2, du_command=du_command)
    finally:
        for d in ("data/raw/2024", "projects/beta", "locked"):
            (root / d).chmod(0o755)
    # du exits 1, prints what it could read, and one error per unreadable directory.
    assert one.errors == parallel.errors == 3
    assert parallel.used_bytes == one.used_bytes
    assert parallel.projects == one.projects
    # What could not be read is not counted (the directories themselves are).
    assert parallel.used_bytes < du_bytes(root) - 300_000


async def test_parallel_du_counts_hard_links_once_per_batch(tmp_path: Path) -> None:
    """The documented approximation: a file linked from units in two batches counts twice."""
    root = tmp_path / "u"
    for name in "abcdefghij":
        (root / name).mkdir(parents=True)
        (root / name / "own.bin").write_bytes(os.urandom(5_000))
    (root / "a" / "f.bin").write_bytes(os.urandom(200_000))
    os.link(root / "a" / "f.bin", root / "b" / "f.bin")
    os.link(root / "a" / "f.bin", root / "j" / "f.bin")
    linked = os.stat(root / "a" / "f.bin").st_blocks * 512
    exact = du_bytes(root)
    assert (await du_scan(str(root))).used_bytes == exact
    assert scan_tree(str(root)).used_bytes == exact
    # One job: batches a-c, d-f, g-i, j. a and b share a du (counted once), j does not.
    assert (await parallel_du_scan(str(root), jobs=1)).used_bytes == exact + linked
    # Three jobs: a batch per unit. a, b and j: three du processes, three counts.
    assert (await parallel_du_scan(str(root), jobs=3)).used_bytes == exact + 2 * linked
    # A loose file in the root is counted apart from every du.
    os.link(root / "a" / "f.bin", root / "loose.bin")
    exact = du_bytes(root)
    assert (await parallel_du_scan(str(root), jobs=3)).used_bytes == exact + 3 * linked


async def test_backend_counts_a_cross_project_link_in_each_project(tree: Path) -> None:
    """``tree`` links data/big.bin into projects/beta: one du counts it once, jobs > 1 twice."""
    big = os.stat(tree / "data" / "big.bin").st_blocks * 512
    exact = ScanQuotaBackend(root=str(tree), engine="du", du_jobs=1)
    assert (await exact.measure()).used_bytes == du_bytes(tree)
    parallel = await ScanQuotaBackend(root=str(tree), engine="du", du_jobs=2).measure()
    assert parallel.used_bytes == du_bytes(tree) + big
    # Each project as du -s sees it alone (beta with the link).
    assert {p.name: p.used_bytes for p in parallel.projects} == {
        "alpha": du_bytes(tree / "projects" / "alpha"),
        "beta": du_bytes(tree / "projects" / "beta"),
    }


def test_du_jobs_default_is_the_usable_cpus_up_to_4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert ScanQuotaBackend(root="/").du_jobs == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert ScanQuotaBackend(root="/").du_jobs == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert ScanQuotaBackend(root="/").du_jobs == 2
