"""Our tables: migrations (empty -> head, 0001 with data -> head) on SQLite and the real
PostgreSQL, models equal to migrations, SQLite under two writers, the store's queries."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from scitex_hub.db import (
    Base,
    current_revision,
    get_engine,
    head_revision,
    make_engine,
    upgrade,
)
from scitex_hub.db import store as db
from scitex_hub.db.engine import dispose_engine
from scitex_hub.db.migrate import VERSION_TABLE
from scitex_hub.institutions import Institution
from tests.hub.dbhelpers import drop_postgres, postgres_url, sqlite_url

OUR_TABLES = {
    "scitex_institutions",
    "scitex_quota_overrides",
    "scitex_usage",
    "scitex_spawns",
    "scitex_compute_jobs",
}
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        name = "scitex_t_" + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
        url = postgres_url(name)
    yield url
    dispose_engine(url)
    if request.param == "postgresql":
        drop_postgres(url)


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_empty_database_to_head(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision() == "0003"
    assert current_revision(db_url) == "0003"
    assert OUR_TABLES | {VERSION_TABLE} <= table_names(db_url)
    # Idempotent: a second start changes nothing.
    assert upgrade(db_url) == "0003"


def test_models_match_the_migrations(db_url: str) -> None:
    """A model change without a migration fails here (alembic's autogenerate diff)."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, type_, _: (
                        type_ != "table" or (name.startswith("scitex_") and name != VERSION_TABLE)
                    ),
                },
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_0001_with_rows_upgrades_to_head_and_keeps_them(db_url: str) -> None:
    # JupyterHub's own revision table and a table of its own are there too.
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('4621fec11365')"))
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(255))"))
        conn.execute(text("INSERT INTO users VALUES (1, 'alice')"))
    engine.dispose()

    assert upgrade(db_url, "0001") == "0001"
    assert "scitex_spawns" not in table_names(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scitex_institutions (id, name, storage_quota_bytes, admins, "
                "synced_at) VALUES ('demo-u', 'Demo', 1024, '[\"bob\"]', :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            text(
                'INSERT INTO scitex_quota_overrides ("user", limit_bytes, institution, set_by, '
                "set_at) VALUES ('alice', 5000, 'demo-u', 'bob', :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            text(
                'INSERT INTO scitex_usage ("user", institution, used_bytes, files, errors, '
                "measured_at, source) VALUES ('alice', 'demo-u', 4096, 3, 0, :t, 'scan')"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
    engine.dispose()

    assert upgrade(db_url) == "0003"
    engine = get_engine(db_url)
    override = db.get_override(engine, "alice")
    assert override is not None
    assert (override.limit_bytes, override.set_by, override.set_at) == (5000, "bob", T0)
    assert db.latest_usage(engine, "alice", "demo-u") == db.UsageRow(
        user="alice",
        institution="demo-u",
        used_bytes=4096,
        measured_at=T0,
        source="scan",
        files=3,
        errors=0,
    )
    [inst] = db.list_institutions(engine)
    assert (inst.id, inst.admins, inst.storage_quota_bytes) == ("demo-u", ["bob"], 1024)
    # The new table works.
    record_id = db.insert_spawn(engine, hub_id="h", user="alice", server_name="", started_at=T0)
    assert [r.id for r in db.recent_spawns(engine, user="alice")] == [record_id]
    # JupyterHub's tables are untouched.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "4621fec11365"
        )
        assert conn.execute(text("SELECT name FROM users")).scalar() == "alice"


def test_0002_with_rows_upgrades_to_0003_and_keeps_them(db_url: str) -> None:
    assert upgrade(db_url, "0002") == "0002"
    assert "scitex_compute_jobs" not in table_names(db_url)
    engine = get_engine(db_url)
    record_id = db.insert_spawn(
        engine, hub_id="h", user="alice", server_name="", started_at=T0, job_id="7"
    )
    dispose_engine(db_url)

    assert upgrade(db_url) == "0003"
    engine = get_engine(db_url)
    [spawn] = db.recent_spawns(engine, user="alice")
    assert (spawn.id, spawn.job_id, spawn.started_at) == (record_id, "7", T0)
    # The new table works, its unique (hub_id, job_id) index included.
    db.insert_compute_job(
        engine, hub_id="h", job_id="8", user="alice", project="p1", script="a.sh", submitted_at=T0
    )
    assert db.end_compute_job(engine, hub_id="h", job_id="8", user="alice", final_state="FAILED")
    [job] = db.compute_jobs_of(engine, hub_id="h", user="alice")
    assert (job.job_id, job.final_state, job.submitted_at) == ("8", "FAILED", T0)
    with engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(
            text(
                'INSERT INTO scitex_compute_jobs (hub_id, job_id, "user", project, script, '
                "submitted_at) VALUES ('h', '8', 'bob', 'p', 's', :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )


def test_two_processes_upgrading_at_once_both_succeed(db_url: str) -> None:
    """A hub restart races a still-running service, or two hubs share PostgreSQL."""
    results: list[str | None] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(upgrade(db_url))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == ["0003", "0003", "0003"]


def test_sqlite_uses_wal_and_waits_for_another_writer(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade(url)
    path = tmp_path / "hub.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # Another process (the hub) holds the write lock for a while...
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE hub_busy (x INTEGER)")
    released = threading.Timer(0.6, lambda: other.execute("COMMIT"))
    released.start()
    started = time.monotonic()
    # ...and our write waits for it instead of failing with "database is locked".
    db.set_override(get_engine(url), "alice", 1, set_by="bob", institution="demo-u")
    waited = time.monotonic() - started
    released.join()
    other.close()
    assert waited >= 0.4
    override = db.get_override(get_engine(url), "alice")
    assert override is not None and override.limit_bytes == 1
    dispose_engine(url)


# ---- the store ---------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = sqlite_url(tmp_path)
    upgrade(url)
    yield get_engine(url)
    dispose_engine(url)


@pytest.mark.parametrize(
    "override,quota,expected",
    [(None, 100, 100), (50, 100, 50), (200, 100, 200), (0, 100, None), (None, 0, None)],
)
def test_effective_limit(override: int | None, quota: int, expected: int | None) -> None:
    assert db.effective_limit(override, quota) == expected


def test_institutions_follow_the_site_file(engine: Engine) -> None:
    first = {
        "a-u": Institution(name="A", storage_quota=1024**3, admins=("bob",)),
        "b-u": Institution(name="B"),
    }
    db.sync_institutions(engine, first)
    assert [(r.id, r.storage_quota_bytes) for r in db.list_institutions(engine)] == [
        ("a-u", 1024**3),
        ("b-u", 100 * 1024**3),
    ]
    db.sync_institutions(engine, {"a-u": Institution(name="A2", storage_quota=5)})
    [row] = db.list_institutions(engine)
    assert (row.id, row.name, row.storage_quota_bytes, row.admins) == ("a-u", "A2", 5, [])


def test_overrides_set_replace_delete(engine: Engine) -> None:
    e = engine
    assert db.get_override(e, "alice") is None
    db.set_override(e, "alice", 10, set_by="bob", institution="demo-u")
    db.set_override(e, "alice", 20, set_by="admin", institution="demo-u")
    row = db.get_override(e, "alice")
    assert row is not None and (row.limit_bytes, row.set_by) == (20, "admin")
    assert row.set_at.tzinfo is timezone.utc
    assert set(db.overrides_of(e, ["alice", "carol"])) == {"alice"}
    assert db.delete_override(e, "alice") is True
    assert db.delete_override(e, "alice") is False


def usage(user: str, inst: str, used: int, minutes: int) -> db.UsageRow:
    return db.UsageRow(
        user=user,
        institution=inst,
        used_bytes=used,
        measured_at=T0 + timedelta(minutes=minutes),
        source="scan",
    )


def test_latest_usage_and_pruning_keep_each_users_newest(engine: Engine) -> None:
    e = engine
    db.record_usage(
        e,
        [
            usage("alice", "demo-u", 100, 0),
            usage("bob", "demo-u", 7, 0),
            usage("carol", "other-u", 5, 0),
            usage("alice", "demo-u", 300, 10),
            # alice's old directory in another institution is kept apart.
            usage("alice", "other-u", 1, 20),
        ],
    )
    newest = db.latest_usage(e, "alice", "demo-u")
    assert newest is not None and newest.used_bytes == 300
    assert db.latest_usage(e, "dave", "demo-u") is None
    latest = db.latest_usage_of(e, ["demo-u"])
    assert {u: r.used_bytes for u, r in latest["demo-u"].items()} == {"alice": 300, "bob": 7}
    # Everything is older than the cut-off, but each user's newest stays.
    assert db.prune_usage(e, T0 + timedelta(days=1)) == 1
    assert {u: r.used_bytes for u, r in db.latest_usage_of(e, ["demo-u"])["demo-u"].items()} == {
        "alice": 300,
        "bob": 7,
    }


def test_spawn_updates_by_id_or_job_and_the_first_end_stays(engine: Engine) -> None:
    e = engine
    rid = db.insert_spawn(
        e, hub_id="h", user="alice", server_name="", started_at=T0, profile="small"
    )
    db.update_spawn(e, record_id=rid, job_id="41", submitted_at=T0)
    assert db.update_spawn(e, record_id=rid, node="n1") == 1
    # After a hub restart the recorder knows only the job id.
    assert (
        db.update_spawn(e, hub_id="h", user="alice", job_id="41", ended_at=T0, end_reason="TIMEOUT")
        == 1
    )
    assert db.update_spawn(e, record_id=rid, ended_at=T0, end_reason="stopped") == 0
    # Another hub's job 41 is not this one.
    assert db.update_spawn(e, hub_id="other", user="alice", job_id="41", node="x") == 0
    [row] = db.recent_spawns(e, user="alice")
    assert (row.job_id, row.node, row.end_reason) == ("41", "n1", "TIMEOUT")
    with pytest.raises(TypeError, match="unknown spawn record fields"):
        db.update_spawn(e, record_id=rid, exec_prefix="x")


def test_recent_spawns_filter_by_user_and_institution(engine: Engine) -> None:
    e = engine
    for i, (user, inst) in enumerate(
        [("alice", "demo-u"), ("carol", "other-u"), ("bob", "demo-u")]
    ):
        db.insert_spawn(
            e,
            hub_id="h",
            user=user,
            server_name="",
            started_at=T0 + timedelta(minutes=i),
            institution=inst,
        )
    assert [r.user for r in db.recent_spawns(e)] == ["bob", "carol", "alice"]
    assert [r.user for r in db.recent_spawns(e, institutions=["demo-u"])] == ["bob", "alice"]
    assert [r.user for r in db.recent_spawns(e, limit=1)] == ["bob"]


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        db.insert_spawn(
            engine, hub_id="h", user="alice", server_name="", started_at=datetime(2026, 1, 1)
        )


def submit(engine: Engine, job_id: str, minutes: int, user: str = "alice", hub: str = "h") -> int:
    return db.insert_compute_job(
        engine,
        hub_id=hub,
        job_id=job_id,
        user=user,
        project="p1",
        script="fit.py",
        submitted_at=T0 + timedelta(minutes=minutes),
        institution="demo-u",
        resources={"cpus": 1},
    )


def test_compute_jobs_are_listed_per_user_and_hub_newest_first(engine: Engine) -> None:
    e = engine
    for i, job_id in enumerate(["11", "12", "13"]):
        submit(e, job_id, i)
    submit(e, "14", 5, user="bob")
    submit(e, "15", 6, hub="other")
    assert [r.job_id for r in db.compute_jobs_of(e, hub_id="h", user="alice")] == [
        "13",
        "12",
        "11",
    ]
    assert [r.job_id for r in db.compute_jobs_of(e, hub_id="h", user="alice", limit=2)] == [
        "13",
        "12",
    ]
    # By id, whatever their age; never another user's or another hub's.
    rows = db.compute_jobs_of(e, hub_id="h", user="alice", job_ids=["11", "14", "15"])
    assert [r.job_id for r in rows] == ["11"]
    assert db.compute_jobs_of(e, hub_id="h", user="alice", job_ids=[]) == []
    row = db.get_compute_job(e, hub_id="h", user="alice", job_id="12")
    assert row is not None
    assert (row.institution, row.project, row.script, row.resources, row.final_state) == (
        "demo-u",
        "p1",
        "fit.py",
        {"cpus": 1},
        None,
    )
    assert row.submitted_at == T0 + timedelta(minutes=1)
    assert db.get_compute_job(e, hub_id="h", user="bob", job_id="12") is None
    assert db.get_compute_job(e, hub_id="other", user="alice", job_id="12") is None


def test_a_compute_jobs_end_is_recorded_once(engine: Engine) -> None:
    e = engine
    submit(e, "21", 0)
    end = {"node": "n1", "started_at": T0, "ended_at": T0 + timedelta(seconds=5)}
    # Not bob's job: nothing written.
    assert not db.end_compute_job(e, hub_id="h", job_id="21", user="bob", final_state="FAILED")
    assert db.end_compute_job(
        e,
        hub_id="h",
        job_id="21",
        user="alice",
        final_state="FAILED",
        exit_code="3:0",
        reason="NonZeroExitCode",
        **end,
    )
    # A later look (another request, a restart) does not overwrite the first end.
    assert not db.end_compute_job(
        e, hub_id="h", job_id="21", user="alice", final_state="CANCELLED", exit_code="0:15"
    )
    row = db.get_compute_job(e, hub_id="h", user="alice", job_id="21")
    assert row is not None
    assert (row.final_state, row.exit_code, row.reason, row.node, row.ended_at) == (
        "FAILED",
        "3:0",
        "NonZeroExitCode",
        "n1",
        T0 + timedelta(seconds=5),
    )
    with pytest.raises(TypeError, match="unknown compute job end fields"):
        db.end_compute_job(e, hub_id="h", job_id="21", user="alice", final_state="X", project="p")


def test_an_ended_job_without_a_record_gets_one(engine: Engine) -> None:
    e = engine
    submission = {"project": "p1", "script": "old.sh", "submitted_at": T0}
    # Without what was submitted, nothing to write.
    assert not db.end_compute_job(e, hub_id="h", job_id="31", user="alice", final_state="FAILED")
    assert db.end_compute_job(
        e,
        hub_id="h",
        job_id="31",
        user="alice",
        final_state="COMPLETED",
        exit_code="0:0",
        submission=submission,
    )
    assert not db.end_compute_job(
        e, hub_id="h", job_id="31", user="alice", final_state="FAILED", submission=submission
    )
    # Another user's record of that id (SLURM reused it) is neither changed nor doubled.
    assert not db.end_compute_job(
        e, hub_id="h", job_id="31", user="bob", final_state="FAILED", submission=submission
    )
    [row] = db.compute_jobs_of(e, hub_id="h", user="alice")
    assert (row.job_id, row.script, row.final_state, row.exit_code, row.institution) == (
        "31",
        "old.sh",
        "COMPLETED",
        "0:0",
        None,
    )
    assert db.compute_jobs_of(e, hub_id="h", user="bob") == []


def test_a_job_id_given_again_replaces_the_old_record(engine: Engine) -> None:
    """SLURM's state was reset and it counts from the start again: the new job is it."""
    e = engine
    submit(e, "41", 0)
    db.end_compute_job(e, hub_id="h", job_id="41", user="alice", final_state="FAILED")
    submit(e, "41", 10, user="bob")
    assert db.compute_jobs_of(e, hub_id="h", user="alice") == []
    [row] = db.compute_jobs_of(e, hub_id="h", user="bob")
    assert (row.user, row.final_state) == ("bob", None)
    # alice's own record of that id, but two days old: an earlier job, replaced too.
    submit(e, "43", 0)
    db.end_compute_job(e, hub_id="h", job_id="43", user="alice", final_state="FAILED")
    submit(e, "43", 2 * 24 * 60)
    row = db.get_compute_job(e, hub_id="h", user="alice", job_id="43")
    assert row is not None and row.final_state is None
    with pytest.raises(TypeError, match="unknown compute job fields"):
        db.insert_compute_job(
            e, hub_id="h", job_id="42", user="a", project="p", script="s", submitted_at=T0, x=1
        )


def test_a_job_seen_ended_before_its_submission_was_recorded_keeps_its_end(
    engine: Engine,
) -> None:
    """A job of a second: a listing records its end (from SLURM's view) before the
    submission's own insert; the insert completes that record."""
    e = engine
    assert db.end_compute_job(
        e,
        hub_id="h",
        job_id="51",
        user="alice",
        final_state="FAILED",
        exit_code="1:0",
        submitted_at=T0 - timedelta(seconds=1),
        submission={"project": "p1", "script": "fit.py", "submitted_at": T0},
    )
    submit(e, "51", 0)
    [row] = db.compute_jobs_of(e, hub_id="h", user="alice")
    assert (row.job_id, row.final_state, row.exit_code, row.institution, row.resources) == (
        "51",
        "FAILED",
        "1:0",
        "demo-u",
        {"cpus": 1},
    )
    # SLURM's submission time stays.
    assert row.submitted_at == T0 - timedelta(seconds=1)
