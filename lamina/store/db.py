"""SQLite in WAL mode, driven from one dedicated thread so the event loop never blocks on it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = [
    # version 1
    """
    CREATE TABLE functions(
        name TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        next_version INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE versions(
        name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        version TEXT NOT NULL,
        config TEXT NOT NULL,
        PRIMARY KEY(name, version)
    );
    CREATE TABLE aliases(
        name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        alias TEXT NOT NULL,
        config TEXT NOT NULL,
        PRIMARY KEY(name, alias)
    );
    """,
    # version 2: reserved concurrency per function (PutFunctionConcurrency)
    """
    ALTER TABLE functions ADD COLUMN reserved INTEGER;
    """,
    # version 3: provisioned concurrency per version or alias
    """
    CREATE TABLE provisioned(
        name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        requested INTEGER NOT NULL,
        last_modified TEXT NOT NULL,
        PRIMARY KEY(name, qualifier)
    );
    """,
    # version 4: asynchronous invocation (spec 7): the durable event queue, events that failed
    # with nowhere to go, and event invoke configs per function, version or alias.
    """
    CREATE TABLE events(
        id TEXT PRIMARY KEY,
        function TEXT NOT NULL,
        qualifier TEXT,
        payload BLOB NOT NULL,
        enqueued REAL NOT NULL,
        due REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        throttles INTEGER NOT NULL DEFAULT 0,
        lease INTEGER,
        trace_id TEXT,
        client_context TEXT,
        response TEXT,
        response_payload BLOB
    );
    CREATE INDEX events_function ON events(function, due);
    CREATE TABLE failed_events(
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        function TEXT NOT NULL,
        qualifier TEXT,
        payload BLOB NOT NULL,
        enqueued REAL NOT NULL,
        failed REAL NOT NULL,
        attempts INTEGER NOT NULL,
        throttles INTEGER NOT NULL DEFAULT 0,
        condition TEXT NOT NULL,
        trace_id TEXT,
        client_context TEXT,
        response TEXT,
        response_payload BLOB
    );
    CREATE INDEX failed_events_function ON failed_events(function, seq);
    CREATE TABLE event_configs(
        name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        config TEXT NOT NULL,
        PRIMARY KEY(name, qualifier)
    );
    """,
    # version 5: layers (issue #6): one row per layer (its next version number, never reused) and
    # one per live layer version (a JSON document, see store/layers.py). A deleted version's row
    # goes; functions that use it keep its content through their own configuration.
    """
    CREATE TABLE layers(
        name TEXT PRIMARY KEY,
        next_version INTEGER NOT NULL
    );
    CREATE TABLE layer_versions(
        name TEXT NOT NULL REFERENCES layers(name),
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY(name, version)
    );
    """,
    # version 6: schedules (rate() and cron() expressions running a function); they go with
    # their function. `fired_until`: every fire at or before it is done with (store/schedules.py).
    """
    CREATE TABLE schedules(
        name TEXT PRIMARY KEY,
        expression TEXT NOT NULL,
        function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier TEXT,
        input TEXT,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        fired_until REAL
    );
    CREATE INDEX schedules_function ON schedules(function);
    """,
    # version 7: function URLs (one per function or alias; url_id is the URL's host label) and
    # resource-based policies (AddPermission), one row per statement.
    """
    CREATE TABLE function_urls(
        name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        url_id TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,
        PRIMARY KEY(name, qualifier)
    );
    CREATE TABLE policies(
        name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        qualifier TEXT NOT NULL,
        revision_id TEXT NOT NULL,
        statements TEXT NOT NULL,
        PRIMARY KEY(name, qualifier)
    );
    """,
]


class Database:
    """One connection, one thread. `run(fn)` executes fn(conn) in a transaction on that thread.

    close() waits for queued work, then closes; calls after close raise RuntimeError.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-db")
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 before SQLite opens it: its -wal and -shm files take the database's mode, and
        # sandbox uids must never read configuration (environment variables hold secrets).
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self._path, 0o600)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        (current,) = conn.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(_SCHEMA[current:], start=current + 1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
        self._conn = conn

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("database is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transact, fn)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue fn(conn) (in a transaction) on the database thread now; await the result later.

        Jobs run in the order submitted, so a caller can keep the thread busy back to back."""
        return asyncio.get_running_loop().run_in_executor(self._executor, self._transact, fn)

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)
