"""Usage walks count everything: trees nested deeper than PATH_MAX, by every engine, and
an unreadable subtree makes the measurement incomplete (never a silently lower number).

Real files in a temporary directory. The deep tree is built and removed through
directory descriptors (its paths are longer than the kernel accepts).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import scitex_quota.walk as walk_module
from scitex_quota import du_scan, scan_tree
from scitex_quota.scan import parallel_du_scan
from scitex_server_ext.quota.scan import ScanQuotaBackend
from scitex_server_ext.quota.tracker import QuotaTracker
from scitex_server_ext.quota.xfs import XfsQuotaBackend
from tests.services import require_root

MiB = 1024 * 1024
DATA = 64 * MiB
PATH_MAX = 4096
NOBODY = 65534


def du_bytes(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-x", "-B1", "--", str(path)], check=True, capture_output=True
    )
    return int(out.stdout.split()[0])


def build_deep(root: Path, names: list[str], data: int) -> int:
    """``root/projects/deep/<names...>/data.bin`` (``data`` bytes); returns the path length."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    length = len(str(root))
    for name in ["projects", "deep", *names]:
        os.mkdir(name, 0o755, dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        length += 1 + len(name)
    out = os.open("data.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    chunk = os.urandom(MiB)
    for _ in range(data // MiB):
        os.write(out, chunk)
    os.close(out)
    os.close(fd)
    return length + len("/data.bin")


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="scitex-deep-"))
    root = base / "alice"
    root.mkdir()
    yield root
    # GNU rm walks by descriptor too; shutil.rmtree recurses once per level.
    subprocess.run(["chmod", "-R", "u+rwx", str(base)], check=False)
    subprocess.run(["rm", "-rf", "--", str(base)], check=True)


@pytest.fixture(params=["long names", "many levels"])
def deep_root(request: pytest.FixtureRequest, scratch: Path) -> Path:
    # 20 levels of 250-byte names, or 2100 levels of one byte: both past PATH_MAX, the
    # second also deeper than the walk keeps descriptors open (MAX_OPEN_DIRS).
    names = ["d" * 250] * 20 if request.param == "long names" else ["a"] * 2100
    length = build_deep(scratch, names, DATA)
    assert length > PATH_MAX
    (scratch / "notes.txt").write_bytes(b"x" * 5000)
    return scratch


def assert_counted(used: int, root: Path) -> None:
    # GNU du (which walks by descriptor) is the reference; the 64 MiB are in it.
    assert used == du_bytes(root)
    assert used >= DATA


async def test_every_engine_counts_a_tree_deeper_than_path_max(deep_root: Path) -> None:
    for threads in (1, 3):
        result = scan_tree(str(deep_root), threads=threads)
        assert_counted(result.used_bytes, deep_root)
        assert not result.incomplete
        assert result.projects["deep"] >= DATA
    result = await du_scan(str(deep_root))
    assert_counted(result.used_bytes, deep_root)
    assert not result.incomplete and result.projects["deep"] >= DATA
    result = await parallel_du_scan(str(deep_root), jobs=2)
    assert_counted(result.used_bytes, deep_root)
    assert not result.incomplete and result.projects["deep"] >= DATA
    # The notebook server's backend, each engine.
    for engine, jobs in (("python", 1), ("du", 1), ("du", 2)):
        backend = ScanQuotaBackend(root=str(deep_root), engine=engine, du_jobs=jobs)
        try:
            usage = await backend.refresh()
        finally:
            await backend.stop()
        assert_counted(usage.used_bytes, deep_root)
        assert not usage.incomplete
        assert {p.name: p.used_bytes for p in usage.projects}["deep"] >= DATA
    # The quota-tool backends' project walk.
    only = scan_tree(str(deep_root), only_projects=True)
    assert only.projects["deep"] >= DATA


def test_the_walk_reopens_its_path_with_few_descriptors(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_deep(scratch, ["b"] * 300, 1 * MiB)
    expected = du_bytes(scratch)
    monkeypatch.setattr(walk_module, "MAX_OPEN_DIRS", 3)
    before = len(os.listdir("/proc/self/fd"))
    result = scan_tree(str(scratch))
    assert result.used_bytes == expected and not result.incomplete
    assert len(os.listdir("/proc/self/fd")) == before


def as_nobody(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in a child process as ``nobody`` (root reads everything); its JSON answer."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the child failed"
    return dict(json.loads(data))


def test_an_unreadable_subtree_makes_every_engine_incomplete(scratch: Path) -> None:
    require_root()
    (scratch / "data").mkdir()
    (scratch / "data" / "open.bin").write_bytes(os.urandom(100_000))
    hidden = scratch / "projects" / "p" / "hidden"
    hidden.mkdir(parents=True)
    (hidden / "secret.bin").write_bytes(os.urandom(3 * MiB))
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(scratch.parent)], check=True)
    hidden.chmod(0o000)

    def measure() -> dict[str, Any]:
        async def engines() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, result in (
                ("python", scan_tree(str(scratch))),
                ("python-threads", scan_tree(str(scratch), threads=3)),
                ("du", await du_scan(str(scratch))),
                ("parallel-du", await parallel_du_scan(str(scratch), jobs=2)),
            ):
                out[name] = [result.used_bytes, result.incomplete]
            for engine, jobs in (("python", 1), ("du", 1), ("du", 2)):
                backend = ScanQuotaBackend(root=str(scratch), engine=engine, du_jobs=jobs)
                try:
                    usage = await backend.refresh()
                finally:
                    await backend.stop()
                tracker = QuotaTracker(backend, limit_bytes=None)
                snapshot = await tracker.snapshot()
                out[f"backend-{engine}-{jobs}"] = [usage.used_bytes, snapshot.incomplete]
            return out

        return asyncio.run(engines())

    answers = as_nobody(measure)
    assert set(answers) == {
        "python",
        "python-threads",
        "du",
        "parallel-du",
        "backend-python-1",
        "backend-du-1",
        "backend-du-2",
    }
    for name, (used, incomplete) in answers.items():
        # What could be read is counted; the 3 MiB behind the closed door are not, and the
        # answer says the number is a lower bound.
        assert incomplete is True, name
        assert 100_000 <= used < 3 * MiB, (name, used)


async def test_a_quota_tool_total_is_never_incomplete(scratch: Path) -> None:
    from scitex_quota import CommandResult

    async def runner(argv: Any, timeout: float) -> CommandResult:
        return CommandResult(0, "/dev/sdb1 1024 0 2048 00 [--------] /data\n", "")

    backend = XfsQuotaBackend(root=str(scratch), quota_id="7", mount="/data", runner=runner)
    usage = await backend.refresh()
    await backend.stop()
    assert usage.used_bytes == 1024 * 1024 and not usage.incomplete
