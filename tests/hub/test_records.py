"""The spawner's quota gate and spawn records (scitex_spawner.records) on a real SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from traitlets import TraitError
from traitlets.config import Config

from jupyterhub_config.apply import apply_spawner
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_hub.db import get_engine, upgrade, utcnow
from scitex_hub.db import store as db
from scitex_hub.db.engine import dispose_engine
from scitex_hub.institutions import Institution
from scitex_hub.profiles import ResolvedResources
from scitex_spawner.records import (
    Admission,
    OverQuota,
    QuotaState,
    SpawnRecorder,
    SpawnStore,
    SqlSpawnStore,
    image_digest,
)
from tests.hub.dbhelpers import sqlite_url
from tests.hub.test_config import settings_with
from tests.hub.test_spawner import make_spawner

KiB, MiB, GiB = 1024, 1024**2, 1024**3
MEASURED = datetime(2026, 12, 1, 9, 30, 12, tzinfo=timezone.utc)
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


def measure(url: str, used: int, institution: str = "demo-u", at: datetime | None = None) -> None:
    db.record_usage(
        get_engine(url),
        [db.UsageRow("alice", institution, used, at or utcnow(), "scan")],
    )


def over_quota(url: str, used: int = GiB, limit: int = 512 * MiB) -> None:
    """alice, measured at ``MEASURED``, at ``used`` of an override of ``limit``."""
    db.set_override(get_engine(url), "alice", limit, set_by="bob", institution="demo-u")
    measure(url, used, at=MEASURED)


async def test_limit_is_the_institutions_without_override(url: str) -> None:
    assert await recorder(url).admit("demo-u", DEMO) == Admission(10 * GiB)


async def test_override_replaces_the_institutions_quota(url: str) -> None:
    db.set_override(get_engine(url), "alice", 3 * GiB, set_by="bob", institution="demo-u")
    measure(url, 2 * GiB)
    assert await recorder(url).admit("demo-u", DEMO) == Admission(3 * GiB)


# -- over the limit: cleanup (the default) or refuse ------------------------------------

CLEANUP_NOTICE = (
    "Storage quota exceeded: alice's data directory uses 1.0 GiB of a 512.0 MiB limit "
    "(measured 2026-12-01 09:30 UTC). Your server starts so you can delete files or move "
    "them out of your data directory; saves that add data are refused until usage is below "
    "the limit. Ask your institution's administrators (bob, erin) to raise your quota."
)
REFUSAL = (
    "Storage quota exceeded: alice's data directory uses 1.0 GiB of a 512.0 MiB limit "
    "(measured 2026-12-01 09:30 UTC), so no server can start. Ask your institution's "
    "administrators (bob, erin) to raise your quota or to free space for you; once usage is "
    "below the limit you can start again."
)


async def test_over_the_limit_starts_to_clean_up_by_default(url: str) -> None:
    over_quota(url)
    rec = recorder(url)
    assert rec.over_quota == "cleanup"
    # The server gets the same limit: it refuses saves that add data.
    assert await rec.admit("demo-u", DEMO) == Admission(512 * MiB, CLEANUP_NOTICE)


async def test_exactly_at_the_limit_is_over(url: str) -> None:
    over_quota(url, used=GiB, limit=GiB)
    admission = await recorder(url).admit("demo-u", DEMO)
    assert admission.limit_bytes == GiB
    assert admission.notice == CLEANUP_NOTICE.replace("of a 512.0 MiB limit", "of a 1.0 GiB limit")
    with pytest.raises(OverQuota):
        await recorder(url, over_quota="refuse").admit("demo-u", DEMO)


async def test_just_below_the_limit_has_no_notice(url: str) -> None:
    over_quota(url, used=GiB - 1, limit=GiB)
    assert await recorder(url).admit("demo-u", DEMO) == Admission(GiB)
    assert await recorder(url, over_quota="refuse").admit("demo-u", DEMO) == Admission(GiB)


async def test_refuse_mode_is_a_403_with_what_to_do(url: str) -> None:
    over_quota(url)
    with pytest.raises(OverQuota) as e:
        await recorder(url, over_quota="refuse").admit("demo-u", DEMO)
    assert e.value.status_code == 403
    assert e.value.reason == REFUSAL
    assert e.value.log_message == REFUSAL


async def test_without_named_admins_the_messages_say_the_administrator(url: str) -> None:
    over_quota(url)
    alone = Institution(name="Alone", storage_quota=10 * GiB)
    notice = (await recorder(url).admit("demo-u", alone)).notice
    assert notice == CLEANUP_NOTICE.replace(
        "your institution's administrators (bob, erin)", "your institution's administrator"
    )
    with pytest.raises(OverQuota) as e:
        await recorder(url, over_quota="refuse").admit("demo-u", alone)
    assert e.value.reason == REFUSAL.replace(
        "your institution's administrators (bob, erin)", "your institution's administrator"
    )


def test_a_bad_mode_names_the_trait() -> None:
    with pytest.raises(TraitError, match="'over_quota' trait of a SpawnRecorder instance"):
        SpawnRecorder(SpawnStore(), hub_id="h", user="alice", server_name="", over_quota="warn")


async def test_usage_in_another_institutions_directory_does_not_count(url: str) -> None:
    measure(url, 50 * GiB, institution="other-u")
    assert await recorder(url).admit("demo-u", DEMO) == Admission(10 * GiB)


async def test_override_zero_means_no_limit(url: str) -> None:
    db.set_override(get_engine(url), "alice", 0, set_by="admin", institution="demo-u")
    measure(url, 500 * GiB)
    assert await recorder(url).admit("demo-u", DEMO) == Admission(0)


async def test_a_broken_database_does_not_stop_a_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No tables (never migrated): every query fails.
    url = sqlite_url(tmp_path, "empty.sqlite")
    rec = recorder(url)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert await rec.admit("demo-u", DEMO) == Admission(10 * GiB)
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
    assert await rec.admit("demo-u", DEMO) == Admission(10 * GiB)
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


# -- the setting from the site file to the spawner's start -----------------------------


def test_the_site_file_key_defaults_to_cleanup_and_reaches_the_recorder() -> None:
    c = Config()
    apply_spawner(c, parse_settings(settings_with()))
    assert c.SpawnRecorder.over_quota == "cleanup"
    c = Config()
    apply_spawner(c, parse_settings(settings_with(quota={"over_quota": "refuse"})))
    assert c.SpawnRecorder.over_quota == "refuse"


@pytest.mark.parametrize(
    ("quota", "message"),
    [
        (
            {"over_quota": "warn"},
            "scitex.yaml: quota.over_quota: Input should be 'cleanup' or 'refuse'",
        ),
        (
            {"over_quota": "cleanup", "mode": "x"},
            "scitex.yaml: quota.mode: Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_site_file_key_is_named(quota: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as e:
        parse_settings(settings_with(quota=quota))
    assert str(e.value) == message


class Stop(Exception):
    """Ends a start right after the quota gate (no SLURM in unit tests)."""


def starting_spawner(url: str, mode: str | None) -> Any:
    """alice's spawner configured as the hub configures it, over quota in ``url``."""
    c = Config()
    apply_spawner(
        c, parse_settings(settings_with(**({"quota": {"over_quota": mode}} if mode else {})))
    )
    c.SqlSpawnStore.db_url = url
    spawner: Any = make_spawner()
    spawner.config = c
    reached: list[str] = []

    async def ensure_data_dir(institution_id: str) -> str:
        reached.append(institution_id)
        raise Stop

    spawner.ensure_data_dir = ensure_data_dir
    spawner.reached = reached
    return spawner


