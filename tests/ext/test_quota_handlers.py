"""GET scitex/api/quota and quota-checked saves, through a real jupyter-server (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from traitlets import default

from scitex_quota import CommandResult, Usage
from scitex_server_ext.contents_guard import QuotaContentsManager, attach_quota
from scitex_server_ext.quota.scan import ScanQuotaBackend
from scitex_server_ext.quota.tracker import QuotaTracker
from scitex_server_ext.quota.xfs import XfsQuotaBackend

KiB = 1024
MiB = 1024 * KiB
LIMIT = 1 * MiB
HERE = __name__  # tests.ext.test_quota_handlers: importable, so backends here are configurable


def du_bytes(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-x", "-B1", "--", str(path)], check=True, capture_output=True
    )
    return int(out.stdout.split()[0])


def leftovers(directory: Path) -> list[str]:
    """Temporary or staged files our writes might have left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".~"))


@pytest.fixture
def quota_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("SCITEX_INSTITUTION", "demo-u")
    monkeypatch.setenv("SCITEX_QUOTA_LIMIT_BYTES", str(LIMIT))


@pytest.fixture
def extra_config() -> dict[str, Any]:
    return {}


@pytest.fixture
def jp_server_config(jp_root_dir: Path, quota_env: None, extra_config: dict[str, Any]) -> Any:
    config: dict[str, Any] = {
        "ServerApp": {
            "jpserver_extensions": {"scitex_server_ext": True},
            "contents_manager_class": "scitex_server_ext.contents_guard.QuotaContentsManager",
        },
        "SciTeXExtension": {"user_root": str(jp_root_dir)},
    }
    for section, values in extra_config.items():
        config.setdefault(section, {}).update(values)
    return config


@pytest.fixture
def tracker(jp_serverapp: Any) -> QuotaTracker:
    quota: QuotaTracker = jp_serverapp.web_app.settings["scitex"]["quota"]
    return quota


async def get_quota(jp_fetch: Any) -> dict[str, Any]:
    response = await jp_fetch("scitex", "api", "quota")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = json.loads(response.body)
    return body


async def put(jp_fetch: Any, path: str, model: dict[str, Any]) -> Any:
    return await jp_fetch("api", "contents", *path.split("/"), method="PUT", body=json.dumps(model))


def text_model(text: str) -> dict[str, Any]:
    return {"type": "file", "format": "text", "content": text}


def b64_model(data: bytes, **extra: Any) -> dict[str, Any]:
    return {"type": "file", "format": "base64", "content": base64.b64encode(data).decode(), **extra}


async def expect_error(code: int, call: Any) -> dict[str, Any]:
    with pytest.raises(HTTPClientError) as e:
        await call
    assert e.value.code == code, e.value.response.body if e.value.response else e.value
    assert e.value.response is not None
    body: dict[str, Any] = json.loads(e.value.response.body)
    return body


# -- GET scitex/api/quota ----------------------------------------------------------------


async def test_quota_json_shape_and_values(jp_fetch: Any, jp_root_dir: Path, tracker: Any) -> None:
    (jp_root_dir / "projects" / "alpha" / "src").mkdir(parents=True)
    (jp_root_dir / "projects" / "alpha" / "src" / "run.py").write_bytes(b"x" * 20_000)
    (jp_root_dir / "projects" / "beta").mkdir()
    (jp_root_dir / "projects" / "beta" / "data.csv").write_bytes(b"1,2\n" * 30_000)
    (jp_root_dir / "notes.md").write_bytes(b"hello")
    body = await get_quota(jp_fetch)
    assert set(body) == {
        "user",
        "institution",
        "used_bytes",
        "limit_bytes",
        "projects",
        "measured_at",
        "source",
        "incomplete",
    }
    assert body["incomplete"] is False
    assert body["user"] == "alice"
    assert body["institution"] == "demo-u"
    assert body["source"] == "scan"
    assert body["limit_bytes"] == LIMIT
    assert body["used_bytes"] == du_bytes(jp_root_dir)
    assert body["projects"] == [
        {"name": "alpha", "used_bytes": du_bytes(jp_root_dir / "projects" / "alpha")},
        {"name": "beta", "used_bytes": du_bytes(jp_root_dir / "projects" / "beta")},
    ]
    assert body["measured_at"].endswith("Z")
    measured = datetime.fromisoformat(body["measured_at"].replace("Z", "+00:00"))
    assert measured.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - measured) < timedelta(minutes=1)


