"""The spawner's quota gate and spawn records (scitex_spawner.records) on a real SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from traitlets.config import Config

from scitex_spawner.db import get_engine, upgrade, utcnow
from scitex_spawner.db import store as db
from scitex_spawner.db.engine import dispose_engine
from scitex_spawner.institutions import Institution
from scitex_spawner.profiles import ResolvedResources
from scitex_spawner.records import (
    OverQuota,
    QuotaState,
    SpawnRecorder,
    SpawnStore,
    SqlSpawnStore,
    image_digest,
)
from tests.hub.dbhelpers import sqlite_url
from tests.hub.test_spawner import make_spawner

GiB = 1024**3
DEMO = Institution(name="Demo", storage_quota=10 * 1024**3, admins=("bob", "erin"))
RESOURCES = ResolvedResources(
    profile="small",
    partition="debug",
    cpus=1,
    memory_bytes=512 * 1024**2,
    runtime_seconds=3600,
    gpus=0,
    account=None,
    image=None,
    constraint=None,
    qos=None,
)
LOG = logging.getLogger("test-records")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = sqlite_url(tmp_path)
    upgrade(url)
    yield url
    dispose_engine(url)


def recorder(url: str, **kwargs: object) -> SpawnRecorder:
    return SpawnRecorder(
        SqlSpawnStore(db_url=url), hub_id="h1", user="alice", server_name="", log=LOG, **kwargs
    )


def measure(url: str, used: int, institution: str = "demo-u") -> None:
    db.record_usage(
        get_engine(url),
        [db.UsageRow("alice", institution, used, utcnow(), "scan")],
    )


async def test_limit_is_the_institutions_without_override(url: str) -> None:
    assert await recorder(url).admit("demo-u", DEMO) == 10 * GiB


async def test_override_replaces_the_institutions_quota(url: str) -> None:
    db.set_override(get_engine(url), "alice", 3 * GiB, set_by="bob", institution="demo-u")
    measure(url, 2 * GiB)
    assert await recorder(url).admit("demo-u", DEMO) == 3 * GiB


async def test_at_or_over_the_limit_is_refused_with_what_to_do(url: str) -> None:
    db.set_override(get_engine(url), "alice", GiB, set_by="bob", institution="demo-u")
    measure(url, GiB)  # exactly at the limit
    with pytest.raises(OverQuota) as e:
        await recorder(url).admit("demo-u", DEMO)
    assert e.value.status_code == 403
    message = e.value.reason or ""
    assert message.startswith("Storage quota exceeded: alice's data directory uses 1.0 GiB of a ")
    assert "1.0 GiB limit (measured " in message
    assert "Ask your institution's administrators (bob, erin) to raise your quota" in message


async def test_usage_in_another_institutions_directory_does_not_count(url: str) -> None:
    measure(url, 50 * GiB, institution="other-u")
    assert await recorder(url).admit("demo-u", DEMO) == 10 * GiB


async def test_override_zero_means_no_limit(url: str) -> None:
    db.set_override(get_engine(url), "alice", 0, set_by="admin", institution="demo-u")
    measure(url, 500 * GiB)
    assert await recorder(url).admit("demo-u", DEMO) == 0


async def test_a_broken_database_does_not_stop_a_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No tables (never migrated): every query fails.
    url = sqlite_url(tmp_path, "empty.sqlite")
    rec = recorder(url)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert await rec.admit("demo-u", DEMO) == 10 * GiB
        rec.begun("demo-u", RESOURCES, None)
        rec.submitted("7")
        rec.ended("stopped")
        await rec.flush()
    assert "Quota check for alice failed" in caplog.text
    assert "Spawn record of alice (begun) not written" in caplog.text
    dispose_engine(url)


class SlowStore(SpawnStore):
    def quota_state(self, user: str, institution_id: str, institution_quota: int) -> QuotaState:
        import time

        time.sleep(1.0)
        raise AssertionError("not reached in time")


async def test_a_slow_database_does_not_hold_a_start() -> None:
    rec = SpawnRecorder(SlowStore(), hub_id="h", user="alice", server_name="", log=LOG)
    rec.admit_timeout = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await rec.admit("demo-u", DEMO) == 10 * GiB
    assert loop.time() - started < 0.8


async def test_a_spawn_is_recorded_from_submission_to_end(url: str, tmp_path: Path) -> None:
    image = tmp_path / "notebook.sif"
    image.write_bytes(b"SIF" * 1000)
    rec = recorder(url)
    rec.begun("demo-u", RESOURCES, str(image))
    rec.submitted("4242")
    rec.running("node7")
    rec.ready()
    rec.ended("stopped", job_id="4242")
    rec.ended("TIMEOUT")  # a later reason does not replace the first
    await rec.flush()
    [row] = db.recent_spawns(get_engine(url), user="alice")
    assert row.hub_id == "h1"
    assert row.institution == "demo-u"
    assert row.profile == "small"
    assert row.resources == RESOURCES.as_dict()
    assert row.image == str(image)
    assert row.image_digest == "sha256:" + hashlib.sha256(b"SIF" * 1000).hexdigest()
    assert (row.job_id, row.node, row.end_reason) == ("4242", "node7", "stopped")
    assert row.started_at <= row.submitted_at <= row.ready_at <= row.ended_at  # type: ignore[operator]


async def test_after_a_hub_restart_the_end_is_found_by_job_id(url: str) -> None:
    first = recorder(url)
    first.begun("demo-u", RESOURCES, None)
    first.submitted("99")
    await first.flush()
    # The hub restarted: a new spawner, a new recorder that knows only the job id.
    second = recorder(url)
    second.ended("TIMEOUT", job_id="99")
    await second.flush()
    [row] = db.recent_spawns(get_engine(url), user="alice")
    assert (row.job_id, row.end_reason, row.image, row.image_digest) == (
        "99",
        "TIMEOUT",
        None,
        None,
    )


async def test_a_second_spawn_gets_its_own_record(url: str) -> None:
    rec = recorder(url)
    for job in ("1", "2"):
        rec.begun("demo-u", RESOURCES, None)
        rec.submitted(job)
        rec.ended("stopped", job_id=job)
    await rec.flush()
    rows = db.recent_spawns(get_engine(url), user="alice")
    assert sorted((r.job_id, r.end_reason) for r in rows) == [("1", "stopped"), ("2", "stopped")]


def test_image_digest_is_cached_per_version(tmp_path: Path) -> None:
    image = tmp_path / "img.sif"
    image.write_bytes(b"one")
    assert image_digest(str(image)) == "sha256:" + hashlib.sha256(b"one").hexdigest()
    image.write_bytes(b"two!")
    os.utime(image, ns=(0, 10**9))
    assert image_digest(str(image)) == "sha256:" + hashlib.sha256(b"two!").hexdigest()
    # A sandbox directory (or nothing) has no digest.
    assert image_digest(str(tmp_path)) is None
    assert image_digest(str(tmp_path / "missing.sif")) is None


def test_the_spawner_exports_the_effective_limit() -> None:
    spawner = make_spawner()
    resources = spawner.resolve_resources({})
    exports = dict(spawner.build_job_spec("demo-u", resources, quota_limit_bytes=12345).exports)
    assert exports["SCITEX_QUOTA_LIMIT_BYTES"] == "12345"
    exports = dict(spawner.build_job_spec("demo-u", resources, quota_limit_bytes=0).exports)
    assert exports["SCITEX_QUOTA_LIMIT_BYTES"] == "0"
    # Not given: the institution's quota.
    exports = dict(spawner.build_job_spec("demo-u", resources).exports)
    assert exports["SCITEX_QUOTA_LIMIT_BYTES"] == str(100 * GiB)


def test_the_spawner_store_takes_the_hubs_database_from_config() -> None:
    config = Config()
    config.JupyterHub.db_url = "sqlite:////srv/hub/jupyterhub.sqlite"
    spawner = make_spawner()
    spawner.config = config
    store = spawner.spawn_records.store
    assert isinstance(store, SqlSpawnStore)
    assert store.db_url == "sqlite:////srv/hub/jupyterhub.sqlite"
    assert (spawner.spawn_records.user, spawner.spawn_records.server_name) == ("alice", "")


def test_a_site_without_our_tables_uses_the_null_store() -> None:
    spawner = make_spawner()
    spawner.spawn_store_class = SpawnStore
    state = spawner.spawn_records.store.quota_state("alice", "demo-u", 5)
    assert state == QuotaState(5, None, None, None, None)
    assert not state.over


def test_quota_state_over() -> None:
    now = utcnow()
    assert QuotaState(10, None, 10, now, "scan").over
    assert not QuotaState(10, None, 9, now, "scan").over
    assert not QuotaState(None, 0, 10**12, now - timedelta(days=1), "scan").over
    assert not QuotaState(10, None, None, None, None).over
