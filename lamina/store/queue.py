"""EventQueue: asynchronous events in SQLite, written with group commit (ARCHITECTURE 3.4).

Durability: `enqueue` returns only after the transaction holding the event has committed, with
`synchronous=FULL` in WAL mode (db.py): the WAL is fsync'd at every commit, so an accepted event
survives a process crash and a power loss alike.

Group commit: every write (enqueue, claim, settle, retry) is queued in memory, and a drain job
on the database thread commits whatever has gathered in one transaction; writes that arrive
while a commit is under way go into the next one, which starts as soon as it ends. Thousands of
concurrent Event invokes so share one fsync per commit instead of one each. Each operation runs in a savepoint of its
own, so one that fails (a bug, a constraint) fails alone; a commit that fails (disk full, I/O
error) fails every operation in it, and their callers see the error.

Claims are leases with a visibility deadline, as SQS does: a claimed event's `due` becomes the
lease's end and `lease` a token. Settling (complete, fail, retry) needs the token, so an event
whose lease ran out and was claimed again is settled once. A server that dies holding leases
loses nothing: `recover` at the next start makes those events due at once (one server per data
directory), and an event whose lease merely expired is claimed again. At-least-once: an event
that was running when the server died runs again.

Each settlement is one transaction with everything it causes (the destination's event, the
dead letter, the failed-events record): there is no moment where an event is gone and its
successor not yet stored (the lesson of LocalStack's delete-then-resend).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from lamina.model.events import AsyncEvent, AttemptResponse, ClaimedEvent, EventCondition, FailedEvent, QueueStatistics
from lamina.model.ids import RequestId
from lamina.store.db import Database

log = logging.getLogger("lamina.queue")
T = TypeVar("T")

# How long a claim hides an event: longer than any invocation can last (Lambda's 900 s timeout,
# its 10 s init, a margin). Only a lost claim inside a live server waits this long; a crashed
# server's claims are released at the next start (`recover`).
LEASE_S = 960.0

_EVENT_COLUMNS = (
    "id, function, qualifier, payload, enqueued, attempts, throttles, trace_id, client_context, response, response_payload"
)
_INSERT_EVENT = (
    "INSERT INTO events(id, function, qualifier, payload, enqueued, due, attempts, throttles, trace_id, "
    "client_context, response, response_payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimResult:
    events: list[ClaimedEvent]
    # When the next event of the functions asked for becomes due (leases included); None if
    # they have none.
    next_due: float | None
    # Functions that had fewer events due than their quota.
    exhausted: frozenset[str]


class QueueClosed(RuntimeError):
    """The queue no longer takes writes (the server is stopping)."""


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    # Run with the result once committed, whether or not the caller still waits for it.
    on_commit: Callable[[Any], None] | None = None


@dataclass(slots=True)
class _Batch:
    """The writes one drain job committed, and how each went."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    row_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    ops: list[_Op] = field(default_factory=list)
    row_errors: list[Exception | None] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    error: Exception | None = None  # the transaction's own failure

    def waiters(self) -> list[asyncio.Future[Any]]:
        return [*self.row_waiters, *(op.future for op in self.ops)]


