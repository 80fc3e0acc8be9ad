"""ConcurrencyLimiter: the account's concurrent executions, with reserved concurrency per function.

A function with reserved concurrency may run that many at once and no more (0 throttles it); the
rest of the account's limit is shared by the functions without a reservation (spec 8). A lease
that cannot be had raises TooManyRequestsException (429) at once: nothing queues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lamina.model.errors import TooManyRequestsException


@dataclass(frozen=True, slots=True, kw_only=True)
class LimiterStatistics:
    limit: int
    in_use: int
    throttles: int


class ConcurrencyLimiter:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._unreserved_in_use = 0
        self._reserved_in_use: dict[str, int] = {}
        self._throttles = 0
        # Called with the function's name after each lease is given back (the async dispatcher
        # starts events that wait for concurrency then); must not raise.
        self.on_release: Callable[[str], None] | None = None

    def available(self, function: str, *, reserved: int | None, unreserved_pool: int | None = None, pending: int = 0) -> bool:
        """Whether a lease for `function` would be granted now, with `pending` more already promised."""
        if reserved is not None:
            return self._reserved_in_use.get(function, 0) + pending < reserved
        pool = self._limit if unreserved_pool is None else unreserved_pool
        return self._unreserved_in_use + pending < pool

    def lease(self, function: str, *, reserved: int | None, unreserved_pool: int | None = None) -> _Lease:
        """Hold one unit of `function`'s concurrency for a `with` block, or raise 429 on entry.

        `reserved`: the function's reservation, if any. `unreserved_pool`: what the functions
        without one share (the account limit less every reservation).
        """
        return _Lease(self, function, reserved, self._limit if unreserved_pool is None else unreserved_pool)

    def _take(self, function: str, reserved: int | None, pool: int) -> None:
        if reserved is not None:
            used = self._reserved_in_use.get(function, 0)
            if used >= reserved:
                self._throttles += 1
                raise TooManyRequestsException("Rate Exceeded.", reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            self._reserved_in_use[function] = used + 1
            return
        if self._unreserved_in_use >= pool:
            self._throttles += 1
            raise TooManyRequestsException("Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded")
        self._unreserved_in_use += 1

    def _give_back(self, function: str, reserved: int | None) -> None:
        if reserved is not None:
            left = self._reserved_in_use[function] - 1
            if left:
                self._reserved_in_use[function] = left
            else:
                del self._reserved_in_use[function]
        else:
            self._unreserved_in_use -= 1
        if self.on_release is not None:
            self.on_release(function)

    def statistics(self) -> LimiterStatistics:
        in_use = self._unreserved_in_use + sum(self._reserved_in_use.values())
        return LimiterStatistics(limit=self._limit, in_use=in_use, throttles=self._throttles)


class _Lease:
    """`with limiter.lease(...)`: a class, not @contextmanager (its generator cost ~0.7 µs)."""

    __slots__ = ("_limiter", "_function", "_reserved", "_pool")

    def __init__(self, limiter: ConcurrencyLimiter, function: str, reserved: int | None, pool: int) -> None:
        self._limiter = limiter
        self._function = function
        self._reserved = reserved
        self._pool = pool

    def __enter__(self) -> None:
        self._limiter._take(self._function, self._reserved, self._pool)

    def __exit__(self, *exc_info: object) -> None:
        self._limiter._give_back(self._function, self._reserved)
