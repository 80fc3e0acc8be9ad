"""ConcurrencyLimiter: the account's concurrent executions; throttle at once when none is left."""

from __future__ import annotations

from collections.abc import Iterator
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
        self._in_use = 0
        self._throttles = 0

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Hold one unit of concurrency for the block, or raise TooManyRequestsException (429)."""
        if self._in_use >= self._limit:
            self._throttles += 1
            raise TooManyRequestsException("Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded")
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(limit=self._limit, in_use=self._in_use, throttles=self._throttles)
