"""Invoker: resolve → lease concurrency → environment → result (ARCHITECTURE 3.4).

The synchronous path touches no database: configuration comes from FunctionService's memory.
`submit_event` runs an `Event` invocation in the background; it is held in memory only (the
durable queue with retries and destinations is the asynchronous-invocation issue's work).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from random import getrandbits

from lamina.envs.manager import EnvironmentManager
from lamina.functions.service import FunctionService
from lamina.invoke.concurrency import ConcurrencyLimiter
from lamina.invoke.routing import Route, resolve
from lamina.metrics import Metrics
from lamina.model.errors import TooManyRequestsException
from lamina.model.ids import RequestId
from lamina.model.invocation import Invocation, InvokeRequest, InvokeResult

log = logging.getLogger("lamina.invoke")

# Throttled events wait in memory and are tried again, as Lambda keeps them queued (spec 7).
_EVENT_RETRY_DELAYS = (0.05, 0.2, 1.0, 5.0, 30.0, 60.0)
# The version (4) and variant (10) bits of a random UUID.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> RequestId:
    """A random (version 4) UUID, as Lambda's request ids are. Request ids must be unique, not
    unguessable, so Python's PRNG serves: uuid.uuid4() reads the kernel's (a syscall, ~4 µs)."""
    h = "%032x" % (getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return RequestId(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokerStatistics:
    events_in_flight: int


class Invoker:
    def __init__(
        self,
        *,
        functions: FunctionService,
        manager: EnvironmentManager,
        limiter: ConcurrencyLimiter,
        metrics: Metrics | None = None,
    ) -> None:
        self._functions = functions
        self._manager = manager
        self._limiter = limiter
        self._events: set[asyncio.Task[None]] = set()
        # What every invoke ran into; the admin API serves it (GET /lamina/v1/metrics).
        self.metrics = metrics or Metrics()
        self.metrics.watch_concurrency(lambda: limiter.statistics().in_use)

    def route(self, req: InvokeRequest) -> Route:
        """Resolve without running (DryRun); raises the same errors an invoke would."""
        return resolve(self._functions, req.ref)

    async def invoke(self, req: InvokeRequest, request_id: RequestId | None = None) -> InvokeResult:
        route = resolve(self._functions, req.ref)
        inv = Invocation(
            request_id=request_id or new_request_id(),
            config=route.config,
            invoked_arn=route.invoked_arn,
            payload=req.payload or b"{}",
            client_context=req.client_context,
            trace_id=req.trace_id,
            tail_log=req.tail_log,
        )
        name = route.config.name
        try:
            with self._limiter.lease(name, reserved=route.reserved, unreserved_pool=self._functions.unreserved_concurrency):
                async with self._manager.acquire(route.config, network=route.network) as env:
                    result = await env.invoke(inv)
        except TooManyRequestsException as exc:  # the limiter's, or memory admission's (a cold start)
            self.metrics.record_throttle(name, exc.reason)
            raise
        self.metrics.record(name, result)
        return result

    def submit_event(self, req: InvokeRequest) -> RequestId:
        """Accept an Event invocation: resolve now (so errors reach the caller), run in the background."""
        resolve(self._functions, req.ref)
        request_id = new_request_id()
        task = asyncio.ensure_future(self._run_event(req, request_id))
        self._events.add(task)
        task.add_done_callback(self._events.discard)
        return request_id

    async def _run_event(self, req: InvokeRequest, request_id: RequestId) -> None:
        for delay in (*_EVENT_RETRY_DELAYS, None):
            try:
                result = await self.invoke(req, request_id)
            except TooManyRequestsException:
                if delay is None:
                    log.warning("event %s dropped: still throttled after retries", request_id)
                    return
                await asyncio.sleep(delay)
                continue
            except Exception:
                log.exception("event %s failed", request_id)
                return
            if result.failed:
                log.info("event %s ended with %s", request_id, result.error_type)
            return

    async def close(self) -> None:
        """Cancel background events and wait for them."""
        for t in list(self._events):
            t.cancel()
        if self._events:
            await asyncio.gather(*self._events, return_exceptions=True)

    def statistics(self) -> InvokerStatistics:
        return InvokerStatistics(events_in_flight=len(self._events))
