"""ScheduleRepo: a fire is one transaction with its event; a stale or deleted schedule enqueues
nothing; schedules go with their function."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from lamina.model.events import AsyncEvent
from lamina.model.ids import RequestId
from lamina.model.schedules import Schedule, ScheduleState
from lamina.store.db import Database
from lamina.store.queue import EventQueue
from lamina.store.schedules import ScheduleExists, ScheduleRepo

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0


@asynccontextmanager
async def open_repo(path: Path) -> AsyncIterator[tuple[ScheduleRepo, EventQueue, Database]]:
    db = Database(path / "lamina.db")
    await db.open()
    await db.run(lambda conn: conn.execute("INSERT INTO functions(name, created) VALUES ('f', 'then')"))
    queue = EventQueue(db)
    writer = asyncio.ensure_future(queue.run())
    try:
        yield ScheduleRepo(db, queue), queue, db
    finally:
        queue.close()
        await writer
        await db.close()


def schedule(name: str = "s") -> Schedule:
    return Schedule(name=name, expression="rate(1 minute)", function_name="f", created=NOW)


def event(at: float) -> AsyncEvent:
    return AsyncEvent(id=RequestId(str(uuid.uuid4())), function_name="f", qualifier=None, payload=b"{}", enqueued_at=at)


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path / "lamina.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_a_fire_moves_the_schedule_and_stores_its_event_together(tmp_path: Path) -> None:
    async with open_repo(tmp_path) as (repo, queue, _):
        s = schedule()
        await repo.create(s)
        assert await repo.fire(s, at=NOW + 60, event=event(NOW + 60)) is True
        assert queue.queued() == {"f": 1}
        # the same fire again, from the state before it (a second server, a retry): refused, nothing stored
        assert await repo.fire(s, at=NOW + 60, event=event(NOW + 60)) is False
        moved = replace(s, fired_until=NOW + 60)
        assert await repo.fire(moved, at=NOW + 120, event=None) is True  # a skipped fire: no event
        assert queue.queued() == {"f": 1}
        assert await repo.load_all() == [replace(s, fired_until=NOW + 120)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM events") == [(1,)]


async def test_a_failing_fire_stores_neither(tmp_path: Path) -> None:
    async with open_repo(tmp_path) as (repo, queue, _):
        s = schedule()
        await repo.create(s)
        first = event(NOW + 60)
        await queue.enqueue(first, due=NOW)
        # the event's insert fails (its id is taken) after the schedule moved: both undone
        with pytest.raises(sqlite3.IntegrityError):
            await repo.fire(s, at=NOW + 60, event=first)
        assert await repo.load_all() == [s]
        assert queue.queued() == {"f": 1}


async def test_disabled_or_deleted_schedules_do_not_fire(tmp_path: Path) -> None:
    async with open_repo(tmp_path) as (repo, queue, db):
        s, t = schedule("s"), schedule("t")
        await repo.create(s)
        await repo.create(t)
        with pytest.raises(ScheduleExists):
            await repo.create(s)
        assert await repo.set_state(replace(s, state=ScheduleState.DISABLED)) is True
        assert await repo.fire(s, at=NOW + 60, event=event(NOW + 60)) is False
        assert await repo.delete("t") is True and await repo.delete("t") is False
        assert await repo.fire(t, at=NOW + 60, event=event(NOW + 60)) is False
        # the function's deletion takes its schedules along
        await db.run(lambda conn: conn.execute("DELETE FROM functions WHERE name='f'"))
        assert await repo.load_all() == []
        assert queue.queued() == {}
        with pytest.raises(sqlite3.IntegrityError):  # no schedule for a function that is not stored
            await repo.create(schedule("u"))