class EventQueue:
    """The durable queue. `run()` must be running (a task of the server's) for writes to finish.

    Every write method waits for the commit that holds it and raises what made it fail (the
    database's error, or QueueClosed after `close()`).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._rows: list[tuple[Any, ...]] = []
        self._row_waiters: list[asyncio.Future[None]] = []
        self._ops: list[_Op] = []
        self._jobs: deque[tuple[asyncio.Future[None], _Batch]] = deque()
        self._job_waiting = False
        self._queued: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._closed = False
        self._commits = 0
        self._committed_ops = 0

    # --- the writer --------------------------------------------------------------------------
    #
    # Writes are appended to `_rows` / `_ops` (under `_lock`: the database thread takes them).
    # A drain job on the database thread takes everything gathered when it starts and commits it
    # in one transaction. One job at most waits to start: as soon as one starts, the next write
    # queues another behind it, so commits run back to back while writes keep coming, each
    # taking all that arrived during the one before. `run` resolves each job's writes in order.

    async def run(self) -> None:
        """Resolve committed writes, in order, until `close()` and the last write is committed."""
        while True:
            if self._jobs:
                job, batch = self._jobs.popleft()
                try:
                    await job
                except Exception as exc:  # the commit itself failed: every write in it did
                    if batch.waiters():
                        log.error("event queue commit of %d writes failed", len(batch.waiters()), exc_info=exc)
                    batch.error = exc
                self._resolve(batch)
                continue
            with self._lock:
                pending = bool(self._rows or self._ops)
            if pending:
                self._job_waiting = False  # a job that failed before taking its writes
                self._kick()
                continue
            if self._closed:
                return
            self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        """Take no more writes; `run` returns once those already queued are committed."""
        self._closed = True
        self._wake.set()

    def _kick(self) -> None:
        """Make sure a drain job is waiting to start (loop thread)."""
        if self._job_waiting:
            return
        self._job_waiting = True
        batch = _Batch()
        self._jobs.append((self._db.submit(partial(self._drain, batch)), batch))
        self._wake.set()

    def _drain(self, batch: _Batch, conn: sqlite3.Connection) -> None:
        """On the database thread, in the job's transaction: commit all writes gathered so far."""
        self._job_waiting = False  # before taking them: a write after this queues the next job
        with self._lock:
            batch.rows, batch.row_waiters, batch.ops = self._rows, self._row_waiters, self._ops
            self._rows, self._row_waiters, self._ops = [], [], []
        if batch.rows or batch.ops:
            batch.row_errors, batch.results = _commit(batch.rows, [op.fn for op in batch.ops], conn)

    def _resolve(self, batch: _Batch) -> None:
        if not batch.waiters():
            return
        if batch.error is None:
            self._commits += 1
            self._committed_ops += len(batch.rows) + len(batch.ops)
        for i, fut in enumerate(batch.row_waiters):
            error = batch.error or batch.row_errors[i]
            if error is None:
                self._count(batch.rows[i][1], 1)
            if fut.done():
                continue  # the caller went away; its event is stored all the same
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        for i, op in enumerate(batch.ops):
            result = _Failed(batch.error) if batch.error is not None else batch.results[i]
            if not isinstance(result, _Failed) and op.on_commit is not None:
                op.on_commit(result)
            if op.future.done():
                continue
            if isinstance(result, _Failed):
                op.future.set_exception(result.error)
            else:
                op.future.set_result(result)

    def _submit(self, fn: Callable[[sqlite3.Connection], T], on_commit: Callable[[T], None] | None = None) -> asyncio.Future[T]:
        if self._closed:
            raise QueueClosed("the event queue is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._ops.append(_Op(fn, fut, on_commit))
        self._kick()
        return fut

    # --- writes ------------------------------------------------------------------------------

    async def enqueue(self, event: AsyncEvent, *, due: float) -> None:
        """Store a new event, due at `due`; returns once it is committed."""
        if self._closed:
            raise QueueClosed("the event queue is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        row = _event_row(event, due)
        with self._lock:
            self._rows.append(row)
            self._row_waiters.append(fut)
        self._kick()
        await fut

    async def enqueue_if(self, event: AsyncEvent, *, due: float, condition: Callable[[sqlite3.Connection], bool]) -> bool:
        """Store `event` in one transaction with `condition(conn)`, a write of the caller's that
        runs first (in the same group commit) and says whether the event belongs: False stores
        nothing of either. Returns that answer once committed.

        For the scheduler: "fired at T" and the fire's event commit together or not at all.
        """
        row = _event_row(event, due)

        def q(conn: sqlite3.Connection) -> bool:
            if not condition(conn):
                return False
            conn.execute(_INSERT_EVENT, row)
            return True

        def counted(stored: bool) -> None:
            if stored:
                self._count(event.function_name, 1)

        return await self._submit(q, counted)

    async def claim(self, *, now: float, quotas: Mapping[str, int]) -> ClaimResult:
        """Lease events due by `now`: at most `quotas[f]` of each function f, oldest due first.

        Each function's events are found through the (function, due) index, so a backlog of
        one function costs nothing to the claims of another.
        """
        lease = secrets.randbits(62)
        return await self._submit(partial(_claim, now=now, lease=lease, until=now + LEASE_S, quotas=dict(quotas)))

    def queued(self) -> Mapping[str, int]:
        """How many events each function has in the queue (claimed ones included), as of the
        last commit; functions with none are absent. Kept in memory: read it freely."""
        return self._queued

    async def settle(
        self,
        claim: ClaimedEvent,
        *,
        failed: FailedEvent | None = None,
        deliveries: Sequence[AsyncEvent] = (),
        now: float,
    ) -> bool:
        """Remove a claimed event for good, in one transaction with what its end causes: events
        for destinations and dead-letter targets (due at `now`) and a failed-events record.

        Returns False, changing nothing, if the claim was lost (its lease ran out and the event
        was claimed again): the other claim settles it.
        """
        def counted(settled: bool) -> None:
            if settled:
                self._count(claim.event.function_name, -1)
                for e in deliveries:
                    self._count(e.function_name, 1)

        return await self._submit(partial(_settle, claim=claim, failed=failed, deliveries=deliveries, now=now), counted)

    def _count(self, function: str, delta: int) -> None:
        """Keep `queued()` right: called as writes commit (never from a caller that may be gone)."""
        n = self._queued.get(function, 0) + delta
        if n > 0:
            self._queued[function] = n
        else:
            self._queued.pop(function, None)

    async def retry(self, claim: ClaimedEvent, event: AsyncEvent, *, due: float) -> bool:
        """Put a claimed event back with new bookkeeping (`event`), due at `due`; False if the
        claim was lost."""
        return await self._submit(partial(_retry, claim=claim, event=event, due=due))

    async def release(self, claims: Sequence[ClaimedEvent], *, due: float) -> None:
        """Give claims back unchanged, due at `due` (claimed but not started: no attempt, no
        throttle). Lost claims are left alone."""
        await self._submit(partial(_release, rows=[(due, c.event.id, c.lease) for c in claims]))

    # --- reads and maintenance (rare) ---------------------------------------------------------

    async def recover(self, *, now: float) -> int:
        """Release the leases a previous server held (it died or stopped while they ran): those
        events are due at once; and count what waits. Call before any claim. Returns how many
        leases there were."""

        def q(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            released = conn.execute("UPDATE events SET lease=NULL, due=? WHERE lease IS NOT NULL", (now,)).rowcount
            return released, dict(conn.execute("SELECT function, COUNT(*) FROM events GROUP BY function").fetchall())

        released, counts = await self._db.run(q)
        self._queued.update(counts)
        return released

    async def list_failed(self, *, function: str | None = None, after: int = 0, limit: int = 100) -> list[FailedEvent]:
        """Failed events in the order they failed, from position `after` (exclusive)."""

        def q(conn: sqlite3.Connection) -> list[FailedEvent]:
            rows = conn.execute(
                f"SELECT seq, failed, condition, {_EVENT_COLUMNS} FROM failed_events "
                "WHERE seq > ? AND (? IS NULL OR function = ?) ORDER BY seq LIMIT ?",
                (after, function, function, limit),
            )
            return [
                FailedEvent(seq=seq, failed_at=failed, condition=EventCondition(cond), event=_event_from(rest))
                for seq, failed, cond, *rest in rows
            ]

        return await self._db.run(q)

    async def replay(self, event_id: str, *, now: float) -> AsyncEvent | None:
        """Move a failed event back into the queue, due now, as new (no attempts, its age counted
        from now), under its own request id. None if no failed event has that id."""

        def q(conn: sqlite3.Connection) -> AsyncEvent | None:
            row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM failed_events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                return None
            old = _event_from(row)
            event = AsyncEvent(
                id=old.id, function_name=old.function_name, qualifier=old.qualifier, payload=old.payload,
                enqueued_at=now, trace_id=old.trace_id, client_context=old.client_context,
            )  # fmt: skip
            conn.execute("DELETE FROM failed_events WHERE id = ?", (event_id,))
            conn.execute(_INSERT_EVENT, _event_row(event, now))
            return event

        def counted(event: AsyncEvent | None) -> None:
            if event is not None:
                self._count(event.function_name, 1)

        return await self._submit(q, counted)

    async def statistics(self) -> QueueStatistics:
        def q(conn: sqlite3.Connection) -> QueueStatistics:
            queued, claimed = conn.execute("SELECT COUNT(*), COUNT(lease) FROM events").fetchone()
            (failed,) = conn.execute("SELECT COUNT(*) FROM failed_events").fetchone()
            return QueueStatistics(queued=queued, claimed=claimed, failed=failed)

        return await self._db.run(q)

    def commit_statistics(self) -> tuple[int, int]:
        """(commits, writes committed) since start: writes per commit is the grouping achieved."""
        return self._commits, self._committed_ops


class _Failed(Exception):
    """An operation's exception, carried out of the database thread in place of its result."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _commit(
    rows: list[tuple[Any, ...]], ops: list[Callable[[sqlite3.Connection], Any]], conn: sqlite3.Connection
) -> tuple[list[Exception | None], list[Any]]:
    """One transaction (the caller's): the new rows, then each operation in a savepoint."""
    row_errors: list[Exception | None] = [None] * len(rows)
    if rows:
        conn.execute("SAVEPOINT rows")
        try:
            conn.executemany(_INSERT_EVENT, rows)
            conn.execute("RELEASE rows")
        except sqlite3.Error:
            conn.execute("ROLLBACK TO rows")
            conn.execute("RELEASE rows")
            for i, row in enumerate(rows):  # one by one, so only the offending row fails
                result = _in_savepoint(conn, partial(_insert_row, row))
                row_errors[i] = result.error if isinstance(result, _Failed) else None
    return row_errors, [_in_savepoint(conn, fn) for fn in ops]


def _insert_row(row: tuple[Any, ...], conn: sqlite3.Connection) -> None:
    conn.execute(_INSERT_EVENT, row)


def _in_savepoint(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T | _Failed:
    """fn(conn), undone alone if it raises (its exception comes back wrapped)."""
    conn.execute("SAVEPOINT op")
    try:
        result = fn(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return _Failed(exc)
    conn.execute("RELEASE op")
    return result


def _claim(conn: sqlite3.Connection, *, now: float, lease: int, until: float, quotas: dict[str, int]) -> ClaimResult:
    rows: list[Any] = []
    exhausted: set[str] = set()
    dues: list[float] = []
    for function, quota in quotas.items():
        found = conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE function = ? AND due <= ? ORDER BY due LIMIT ?", (function, now, quota)
        ).fetchall()
        rows += found
        if len(found) < quota:
            exhausted.add(function)
    if rows:
        conn.executemany("UPDATE events SET lease=?, due=? WHERE id=?", [(lease, until, r[0]) for r in rows])
    for function in quotas:
        (due,) = conn.execute("SELECT MIN(due) FROM events WHERE function = ?", (function,)).fetchone()
        if due is not None:
            dues.append(due)
    return ClaimResult(
        events=[ClaimedEvent(event=_event_from(r), lease=lease) for r in rows],
        next_due=min(dues) if dues else None,
        exhausted=frozenset(exhausted),
    )


def _settle(
    conn: sqlite3.Connection, *, claim: ClaimedEvent, failed: FailedEvent | None, deliveries: Sequence[AsyncEvent], now: float
) -> bool:
    if conn.execute("DELETE FROM events WHERE id=? AND lease=?", (claim.event.id, claim.lease)).rowcount != 1:
        return False
    if deliveries:
        conn.executemany(_INSERT_EVENT, [_event_row(e, now) for e in deliveries])
    if failed is not None:
        e = failed.event
        response, response_payload = _response_columns(e.last_response)
        conn.execute(
            "INSERT OR REPLACE INTO failed_events(id, function, qualifier, payload, enqueued, failed, attempts, throttles, "
            "condition, trace_id, client_context, response, response_payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (e.id, e.function_name, e.qualifier, e.payload, e.enqueued_at, failed.failed_at, e.attempts, e.throttles,
             failed.condition.value, e.trace_id, e.client_context, response, response_payload),
        )  # fmt: skip
    return True


def _release(conn: sqlite3.Connection, *, rows: list[tuple[float, str, int]]) -> None:
    conn.executemany("UPDATE events SET lease=NULL, due=? WHERE id=? AND lease=?", rows)


def _retry(conn: sqlite3.Connection, *, claim: ClaimedEvent, event: AsyncEvent, due: float) -> bool:
    response, response_payload = _response_columns(event.last_response)
    return (
        conn.execute(
            "UPDATE events SET lease=NULL, due=?, attempts=?, throttles=?, response=?, response_payload=? WHERE id=? AND lease=?",
            (due, event.attempts, event.throttles, response, response_payload, claim.event.id, claim.lease),
        ).rowcount
        == 1
    )


# --- codec: the only place that knows the columns ---------------------------------------------


def _response_columns(r: AttemptResponse | None) -> tuple[str | None, bytes | None]:
    if r is None:
        return None, None
    doc = {"version": r.executed_version, "error": r.function_error, "type": r.error_type, "status": r.status_code}
    return json.dumps(doc), r.payload


def _event_row(e: AsyncEvent, due: float) -> tuple[Any, ...]:
    response, response_payload = _response_columns(e.last_response)
    return (e.id, e.function_name, e.qualifier, e.payload, e.enqueued_at, due, e.attempts, e.throttles, e.trace_id,
            e.client_context, response, response_payload)  # fmt: skip


def _event_from(row: Sequence[Any]) -> AsyncEvent:
    id_, function, qualifier, payload, enqueued, attempts, throttles, trace_id, client_context, response, rpayload = row
    last = None
    if response is not None:
        doc = json.loads(response)
        last = AttemptResponse(executed_version=doc["version"], function_error=doc["error"], error_type=doc["type"],
                               status_code=doc["status"], payload=bytes(rpayload or b""))  # fmt: skip
    return AsyncEvent(
        id=RequestId(id_), function_name=function, qualifier=qualifier, payload=bytes(payload), enqueued_at=enqueued,
        attempts=attempts, throttles=throttles, trace_id=trace_id, client_context=client_context, last_response=last,
    )  # fmt: skip
