"""A real hard limit: writes on a 1 MiB tmpfs fail with ENOSPC, cleanly.

The kernel here has no quota support, so a size-capped filesystem stands in for a
filesystem quota (EDQUOT takes the same path). Mounting needs root; in CI (``CI=true``)
not being able to mount is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from scitex_server_ext.contents_guard import atomic_write

KiB = 1024


def _cannot_mount(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires the ENOSPC test to run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        _cannot_mount("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "scitex-enospc", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        _cannot_mount(f"mount -t tmpfs failed: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".~"))


def test_atomic_write_on_a_full_filesystem_keeps_the_old_file(small_fs: Path) -> None:
    target = small_fs / "results.csv"
    old = os.urandom(300 * KiB)
    target.write_bytes(old)
    with pytest.raises(OSError) as e:
        atomic_write(target, lambda f: f.write(os.urandom(2048 * KiB)))
    assert e.value.errno == 28  # ENOSPC
    assert target.read_bytes() == old
    assert leftovers(small_fs) == []
    # Room is given back: a write that fits still works.
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"


def test_small_buffered_write_that_fails_late_keeps_the_old_file(small_fs: Path) -> None:
    target = small_fs / "a.txt"
    target.write_bytes(b"v1")
    # Fill every block; then write less than one buffer: the error shows at flush time,
    # after the stock writer would already have truncated the target.
    with open(small_fs / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    with pytest.raises(OSError) as e:
        atomic_write(target, lambda f: f.write(b"v2 needs a new block"))
    assert e.value.errno == 28
    assert target.read_bytes() == b"v1"
    assert leftovers(small_fs) == []


def test_write_larger_than_the_space_left_keeps_the_old_file(small_fs: Path) -> None:
    # The case that corrupts files with jupyter-server's stock writer: one block free,
    # the backup copy takes it, the target is truncated, the buffered write fails at
    # flush time outside its try block: the target keeps half of the new data.
    target = small_fs / "a.txt"
    target.write_bytes(b"1" * 4096)
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 4096)
    os.truncate(filler, filler.stat().st_size - 4096)
    with pytest.raises(OSError):
        atomic_write(target, lambda f: f.write(b"2" * 6000))
    assert target.read_bytes() == b"1" * 4096
    assert leftovers(small_fs) == []


@pytest.fixture
def jp_root_dir(small_fs: Path) -> Path:
    return small_fs


@pytest.fixture
def jp_server_config(small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # No limit of our own: the filesystem is the only limit here.
    monkeypatch.delenv("SCITEX_QUOTA_LIMIT_BYTES", raising=False)
    return {
        "ServerApp": {
            "jpserver_extensions": {"scitex_server_ext": True},
            "contents_manager_class": "scitex_server_ext.contents_guard.QuotaContentsManager",
        },
        "SciTeXExtension": {"user_root": str(small_fs)},
    }


def b64(data: bytes, **extra: Any) -> str:
    import base64

    return json.dumps(
        {"type": "file", "format": "base64", "content": base64.b64encode(data).decode(), **extra}
    )


async def test_save_hitting_enospc_is_507_and_the_old_file_stays(
    jp_fetch: Any, small_fs: Path
) -> None:
    target = small_fs / "data.bin"
    old = os.urandom(300 * KiB)
    target.write_bytes(old)
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(
            "api", "contents", "data.bin", method="PUT", body=b64(os.urandom(2 * 1024 * KiB))
        )
    assert e.value.code == 507
    assert e.value.response is not None
    message = json.loads(e.value.response.body)["message"]
    assert "The filesystem is full" in message
    assert "previous version of the file is intact" in message
    assert target.read_bytes() == old
    assert leftovers(small_fs) == []


async def test_chunked_upload_hitting_enospc_keeps_the_old_file(
    jp_fetch: Any, small_fs: Path
) -> None:
    target = small_fs / "upload.bin"
    target.write_bytes(b"old contents")
    await jp_fetch(
        "api", "contents", "upload.bin", method="PUT", body=b64(os.urandom(400 * KiB), chunk=1)
    )
    with pytest.raises(HTTPClientError) as e:
        for n in range(2, 6):
            await jp_fetch(
                "api",
                "contents",
                "upload.bin",
                method="PUT",
                body=b64(os.urandom(400 * KiB), chunk=n),
            )
    assert e.value.code == 507
    assert target.read_bytes() == b"old contents"
    assert leftovers(small_fs) == []
