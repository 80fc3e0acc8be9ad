"""ScheduleRepo: schedules in SQLite, and each fire recorded in one transaction with its event.

A fire is a compare-and-set on the schedule's `fired_until` (from the value the scheduler last
saw to the fire's time) committed together with the event it enqueues (EventQueue.enqueue_if,
inside the queue's group commit). So a crash neither loses a fire (not committed: still due at
the next start, where the catch-up rule takes it) nor doubles one (committed: `fired_until` has
moved past it). A schedule deleted meanwhile, by hand or with its function (ON DELETE CASCADE),
fails the compare and enqueues nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from lamina.model.events import AsyncEvent
from lamina.model.schedules import Schedule, ScheduleState
from lamina.store.db import Database
from lamina.store.queue import EventQueue

_COLUMNS = "name, expression, function, qualifier, input, state, created, fired_until"


class ScheduleExists(Exception):
    """A schedule of that name is already stored."""


class ScheduleRepo:
    def __init__(self, db: Database, queue: EventQueue) -> None:
        self._db = db
        self._queue = queue

    async def load_all(self) -> list[Schedule]:
        def q(conn: sqlite3.Connection) -> list[Schedule]:
            return [_schedule(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY name")]

        return await self._db.run(q)

    async def create(self, s: Schedule) -> None:
        """Raises ScheduleExists if the name is taken, sqlite3.IntegrityError if the function
        is not stored."""

        def q(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM schedules WHERE name=?", (s.name,)).fetchone() is not None:
                raise ScheduleExists(s.name)
            conn.execute(f"INSERT INTO schedules({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", _row(s))

        await self._db.run(q)

    async def delete(self, name: str) -> bool:
        """False if there was no such schedule."""
        return await self._db.run(lambda conn: conn.execute("DELETE FROM schedules WHERE name=?", (name,)).rowcount == 1)

    async def set_state(self, s: Schedule) -> bool:
        """Store `s`'s state and `fired_until`; False if the schedule is gone."""

        def q(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute(
                "UPDATE schedules SET state=?, fired_until=? WHERE name=? AND created=?",
                (s.state.value, s.fired_until, s.name, s.created),
            ).rowcount == 1)  # fmt: skip

        return await self._db.run(q)

    async def fire(self, s: Schedule, *, at: float, event: AsyncEvent | None) -> bool:
        """Move `s` from its `fired_until` to `at`, with `event` (due at once) in the same
        transaction; with no event, only move it (a skipped fire). False, with nothing
        stored, if the schedule changed or is gone (deleted, or with its function)."""

        def moved(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute(
                "UPDATE schedules SET fired_until=? WHERE name=? AND created=? AND fired_until IS ? AND state=?",
                (at, s.name, s.created, s.fired_until, ScheduleState.ENABLED.value),
            ).rowcount == 1)  # fmt: skip

        if event is None:
            return await self._db.run(moved)
        return await self._queue.enqueue_if(event, due=event.enqueued_at, condition=moved)


def _row(s: Schedule) -> tuple[Any, ...]:
    return (s.name, s.expression, s.function_name, s.qualifier, s.input, s.state.value, s.created, s.fired_until)


def _schedule(row: tuple[Any, ...]) -> Schedule:
    name, expression, function, qualifier, input_, state, created, fired_until = row
    return Schedule(name=name, expression=expression, function_name=function, qualifier=qualifier, input=input_,
                    state=ScheduleState(state), created=created, fired_until=fired_until)  # fmt: skip
