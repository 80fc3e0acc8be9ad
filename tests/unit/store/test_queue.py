"""EventQueue: group commit, leases, settlements in one transaction, recovery after a crash."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lamina.model.events import AsyncEvent, AttemptResponse, EventCondition, FailedEvent
from lamina.model.ids import RequestId
from lamina.store.db import Database
from lamina.store.queue import LEASE_S, EventQueue

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0


def event(function: str = "f", payload: bytes = b'{"n": 1}', **kw: object) -> AsyncEvent:
    return AsyncEvent(id=RequestId(str(uuid.uuid4())), function_name=function, qualifier=None, payload=payload,
                      enqueued_at=NOW, **kw)  # type: ignore[arg-type]  # fmt: skip


@asynccontextmanager
async def open_queue(path: Path) -> AsyncIterator[EventQueue]:
    """A queue with its writer running, as the server runs it; closed (and its writes
    committed) on the way out."""
    db = Database(path / "lamina.db")
    await db.open()
    queue = EventQueue(db)
    writer = asyncio.ensure_future(queue.run())
    try:
        yield queue
    finally:
        queue.close()
        await writer
        await db.close()


async def test_concurrent_enqueues_share_commits(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        events = [event() for _ in range(500)]
        await asyncio.gather(*(q.enqueue(e, due=NOW) for e in events))
        commits, writes = q.commit_statistics()
        assert writes == 500
        assert commits < 50, f"{commits} commits for 500 concurrent enqueues: no grouping"
        assert q.queued() == {"f": 500}
    # durable: a new connection sees every one
    conn = sqlite3.connect(tmp_path / "lamina.db")
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (500,)
    conn.close()


async def test_claim_leases_until_settled_or_expired(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        due_now, due_later = event(), event()
        await q.enqueue(due_now, due=NOW)
        await q.enqueue(due_later, due=NOW + 60)
        first = await q.claim(now=NOW, quotas={"f": 10})
        assert [c.event.id for c in first.events] == [due_now.id]
        assert first.exhausted == {"f"}
        assert first.next_due == NOW + 60  # the later one (the lease ends after it)
        # leased: not claimed again before the lease ends
        assert (await q.claim(now=NOW + 1, quotas={"f": 10})).events == []
        # the lease ran out (its holder died): claimed again, with a new token
        again = await q.claim(now=NOW + LEASE_S + 1, quotas={"f": 10})
        assert [c.event.id for c in again.events] == [due_later.id, due_now.id]  # by due: 60 s, then the lease's end
        assert again.events[1].lease != first.events[0].lease
        # the old holder's settlement is refused; the new one's goes through, once
        assert await q.settle(first.events[0], now=NOW) is False
        assert await q.settle(again.events[1], now=NOW) is True
        assert await q.settle(again.events[1], now=NOW) is False
        assert q.queued() == {"f": 1}


async def test_quotas_keep_functions_apart(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        for _ in range(20):
            await q.enqueue(event("busy"), due=NOW)
        await q.enqueue(event("other"), due=NOW)
        got = await q.claim(now=NOW, quotas={"busy": 3, "other": 5})
        assert sorted(c.event.function_name for c in got.events) == ["busy"] * 3 + ["other"]
        assert got.exhausted == {"other"}


async def test_retry_and_release_put_events_back(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        e = event()
        await q.enqueue(e, due=NOW)
        (c,) = (await q.claim(now=NOW, quotas={"f": 1})).events
        response = AttemptResponse(executed_version="$LATEST", function_error="Unhandled", payload=b'{"errorMessage": "x"}')
        tried = AsyncEvent(**{**_fields(e), "attempts": 1, "last_response": response})
        assert await q.retry(c, tried, due=NOW + 60)
        assert (await q.claim(now=NOW + 59, quotas={"f": 1})).events == []
        (c2,) = (await q.claim(now=NOW + 60, quotas={"f": 1})).events
        assert c2.event.attempts == 1 and c2.event.last_response == response
        await q.release([c2], due=NOW + 61)
        (c3,) = (await q.claim(now=NOW + 61, quotas={"f": 1})).events
        assert c3.event.attempts == 1


async def test_settle_stores_what_it_causes_in_the_same_transaction(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        e = event(payload=b'{"k": "v"}')
        await q.enqueue(e, due=NOW)
        (c,) = (await q.claim(now=NOW, quotas={"f": 1})).events
        record = event("destination", payload=b'{"version": "1.0"}')
        failed = FailedEvent(event=e, condition=EventCondition.RETRIES_EXHAUSTED, failed_at=NOW + 5)
        assert await q.settle(c, failed=failed, deliveries=[record], now=NOW + 5)
        assert q.queued() == {"destination": 1}
        (listed,) = await q.list_failed(function="f")
        assert listed.event.id == e.id and listed.condition is EventCondition.RETRIES_EXHAUSTED
        assert listed.event.payload == b'{"k": "v"}'
        # replay: back in the queue as new, under its own id
        replayed = await q.replay(e.id, now=NOW + 100)
        assert replayed is not None and replayed.attempts == 0 and replayed.enqueued_at == NOW + 100
        assert await q.list_failed() == []
        assert await q.replay(e.id, now=NOW + 100) is None
        got = await q.claim(now=NOW + 100, quotas={"f": 5, "destination": 5})
        assert sorted(x.event.id for x in got.events) == sorted([e.id, record.id])


async def test_a_failing_write_fails_alone(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        bad = q._submit(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
        good = event()
        results = await asyncio.gather(bad, q.enqueue(good, due=NOW), return_exceptions=True)
        assert isinstance(results[0], sqlite3.OperationalError)
        assert results[1] is None
        assert [c.event.id for c in (await q.claim(now=NOW, quotas={"f": 1})).events] == [good.id]


async def test_recover_releases_a_dead_servers_leases(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        for _ in range(3):
            await q.enqueue(event(), due=NOW)
        claimed = (await q.claim(now=NOW, quotas={"f": 2})).events
        assert len(claimed) == 2
    # a new server on the same data directory (the first died holding two leases)
    async with open_queue(tmp_path) as q:
        assert await q.recover(now=NOW + 1) == 2
        assert q.queued() == {"f": 3}
        got = await q.claim(now=NOW + 1, quotas={"f": 10})
        assert len(got.events) == 3


async def test_closed_queue_refuses_writes(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        q.close()
        with pytest.raises(RuntimeError, match="closed"):
            await q.enqueue(event(), due=NOW)


def _fields(e: AsyncEvent) -> dict[str, object]:
    return {name: getattr(e, name) for name in AsyncEvent.__dataclass_fields__}


async def test_counts_follow_commits_even_when_the_caller_left(tmp_path: Path) -> None:
    async with open_queue(tmp_path) as q:
        caller = asyncio.ensure_future(q.enqueue(event(), due=NOW))
        await asyncio.sleep(0)  # its write is queued
        caller.cancel()  # the client hung up before the 202: the event is stored all the same
        await asyncio.gather(caller, return_exceptions=True)
        await q.enqueue(event(), due=NOW)
        assert q.queued() == {"f": 2}
        assert len((await q.claim(now=NOW, quotas={"f": 5})).events) == 2
