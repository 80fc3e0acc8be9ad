"""Dispatcher: accepts Event invocations into the durable queue and runs them (spec 7).

Accept (`submit`): the function is resolved first, so a missing one is the caller's 404; the
event is then stored, and `submit` returns once the commit holding it has (the 202 follows).

Run (`run`, a task of the server's): claim due events under a lease and run each through the
same `Invoker.invoke` as a synchronous call (EventRunner), so account and reserved concurrency
and memory admission apply alike. How many run at once:
- at most `max_in_flight` in all (the account's concurrency limit);
- per function, within a ConcurrencyWindow (window.py) that grows while more concurrency helps
  and never passes the function's own limit (its reservation, else the unreserved pool);
- an event whose function has no concurrency free (it is throttled) waits, still leased, and
  starts the moment an invoke gives concurrency back: throttled events wait in the queue and
  do not count as attempts. One that waits longer than its throttle backoff (1 s, 2 s, ...
  5 min) goes back to the queue as Lambda returns a throttled event, so a function held up by
  synchronous calls does not keep its events in memory.
Events are claimed per function (EventQueue keeps a count of each one's), at most as many as
its window has room for, functions in turn: a backlog of one function is read from the store as
fast as it runs and no faster, and other functions' events never wait behind it.

`time_scale` (LAMINA_ASYNC_TIME_SCALE, for tests) divides every backoff delay and event age, so
a retry schedule of minutes plays out in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from lamina.asyncq.runner import EventRunner, Report
from lamina.asyncq.window import ConcurrencyWindow
from lamina.functions.event_configs import EventConfigs
from lamina.functions.service import FunctionService
from lamina.invoke.invoker import Invoker
from lamina.model.events import AsyncEvent, ClaimedEvent
from lamina.model.ids import RequestId
from lamina.model.invocation import InvokeRequest
from lamina.store.queue import EventQueue

log = logging.getLogger("lamina.asyncq")

# Events claimed per round trip to the store, at most.
CLAIM_BATCH = 256


@dataclass(slots=True, eq=False)
class _Waiting:
    claim: ClaimedEvent
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Function:
    """What the dispatcher knows of one function with events running or waiting."""

    window: ConcurrencyWindow = field(default_factory=ConcurrencyWindow)
    running: int = 0  # its events being attempted (a window slot each)
    pending: int = 0  # of those, started but not yet holding their concurrency lease
    ready: deque[_Waiting] = field(default_factory=deque)  # claimed, waiting to start, in order


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionStatistics:
    window: int
    running: int
    waiting: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatcherStatistics:
    accepted: int
    in_flight: int
    waiting: int  # claimed, waiting to start (for their function's window or concurrency)
    max_in_flight: int
    succeeded: int
    failed_attempts: int
    throttled: int
    retries_scheduled: int
    failed: int  # ended without success (a destination, a dead letter or the failed store got it)
    functions: dict[str, FunctionStatistics]


class Dispatcher:
    def __init__(
        self,
        *,
        queue: EventQueue,
        invoker: Invoker,
        functions: FunctionService,
        configs: EventConfigs,
        max_in_flight: int,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._invoker = invoker
        self._runner = EventRunner(
            queue=queue, invoker=invoker, functions=functions, configs=configs, time_scale=time_scale, clock=clock
        )
        self._max_in_flight = max(1, max_in_flight)
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()  # every task of ours: runs and settlements
        self._tg: asyncio.TaskGroup | None = None
        self._fns: dict[str, _Function] = {}
        self._wake = asyncio.Event()
        self._recovered = asyncio.Event()
        self._sleep_until: float | None = None  # when the idle loop looks again unless woken
        self._stopping = False
        self._accepted = 0
        self._turn = 0  # where the next claim starts among functions with events
        invoker.metrics.watch_queue(queue.queued)

    # --- accept ------------------------------------------------------------------------------

    async def submit(self, req: InvokeRequest) -> RequestId:
        """Store an Event invocation; returns its request id once it is durable.

        Raises what resolving the function raises (ResourceNotFoundException, ...), and the
        store's error if the commit fails (the caller then gets a 500: nothing was accepted).
        """
        self._invoker.route(req)
        now = self._clock()
        event = AsyncEvent(
            id=RequestId(str(uuid.uuid4())),
            function_name=req.ref.name,
            qualifier=req.ref.qualifier,
            payload=req.payload,
            enqueued_at=now,
            trace_id=req.trace_id,
        )
        await self._queue.enqueue(event, due=now)
        self._accepted += 1
        self._invoker.metrics.record_event_received(event.function_name)
        if self._room_for(event.function_name) > 0:
            self._wake.set()
        return event.id

    def notify(self, function_name: str) -> None:
        """Another part of the server (the scheduler) stored events of `function_name` in the
        queue: look at the queue again."""
        if self._room_for(function_name) > 0:
            self._wake.set()

    def expiry(self, event: AsyncEvent) -> float:
        """When `event` passes its function's MaximumEventAgeInSeconds (the test-mode clock
        applied): from then on it would end with EventAgeExceeded instead of running."""
        return self._runner.expiry(event)

    async def wait_recovered(self) -> None:
        """Return once `run` has taken back the leases of a previous server (before then,
        events written by others would be counted twice)."""
        await self._recovered.wait()

    async def replay(self, event_id: str) -> AsyncEvent | None:
        """Put a failed event back in the queue as new (attempts and age start again); None if
        no failed event has that id."""
        event = await self._queue.replay(event_id, now=self._clock())
        if event is not None:
            self._wake.set()
        return event

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and run events until `stop()`. Releases the leases a previous server left first."""
        recovered = await self._queue.recover(now=self._clock())
        self._recovered.set()
        if recovered:
            log.warning("%d events were running when the previous server stopped; they run again", recovered)
        self._invoker.watch_releases(self._released)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                while not self._stopping:
                    # Cleared before looking, so a wake-up that comes while claiming is not lost.
                    self._wake.clear()
                    free = self._max_in_flight - self._running()
                    if free <= 0:
                        await self._wait(None)
                        continue
                    quotas = self._quotas(min(free, CLAIM_BATCH))
                    if not quotas:
                        await self._wait(None)  # nothing queued, or no room: a write or a slot wakes us
                        continue
                    result = await self._queue.claim(now=self._clock(), quotas=quotas)
                    self._admit(result.events)
                    for name in result.exhausted:
                        self._forget_if_idle(name)
                    if len(result.exhausted) < len(quotas):
                        continue  # some function had as many due as asked for: there may be more
                    await self._wait(result.next_due)
        finally:
            self._tg = None
            self._invoker.watch_releases(None)

    async def stop(self, grace: float) -> None:
        """Stop claiming; give running events `grace` seconds, then cancel them. Events that
        wait for concurrency, or were cancelled, stay leased: they run at the next start."""
        self._stopping = True
        self._wake.set()
        for f in self._fns.values():
            for w in f.ready:
                if w.timer is not None:
                    w.timer.cancel()
            f.ready.clear()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()

    async def _wait(self, until: float | None) -> None:
        """Sleep until `until` (epoch seconds; None: until woken) or a wake-up."""
        self._sleep_until = until
        try:
            if until is None:
                await self._wake.wait()
                return
            delay = until - self._clock()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            self._sleep_until = None

    def _due_at(self, due: float) -> None:
        """Something became due at `due`: look again then, if that is before the plan."""
        if self._sleep_until is None or due < self._sleep_until:
            self._wake.set()

    # --- admission ---------------------------------------------------------------------------
    #
    # Claimed events of a function wait in its `ready` queue, up to as many again as its window
    # runs, so the next one starts the moment a slot frees, without a round trip to the store.
    # One starts when its function has window room and concurrency (the limiter agrees). An
    # event that waits longer than a throttled event's backoff while its function has no
    # concurrency goes back to the queue as a throttle (spec 7).

    def _admit(self, claims: list[ClaimedEvent]) -> None:
        surplus: list[ClaimedEvent] = []
        touched: dict[str, _Function] = {}
        for claim in claims:
            name = claim.event.function_name
            f = self._fns.setdefault(name, _Function())
            if self._runner.ends_without_running(claim.event):
                self._start(name, f, claim)  # settled at once, without an attempt
            elif f.running + len(f.ready) >= 2 * self._window(name, f):
                surplus.append(claim)  # claimed before its window was known to be full
            else:
                waiting = _Waiting(claim=claim)
                self._arm(name, waiting)
                f.ready.append(waiting)
                touched[name] = f
        for name, f in touched.items():
            self._start_ready(name, f)
        if surplus:
            self._spawn(self._release(surplus))

    async def _release(self, claims: list[ClaimedEvent]) -> None:
        await self._queue.release(claims, due=self._clock())

    def _arm(self, name: str, waiting: _Waiting) -> None:
        event = waiting.claim.event
        delay = max(0.0, min(self._runner.throttle_delay(event), self._runner.expiry(event) - self._clock()))
        waiting.timer = asyncio.get_running_loop().call_later(delay, self._waited_too_long, name, waiting)

    def _waited_too_long(self, name: str, waiting: _Waiting) -> None:
        f = self._fns.get(name)
        if f is None or waiting not in f.ready:
            return
        if self._clock() < self._runner.expiry(waiting.claim.event) and self._invoker.has_capacity(name, pending=f.pending):
            self._arm(name, waiting)  # it waits for its window, not for concurrency
            return
        f.ready.remove(waiting)  # throttled all this while: back to the queue, as a throttle
        self._spawn(self._back_off(waiting.claim))
        self._forget_if_idle(name)
        self._wake.set()  # its room grew

    async def _back_off(self, claim: ClaimedEvent) -> None:
        report = await self._runner.back_off(claim, claim.event)
        if report.due is not None:
            self._due_at(report.due)

    def _start_ready(self, name: str, f: _Function) -> None:
        window = self._window(name, f)
        while (
            f.ready
            and f.running < window
            and self._running() < self._max_in_flight
            and self._invoker.has_capacity(name, pending=f.pending)
        ):
            waiting = f.ready.popleft()
            if waiting.timer is not None:
                waiting.timer.cancel()
            self._start(name, f, waiting.claim)

    def _start(self, name: str, f: _Function, claim: ClaimedEvent) -> None:
        if self._tg is None or self._stopping:
            return  # the event stays leased and runs at the next start
        f.running += 1
        f.pending += 1
        task = self._tg.create_task(self._run_one(name, f, claim))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _run_one(self, name: str, f: _Function, claim: ClaimedEvent) -> None:
        f.pending -= 1  # from its first step on, the event holds its lease or never will
        in_flight = 0

        def invoked() -> None:  # the attempt is over: its slot is free before the settlement
            nonlocal in_flight
            if in_flight == 0:
                in_flight = f.running
                f.running -= 1
                self._start_ready(name, f)
                self._wake.set()

        report: Report | None = None
        try:
            report = await self._runner.run(claim, on_invoked=invoked)
        except Exception:  # the store failed (or a bug): the event stays leased, claimed again when that ends
            log.exception("event %s could not be settled", claim.event.id)
        finally:
            invoked()
            if report is not None:
                if report.warm_rtt is not None:
                    f.window.record(report.warm_rtt, in_flight=in_flight, ceiling=self._invoker.concurrency_limit(name))
                if report.due is not None:
                    self._due_at(report.due)
            self._forget_if_idle(name)

    def _released(self, function: str) -> None:
        """Concurrency came back (an invoke of `function` ended): start events waiting for it,
        then, as the unreserved pool is shared, any other function's that can run now."""
        f = self._fns.get(function)
        if f is not None and f.ready:
            self._start_ready(function, f)
        for name, other in list(self._fns.items()):
            if other.ready and name != function:
                self._start_ready(name, other)

    def _quotas(self, limit: int) -> dict[str, int]:
        """How many events of each function with events queued to claim now: as many as its
        window has room for (a function not yet busy: a fresh window's worth), `limit` in all,
        taking functions in turn so that none waits behind another's backlog."""
        names = [n for n in self._queue.queued() if self._room_for(n) > 0]
        if not names:
            return {}
        self._turn = (self._turn + 1) % len(names)
        quotas: dict[str, int] = {}
        for name in names[self._turn :] + names[: self._turn]:
            quota = min(self._room_for(name), limit)
            if quota <= 0:
                break
            quotas[name] = quota
            limit -= quota
        return quotas

    def _room_for(self, name: str) -> int:
        f = self._fns.get(name)
        if f is None:
            return 2 * ConcurrencyWindow().size(self._invoker.concurrency_limit(name))
        return self._room(name, f)

    def _window(self, name: str, f: _Function) -> int:
        return f.window.size(self._invoker.concurrency_limit(name))

    def _room(self, name: str, f: _Function) -> int:
        return 2 * self._window(name, f) - f.running - len(f.ready)

    def _forget_if_idle(self, name: str) -> None:
        """A function with nothing running or waiting is claimed with the others again (and its
        window starts afresh when it is next busy)."""
        f = self._fns.get(name)
        if f is not None and f.running == 0 and not f.ready:
            del self._fns[name]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A settlement on its own (a release, a throttle's return), owned by the dispatcher."""
        if self._tg is None:
            coro.close()
            return
        task = self._tg.create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    @staticmethod
    async def _guarded(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception:  # the store failed: the events stay leased and are claimed again later
            log.exception("events could not be settled")

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    def _running(self) -> int:
        return sum(f.running for f in self._fns.values())

    def statistics(self) -> DispatcherStatistics:
        c = self._runner.counts
        return DispatcherStatistics(
            accepted=self._accepted,
            in_flight=self._running(),
            waiting=sum(len(f.ready) for f in self._fns.values()),
            max_in_flight=self._max_in_flight,
            succeeded=c.succeeded,
            failed_attempts=c.failed_attempts,
            throttled=c.throttled,
            retries_scheduled=c.retries,
            failed=c.ended_unsuccessfully,
            functions={
                name: FunctionStatistics(window=self._window(name, f), running=f.running, waiting=len(f.ready))
                for name, f in sorted(self._fns.items())
            },
        )