async def test_a_start_over_quota_goes_on_and_says_so(url: str) -> None:
    over_quota(url)
    spawner = starting_spawner(url, None)
    with pytest.raises(Stop):
        await spawner.start()
    # The start went on past the gate, with the notice first in its progress.
    assert spawner.reached == ["demo-u"]
    assert spawner._events == [
        {
            "progress": 5,
            "message": CLEANUP_NOTICE.replace(
                "your institution's administrators (bob, erin)",
                "your institution's administrator",
            ),
        }
    ]


async def test_a_start_under_the_limit_says_nothing_about_quota(url: str) -> None:
    over_quota(url, used=MiB, limit=GiB)
    spawner = starting_spawner(url, None)
    with pytest.raises(Stop):
        await spawner.start()
    assert spawner.reached == ["demo-u"]
    assert spawner._events == []


async def test_refuse_mode_stops_the_start_before_anything_is_made(url: str) -> None:
    over_quota(url)
    spawner = starting_spawner(url, "refuse")
    with pytest.raises(web.HTTPError) as e:
        await spawner.start()
    assert isinstance(e.value, OverQuota)
    assert e.value.status_code == 403
    assert e.value.reason == REFUSAL.replace(
        "your institution's administrators (bob, erin)", "your institution's administrator"
    )
    # No data directory, no job, no progress.
    assert spawner.reached == []
    assert spawner._events == []
    assert spawner.job_id == ""


async def test_progress_sends_events_added_while_one_is_being_sent() -> None:
    # The notice, then "Submitted ..." right after it: the second arrives while the page
    # is still being sent the first, and must not be skipped.
    spawner = make_spawner()
    spawner._events = [{"progress": 5, "message": "notice"}]
    progress = spawner.progress()

    async def next_event() -> dict[str, Any]:
        # A skipped event would leave progress() waiting for more: fail, do not hang.
        return await asyncio.wait_for(anext(progress), 2)

    first = await next_event()
    spawner._events.append({"progress": 10, "message": "Submitted SLURM job 7 (small)"})
    spawner._events.append({"progress": 30, "message": "Job 7 waiting in the queue"})
    rest = [await next_event(), await next_event()]
    await progress.aclose()
    assert [e["message"] for e in [first, *rest]] == [
        "notice",
        "Submitted SLURM job 7 (small)",
        "Job 7 waiting in the queue",
    ]
