"""ConcurrencyLimiter: the account's concurrent executions, with reserved concurrency per function.

A function with reserved concurrency may run that many at once and no more (0 throttles it); the
rest of the account's limit is shared by the functions without a reservation (spec 8). A lease
that cannot be had raises TooManyRequestsException (429) at once: nothing queues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    def _released(self, function: str) -> None:
        if self.on_release is not None:
            self.on_release(function)

    @contextmanager
    def lease(self, function: str, *, reserved: int | None, unreserved_pool: int | None = None) -> Iterator[None]:
        """Hold one unit of `function`'s concurrency for the block, or raise 429.

        `reserved`: the function's reservation, if any. `unreserved_pool`: what the functions
        without one share (the account limit less every reservation).
        """
        if reserved is not None:
            used = self._reserved_in_use.get(function, 0)
            if used >= reserved:
                self._throttles += 1
                raise TooManyRequestsException("Rate Exceeded.", reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            self._reserved_in_use[function] = used + 1
            try:
                yield
            finally:
                left = self._reserved_in_use[function] - 1
                if left:
                    self._reserved_in_use[function] = left
                else:
                    del self._reserved_in_use[function]
                self._released(function)
            return
        pool = self._limit if unreserved_pool is None else unreserved_pool
        if self._unreserved_in_use >= pool:
            self._throttles += 1
            raise TooManyRequestsException("Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded")
        self._unreserved_in_use += 1
        try:
            yield
        finally:
            self._unreserved_in_use -= 1
            self._released(function)

    def statistics(self) -> LimiterStatistics:
        in_use = self._unreserved_in_use + sum(self._reserved_in_use.values())
        return LimiterStatistics(limit=self._limit, in_use=in_use, throttles=self._throttles)
