"""Invoker: resolve → lease concurrency → environment → result (ARCHITECTURE 3.4).

The invoke path touches no database: configuration comes from FunctionService's memory. It
serves synchronous calls and, through `asyncq.Dispatcher`, queued Event invocations alike.
"""

from __future__ import annotations

from collections.abc import Callable
from random import getrandbits

from lamina.envs.manager import EnvironmentManager
from lamina.functions.service import FunctionService
from lamina.functions.sources import SourceFunctions
from lamina.invoke.concurrency import ConcurrencyLimiter
from lamina.invoke.routing import Route, resolve
from lamina.metrics import Metrics
from lamina.model.errors import TooManyRequestsException
from lamina.model.ids import RequestId
from lamina.model.invocation import Invocation, InvokeRequest, InvokeResult

# The version (4) and variant (10) bits of a random UUID.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> RequestId:
    """A random (version 4) UUID, as Lambda's request ids are. Request ids must be unique, not
    unguessable, so Python's PRNG serves: uuid.uuid4() reads the kernel's (a syscall, ~4 µs)."""
    h = "%032x" % (getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return RequestId(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")


class Invoker:
    def __init__(
        self,
        *,
        functions: FunctionService,
        manager: EnvironmentManager,
        limiter: ConcurrencyLimiter,
        metrics: Metrics | None = None,
        sources: SourceFunctions | None = None,
    ) -> None:
        self._functions = functions
        self._sources = sources
        self._manager = manager
        self._limiter = limiter
        # What every invoke ran into; the admin API serves it (GET /lamina/v1/metrics).
        self.metrics = metrics or Metrics()
        self.metrics.watch_concurrency(lambda: limiter.statistics().in_use)

    def has_capacity(self, name: str, *, pending: int = 0) -> bool:
        """Whether an invoke of function `name` would get concurrency now (with `pending` more
        already on their way); False for a function that does not exist."""
        rec = self._functions.find(name)
        if rec is None:
            return False
        return self._limiter.available(name, reserved=rec.reserved, unreserved_pool=self._functions.unreserved_concurrency,
                                       pending=pending)  # fmt: skip

    def concurrency_limit(self, name: str) -> int:
        """How many invokes of `name` may run at once: its reservation, else the unreserved pool."""
        rec = self._functions.find(name)
        if rec is not None and rec.reserved is not None:
            return rec.reserved
        return self._functions.unreserved_concurrency

    def watch_releases(self, callback: Callable[[str], None] | None) -> None:
        """Call `callback(function)` whenever an invoke gives its concurrency back."""
        self._limiter.on_release = callback

    def route(self, req: InvokeRequest) -> Route:
        """Resolve without running (DryRun); raises the same errors an invoke would."""
        return resolve(self._functions, req.ref)

    async def invoke(self, req: InvokeRequest, request_id: RequestId | None = None) -> InvokeResult:
        route = resolve(self._functions, req.ref)
        if route.config.code.source is not None and self._sources is not None:
            # A source function being reloaded: wait for the new code rather than run the old.
            reloading = self._sources.reloading(route.config.name)
            if reloading is not None:
                await reloading.wait()
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
