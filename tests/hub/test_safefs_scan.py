"""The usage walk root runs in users' trees (the service's scanner): symlinks planted at
each level, or swapped in during the walk, are never followed; what is lost to a swap
makes the measurement incomplete; a tree deeper than PATH_MAX is counted in full.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

import scitex_quota.walk as walk_module
from scitex_hub.db import store as db
from scitex_hub.db.migrate import upgrade
from scitex_quota import scan_tree
from scitex_service.scanner import UsageScanner
from tests.services import require_root

MiB = 1024 * 1024


def du_bytes(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-x", "-B1", "--", str(path)], check=True, capture_output=True
    )
    return int(out.stdout.split()[0])


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Path]:
    """``<data_root>/demo-u`` with alice's small tree and bob's big one (48 MiB)."""
    require_root()
    inst = tmp_path / "data" / "demo-u"
    alice = inst / "alice"
    (alice / "projects" / "p1" / "src" / "deep").mkdir(parents=True)
    (alice / "projects" / "p1" / "src" / "deep" / "a.bin").write_bytes(os.urandom(200_000))
    (alice / "data").mkdir()
    (alice / "data" / "b.bin").write_bytes(os.urandom(100_000))
    bob = inst / "bob"
    bob.mkdir()
    with open(bob / "big.bin", "wb") as f:
        f.write(os.urandom(MiB) * 48)
    yield inst
    subprocess.run(["rm", "-rf", "--", str(tmp_path / "data")], check=True)


@pytest.mark.parametrize(
    "level", ["projects", "projects/p1", "projects/p1/src", "projects/p1/src/deep", "data"]
)
def test_a_link_planted_at_any_level_is_not_followed(inst: Path, level: str) -> None:
    alice = inst / "alice"
    before = scan_tree(str(alice)).used_bytes
    target = alice / level
    os.rename(target, alice / "elsewhere")
    target.symlink_to(inst / "bob")
    result = scan_tree(str(alice))
    # The link is counted as a link (a few bytes at most), never as bob's 48 MiB.
    assert result.used_bytes == du_bytes(alice)
    assert result.used_bytes < before + MiB
    assert not result.incomplete


@pytest.mark.parametrize("threads", [1, 2])
def test_a_directory_swapped_for_a_link_during_the_walk_is_not_followed(
    inst: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    alice = inst / "alice"
    src = alice / "projects" / "p1" / "src"
    real_read_dir = walk_module.read_dir
    swapped: list[str] = []

    def read_dir(fd: int, dev: int, tally: Any) -> list[str]:
        names = real_read_dir(fd, dev, tally)
        if "deep" in names and not swapped:
            # src has been listed; before "deep" is opened, alice swaps it for a link.
            os.rename(src / "deep", alice / "deep-moved")
            (src / "deep").symlink_to(inst / "bob")
            swapped.append("deep")
        return names

    monkeypatch.setattr(walk_module, "read_dir", read_dir)
    result = scan_tree(str(alice), threads=threads)
    assert swapped == ["deep"]
    assert result.used_bytes < 2 * MiB  # bob's 48 MiB not reached
    # The directory listed but not walked: the number is a lower bound, and says so.
    assert result.incomplete


def test_a_directory_moved_while_the_walk_is_below_it_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_root()
    root = tmp_path / "alice"
    chain = root / "a" / "b" / "c" / "d" / "e"
    chain.mkdir(parents=True)
    (chain / "f.bin").write_bytes(os.urandom(50_000))
    (root / "a" / "b" / "later").mkdir()
    (root / "a" / "b" / "later" / "g.bin").write_bytes(os.urandom(50_000))
    (tmp_path / "bob" / "b").mkdir(parents=True)
    (tmp_path / "bob" / "b" / "later").mkdir()
    (tmp_path / "bob" / "b" / "later" / "big.bin").write_bytes(os.urandom(4 * MiB))
    # Only 1 descriptor kept: going back up re-opens a/b by name.
    monkeypatch.setattr(walk_module, "MAX_OPEN_DIRS", 1)
    real_read_dir = walk_module.read_dir
    moved: list[str] = []

    def read_dir(fd: int, dev: int, tally: Any) -> list[str]:
        names = real_read_dir(fd, dev, tally)
        if "f.bin" in os.listdir(fd) and not moved:
            # Deep below: alice replaces a/b with a directory of other content.
            os.rename(root / "a" / "b", tmp_path / "b-moved")
            os.rename(tmp_path / "bob" / "b", root / "a" / "b")
            moved.append("b")
        return names

    monkeypatch.setattr(walk_module, "read_dir", read_dir)
    result = scan_tree(str(root))
    assert moved == ["b"]
    assert result.incomplete
    assert result.used_bytes < 2 * MiB


def test_the_service_scanner_counts_a_tree_deeper_than_path_max(inst: Path, tmp_path: Path) -> None:
    alice = inst / "alice"
    fd = os.open(alice / "data", os.O_RDONLY | os.O_DIRECTORY)
    depth = len(str(alice / "data"))
    for _ in range(20):
        os.mkdir("n" * 250, dir_fd=fd)
        child = os.open("n" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        depth += 251
    out = os.open("deep.bin", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
    os.write(out, os.urandom(MiB) * 64)
    os.close(out)
    os.close(fd)
    assert depth > 4096
    url = f"sqlite:///{tmp_path}/usage.sqlite"
    upgrade(url)
    engine = create_engine(url)
    scanner = UsageScanner(engine, str(inst.parent), ["demo-u"])
    assert scanner.scan_once() == 2
    row = db.latest_usage(engine, "alice", "demo-u")
    assert row is not None
    assert row.used_bytes == du_bytes(alice) and row.used_bytes > 64 * MiB
    assert row.errors == 0
