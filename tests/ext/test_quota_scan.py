"""The scan backend, for real on a temporary tree, checked against GNU du."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from pathlib import Path

import pytest

from scitex_quota import ScanCancelled, Usage, du_scan, scan_tree
from scitex_server_ext.quota.base import QuotaBackend, UsageUnavailable
from scitex_server_ext.quota.scan import ScanQuotaBackend


def du_bytes(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-x", "-B1", "--", str(path)], check=True, capture_output=True
    )
    return int(out.stdout.split()[0])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A user root with loose files, nested directories, projects, links and a sparse file."""
    root = tmp_path / "alice"
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
    # A hard link inside one project and across the tree: counted once, as du does.
    os.link(root / "data" / "big.bin", root / "projects" / "beta" / "big-link.bin")
    # Symlinks are not followed: neither to a big file outside nor to a directory.
    outside = tmp_path / "outside.bin"
    outside.write_bytes(os.urandom(500_000))
    (root / "link-out").symlink_to(outside)
    (root / "projects" / "gamma").symlink_to(root / "data")
    # Sparse: 50 MB long, one block written.
    with open(root / "sparse.img", "wb") as f:
        f.seek(50_000_000)
        f.write(b"end")
    return root


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


async def test_backend_caches_and_never_walks_inside_usage(tree: Path) -> None:
    backend = ScanQuotaBackend(root=str(tree))
    calls = 0
    real_measure = backend.measure

    async def counting_measure() -> Usage:
        nonlocal calls
        calls += 1
        return await real_measure()

    backend.measure = counting_measure  # type: ignore[method-assign]
    try:
        first = await backend.usage()
        assert first.used_bytes == du_bytes(tree)
        assert first.source == "scan"
        assert first.measured_at.tzinfo is not None
        assert [p.name for p in first.projects] == ["alpha", "beta"]
        # More files appear; the cached answer does not change until the next scan.
        (tree / "more.bin").write_bytes(os.urandom(100_000))
        for _ in range(100):
            assert await backend.usage() is first
        assert calls == 1
        second = await backend.refresh()
        assert calls == 2
        assert second.used_bytes == du_bytes(tree)
        assert await backend.usage() is second
        assert second.started <= second.finished
    finally:
        await backend.stop()


async def test_backend_du_engine(tree: Path) -> None:
    backend = ScanQuotaBackend(root=str(tree), engine="du")
    try:
        assert (await backend.usage()).used_bytes == du_bytes(tree)
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


async def test_timer_measures_periodically(tree: Path) -> None:
    backend = ScanQuotaBackend(root=str(tree), interval=0.05, max_duty_cycle=1.0)
    try:
        backend.start()
        first = await backend.usage()
        (tree / "later.bin").write_bytes(os.urandom(200_000))
        for _ in range(200):
            await asyncio.sleep(0.02)
            latest = backend.latest
            if latest is not None and latest.used_bytes != first.used_bytes:
                break
        assert backend.latest is not None
        assert backend.latest.used_bytes == du_bytes(tree)
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
    assert isinstance(ScanQuotaBackend(root="/"), QuotaBackend)


def test_auto_engine_prefers_du_and_falls_back_to_python(tree: Path) -> None:
    assert ScanQuotaBackend(root=str(tree)).effective_engine == "du"
    missing_du = ScanQuotaBackend(root=str(tree), du_command="/nonexistent/du")
    assert missing_du.effective_engine == "python"
    assert ScanQuotaBackend(root=str(tree), engine="python").effective_engine == "python"
