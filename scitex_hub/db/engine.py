"""Engines for our tables, which live in the hub's own database.

The hub (the spawner's records) and the scitex hub service both write there. On SQLite
(the demo) that needs WAL, so readers never wait for a writer, and a busy timeout, so a
writer waits for the other process's short transaction instead of failing at once. Our
SQLite transactions also start with ``BEGIN IMMEDIATE``: they take the write lock up front
and so cannot fail half-way with "database is locked" when a read turns into a write, and
DDL (migrations) runs inside a real transaction (pysqlite would otherwise autocommit it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "dispose_engine", "get_engine", "make_engine"]

SQLITE_BUSY_TIMEOUT_MS = 15_000

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once. The switch needs the database to itself and does
    not wait on the busy timeout, so connections racing on a new file retry."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_engine(db_url: str, **kwargs: Any) -> Engine:
    """A new engine for ``db_url``; SQLite gets WAL, a busy timeout and real transactions."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    connect_args = dict(kwargs.pop("connect_args", {}))
    # Connections move between worker threads (asyncio.to_thread); the pool hands
    # each to one thread at a time.
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are ours to begin (below), not pysqlite's.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if url.database and url.database != ":memory:":
                # Persistent for the file: the hub's own connections use it too.
                _enable_wal(cursor)
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def get_engine(db_url: str) -> Engine:
    """The one engine of this process for ``db_url`` (its pool is shared by all callers)."""
    with _lock:
        engine = _engines.get(db_url)
        if engine is None:
            engine = _engines[db_url] = make_engine(db_url)
        return engine


def dispose_engine(db_url: str) -> None:
    """Close the pooled connections of :func:`get_engine`'s engine for ``db_url``, if any."""
    with _lock:
        engine = _engines.pop(db_url, None)
    if engine is not None:
        engine.dispose()