async def test_answer_is_cached_until_the_next_scan(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    before = await get_quota(jp_fetch)
    (jp_root_dir / "dropped-in-by-a-job.bin").write_bytes(os.urandom(200_000))
    # Written behind the server's back: seen only by the next scan.
    assert (await get_quota(jp_fetch))["used_bytes"] == before["used_bytes"]
    await tracker.backend.refresh()
    assert (await get_quota(jp_fetch))["used_bytes"] == du_bytes(jp_root_dir)


async def test_saves_count_at_once(jp_fetch: Any, jp_root_dir: Path, tracker: Any) -> None:
    before = await get_quota(jp_fetch)
    await put(jp_fetch, "new.txt", text_model("y" * 100_000))
    after = await get_quota(jp_fetch)
    # No scan in between: the server counted its own write (rounded to blocks).
    assert after["used_bytes"] - before["used_bytes"] == tracker.allocated(100_000)
    assert after["measured_at"] == before["measured_at"]


async def test_quota_needs_authentication(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("scitex", "api", "quota", headers={"Authorization": ""})
    assert e.value.code == 403


class SlowBackend(ScanQuotaBackend):
    """A first scan that takes longer than the request is willing to wait."""

    async def measure(self) -> Usage:
        await asyncio.sleep(1.0)
        return await super().measure()


@pytest.mark.parametrize(
    "extra_config",
    [
        {
            "SciTeXExtension": {
                "quota_backend_class": f"{HERE}.SlowBackend",
                "quota_first_wait": 0.1,
            }
        }
    ],
)
async def test_first_request_before_any_scan_gets_503(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("scitex", "api", "quota")
    assert e.value.code == 503
    assert e.value.response is not None
    assert int(e.value.response.headers["Retry-After"]) >= 1
    assert "still being measured" in json.loads(e.value.response.body)["message"]
    # A save cannot be checked yet either: refused, not let through unchecked.
    body = await expect_error(503, put(jp_fetch, "a.txt", text_model("x")))
    assert "save again" in body["message"]
    assert not (jp_root_dir / "a.txt").exists()
    # The scan went on in the background.
    for _ in range(100):
        if tracker.backend.latest is not None:
            break
        await asyncio.sleep(0.1)
    assert (await get_quota(jp_fetch))["used_bytes"] == du_bytes(jp_root_dir)


@pytest.mark.parametrize("extra_config", [{"SciTeXExtension": {"quota_backend_class": "scan"}}])
async def test_backend_alias(jp_fetch: Any, tracker: Any) -> None:
    assert type(tracker.backend) is ScanQuotaBackend
    assert (await get_quota(jp_fetch))["source"] == "scan"


XFS_RECORDING = "/dev/sdb1                 4096          0       2048   00 [--none--] /data\n"


async def replay_xfs(argv: Sequence[str], timeout: float) -> CommandResult:
    return CommandResult(0, XFS_RECORDING, "")


class RecordedXfs(XfsQuotaBackend):
    @default("runner")
    def _default_runner(self) -> Any:
        return replay_xfs


@pytest.mark.parametrize(
    "extra_config",
    [
        {
            "SciTeXExtension": {"quota_backend_class": f"{HERE}.RecordedXfs"},
            "XfsQuotaBackend": {"quota_id": "1001", "mount": "/data"},
        }
    ],
)
async def test_xfs_backend_through_the_api(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tracker: Any
) -> None:
    body = await get_quota(jp_fetch)
    assert body["source"] == "xfs"
    assert body["used_bytes"] == 4096 * KiB
    # The environment's limit wins over the filesystem's hard limit.
    assert body["limit_bytes"] == LIMIT
    tracker.limit_bytes = None
    assert (await get_quota(jp_fetch))["limit_bytes"] == 2048 * KiB


# -- enforcement on saves ------------------------------------------------------------------


async def test_save_past_the_limit_is_507_and_the_old_file_stays(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    target = jp_root_dir / "report.txt"
    target.write_text("version 1\n")
    await get_quota(jp_fetch)
    body = await expect_error(507, put(jp_fetch, "report.txt", text_model("z" * (2 * LIMIT))))
    assert "Storage quota exceeded" in body["message"]
    assert "Nothing was written" in body["message"]
    assert body["reason"] == "Storage quota exceeded"
    assert target.read_text() == "version 1\n"
    assert leftovers(jp_root_dir) == []
    # A save that fits goes through.
    response = await put(jp_fetch, "report.txt", text_model("version 2\n"))
    assert response.code == 200
    assert target.read_text() == "version 2\n"
    assert leftovers(jp_root_dir) == []


async def test_upload_past_the_limit_creates_nothing(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    body = await expect_error(507, put(jp_fetch, "big.bin", b64_model(os.urandom(LIMIT + 1))))
    assert "quota" in body["message"]
    assert not (jp_root_dir / "big.bin").exists()
    response = await put(jp_fetch, "small.bin", b64_model(b"\x00\x01" * 1000))
    assert response.code == 201
    assert (jp_root_dir / "small.bin").read_bytes() == b"\x00\x01" * 1000


async def test_burst_of_saves_stops_at_the_limit(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    await get_quota(jp_fetch)
    chunk = "c" * (300 * KiB)
    codes = []
    for i in range(6):
        try:
            codes.append((await put(jp_fetch, f"part{i}.txt", text_model(chunk))).code)
        except HTTPClientError as e:
            codes.append(e.code)
    # 1 MiB limit, a few KiB already used: three 300 KiB files fit, the rest do not,
    # with no rescan in between.
    assert codes == [201, 201, 201, 507, 507, 507]
    assert du_bytes(jp_root_dir) <= LIMIT


async def test_overwrite_counts_only_the_growth(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    (jp_root_dir / "big.txt").write_bytes(b"o" * (700 * KiB))
    await get_quota(jp_fetch)
    # 700 KiB -> 800 KiB fits in 1 MiB (old counted out); a new 800 KiB file would not.
    assert (await put(jp_fetch, "big.txt", text_model("n" * (800 * KiB)))).code == 200
    await expect_error(507, put(jp_fetch, "other.txt", text_model("n" * (800 * KiB))))


async def test_notebook_save_past_the_limit(jp_fetch: Any, jp_root_dir: Path, tracker: Any) -> None:
    nb: dict[str, Any] = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "hi"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    assert (await put(jp_fetch, "a.ipynb", {"type": "notebook", "content": nb})).code == 201
    saved = (jp_root_dir / "a.ipynb").read_text()
    nb["cells"][0]["source"] = "x" * (2 * LIMIT)
    await expect_error(507, put(jp_fetch, "a.ipynb", {"type": "notebook", "content": nb}))
    assert (jp_root_dir / "a.ipynb").read_text() == saved
    assert "".join(json.loads(saved)["cells"][0]["source"]) == "hi"


async def test_chunked_upload_replaces_the_file_only_at_the_end(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    target = jp_root_dir / "data.bin"
    target.write_bytes(b"old")
    parts = [os.urandom(100 * KiB) for _ in range(3)]
    await put(jp_fetch, "data.bin", b64_model(parts[0], chunk=1))
    await put(jp_fetch, "data.bin", b64_model(parts[1], chunk=2))
    # Mid-upload the old file is still whole.
    assert target.read_bytes() == b"old"
    response = await put(jp_fetch, "data.bin", b64_model(parts[2], chunk=-1))
    assert json.loads(response.body)["size"] == 300 * KiB
    assert target.read_bytes() == b"".join(parts)
    assert leftovers(jp_root_dir) == []


async def test_chunked_upload_of_a_new_file(jp_fetch: Any, jp_root_dir: Path, tracker: Any) -> None:
    first = await put(jp_fetch, "fresh.bin", b64_model(b"a" * 1000, chunk=1))
    assert json.loads(first.body)["name"] == "fresh.bin"
    await put(jp_fetch, "fresh.bin", b64_model(b"b" * 1000, chunk=-1))
    assert (jp_root_dir / "fresh.bin").read_bytes() == b"a" * 1000 + b"b" * 1000


async def test_chunked_upload_past_the_limit(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    target = jp_root_dir / "data.bin"
    target.write_bytes(b"keep me")
    await get_quota(jp_fetch)
    await put(jp_fetch, "data.bin", b64_model(os.urandom(400 * KiB), chunk=1))
    await put(jp_fetch, "data.bin", b64_model(os.urandom(400 * KiB), chunk=2))
    body = await expect_error(
        507, put(jp_fetch, "data.bin", b64_model(os.urandom(400 * KiB), chunk=3))
    )
    assert "Storage quota exceeded" in body["message"]
    # Nothing of the upload remains; the old file is intact.
    assert target.read_bytes() == b"keep me"
    assert leftovers(jp_root_dir) == []
    # The client carries on: told there is no upload in progress.
    body = await expect_error(400, put(jp_fetch, "data.bin", b64_model(b"tail", chunk=-1)))
    assert "No upload in progress" in body["message"]
    assert target.read_bytes() == b"keep me"
    # The staged bytes were given back: a fitting save goes through at once.
    assert (await put(jp_fetch, "ok.bin", b64_model(os.urandom(600 * KiB)))).code == 201


async def test_chunked_upload_over_a_big_file_is_checked_as_the_final_state(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    target = jp_root_dir / "big.bin"
    old = os.urandom(600 * KiB)
    target.write_bytes(old)
    await get_quota(jp_fetch)
    # Staged parts and the old file together pass 1 MiB, but the upload ends smaller
    # than the file it replaces: let through.
    for n, chunk in ((1, 1), (2, 2), (3, -1)):
        await put(jp_fetch, "big.bin", b64_model(bytes([n]) * (200 * KiB), chunk=chunk))
    assert target.stat().st_size == 600 * KiB
    # Replacing it with 1.2 MiB would end past the limit: refused on the way, whatever
    # the old file's size, and the file stays as it was.
    current = target.read_bytes()
    codes = []
    for n in range(1, 7):
        try:
            response = await put(
                jp_fetch, "big.bin", b64_model(os.urandom(200 * KiB), chunk=n if n < 6 else -1)
            )
            codes.append(response.code)
        except HTTPClientError as e:
            codes.append(e.code)
            body = json.loads(e.response.body) if e.response else {}
            assert "needs" in body["message"]
            break
    assert codes[-1] == 507
    assert target.read_bytes() == current
    assert leftovers(jp_root_dir) == []


async def test_writes_through_a_symlink_out_of_the_root_are_refused(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path, tracker: Any
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (jp_root_dir / "escape").symlink_to(outside)
    (jp_root_dir / "victim.txt").symlink_to(outside / "victim.txt")
    (outside / "victim.txt").write_text("untouched")
    await expect_error(403, put(jp_fetch, "escape/new.txt", text_model("x")))
    await expect_error(403, put(jp_fetch, "victim.txt", text_model("x")))
    await expect_error(403, put(jp_fetch, "escape/up.bin", b64_model(b"x", chunk=1)))
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "untouched"


async def test_sibling_and_dotdot_paths_write_nothing(
    jp_fetch: Any,
    jp_root_dir: Path,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    tracker: Any,
) -> None:
    sibling = jp_root_dir.parent / (jp_root_dir.name + "2")
    sibling.mkdir()
    # Sent as typed, not re-escaped by jp_fetch: the server decodes %2e and %2f itself.
    raw_paths = [
        f"../{sibling.name}/x.txt",
        f"%2e%2e/{sibling.name}/x.txt",
        f"%2E%2E%2f{sibling.name}%2fx.txt",
        f"..%2f{sibling.name}%2fx.txt",
        "%2e%2e%2fx.txt",
    ]
    for raw in raw_paths:
        with pytest.raises(HTTPClientError) as e:
            await http_server_client.fetch(
                f"{jp_base_url}api/contents/{raw}",
                method="PUT",
                body=json.dumps(text_model("x")),
                headers=jp_auth_header,
            )
        assert e.value.code in (400, 403, 404), raw
    assert list(sibling.iterdir()) == []
    assert not (jp_root_dir.parent / "x.txt").exists()
    # Escaped once more it is a plain (odd) name, inside the root: a directory that
    # does not exist, so 404, still nothing outside.
    await expect_error(404, put(jp_fetch, f"%2e%2e/{sibling.name}/x.txt", text_model("x")))
    assert list(sibling.iterdir()) == []


async def test_symlink_inside_the_root_is_written_through(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    (jp_root_dir / "real.txt").write_text("v1")
    (jp_root_dir / "alias.txt").symlink_to(jp_root_dir / "real.txt")
    await put(jp_fetch, "alias.txt", text_model("v2"))
    assert (jp_root_dir / "alias.txt").is_symlink()
    assert (jp_root_dir / "real.txt").read_text() == "v2"


async def test_checkpoints_are_counted(jp_fetch: Any, jp_root_dir: Path, tracker: Any) -> None:
    (jp_root_dir / "big.txt").write_bytes(b"b" * (600 * KiB))
    await get_quota(jp_fetch)
    # A checkpoint copies the file: 600 KiB more would pass 1 MiB.
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("api", "contents", "big.txt", "checkpoints", method="POST", body="")
    assert e.value.code == 507


async def test_permissions_are_kept_on_overwrite(
    jp_fetch: Any, jp_root_dir: Path, tracker: Any
) -> None:
    target = jp_root_dir / "script.sh"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o750)
    await put(jp_fetch, "script.sh", text_model("#!/bin/sh\necho hi\n"))
    assert target.stat().st_mode & 0o777 == 0o750


def test_attach_warns_when_the_contents_manager_cannot_enforce(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import logging

    tracker = QuotaTracker(ScanQuotaBackend(root=str(tmp_path)), limit_bytes=LIMIT)
    log = logging.getLogger("test-attach")
    with caplog.at_level(logging.WARNING, logger="test-attach"):
        assert attach_quota(object(), tracker, log) is False
    assert "NOT checked" in caplog.text
    cm = QuotaContentsManager(root_dir=str(tmp_path))
    assert attach_quota(cm, tracker, log) is True
    assert cm.quota_tracker is tracker


# -- deletes free space -------------------------------------------------------------------


async def test_a_delete_removes_the_file_rather_than_moving_it_to_a_trash(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    assert jp_serverapp.contents_manager.delete_to_trash is False
    (jp_root_dir / "big.bin").write_bytes(b"x" * 64 * KiB)
    assert du_bytes(jp_root_dir) > 64 * KiB
    response = await jp_fetch("api", "contents", "big.bin", method="DELETE")
    assert response.code == 204
    assert not (jp_root_dir / "big.bin").exists()
    # Nothing of it is left anywhere in the tree (no .Trash-<uid>, no .local/share/Trash).
    assert await asyncio.to_thread(lambda: list(jp_root_dir.rglob("big.bin"))) == []
    # Its blocks are no longer charged to the tree.
    assert du_bytes(jp_root_dir) < 64 * KiB


@pytest.mark.parametrize("extra_config", [{"FileContentsManager": {"delete_to_trash": True}}])
async def test_a_site_may_still_choose_the_trash(jp_serverapp: Any) -> None:
    assert jp_serverapp.contents_manager.delete_to_trash is True
